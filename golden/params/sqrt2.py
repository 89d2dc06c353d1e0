"""RepQ-ViT log-√2 quantizer parameters (Sqrt2_17, and BitLog2's Sqrt2_16 variant)."""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from typing import Any

from ._base import check_choice, check_float32, check_int, params_from_dict, params_to_dict
from ._exact import below_threshold, largest_float32_satisfying, largest_integer_satisfying

#: variant -> how many codes below 2**bits survive the clamp (the zero code comes on top).
SQRT2_VARIANTS: dict[str, int] = {"sqrt2_17": 0, "sqrt2_16": 1}


@dataclasses.dataclass(frozen=True)
class Sqrt2Params:
    """Log-√2 quantizer of post-softmax attention probabilities.

    Reference (float32): ``t = round(-2 * log2(x / delta))``; zero if ``t >= 2**bits``; else
    ``c = clamp(t, 0, max_code)`` and ``x_hat = delta * 2**(-c/2)``. ``sqrt2_17`` keeps codes
    ``0 .. 2**bits - 1`` (17 values with zero at 4 bits); ``sqrt2_16`` clamps to ``2**bits - 2``.

    Hardware (comparator form) works on the unsigned fixed-point input
    ``xi = clamp(floor(x * 2**input_frac_bits), 0, 2**input_bits - 1)``: with the integer
    thresholds ``theta_j`` (:attr:`thresholds`), ``count = #{j : xi <= theta_j}``; the code is
    ``count`` clamped to :attr:`max_code`, and ``count == 2**bits`` is the exact zero. Codes are
    integers in ``[0, 2**bits]`` where :attr:`zero_code` ``= 2**bits`` means "exact zero": a
    ``bits + 1`` bit field whose top bit is the zero flag.

    Parameters
    ----------
    variant : str
        ``sqrt2_17`` (RepQ-ViT) or ``sqrt2_16`` (BitLog2's modified clamp).
    bits : int
        ``b``, 2..8: ``2**b`` log codes plus the zero.
    delta : float
        The calibrated scale Δ (the largest level), positive, stored as float32.
    input_bits, input_frac_bits : int
        The unsigned input grid; default 16/16 (probabilities in ``[0, 1 - 2**-16]``).
    """

    variant: str = "sqrt2_17"
    bits: int = 4
    delta: float = 1.0
    input_bits: int = 16
    input_frac_bits: int = 16

    def __post_init__(self) -> None:
        check_choice("sqrt2 variant", self.variant, SQRT2_VARIANTS)
        check_int("sqrt2 bits", self.bits, 2, 8)
        object.__setattr__(self, "delta", check_float32("sqrt2 delta", self.delta, positive=True))
        check_int("sqrt2 input_bits", self.input_bits, 1, 24)
        check_int("sqrt2 input_frac_bits", self.input_frac_bits, 0, 32)

    @property
    def n_codes(self) -> int:
        """``2**bits``: the number of log codes before the clamp."""
        return 1 << self.bits

    @property
    def max_code(self) -> int:
        """Largest nonzero code: ``2**bits - 1`` (sqrt2_17) or ``2**bits - 2`` (sqrt2_16)."""
        return self.n_codes - 1 - SQRT2_VARIANTS[self.variant]

    @property
    def zero_code(self) -> int:
        """The code of the exact zero, ``2**bits``."""
        return self.n_codes

    @property
    def code_bits(self) -> int:
        """Width of a code including the zero flag: ``bits + 1``."""
        return self.bits + 1

    @property
    def input_max(self) -> int:
        """Largest input integer ``2**input_bits - 1``; larger inputs saturate to it."""
        return (1 << self.input_bits) - 1

    def _below(self, j: int) -> Any:
        # Code j and j+1 meet at T_j = delta * 2**(-(2j+1)/4): irrational, so never tied.
        delta = Fraction(self.delta)
        return lambda y: below_threshold(y, delta, 2 * j + 1, 4, inclusive=False)

    @functools.cached_property
    def thresholds(self) -> tuple[int, ...]:
        """``theta_j`` for ``j = 0 .. 2**bits - 1`` (non-increasing): ``xi <= theta_j`` exactly
        when ``xi / 2**input_frac_bits < delta * 2**(-(2j+1)/4)``. Values are clamped to
        ``[0, input_max]`` (an input can be at most ``input_max``), so they fit ``input_bits``
        unsigned bits. ``theta_j >= 0`` always: ``xi = 0`` lies below every threshold."""
        return tuple(self._threshold(j) for j in range(self.n_codes))

    def _threshold(self, j: int) -> int:
        below, unit = self._below(j), 1 << self.input_frac_bits
        return largest_integer_satisfying(lambda xi: below(Fraction(xi, unit)), 0, self.input_max)

    @functools.cached_property
    def float_thresholds(self) -> tuple[float, ...]:
        """For float32 inputs: the largest float32 ``t_j`` below the real threshold ``T_j``, so
        that for every float32 ``x >= 0``, ``x <= t_j`` exactly when ``x < T_j``. Used by the
        exact float comparator (:func:`golden.sqrt2.quantize_exact`)."""
        return tuple(
            largest_float32_satisfying(self._below(j), 0.0, float.fromhex("0x1.fffffep127"))
            for j in range(self.n_codes)
        )

    def level(self, code: int) -> float:
        """The real dequantized value of ``code`` (float64): ``delta * 2**(-code/2)``, 0 for zero."""
        check_int("sqrt2 code", code, 0, self.zero_code)
        if code == self.zero_code:
            return 0.0
        return self.delta * 2.0 ** (-code / 2)

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Sqrt2Params:
        return params_from_dict(cls, data)
