"""AdaLog quantizer parameters: adaptive log base 2**(q/r), LUT dequantization, comparator form."""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction
from typing import Any

from ._base import (
    ParamError,
    check_bool,
    check_float32,
    check_int,
    float32,
    params_from_dict,
    params_to_dict,
)
from ._exact import below_threshold, largest_float32_satisfying, largest_integer_satisfying

#: AdaLog's fixed denominator of the log base: base = 2**(q / ADALOG_R).
ADALOG_R = 37
#: The searched numerators q (the reference's candidates ``range(10, 11 + 127)``).
ADALOG_Q_RANGE = (10, 137)
#: The post-GELU shift (minus the minimum of GELU), exactly the reference's float32 constant.
ADALOG_GELU_SHIFT = 0.16997124254703522
#: The lower clamp of ``(x + shift) / scale`` in the reference, as the float32 it becomes there.
ADALOG_CLAMP_MIN = float32(1e-15)

_FLOAT32_MAX = float.fromhex("0x1.fffffep127")


def adalog_mantissa(q: int, k: int, bits: int) -> int:
    """``M[k] = round(2**(-((q*k) mod r) / r) * Dn)``, evaluated exactly as the reference does
    (Python float64 then ``round``, half to even); see :func:`_check_mantissas_unambiguous` for
    why this float64 evaluation is the exact rounding."""
    dn = (1 << (bits + 1)) - 2
    return round((2 ** (-((q * k) % float(ADALOG_R)) / ADALOG_R)) * dn)


@dataclasses.dataclass(frozen=True)
class AdaLogParams:
    """AdaLog quantizer (post-softmax with ``scale = 1, shift = 0``; post-GELU with the shift).

    Reference (float32, this operation order): ``xs = clamp((x + shift) / scale, 1e-15, 1.0)``,
    ``k = round(-log2(xs) * r / q)``; zero if ``k >= 2**bits``; else ``k = clamp(k, 0, 2**bits - 1)``
    and ``x_hat = 2**(-E[k]) * (M[k] / Dn) * scale`` (minus ``shift`` unless the following
    layer's bias was reparameterized).

    Hardware (comparator form) on the fixed-point input
    ``xi = clamp(floor(x * 2**input_frac_bits), input_min, input_max)`` (two's complement if
    ``input_signed``): ``count = #{j : xi <= theta_j}`` with the integer thresholds
    :attr:`thresholds`, then ``code = min(count, clamp_code)``; ``code == zero_code = 2**bits``
    is the exact zero. The min with :attr:`clamp_code` reproduces the reference's 1e-15 clamp,
    which for large ``q`` maps tiny inputs (including 0) to a nonzero code.

    Parameters
    ----------
    bits : int
        ``b``, 2..8.
    q : int
        Numerator of the log base ``2**(q/37)``, 10..137.
    scale : float
        ``s``, positive, stored as float32 (1.0 after softmax, where it is not searched).
    shift : float
        Added before quantizing, non-negative, float32 (0 after softmax,
        :data:`ADALOG_GELU_SHIFT` after GELU).
    input_bits, input_frac_bits, input_signed :
        The fixed-point input grid. Defaults: unsigned 16/16 (probabilities). For post-GELU use
        a signed grid, e.g. 16 bits with 11 fractional bits (range ``[-16, 16)``); the grid must
        reach down to ``-shift``.
    """

    bits: int = 4
    q: int = ADALOG_R
    scale: float = 1.0
    shift: float = 0.0
    input_bits: int = 16
    input_frac_bits: int = 16
    input_signed: bool = False

    def __post_init__(self) -> None:
        check_int("AdaLog bits", self.bits, 2, 8)
        check_int("AdaLog q", self.q, *ADALOG_Q_RANGE)
        object.__setattr__(self, "scale", check_float32("AdaLog scale", self.scale, positive=True))
        object.__setattr__(self, "shift", check_float32("AdaLog shift", self.shift, nonnegative=True))
        check_int("AdaLog input_bits", self.input_bits, 1, 24)
        check_int("AdaLog input_frac_bits", self.input_frac_bits, 0, 32)
        check_bool("AdaLog input_signed", self.input_signed)
        if Fraction(self.input_min, 1 << self.input_frac_bits) > -Fraction(self.shift):
            raise ParamError(
                f"AdaLog input grid must reach down to -shift = {-self.shift!r} (lowest input "
                f"{self.input_min / (1 << self.input_frac_bits)!r}); use a signed input or shift 0"
            )

    @property
    def r(self) -> int:
        """The fixed denominator 37."""
        return ADALOG_R

    @property
    def n_codes(self) -> int:
        """``2**bits`` log codes (the zero comes on top)."""
        return 1 << self.bits

    @property
    def zero_code(self) -> int:
        """The code of the exact zero, ``2**bits`` (a ``bits + 1`` bit field, top bit = zero)."""
        return self.n_codes

    @property
    def code_bits(self) -> int:
        return self.bits + 1

    @property
    def dn(self) -> int:
        """The mantissa denominator ``Dn = 2**(bits+1) - 2`` (30 at 4 bits)."""
        return (1 << (self.bits + 1)) - 2

    @property
    def mantissa_bits(self) -> int:
        """Width of an unsigned mantissa ``M[k] <= Dn``: ``bits + 1``."""
        return self.dn.bit_length()

    @property
    def lut_e(self) -> tuple[int, ...]:
        """``E[k] = floor(k * q / r)`` for ``k = 0 .. 2**bits - 1``: the right shift of code k."""
        return tuple(k * self.q // ADALOG_R for k in range(self.n_codes))

    @property
    def lut_m(self) -> tuple[int, ...]:
        """``M[k] = round(2**(-((k*q) mod r)/r) * Dn)``: the ``bits + 1`` bit mantissa of code k."""
        return tuple(adalog_mantissa(self.q, k, self.bits) for k in range(self.n_codes))

    @property
    def shift_bits(self) -> int:
        """Width of an unsigned ``E[k]`` entry."""
        return max(1, self.lut_e[-1].bit_length())

    @property
    def input_min(self) -> int:
        return -(1 << (self.input_bits - 1)) if self.input_signed else 0

    @property
    def input_max(self) -> int:
        return (1 << (self.input_bits - 1)) - 1 if self.input_signed else (1 << self.input_bits) - 1

    def _below(self, j: int) -> Any:
        # Codes j and j+1 meet at T_j = scale * 2**(-(2j+1) q / (2r)). The reference rounds half
        # to even, so at an exact tie (T_j rational, e.g. q = 74) the code is j+1 when j is odd:
        # the comparison includes equality for odd j.
        scale, shift = Fraction(self.scale), Fraction(self.shift)
        e, inclusive = (2 * j + 1) * self.q, j % 2 == 1
        return lambda x: below_threshold(x + shift, scale, e, 2 * ADALOG_R, inclusive)

    @functools.cached_property
    def thresholds(self) -> tuple[int, ...]:
        """``theta_j`` for ``j = 0 .. 2**bits - 1`` (non-increasing): ``xi <= theta_j`` exactly when
        ``xi / 2**input_frac_bits + shift`` lies below ``T_j = scale * 2**(-(2j+1) q / 74)`` (or on
        it, for odd j). Clamped to ``[input_min, input_max]``, so they fit the input format."""
        return tuple(self._threshold(j) for j in range(self.n_codes))

    def _threshold(self, j: int) -> int:
        below, unit = self._below(j), 1 << self.input_frac_bits
        return largest_integer_satisfying(
            lambda xi: below(Fraction(xi, unit)), self.input_min, self.input_max
        )

    @functools.cached_property
    def float_thresholds(self) -> tuple[float, ...]:
        """For float32 inputs: the largest float32 ``t_j`` with ``t_j + shift`` (exact) below
        ``T_j`` (or on it, odd j), so ``x <= t_j`` decides the comparison exactly for every float32
        ``x``. Used by :func:`golden.adalog.quantize_exact`."""
        return tuple(
            largest_float32_satisfying(self._below(j), -_FLOAT32_MAX, _FLOAT32_MAX)
            for j in range(self.n_codes)
        )

    @functools.cached_property
    def clamp_code(self) -> int:
        """The code of ``(x + shift) / scale == 1e-15`` (float32), the reference's lower clamp: every
        smaller input gets this code. It is :attr:`zero_code` unless ``(2**bits - 1/2) * q / r``
        exceeds ``-log2(1e-15)``, e.g. ``q >= 119`` at 4 bits."""
        floor = Fraction(ADALOG_CLAMP_MIN)
        count = 0
        for j in range(self.n_codes):
            if below_threshold(floor, Fraction(1), (2 * j + 1) * self.q, 2 * ADALOG_R, j % 2 == 1):
                count += 1
        return count

    def level(self, code: int) -> float:
        """The real dequantized value (float64) of ``code``: ``2**(-E) * M / Dn * scale`` (before
        the shift is subtracted), 0 for the zero code."""
        check_int("AdaLog code", code, 0, self.zero_code)
        if code == self.zero_code:
            return 0.0
        return math.ldexp(self.lut_m[code] / self.dn, -self.lut_e[code]) * self.scale

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> AdaLogParams:
        return params_from_dict(cls, data)


def _check_mantissas_unambiguous() -> None:
    """Guard: the reference evaluates ``2**(-j/37) * Dn`` in float64 before rounding. That equals
    the exact rounding unless the real value lies within float64 error of a half-integer; prove
    it does not for every ``j`` and every supported width (margin 1e-9, errors are ~1e-14)."""
    for bits in range(2, 9):
        dn = (1 << (bits + 1)) - 2
        for j in range(ADALOG_R):
            value = 2 ** (-j / ADALOG_R) * dn
            if abs(value - math.floor(value) - 0.5) < 1e-9:  # pragma: no cover - a proof, not a branch
                raise ParamError(f"AdaLog mantissa 2**(-{j}/37)*{dn} is too close to a rounding tie")


_check_mantissas_unambiguous()
