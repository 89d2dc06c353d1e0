"""Requantization parameters: integer accumulator -> next layer's codes with a dyadic multiplier."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from ._base import ParamError, check_bool, check_int, check_tuple, params_from_dict, params_to_dict

#: Default multiplier width: an unsigned 16-bit mantissa in [2**15, 2**16) fits one 18x18 (ECP5),
#: 16x16 (iCE40 UP) or 27x18 (Xilinx DSP48E2) multiplier port with the sign bit to spare.
REQUANT_MULT_BITS = 16
#: Largest right shift; with ``acc_bits + mult_bits <= 63`` every product fits int64.
REQUANT_MAX_SHIFT = 62


def dyadic(real: float, mult_bits: int = REQUANT_MULT_BITS) -> tuple[int, int]:
    """Approximate a non-negative real multiplier by ``m * 2**-s`` with a normalised ``m``.

    ``m`` lies in ``[2**(mult_bits-1), 2**mult_bits)`` (0 for ``real == 0``) and ``s >= 0``:
    with ``real = f * 2**e`` (``f`` in [0.5, 1)), ``m = round(f * 2**mult_bits)`` (half to even, exact
    in float64) and ``s = mult_bits - e``; ``m == 2**mult_bits`` after rounding renormalises to
    ``2**(mult_bits-1)`` with ``s - 1``. The relative error is at most ``2**-mult_bits``.

    Raises
    ------
    ParamError
        If ``real`` is negative or not finite, needs a left shift (``s < 0``, ``real`` too large)
        or a shift beyond :data:`REQUANT_MAX_SHIFT` (``real`` too small).
    """
    if not isinstance(real, (int, float)) or isinstance(real, bool) or not math.isfinite(real) or real < 0:
        raise ParamError(f"requant real multiplier must be a finite non-negative number, not {real!r}")
    if real == 0:
        return 0, 0
    fraction, exponent = math.frexp(real)
    m = round(math.ldexp(fraction, mult_bits))
    s = mult_bits - exponent
    if m == 1 << mult_bits:
        m, s = m >> 1, s - 1
    if s < 0:
        raise ParamError(
            f"requant real multiplier {real!r} needs a left shift (s = {s}); it must be < 2**{mult_bits}"
        )
    if s > REQUANT_MAX_SHIFT:
        raise ParamError(
            f"requant real multiplier {real!r} needs shift {s} > {REQUANT_MAX_SHIFT}; "
            "it is too small to represent"
        )
    return m, s


@dataclasses.dataclass(frozen=True)
class RequantParams:
    """Per-output-channel requantization of an integer accumulator (what ``hw/`` implements).

    For each channel ``c`` (the last axis of the accumulator unless the caller says otherwise)::

        t = acc + bias[c]                                   # must fit acc_bits signed
        y = (t * multiplier[c] + (1 << (shift[c] - 1))) >> shift[c]   # shift[c] > 0
        y = t * multiplier[c]                               # shift[c] == 0 (no rounding term)
        q = clamp(y + out_zero_point, qmin, qmax)

    ``>>`` is the arithmetic (floor) shift, so the rounding is half up (towards +inf) on ties.
    The real value represented is ``y ~= t * multiplier * 2**-shift``.

    Parameters
    ----------
    multiplier : sequence of int
        Unsigned, ``0 <= m < 2**mult_bits``, one per channel (length 1: per tensor).
        :meth:`from_real` gives normalised ones in ``[2**(mult_bits-1), 2**mult_bits)``.
    shift : sequence of int
        Right shifts ``0 .. 62``, one per multiplier.
    bias : sequence of int
        Integer bias in accumulator units (see :func:`golden.intops.fold_bias`), one per
        multiplier, or empty for none. Must fit ``acc_bits`` signed.
    out_bits : int
        Output code width, 2..16.
    out_signed : bool
        Output code range signed ``[-2**(b-1), 2**(b-1)-1]`` or unsigned ``[0, 2**b - 1]``.
    out_zero_point : int
        Output zero point, within the output code range.
    acc_bits : int
        Signed width of the accumulator and of ``acc + bias``, 8..47.
    mult_bits : int
        Unsigned multiplier width, 2..31; ``acc_bits + mult_bits <= 63`` (int64 products).
    """

    multiplier: tuple[int, ...]
    shift: tuple[int, ...]
    bias: tuple[int, ...] = ()
    out_bits: int = 8
    out_signed: bool = False
    out_zero_point: int = 0
    acc_bits: int = 32
    mult_bits: int = REQUANT_MULT_BITS

    def __post_init__(self) -> None:
        check_int("requant out_bits", self.out_bits, 2, 16)
        check_bool("requant out_signed", self.out_signed)
        check_int("requant out_zero_point", self.out_zero_point, self.qmin, self.qmax)
        check_int("requant acc_bits", self.acc_bits, 8, 47)
        check_int("requant mult_bits", self.mult_bits, 2, 31)
        if self.acc_bits + self.mult_bits > 63:
            raise ParamError(
                f"requant acc_bits + mult_bits must be at most 63 (int64 products), "
                f"not {self.acc_bits} + {self.mult_bits}"
            )
        multiplier = check_tuple("requant multiplier", self.multiplier)
        for i, m in enumerate(multiplier):
            check_int(f"requant multiplier[{i}]", m, 0, (1 << self.mult_bits) - 1)
        shift = check_tuple("requant shift", self.shift)
        for i, s in enumerate(shift):
            check_int(f"requant shift[{i}]", s, 0, REQUANT_MAX_SHIFT)
        if len(shift) != len(multiplier):
            raise ParamError(
                f"requant shift must have one entry per multiplier ({len(multiplier)}), not {len(shift)}"
            )
        bias = check_tuple("requant bias", self.bias, min_length=0)
        lo, hi = -(1 << (self.acc_bits - 1)), (1 << (self.acc_bits - 1)) - 1
        for i, b in enumerate(bias):
            check_int(f"requant bias[{i}]", b, lo, hi)
        if bias and len(bias) != len(multiplier):
            raise ParamError(
                f"requant bias must be empty or have one entry per multiplier ({len(multiplier)}), "
                f"not {len(bias)}"
            )
        object.__setattr__(self, "multiplier", multiplier)
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "bias", bias)

    @property
    def qmin(self) -> int:
        return -(1 << (self.out_bits - 1)) if self.out_signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.out_bits - 1)) - 1 if self.out_signed else (1 << self.out_bits) - 1

    @property
    def channels(self) -> int:
        return len(self.multiplier)

    @property
    def product_bits(self) -> int:
        """Signed width of ``(acc + bias) * multiplier``: ``acc_bits + mult_bits``."""
        return self.acc_bits + self.mult_bits

    def real_multiplier(self, channel: int = 0) -> float:
        """``multiplier * 2**-shift`` of one channel, as float64 (exact)."""
        return math.ldexp(self.multiplier[channel], -self.shift[channel])

    @classmethod
    def from_real(
        cls,
        real_multiplier: float | Sequence[float],
        *,
        bias: Sequence[int] = (),
        out_bits: int = 8,
        out_signed: bool = False,
        out_zero_point: int = 0,
        acc_bits: int = 32,
        mult_bits: int = REQUANT_MULT_BITS,
    ) -> RequantParams:
        """Derive the dyadic multipliers from real ones (see :func:`dyadic`).

        ``real_multiplier[c]`` is the accumulator's real scale divided by the output scale, e.g.
        ``s_in * s_w[c] / s_out`` after a linear layer.
        """
        reals = check_tuple("requant real_multiplier", real_multiplier)
        pairs = [dyadic(r, mult_bits) for r in reals]
        return cls(
            multiplier=tuple(m for m, _ in pairs),
            shift=tuple(s for _, s in pairs),
            bias=tuple(bias),
            out_bits=out_bits,
            out_signed=out_signed,
            out_zero_point=out_zero_point,
            acc_bits=acc_bits,
            mult_bits=mult_bits,
        )

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RequantParams:
        return params_from_dict(cls, data)
