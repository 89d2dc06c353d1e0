"""Integer operators of the datapath, exactly as hardware computes them (int64 tensors).

* :func:`int_matmul`: ``acc = sum_k (a - z_a)(b - z_b)`` for uniform codes (the MAC array).
* :func:`fold_bias`: a float bias in accumulator units, ``round(bias / (s_a * s_w))``.
* :func:`requantize`: accumulator -> next layer's codes with a dyadic multiplier
  (:class:`~golden.params.RequantParams`).
* Log-domain products (the shift-accumulate): :func:`bitlog2_matmul`, :func:`sqrt2_matmul`,
  :func:`adalog_matmul`, all on the general :func:`log_matmul`.

Accumulator widths: every result is checked against the stated signed width and
:class:`AccumulatorOverflowError` is raised if it does not fit. Only final sums are checked: a
two's complement adder chain wraps modulo ``2**W``, so partial sums may leave the range as long as
the final sum is inside it (hardware then produces the exact result). Internally everything is
int64 and exact: the operand bounds checked here keep every partial sum below ``2**62``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from golden.bitlog2 import BitLog2Code
from golden.fixedpoint import check_integer_tensor
from golden.params import AdaLogParams, LogAVParams, ParamError, RequantParams, Sqrt2Params

__all__ = [
    "AccumulatorOverflowError",
    "check_accumulator",
    "int_matmul",
    "fold_bias",
    "requantize",
    "log_matmul",
    "bitlog2_matmul",
    "sqrt2_matmul",
    "adalog_matmul",
]

# Operands of int64 matmuls stay below this bound, so no int64 partial sum can overflow.
_INT64_SAFE = 1 << 62


class AccumulatorOverflowError(ArithmeticError):
    """An integer result does not fit the stated accumulator width."""


def check_accumulator(value: torch.Tensor, bits: int, what: str) -> torch.Tensor:
    """Raise :class:`AccumulatorOverflowError` unless every element fits ``bits`` signed bits.

    The message names ``what``, the range, the offending extreme and the width it would need.
    """
    if value.numel() == 0:
        return value
    lo, hi = (int(v) for v in torch.aminmax(value))  # one pass over the data
    limit = 1 << (bits - 1)
    if lo < -limit or hi >= limit:
        worst = lo if -lo > hi else hi
        needed = max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1
        raise AccumulatorOverflowError(
            f"{what}: value {worst} does not fit a {bits}-bit signed accumulator "
            f"[{-limit}, {limit - 1}]; {needed} bits are needed"
        )
    return value


def _integer(name: str, value: torch.Tensor) -> torch.Tensor:
    return check_integer_tensor(name, value, -_INT64_SAFE, _INT64_SAFE)


def _zero_point(value: int | torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return _integer("zero point", value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(f"zero point must be an int or an integer tensor, not {value!r}")
    return torch.tensor(value, dtype=torch.int64)


def _abs_max(value: torch.Tensor) -> int:
    if not value.numel():
        return 0
    lo, hi = torch.aminmax(value)
    return max(-int(lo), int(hi))


def _safe_matmul(a: torch.Tensor, b: torch.Tensor, what: str) -> torch.Tensor:
    """Exact int64 ``a @ b``, refusing operands whose sums could overflow int64.

    When ``K * max|a| * max|b|`` is below ``2**24`` (``2**53``), every product and every partial
    sum is an integer that float32 (float64) represents exactly, whatever order the BLAS adds
    in, so the float matmul is exact and several times faster than torch's int64 matmul.
    """
    bound = a.shape[-1] * _abs_max(a) * _abs_max(b)
    if bound >= _INT64_SAFE:
        raise AccumulatorOverflowError(f"{what}: operands too large for exact int64 accumulation")
    for dtype, exact_below in ((torch.float32, 1 << 24), (torch.float64, 1 << 53)):
        if bound < exact_below:
            return (a.to(dtype) @ b.to(dtype)).to(torch.int64)
    return a @ b


def int_matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    a_zero_point: int | torch.Tensor = 0,
    b_zero_point: int | torch.Tensor = 0,
    *,
    acc_bits: int = 32,
) -> torch.Tensor:
    """``acc[..., m, n] = sum_k (a[..., m, k] - z_a)(b[..., k, n] - z_b)`` exactly, as int64.

    Parameters
    ----------
    a, b : Tensor
        Integer codes, shapes ``(..., M, K)`` and ``(..., K, N)`` (batch dimensions broadcast).
    a_zero_point, b_zero_point : int or Tensor
        Broadcastable against ``a`` resp. ``b``: per tensor (int), per row of ``a`` / column of
        ``b`` (e.g. per output channel of a weight given as ``W.T``), or per head.
    acc_bits : int
        Signed accumulator width the result must fit.

    Raises
    ------
    AccumulatorOverflowError
        If a result needs more than ``acc_bits`` bits.
    """
    a_centered = _integer("int_matmul a", a) - _zero_point(a_zero_point)
    b_centered = _integer("int_matmul b", b) - _zero_point(b_zero_point)
    acc = _safe_matmul(a_centered, b_centered, "int_matmul")
    return check_accumulator(acc, acc_bits, "int_matmul")


def fold_bias(
    bias: torch.Tensor, input_scale: float | torch.Tensor, weight_scale: float | torch.Tensor
) -> torch.Tensor:
    """``round(bias / (s_in * s_w))`` per output channel as int64.

    Computed in float64 in this order (the product first, then the division, then
    ``torch.round``: half to even); ``weight_scale`` may be per output channel.
    """
    scale = torch.as_tensor(input_scale, dtype=torch.float64) * torch.as_tensor(
        weight_scale, dtype=torch.float64
    )
    folded = torch.round(bias.to(torch.float64) / scale)
    if not bool(torch.isfinite(folded).all()):
        raise ParamError("fold_bias: the folded bias is not finite (zero scale?)")
    return folded.to(torch.int64)


def _channel_view(values: Sequence[int], ndim: int, axis: int, size: int) -> torch.Tensor:
    tensor = torch.tensor(values, dtype=torch.int64)
    if len(values) == 1:
        return tensor.reshape(())
    if len(values) != size:
        raise ParamError(
            f"requant has {len(values)} channels but the accumulator axis {axis} has size {size}"
        )
    view = [1] * ndim
    view[axis] = len(values)
    return tensor.reshape(view)


def requantize(acc: torch.Tensor, params: RequantParams, axis: int = -1) -> torch.Tensor:
    """Accumulator -> output codes, per channel along ``axis`` (int64)::

        t = acc + bias                                 # checked against acc_bits
        y = (t * m + ((1 << s) >> 1)) >> s             # round half up; s == 0: y = t * m
        q = clamp(y + out_zero_point, qmin, qmax)

    Raises
    ------
    AccumulatorOverflowError
        If ``acc`` or ``acc + bias`` does not fit ``params.acc_bits`` signed bits.
    """
    acc = _integer("requantize acc", acc)
    if acc.ndim == 0:
        acc = acc.reshape(1)
        return requantize(acc, params, axis).reshape(())
    axis = axis if axis >= 0 else axis + acc.ndim
    size = acc.shape[axis]
    check_accumulator(acc, params.acc_bits, "requantize input")
    if params.bias:
        acc = acc + _channel_view(params.bias, acc.ndim, axis, size)
        check_accumulator(acc, params.acc_bits, "requantize acc + bias")
    # |acc| < 2**(acc_bits-1) and m < 2**mult_bits with acc_bits + mult_bits <= 63: fits int64.
    # In place after the first product: the same arithmetic with fewer large allocations.
    if params.channels == 1:
        # Python scalars: the same arithmetic, about twice as fast as 0-d tensors on large inputs.
        m, s = params.multiplier[0], params.shift[0]
        rounded = acc * m
        rounded += (1 << s) >> 1
        rounded >>= s
    else:
        multiplier = _channel_view(params.multiplier, acc.ndim, axis, size)
        shift = _channel_view(params.shift, acc.ndim, axis, size)
        rounded = acc * multiplier
        rounded += torch.ones_like(shift) << shift >> 1
        rounded >>= shift
    rounded += params.out_zero_point
    return rounded.clamp_(params.qmin, params.qmax)


def log_matmul(
    codes: torch.Tensor,
    b: torch.Tensor,
    b_zero_point: int | torch.Tensor,
    mant: Sequence[int],
    exp: Sequence[int],
    *,
    frac_bits: int,
    acc_bits: int,
) -> torch.Tensor:
    """The log-domain product, general form (int64)::

        acc[..., m, n] = sum_k term(codes[..., m, k], b[..., k, n] - z_b)
        term(c, d) = floor(d * mant[c] * 2**(frac_bits - exp[c]))   # 0 for c == len(mant)

    i.e. a left shift by ``F - exp[c]`` when that is >= 0, else an arithmetic (floor) right shift
    of ``d * mant[c]``. ``codes`` has shape ``(..., M, K)`` with values in ``[0, len(mant)]``; the
    value ``len(mant)`` (``2**bits``) is the exact zero.

    Computed by grouping equal codes (an exact re-association of the integer sum): codes whose
    terms are exact left shifts form one integer matrix ``W[c] = mant[c] << (F - exp[c])`` and one
    matmul; each code with a right shift adds ``(codes == c) @ floor_shift(d * mant[c])``.
    """
    zero_code = len(mant)
    if len(exp) != zero_code:
        raise ParamError(f"log_matmul mant and exp must have the same length, not {len(mant)} and {len(exp)}")
    codes = check_integer_tensor("log_matmul codes", codes, 0, zero_code)
    d = _integer("log_matmul b", b) - _zero_point(b_zero_point)
    if mant and _abs_max(d) * max(abs(m) for m in mant) >= _INT64_SAFE:
        raise AccumulatorOverflowError("log_matmul: operands too large for exact int64 products")
    shifts = [frac_bits - e for e in exp]
    left = [m << s if s >= 0 else 0 for m, s in zip(mant, shifts, strict=True)]
    weights = torch.tensor([*left, 0], dtype=torch.int64)[codes]
    acc = _safe_matmul(weights, d, "log_matmul")
    for c, (m, s) in enumerate(zip(mant, shifts, strict=True)):
        if s >= 0:
            continue
        select = codes == c
        if not bool(select.any()):
            continue
        terms = (d * m) >> -s
        acc = acc + _safe_matmul(select.to(torch.int64), terms, "log_matmul")
    return check_accumulator(acc, acc_bits, "log_matmul")


_BITLOG2_LEVELS = torch.tensor(
    [
        0 if zero else (-1 if k == 0 and h else (1 << k) + h * ((1 << k) >> 1))
        for k in range(31)
        for h in (0, 1)
        for zero in (0, 1)
    ],
    dtype=torch.int64,
)


def bitlog2_matmul(
    code: BitLog2Code, v: torch.Tensor, v_zero_point: int | torch.Tensor, av: LogAVParams
) -> torch.Tensor:
    """BitLog2 A·V: ``acc = sum_j ((v_j - z) << k_j) + h_j * ((v_j - z) << (k_j - 1))`` (zero
    codes contribute 0), which equals ``sum_j (v_j - z) * D_j`` exactly (``h_j = 1`` only when
    ``k_j >= 1``). The real result is ``acc * s_v / delta``; ``1/delta`` folds into the next
    requantization (``av.acc_scale(bitlog2_params)``).
    """
    if av.family != "bitlog2":
        raise ParamError(f"bitlog2_matmul needs LogAVParams of family 'bitlog2', not {av.family!r}")
    k = check_integer_tensor("bitlog2_matmul k", code.k, 0, 30)
    h = check_integer_tensor("bitlog2_matmul h", code.h, 0, 1)
    zero = check_integer_tensor("bitlog2_matmul zero", code.zero, 0, 1)
    # D = 2**k + h * 2**(k-1), 0 for zero codes, looked up by (k, h, zero): fewer passes over large
    # code tensors than computing it; -1 marks the invalid half bit at k == 0.
    index = k << 2  # shifts and adds: int64 multiplies are slow on large tensors
    index += h << 1
    index += zero
    level = _BITLOG2_LEVELS.index_select(0, index.reshape(-1)).reshape(k.shape)
    if level.numel() and int(level.min()) < 0:
        raise ParamError("bitlog2_matmul: a half bit needs k >= 1")
    d = _integer("bitlog2_matmul v", v) - _zero_point(v_zero_point)
    return check_accumulator(_safe_matmul(level, d, "bitlog2_matmul"), av.acc_bits, "bitlog2_matmul")


def sqrt2_matmul(
    codes: torch.Tensor,
    v: torch.Tensor,
    v_zero_point: int | torch.Tensor,
    quantizer: Sqrt2Params,
    av: LogAVParams,
) -> torch.Tensor:
    """Log-√2 A·V: :func:`log_matmul` with ``exp[c] = ceil(c/2)`` and mantissa ``2**P`` (even c) or
    ``round(sqrt(2) * 2**P)`` (odd c). Real result: ``acc * s_v * delta * 2**-(P+F)``
    (``av.acc_scale(quantizer)``)."""
    if av.family != "sqrt2":
        raise ParamError(f"sqrt2_matmul needs LogAVParams of family 'sqrt2', not {av.family!r}")
    mant, exp = av.table(quantizer)
    return log_matmul(codes, v, v_zero_point, mant, exp, frac_bits=av.frac_bits, acc_bits=av.acc_bits)


def adalog_matmul(
    codes: torch.Tensor,
    v: torch.Tensor,
    v_zero_point: int | torch.Tensor,
    quantizer: AdaLogParams,
    av: LogAVParams,
) -> torch.Tensor:
    """AdaLog A·V (or fc2 with an AdaLog-coded input and ``v = W.T``): :func:`log_matmul` with the
    LUT, ``term = floor((v - z) * M[k] * 2**(F - E[k]))``. Real result:
    ``acc * s_v * scale / (Dn * 2**F)`` (``av.acc_scale(quantizer)``)."""
    if av.family != "adalog":
        raise ParamError(f"adalog_matmul needs LogAVParams of family 'adalog', not {av.family!r}")
    mant, exp = av.table(quantizer)
    return log_matmul(codes, v, v_zero_point, mant, exp, frac_bits=av.frac_bits, acc_bits=av.acc_bits)
