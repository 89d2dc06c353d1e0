"""AdaLog quantization (adaptive log base ``2**(q/37)``, LUT dequantization), post-softmax and post-GELU.

*Reference form* (:func:`reference_forward`, :func:`reference_codes`, :func:`dequantize`):
AdaLog's ``AdaLogQuantizer.forward`` / ``ShiftAdaLogQuantizer.forward`` in inference mode,
operation by operation in float32, with the reference's tensor shapes and dtypes (``q`` an int64
tensor, ``scale`` and ``shift`` float32 tensors)::

    xs = ((x + shift) / scale).clamp(min=1e-15, max=1.0)
    k = round(-log2(xs) * 37.0 / q)             # torch.round: half to even
    mask = k < 2**b;  k = clamp(k, 0, 2**b - 1)
    x_hat = 2**(-E[k]) * (M[k] / Dn) * scale * mask  # (M[k] / Dn) stored as float32
    x_hat = x_hat - shift                        # only before the fc2 bias reparameterization

*Integer form* (:func:`quantize_int`, the hardware spec): on the fixed-point grid of
:class:`~golden.params.AdaLogParams`, ``count = #{j : xi <= theta_j}`` and
``code = min(count, clamp_code)``; ``code == 2**bits`` is the exact zero. The thresholds are the
exact real boundaries of the reference's rounding (ties, which exist for ``q = 74``, resolved
half to even like ``torch.round``), so the integer form differs from the float32 reference only
where float32 rounding crosses a boundary; :func:`disagreement` counts it.

The value of a nonzero code for the integer datapath is ``M[k] * 2**-E[k]`` in units of
``scale / Dn`` (see :func:`golden.intops.adalog_matmul`).
"""

from __future__ import annotations

import torch

from golden.fixedpoint import (
    CodeDisagreement,
    check_integer_tensor,
    comparator_count,
    from_fixed_point,
    to_fixed_point,
)
from golden.params import ADALOG_R, AdaLogParams, ParamError
from golden.params.adalog import adalog_mantissa

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


def _mantissa_table(bits: int) -> torch.Tensor:
    """``round(2**(-j/37) * Dn) / Dn`` for ``j = 0 .. 36`` as float32: the reference's ``table2``
    entry of every code ``k`` with ``(k * q) mod 37 == j``, computed as its ``update_table`` does."""
    dn = (1 << (bits + 1)) - 2
    return torch.tensor([adalog_mantissa(1, j, bits) / dn for j in range(ADALOG_R)], dtype=torch.float32)


def _check_float(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():
        raise ParamError(f"AdaLog input must be a floating-point tensor, not {x.dtype}")
    if bool(torch.isnan(x).any()):
        raise ParamError("AdaLog input contains NaN")
    return x.to(torch.float32)


def float_to_xi(x: torch.Tensor, params: AdaLogParams) -> torch.Tensor:
    """The input grid ``clamp(floor(x * 2**input_frac_bits), input_min, input_max)`` (int64)."""
    return to_fixed_point(x, params.input_bits, params.input_frac_bits, params.input_signed)


def xi_to_float(xi: torch.Tensor, params: AdaLogParams) -> torch.Tensor:
    """The grid value ``xi * 2**-input_frac_bits`` (float32, exact)."""
    return from_fixed_point(xi, params.input_frac_bits)


def quantize_int(xi: torch.Tensor, params: AdaLogParams) -> torch.Tensor:
    """Comparator form on the integer grid: int64 codes in ``[0, 2**bits]``."""
    xi = check_integer_tensor("AdaLog input xi", xi, params.input_min, params.input_max)
    return comparator_count(xi, params.thresholds).clamp(max=params.clamp_code)


def quantize_exact(x: torch.Tensor, params: AdaLogParams) -> torch.Tensor:
    """Exact real comparator on float32 inputs (no grid): int64 codes in ``[0, 2**bits]``."""
    x = _check_float(x)
    return comparator_count(x, params.float_thresholds).clamp(max=params.clamp_code)


def _lut_dequant(k: torch.Tensor, q: torch.Tensor, bits: int, scale: torch.Tensor) -> torch.Tensor:
    # E[k] = floor(k*q/37) and M[k]/Dn looked up by (k*q) mod 37: the reference's two tables.
    kq = k * q
    exponent = torch.div(kq, ADALOG_R, rounding_mode="floor").to(torch.float32)
    return (2 ** (-exponent)) * _mantissa_table(bits)[kq % ADALOG_R] * scale


def reference_forward(
    x: torch.Tensor,
    q: int | torch.Tensor,
    scale: float | torch.Tensor = 1.0,
    shift: float | torch.Tensor = 0.0,
    bits: int = 4,
    reparameterized: bool = True,
) -> torch.Tensor:
    """AdaLog's quantize-dequantize, operation by operation (float32 ``x_hat``).

    ``q`` (int or int64 tensor), ``scale`` and ``shift`` broadcast against ``x``, so calibration
    can score candidate grids at once. Floats become shape-(1,) float32 tensors as in the
    reference. ``reparameterized=False`` subtracts the shift again (the reference before the
    fc2 bias reparameterization); post-softmax use ``shift=0``.
    """
    x = x.to(torch.float32)
    q = torch.as_tensor(q, dtype=torch.int64).reshape(-1) if not isinstance(q, torch.Tensor) else q
    scale = scale if isinstance(scale, torch.Tensor) else torch.tensor([scale], dtype=torch.float32)
    shift = shift if isinstance(shift, torch.Tensor) else torch.tensor([shift], dtype=torch.float32)
    n_codes = 2**bits
    scaled_x = ((x + shift) / scale).clamp(min=1e-15, max=1.0)
    x_quant = torch.round(-scaled_x.log2() * float(ADALOG_R) / q)
    mask = x_quant < n_codes
    k = torch.clamp(x_quant, 0, n_codes - 1).to(torch.int64)
    x_dequant = _lut_dequant(k, q, bits, scale) * mask
    return x_dequant if reparameterized else x_dequant - shift


def _tensors(params: AdaLogParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.tensor([params.q], dtype=torch.int64),
        torch.tensor([params.scale], dtype=torch.float32),
        torch.tensor([params.shift], dtype=torch.float32),
    )


def reference_codes(x: torch.Tensor, params: AdaLogParams) -> torch.Tensor:
    """The reference's code (float32 log2, zero test, clamp) as int64 in ``[0, 2**bits]``."""
    x = _check_float(x)
    q, scale, shift = _tensors(params)
    scaled_x = ((x + shift) / scale).clamp(min=1e-15, max=1.0)
    x_quant = torch.round(-scaled_x.log2() * float(ADALOG_R) / q)
    codes = torch.clamp(x_quant, 0, params.n_codes - 1).to(torch.int64)
    return torch.where(x_quant < params.n_codes, codes, params.zero_code)


def dequantize(codes: torch.Tensor, params: AdaLogParams, reparameterized: bool = True) -> torch.Tensor:
    """``x_hat`` of int64 codes with the reference's float32 expression (0 for the zero code;
    minus ``shift`` if not ``reparameterized``)."""
    codes = check_integer_tensor("AdaLog code", codes, 0, params.zero_code)
    q, scale, shift = _tensors(params)
    nonzero = codes != params.zero_code
    x_dequant = _lut_dequant(torch.where(nonzero, codes, 0), q, params.bits, scale) * nonzero
    return x_dequant if reparameterized else x_dequant - shift


def reference_quantize(
    x: torch.Tensor, params: AdaLogParams, reparameterized: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference form: ``(codes, x_hat)``; ``x_hat`` equals :func:`reference_forward` bit for bit."""
    codes = reference_codes(x, params)
    return codes, dequantize(codes, params, reparameterized)


def disagreement(x: torch.Tensor, params: AdaLogParams) -> CodeDisagreement:
    """Count elements of ``x`` on which the reference, exact and integer forms give different codes."""
    x = _check_float(x)
    xi = float_to_xi(x, params)
    integer = quantize_int(xi, params)
    reference = reference_codes(x, params)
    return CodeDisagreement(
        elements=x.numel(),
        float_vs_integer=int((reference != integer).sum()),
        float_vs_exact=int((reference != quantize_exact(x, params)).sum()),
        grid_float_vs_integer=int((reference_codes(xi_to_float(xi, params), params) != integer).sum()),
    )
