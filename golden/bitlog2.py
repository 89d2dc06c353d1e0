"""BitLog2: shift-only log2 quantization of post-softmax attention probabilities.

Two forms, which must agree exactly (``tests/golden/test_bitlog2.py`` proves it on every input):

*Reference form* (:func:`reference_quantize`) follows the BitLog2 seed (``jiho264/BitLog2``,
``quant/quantizer.py``) operation by operation: ``xi = clamp(floor(x * M), 0, M - 1)`` in float32
then int32, the leading-one position found by a 16-step ``where``/shift loop, the Half variant's
decimal code ``10*k + 5*h`` with ``h`` forced to 1 for ``xi == 1``, dequantization with torch's
shift semantics (a shift by a negative amount gives 0), and ``x_hat = D * 1 / delta``.

*Integer form* (:func:`quantize_int`, what the hardware computes): a leading-one detector on the
unsigned integer ``xi`` gives ``k``; Half adds ``h`` = the bit just below the leading one (0 when
``k == 0``, where that bit does not exist); ``zero`` flags ``xi == 0``. The level is
``D = 2**k + h * 2**(k - 1)`` (0 for zero). Inputs at or above ``M`` saturate to ``M - 1`` (only
Half_17 has such inputs: M = 384 on a 9-bit port).

Our choices, stated once: for ``xi == 1`` the reference sets its half digit, yet its
dequantization adds ``1 << -1 == 0``, so ``D == 1`` either way; the integer code reports
``h = 0`` there, which is the same level with a cleaner code. The delta search takes the first
minimum of the float32 mean squared error like the seed; :func:`search_delta` scores every
candidate at once in float64 and rescores the near-ties in float32, so it returns the seed's
choice; :func:`search_delta_reference` is the seed's loop, kept for cross-checks.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from golden.params import BitLog2Params, ParamError

__all__ = [
    "BitLog2Code",
    "float_to_xi",
    "quantize_int",
    "code_to_level",
    "dequantize",
    "reference_quantize",
    "search_delta",
    "search_delta_reference",
]


class BitLog2Code(NamedTuple):
    """The hardware code of each element: leading-one position, half bit, zero flag (int64)."""

    k: torch.Tensor
    h: torch.Tensor
    zero: torch.Tensor


def float_to_xi(x: torch.Tensor, params: BitLog2Params) -> torch.Tensor:
    """The seed's front end: ``clamp(floor(x * M), 0, M - 1)`` in float32, as int64."""
    scaled = torch.floor(x.to(torch.float32) * params.m)
    return scaled.to(torch.int32).clamp(0, params.m - 1).to(torch.int64)


def _check_xi(xi: torch.Tensor, params: BitLog2Params) -> None:
    if xi.is_floating_point() or xi.dtype == torch.bool:
        raise ParamError(f"BitLog2 input xi must be an integer tensor, not {xi.dtype}; use float_to_xi first")
    if not xi.numel():
        return
    lo, hi = (int(v) for v in torch.aminmax(xi))  # one pass over the data
    if lo < 0 or hi >= 1 << params.input_width:
        raise ParamError(
            f"BitLog2 {params.scheme} input xi must lie in [0, {(1 << params.input_width) - 1}], "
            f"got [{lo}, {hi}]"
        )


def _leading_one_code(xi: torch.Tensor, params: BitLog2Params) -> BitLog2Code:
    """The code computed directly: leading-one position, the bit below it, zero flag."""
    xi = xi.to(torch.int64).clamp(max=params.m - 1)
    zero = xi == 0
    # floor(log2(xi)) exactly: frexp's exponent is bit_length for positive integers < 2**53.
    k = torch.frexp(xi.to(torch.float64))[1].to(torch.int64) - 1
    k = torch.where(zero, 0, k)
    if params.half:
        below = torch.where(k >= 1, (xi >> (k - 1).clamp(min=0)) & 1, 0)
    else:
        below = torch.zeros_like(xi)
    return BitLog2Code(k=k, h=below, zero=zero.to(torch.int64))


@functools.cache
def _code_table(scheme: str) -> BitLog2Code:
    # The code of every possible input (at most 2**16), so that quantize_int is three gathers.
    params = BitLog2Params(scheme)
    return _leading_one_code(torch.arange(1 << params.input_width), params)


def quantize_int(xi: torch.Tensor, params: BitLog2Params) -> BitLog2Code:
    """Integer form: unsigned ``xi`` (``params.input_width`` bits) to the code (k, h, zero).

    Looked up in a table of :func:`_leading_one_code` over every input value (the same results,
    several times faster on large tensors than computing the leading one per element).
    """
    _check_xi(xi, params)
    table, index = _code_table(params.scheme), xi.reshape(-1).to(torch.int64)

    def gather(column: torch.Tensor) -> torch.Tensor:  # index_select: much faster than table[xi]
        return column.index_select(0, index).reshape(xi.shape)

    return BitLog2Code(k=gather(table.k), h=gather(table.h), zero=gather(table.zero))


def code_to_level(code: BitLog2Code) -> torch.Tensor:
    """``D = 2**k + h * 2**(k - 1)``, 0 for zero codes (int64)."""
    one = torch.ones_like(code.k)
    level = (one << code.k) + code.h * ((one << code.k) >> 1)
    return torch.where(code.zero.bool(), 0, level)


def dequantize(level: torch.Tensor, delta: int) -> torch.Tensor:
    """``D * 1 / delta`` exactly as the seed computes it (int32 true division -> float32)."""
    return level.to(torch.int32) * 1 / torch.tensor(delta)


def _reference_leading_one(xi: torch.Tensor) -> torch.Tensor:
    """The seed's 16-step leading-one loop; zeros become -99999."""
    zero = xi == 0
    k = xi
    for position in torch.arange(0, 16):
        k = torch.where(k.bitwise_right_shift(position) == 1, position, k)
    k = k.clone()
    k[zero] = -99999
    return k


def reference_quantize(x: torch.Tensor, params: BitLog2Params) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference form: float ``x`` to ``(D, x_hat)`` with the seed's operations.

    ``x_hat`` needs ``params.delta``; without it only ``D`` is meaningful and ``x_hat`` is ``D``
    as float32.
    """
    xi = torch.floor(x.to(torch.float32) * params.m).to(torch.int32).clamp(0, params.m - 1)
    k = _reference_leading_one(xi)
    one = torch.ones_like(k)
    if params.half:
        digit = torch.where(xi.bitwise_right_shift(k - 1).bitwise_and(1) == 1, 5, 0)
        digit[xi == 1] = 5
        encoded = k * 10 + digit
        zero = encoded == 0
        integer_part = encoded // 10
        half_part = encoded % 10 // 5
        level = one.bitwise_left_shift(integer_part) + half_part * one.bitwise_left_shift(integer_part - 1)
        level[zero] = 0
    else:
        level = one.bitwise_left_shift(k)
        level[xi == 0] = 0
    level = level.to(torch.int64)
    x_hat = dequantize(level, params.delta) if params.delta is not None else level.to(torch.float32)
    return level, x_hat


def search_delta(x: torch.Tensor, params: BitLog2Params, band: float = 1e-4) -> int:
    """Calibrate ``delta`` exactly as the seed's loop does, fast.

    The seed takes the first minimum of the float32 ``mean((x - D/delta)**2)`` over
    ``delta in [max D, M - 1]``. Here every candidate is scored at once in float64 from per-level
    sufficient statistics (17 levels at most); the candidates within ``band`` (relative) of the
    float64 minimum, where float32 rounding could reorder them, are then rescored with the seed's
    float32 expression in ascending order, so the choice equals :func:`search_delta_reference`.
    """
    x32 = x.detach().to(torch.float32)
    level = code_to_level(quantize_int(float_to_xi(x32, params), params))
    values, index = torch.unique(level.reshape(-1), return_inverse=True)
    count = torch.bincount(index, minlength=len(values)).to(torch.float64)
    x64 = x32.reshape(-1).to(torch.float64)
    sum_x = torch.zeros(len(values), dtype=torch.float64).index_add_(0, index, x64)
    d = values.to(torch.float64)
    candidates = torch.arange(max(int(values.max()), 1), params.m, dtype=torch.int64)
    inverse = 1.0 / candidates.to(torch.float64)
    # sum((x - d/delta)^2) = sum x^2 - 2/delta * sum(d * sum_x) + 1/delta^2 * sum(d^2 * count)
    sse = float((x64 * x64).sum()) - 2.0 * float((d * sum_x).sum()) * inverse
    sse = sse + float((d * d * count).sum()) * inverse * inverse
    best = float(sse.min())
    close = candidates[sse <= best + band * abs(best) + 1e-30]
    level32 = level.to(torch.int32)
    best_score, best_delta = None, int(close[0])
    for delta in close:
        score = (x32 - level32 * 1 / delta).abs().pow(2).mean()
        if best_score is None or score < best_score:
            best_score, best_delta = score, int(delta)
    return best_delta


def search_delta_reference(x: torch.Tensor, params: BitLog2Params) -> int:
    """The seed's loop (float32 MSE per candidate, strict ``<``): slow, for cross-checks."""
    level, _ = reference_quantize(x, params)
    level = level.to(torch.int32)
    x32 = x.to(torch.float32)
    best_score, best = 1e10, 1
    for delta in torch.arange(level.max(), params.m):
        score = (x32 - level * 1 / delta).abs().pow(2).mean()
        if score < best_score:
            best_score, best = score, int(delta)
    return best
