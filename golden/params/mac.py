"""Matrix-product engines: the integer MAC array and the log-domain shift-accumulate.

Structure (rows, columns, operand formats, accumulator width), the decoded form of every log
code family, and the cycle count of a tiled product. Standard library only, so synthesis and
benchmark scripts can use the cycle formula without torch or Amaranth.

Both engines are output stationary: an ``R x C`` tile of accumulators takes one k-step per
cycle (``R`` left operands, ``C`` right operands), and after the tile's last step its ``R`` rows
leave one per cycle from a drain buffer while the next tile's steps already accumulate. A tile's
last step waits only while the previous tile is still draining, so a tile occupies
``max(K, R)`` cycles: the array is compute bound (one MAC per cell per cycle) for ``K >= R``
and drain bound below. :func:`tiled_cycles` is that formula; the RTL's tests check it against
simulation exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ._base import ParamError, check_bool, check_choice, check_int, params_from_dict, params_to_dict
from .adalog import ADALOG_Q_RANGE, ADALOG_R, AdaLogParams
from .bitlog2 import BITLOG2_SCHEMES, BitLog2Params
from .logav import LOG_AV_DEFAULTS, LogAVParams, sqrt2_mantissa
from .sqrt2 import Sqrt2Params

__all__ = [
    "MAC_LATENCY",
    "SHIFT_ACC_LATENCY",
    "tiled_cycles",
    "signed_width",
    "bitlog2_mant_exp",
    "MacArrayParams",
    "LogCodeParams",
    "ShiftAccParams",
]

#: Cycles from the transfer of a tile's last k-step to its first result row being valid:
#: edge register (zero points subtracted), product register, accumulate into the drain buffer.
MAC_LATENCY = 3
#: The shift-accumulate adds one stage: edge (decode, subtract, shift amount), mantissa
#: product, shift, accumulate.
SHIFT_ACC_LATENCY = 4


def tiled_cycles(tiles: int, steps: int, rows: int, latency: int) -> int:
    """Cycles to stream ``tiles`` output tiles of ``steps`` k-steps each through an output-stationary
    engine with ``rows`` result rows per tile, without idle inputs or back-pressure::

        (tiles - 1) * max(steps, rows) + steps + rows + latency - 1

    Counted like the benches count: from the cycle of the first input transfer up to and
    including the cycle of the last output transfer. Tile ``t``'s last step reaches the
    accumulators ``t * max(steps, rows)`` cycles after tile 0's; its rows then leave on
    consecutive cycles.
    """
    for name, value, low in (
        ("tiles", tiles, 0),
        ("steps", steps, 1),
        ("rows", rows, 1),
        ("latency", latency, 1),
    ):
        check_int(f"tiled_cycles {name}", value, low)
    if tiles == 0:
        return 0
    return (tiles - 1) * max(steps, rows) + steps + rows + latency - 1


def signed_width(lo: int, hi: int) -> int:
    """The narrowest two's complement width holding every integer in ``[lo, hi]``."""
    return max(lo.bit_length() if lo >= 0 else (-lo - 1).bit_length(), hi.bit_length()) + 1


def _code_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _tile_count(rows: int, cols: int, m: int, n: int) -> int:
    return math.ceil(m / rows) * math.ceil(n / cols)


def _check_product_shape(what: str, m: int, k: int, n: int) -> None:
    check_int(f"{what} M", m, 0)
    check_int(f"{what} K", k, 1)
    check_int(f"{what} N", n, 0)


@dataclasses.dataclass(frozen=True)
class MacArrayParams:
    """An ``rows x cols`` integer MAC array computing ``sum_k (a - za)(b - zb)`` exactly.

    Parameters
    ----------
    rows, cols : int
        ``R`` rows of the left operand (one zero point each) and ``C`` columns of the right
        operand (one zero point each, e.g. a weight's output channels), 1..64.
    a_bits, b_bits : int
        Operand code widths, 2..8.
    a_signed, b_signed : bool
        Two's complement codes, or unsigned. Zero points are codes of the same format, so
        ``a - za`` fits ``a_bits + 1`` signed bits (and likewise for ``b``).
    acc_bits : int
        Signed accumulator width, from :attr:`product_bits` (one product) to 62. Partial sums
        wrap modulo ``2**acc_bits``; a final sum that fits is exact (:func:`golden.intops.int_matmul`
        raises if it does not).
    """

    rows: int = 4
    cols: int = 4
    a_bits: int = 8
    a_signed: bool = False
    b_bits: int = 8
    b_signed: bool = False
    acc_bits: int = 32

    def __post_init__(self) -> None:
        check_int("MAC array rows", self.rows, 1, 64)
        check_int("MAC array cols", self.cols, 1, 64)
        check_int("MAC array a_bits", self.a_bits, 2, 8)
        check_int("MAC array b_bits", self.b_bits, 2, 8)
        check_bool("MAC array a_signed", self.a_signed)
        check_bool("MAC array b_signed", self.b_signed)
        check_int("MAC array acc_bits", self.acc_bits, self.product_bits, 62)

    @property
    def a_range(self) -> tuple[int, int]:
        """Smallest and largest code (and zero point) of the left operand."""
        return _code_range(self.a_bits, self.a_signed)

    @property
    def b_range(self) -> tuple[int, int]:
        return _code_range(self.b_bits, self.b_signed)

    @property
    def product_bits(self) -> int:
        """Signed width of one product: ``|a - za| <= 2**a_bits - 1``, likewise for b."""
        return self.a_bits + self.b_bits + 1

    @property
    def latency(self) -> int:
        """Cycles from a tile's last k-step transfer to its first result row (:data:`MAC_LATENCY`)."""
        return MAC_LATENCY

    def tiles(self, m: int, n: int) -> int:
        """Output tiles of an ``M x N`` result: ``ceil(M/R) * ceil(N/C)`` (edges padded)."""
        _check_product_shape("MAC array tiles", m, 1, n)
        return _tile_count(self.rows, self.cols, m, n)

    def cycles(self, m: int, k: int, n: int, *, batch: int = 1) -> int:
        """Cycles of ``batch`` back-to-back ``(M x K) . (K x N)`` products (e.g. attention heads):
        :func:`tiled_cycles` with ``batch * tiles(M, N)`` tiles of ``K`` steps (no idle inputs, no
        back-pressure)."""
        _check_product_shape("MAC array cycles", m, k, n)
        check_int("MAC array batch", batch, 1)
        return tiled_cycles(batch * self.tiles(m, n), k, self.rows, self.latency)

    def required_acc_bits(self, k: int) -> int:
        """Signed width that holds any sum of ``k`` products (worst case over codes and zero points)."""
        check_int("MAC array k", k, 1)
        bound = k * ((1 << self.a_bits) - 1) * ((1 << self.b_bits) - 1)
        return signed_width(-bound, bound)

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> MacArrayParams:
        return params_from_dict(cls, data)


def bitlog2_mant_exp(k: int, h: int) -> tuple[int, int]:
    """A nonzero BitLog2 code as ``(mant, exp)`` with ``mant * 2**(-exp) == D = 2**k + h * 2**(k-1)``.

    ``mant = 2 + h`` and ``exp = 1 - k``: with ``F = 0`` every term ``(v - z) * mant * 2**(k - 1)``
    is exact (for ``k = 0``, ``h = 0`` and the right shift by one undoes the factor 2).
    """
    check_int("BitLog2 k", k, 0, 30)
    check_int("BitLog2 h", h, 0, 1 if k >= 1 else 0)
    return 2 + h, 1 - k


def _adalog_exp_max(bits: int) -> int:
    """The largest LUT shift ``E`` of a ``bits``-bit AdaLog code over every searchable q, so one
    RTL build serves any run-time LUT."""
    return ((1 << bits) - 1) * ADALOG_Q_RANGE[1] // ADALOG_R


@dataclasses.dataclass(frozen=True)
class LogCodeParams:
    """A log code family as the shift-accumulate sees it: the decoded ``{mant, exp, zero}`` form.

    Every nonzero code decodes to a level ``mant * 2**(-exp)`` (see :mod:`hw.logcode`).

    Parameters
    ----------
    family : str
        ``bitlog2``, ``sqrt2`` or ``adalog``.
    scheme : str or None
        BitLog2 only: the scheme (``half_17`` ...); decoding is :func:`bitlog2_mant_exp`.
    bits : int or None
        log-√2 and AdaLog only: ``b``, 2..8 (codes ``0 .. 2**b - 1`` and the zero code ``2**b``).
    mant_bits : int
        log-√2 only: the mantissa precision ``P`` of :class:`LogAVParams` (1..16); decoding is
        ``LogAVParams.table``. 0 otherwise. AdaLog codes are decoded by the run-time LUT
        (``M[k]``, ``E[k]``), so this object only states their widths.
    """

    family: str
    scheme: str | None = None
    bits: int | None = None
    mant_bits: int = 0

    def __post_init__(self) -> None:
        check_choice("log code family", self.family, LOG_AV_DEFAULTS)
        if self.family == "bitlog2":
            check_choice("log code scheme", self.scheme, BITLOG2_SCHEMES)
            if self.bits is not None:
                raise ParamError(
                    f"log code bits is for sqrt2/adalog; BitLog2 has a scheme, not bits={self.bits!r}"
                )
        else:
            if self.scheme is not None:
                raise ParamError(
                    f"log code scheme is for BitLog2 only, not {self.scheme!r} for {self.family}"
                )
            check_int("log code bits", self.bits, 2, 8)
        if self.family == "sqrt2":
            check_int("log code mant_bits", self.mant_bits, 1, 16)
        else:
            check_int("log code mant_bits", self.mant_bits, 0, 0)

    @classmethod
    def of(
        cls, quantizer: BitLog2Params | Sqrt2Params | AdaLogParams, av: LogAVParams | None = None
    ) -> LogCodeParams:
        """The code format of a quantizer's parameter object (``av`` gives log-√2's ``P`` and
        must be of the quantizer's family)."""
        families = {BitLog2Params: "bitlog2", Sqrt2Params: "sqrt2", AdaLogParams: "adalog"}
        family = families.get(type(quantizer))
        if family is None:
            raise ParamError(f"no log code format for {quantizer!r}")
        if av is not None and av.family != family:
            raise ParamError(f"quantizer family {family!r} does not match LogAVParams family {av.family!r}")
        if family == "bitlog2":
            return cls(family, scheme=quantizer.scheme)
        if family == "sqrt2":
            return cls(family, bits=quantizer.bits, mant_bits=(av or LogAVParams.default(family)).mant_bits)
        return cls(family, bits=quantizer.bits)

    @property
    def zero_code(self) -> int | None:
        """log-√2 / AdaLog: the exact zero ``2**bits`` (the top bit of a ``bits + 1`` bit code)."""
        return None if self.bits is None else 1 << self.bits

    @property
    def mantissas(self) -> tuple[int, ...] | None:
        """Every mantissa a nonzero code can decode to, when fixed at elaboration (BitLog2,
        log-√2): the hardware then multiplies by these constants (shifts and adds). ``None`` for
        AdaLog, whose mantissas come from the run-time LUT."""
        if self.family == "bitlog2":
            return (2, 3) if BitLog2Params(self.scheme).half else (2,)
        if self.family == "sqrt2":
            return (1 << self.mant_bits, sqrt2_mantissa(self.mant_bits))
        return None

    @property
    def mant_width(self) -> int:
        """Unsigned width of ``mant``."""
        if self.family == "adalog":
            return self.bits + 1  # M[k] <= Dn = 2**(b+1) - 2
        return max(self.mantissas).bit_length()

    @property
    def exp_range(self) -> tuple[int, int]:
        """Smallest and largest ``exp`` of a nonzero code (AdaLog: over every q of the search)."""
        if self.family == "bitlog2":
            return 1 - BitLog2Params(self.scheme).max_k, 1
        if self.family == "sqrt2":
            return 0, 1 << (self.bits - 1)  # ceil((2**b - 1) / 2)
        return 0, _adalog_exp_max(self.bits)

    @property
    def exp_width(self) -> int:
        """Signed width of ``exp``."""
        return signed_width(*self.exp_range)

    def decode(self, code: int | tuple[int, int, int]) -> tuple[int, int, int]:
        """``(mant, exp, zero)`` of one code: BitLog2 ``(k, h, zero)``, log-√2 an int in
        ``[0, 2**bits]``. Zero codes decode to ``(0, 0, 1)``. The decoders of :mod:`hw.logdecode`
        are tested against this on every code."""
        if self.family == "bitlog2":
            k, h, zero = code
            if zero:
                return 0, 0, 1
            return (*bitlog2_mant_exp(k, h), 0)
        if self.family == "sqrt2":
            check_int("log-√2 code", code, 0, self.zero_code)
            if code == self.zero_code:
                return 0, 0, 1
            mant, exp = self.sqrt2_table()
            return mant[code], exp[code], 0
        raise ParamError("AdaLog codes are decoded by the run-time LUT (M[k], E[k]), not by a fixed table")

    def sqrt2_table(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """log-√2: the golden table (``LogAVParams.table``) for these ``bits`` and ``P``."""
        if self.family != "sqrt2":
            raise ParamError(f"sqrt2_table needs family 'sqrt2', not {self.family!r}")
        av = LogAVParams.default("sqrt2", mant_bits=self.mant_bits)
        return av.table(Sqrt2Params(bits=self.bits))

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LogCodeParams:
        return params_from_dict(cls, data)


@dataclasses.dataclass(frozen=True)
class ShiftAccParams:
    """A log-domain shift-accumulate (A·V): ``rows`` query rows x ``cols`` value lanes.

    ``acc[i, d] = sum_j floor((v[j, d] - zv[d]) * mant[c_ij] * 2**(F - exp[c_ij]))`` exactly as
    :func:`golden.intops.log_matmul` (zero codes add 0).

    Parameters
    ----------
    rows, cols : int
        ``R`` attention rows (one log code each per step) and ``C`` lanes of V, 1..64.
    v_bits : int
        Code width of V, 2..16; ``v_signed`` two's complement or unsigned. Zero points are codes
        of the same format (per lane: per head, or per output channel when ``v = W.T``).
    family, scheme, bits, mant_bits :
        The log code (:class:`LogCodeParams`).
    frac_bits, acc_bits :
        ``F`` and the signed accumulator width of :class:`LogAVParams` (``mant_bits`` is its P).
    """

    rows: int = 4
    cols: int = 4
    v_bits: int = 8
    v_signed: bool = False
    family: str = "bitlog2"
    scheme: str | None = "half_17"
    bits: int | None = None
    frac_bits: int = 0
    mant_bits: int = 0
    acc_bits: int = 32

    def __post_init__(self) -> None:
        check_int("shift-accumulate rows", self.rows, 1, 64)
        check_int("shift-accumulate cols", self.cols, 1, 64)
        check_int("shift-accumulate v_bits", self.v_bits, 2, 16)
        check_bool("shift-accumulate v_signed", self.v_signed)
        self.code  # noqa: B018 - checks family, scheme, bits, mant_bits
        self.av  # noqa: B018 - checks frac_bits, acc_bits

    @classmethod
    def for_quantizer(
        cls,
        quantizer: Any,
        av: LogAVParams,
        *,
        rows: int = 4,
        cols: int = 4,
        v_bits: int = 8,
        v_signed: bool = False,
    ) -> ShiftAccParams:
        """The shift-accumulate for a quantizer's codes and an A·V structure."""
        code = LogCodeParams.of(quantizer, av)
        return cls(
            rows=rows,
            cols=cols,
            v_bits=v_bits,
            v_signed=v_signed,
            family=code.family,
            scheme=code.scheme,
            bits=code.bits,
            frac_bits=av.frac_bits,
            mant_bits=av.mant_bits,
            acc_bits=av.acc_bits,
        )

    @property
    def code(self) -> LogCodeParams:
        return LogCodeParams(self.family, scheme=self.scheme, bits=self.bits, mant_bits=self.mant_bits)

    @property
    def av(self) -> LogAVParams:
        return LogAVParams(self.family, self.frac_bits, self.mant_bits, self.acc_bits)

    @property
    def v_range(self) -> tuple[int, int]:
        return _code_range(self.v_bits, self.v_signed)

    @property
    def product_bits(self) -> int:
        """Signed width of ``(v - zv) * mant``."""
        return self.v_bits + 1 + self.code.mant_width

    @property
    def max_left_shift(self) -> int:
        """``max(0, F - exp_min)``: the product is pre-shifted left by this much, so every term is
        one arithmetic right shift by ``max_left_shift - (F - exp)``."""
        return max(0, self.frac_bits - self.code.exp_range[0])

    @property
    def max_right_shift(self) -> int:
        """The largest right shift a cell needs: that of the family's largest ``exp``, but no more
        than the pre-shifted product's width less one, beyond which only the sign is left
        (``floor`` gives 0 or -1). Smaller amounts mean fewer barrel-shifter levels per cell."""
        largest_exp = self.max_left_shift - self.frac_bits + self.code.exp_range[1]
        return min(self.max_left_shift + self.product_bits - 1, largest_exp)

    @property
    def latency(self) -> int:
        """Cycles from a tile's last step to its first result row (:data:`SHIFT_ACC_LATENCY`)."""
        return SHIFT_ACC_LATENCY

    def tiles(self, m: int, n: int) -> int:
        _check_product_shape("shift-accumulate tiles", m, 1, n)
        return _tile_count(self.rows, self.cols, m, n)

    def cycles(self, m: int, k: int, n: int, *, batch: int = 1) -> int:
        """Cycles of ``batch`` back-to-back ``(M x K)`` code matrices times ``(K x N)`` V's:
        :func:`tiled_cycles`, as :meth:`MacArrayParams.cycles`."""
        _check_product_shape("shift-accumulate cycles", m, k, n)
        check_int("shift-accumulate batch", batch, 1)
        return tiled_cycles(batch * self.tiles(m, n), k, self.rows, self.latency)

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ShiftAccParams:
        return params_from_dict(cls, data)
