"""RepQ-ViT log-√2 quantization of attention probabilities (Sqrt2_17 and BitLog2's Sqrt2_16).

*Reference form* (:func:`reference_forward`, :func:`reference_codes`, :func:`reference_quantize`):
RepQ-ViT's ``LogSqrt2Quantizer.quantize`` operation by operation in float32::

    t = round(-1 * log2(x / delta) * 2)         # torch.round: half to even; x = 0 gives +inf
    zero = t >= 2**b
    c = clamp(t, 0, 2**b - 1)                    # Sqrt2_16: clamp(t, 0, 2**b - 2)
    x_hat = 2**(-ceil(c / 2)) * ((c % 2) * (sqrt(2) - 1) + 1) * delta, and 0 where zero

*Integer form* (:func:`quantize_int`, the hardware spec): on the unsigned grid
``xi = clamp(floor(x * 2**f), 0, 2**n - 1)``, ``count = #{j : xi <= theta_j}`` with the exact integer
thresholds :attr:`golden.params.Sqrt2Params.thresholds`; ``count == 2**b`` is the zero code, else
the code is ``min(count, max_code)``. Codes are int64 in ``[0, 2**b]``, ``2**b`` = exact zero.

*Exact form* (:func:`quantize_exact`): the same comparison on float32 inputs without the grid,
with :attr:`~golden.params.Sqrt2Params.float_thresholds`; it is the real-arithmetic meaning of
the reference, so the reference deviates from it only where float32 ``x / delta`` and ``log2``
round across a threshold (within a few ulp of it). :func:`disagreement` counts both effects.
"""

from __future__ import annotations

import math

import torch

from golden.fixedpoint import (
    CodeDisagreement,
    check_integer_tensor,
    comparator_count,
    from_fixed_point,
    to_fixed_point,
)
from golden.params import SQRT2_VARIANTS, ParamError, Sqrt2Params

__all__ = [
    "float_to_xi",
    "xi_to_float",
    "quantize_int",
    "quantize_exact",
    "reference_forward",
    "reference_codes",
    "reference_quantize",
    "dequantize",
    "disagreement",
]


def _check_probabilities(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():
        raise ParamError(f"log-sqrt2 input must be a floating-point tensor, not {x.dtype}")
    x = x.to(torch.float32)
    if x.numel() and not bool((x >= 0).all()):  # also catches NaN
        raise ParamError("log-sqrt2 input must be non-negative and not NaN (attention probabilities)")
    return x


def float_to_xi(x: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """The input grid ``clamp(floor(x * 2**input_frac_bits), 0, 2**input_bits - 1)`` (int64)."""
    return to_fixed_point(x, params.input_bits, params.input_frac_bits, signed=False)


def xi_to_float(xi: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """The grid value ``xi * 2**-input_frac_bits`` (float32, exact)."""
    return from_fixed_point(xi, params.input_frac_bits)


def _finish(count: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    return torch.where(count == params.n_codes, params.zero_code, count.clamp(max=params.max_code))


def quantize_int(xi: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """Comparator form on the unsigned integer grid: int64 codes in ``[0, 2**bits]``."""
    xi = check_integer_tensor("log-sqrt2 input xi", xi, 0, params.input_max)
    return _finish(comparator_count(xi, params.thresholds), params)


def quantize_exact(x: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """Exact real comparator on float32 inputs ``x >= 0``: int64 codes in ``[0, 2**bits]``."""
    x = _check_probabilities(x)
    return _finish(comparator_count(x, params.float_thresholds), params)


def reference_forward(
    x: torch.Tensor, delta: torch.Tensor | float, bits: int = 4, variant: str = "sqrt2_17"
) -> torch.Tensor:
    """RepQ-ViT's quantize-dequantize, operation by operation (float32 ``x_hat``).

    ``delta`` may be a tensor broadcastable against ``x`` (calibration candidates); a float is
    taken as a 0-d float32 tensor, like RepQ's calibrated ``delta``.
    """
    if variant not in SQRT2_VARIANTS:
        raise ParamError(f"sqrt2 variant must be one of {', '.join(SQRT2_VARIANTS)}, not {variant!r}")
    x = x.to(torch.float32)
    delta = torch.as_tensor(delta, dtype=torch.float32)
    n_levels = 2**bits
    x_int = torch.round(-1 * (x / delta).log2() * 2)
    mask = x_int >= n_levels
    x_quant = torch.clamp(x_int, 0, n_levels - 1 - SQRT2_VARIANTS[variant])
    odd_mask = (x_quant % 2) * (math.sqrt(2) - 1) + 1
    x_float_q = 2 ** (-1 * torch.ceil(x_quant / 2)) * odd_mask * delta
    return x_float_q.masked_fill(mask, 0.0)


def reference_codes(x: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """The reference's code ``t`` (float32 log2, clamp, zero test) as int64 in ``[0, 2**bits]``."""
    x = _check_probabilities(x)
    delta = torch.tensor(params.delta, dtype=torch.float32)
    x_int = torch.round(-1 * (x / delta).log2() * 2)
    codes = torch.clamp(x_int, 0, params.max_code).to(torch.int64)
    return torch.where(x_int >= params.n_codes, params.zero_code, codes)


def dequantize(codes: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """``x_hat`` of int64 codes with the reference's float32 expression (0 for the zero code)."""
    codes = check_integer_tensor("log-sqrt2 code", codes, 0, params.zero_code)
    zero = codes == params.zero_code
    x_quant = torch.where(zero, 0, codes).to(torch.float32)
    delta = torch.tensor(params.delta, dtype=torch.float32)
    odd_mask = (x_quant % 2) * (math.sqrt(2) - 1) + 1
    x_float_q = 2 ** (-1 * torch.ceil(x_quant / 2)) * odd_mask * delta
    return x_float_q.masked_fill(zero, 0.0)


def reference_quantize(x: torch.Tensor, params: Sqrt2Params) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference form: ``(codes, x_hat)``; ``x_hat`` equals :func:`reference_forward` bit for bit."""
    codes = reference_codes(x, params)
    return codes, dequantize(codes, params)


def disagreement(x: torch.Tensor, params: Sqrt2Params) -> CodeDisagreement:
    """Count elements of ``x`` on which the reference, exact and integer forms give different codes."""
    x = _check_probabilities(x)
    xi = float_to_xi(x, params)
    integer = quantize_int(xi, params)
    reference = reference_codes(x, params)
    return CodeDisagreement(
        elements=x.numel(),
        float_vs_integer=int((reference != integer).sum()),
        float_vs_exact=int((reference != quantize_exact(x, params)).sum()),
        grid_float_vs_integer=int((reference_codes(xi_to_float(xi, params), params) != integer).sum()),
    )
