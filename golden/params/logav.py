"""Log-domain A·V (shift-accumulate) parameters: fractional bits, mantissa precision, widths.

The attention probabilities reach A·V as log codes; hardware multiplies V by the code's level with
shifts (and, for AdaLog and the odd log-√2 codes, a small mantissa multiply). For a code ``c`` of
a log-√2 or AdaLog quantizer the level is written ``mant[c] * 2**(-exp[c])`` (times a per-layer real
factor), and one term of the accumulation is::

    term = floor((v - z_v) * mant[c] * 2**(F - exp[c]))   # exact left shift when exp[c] <= F,
                                                        # arithmetic (floor) right shift otherwise
    acc  = sum_j term_j                                 # zero codes contribute 0

so ``acc * acc_scale * s_v`` approximates ``sum_j x_hat_j * v_hat_j``. BitLog2 levels are integers
(``D = 2**k + h * 2**(k-1)``), so its accumulation ``sum_j (v_j - z_v) * D_j`` is exact and needs
neither ``F`` nor a mantissa.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ._base import ParamError, check_choice, check_int, params_from_dict, params_to_dict
from .adalog import AdaLogParams
from .bitlog2 import BitLog2Params
from .sqrt2 import Sqrt2Params

#: family -> (frac_bits F, mant_bits P, acc_bits): our defaults (see golden/README.md).
LOG_AV_DEFAULTS: dict[str, tuple[int, int, int]] = {
    "bitlog2": (0, 0, 32),
    "sqrt2": (8, 8, 32),
    "adalog": (12, 0, 32),
}
_QUANTIZER_TYPES: dict[str, type] = {"bitlog2": BitLog2Params, "sqrt2": Sqrt2Params, "adalog": AdaLogParams}


def sqrt2_mantissa(precision: int) -> int:
    """``round(sqrt(2) * 2**precision)`` exactly (never a tie: the product is irrational)."""
    # floor(2**(P+1) * sqrt(2)) = isqrt(2**(2P+3)); halving it with carry rounds to nearest.
    return (math.isqrt(1 << (2 * precision + 3)) + 1) // 2


@dataclasses.dataclass(frozen=True)
class LogAVParams:
    """Structure of a log-domain A·V (or log-input linear layer, e.g. AdaLog's fc2) accumulator.

    Parameters
    ----------
    family : str
        ``bitlog2``, ``sqrt2`` or ``adalog``: which code family feeds the accumulator.
    frac_bits : int
        ``F``, 0..32: fractional bits kept below a code-0 term. Must be 0 for ``bitlog2``.
        Terms of codes with ``exp[c] > F`` are floored (arithmetic right shift).
    mant_bits : int
        ``P``, log-√2 only (1..16): even codes have mantissa ``2**P``, odd codes
        ``round(sqrt(2) * 2**P)`` (``P + 1`` bits). Must be 0 for ``bitlog2`` and ``adalog``
        (AdaLog's mantissas are its LUT ``M[k]``).
    acc_bits : int
        Signed accumulator width, 8..62. :func:`golden.intops` raises if a result does not fit.
    """

    family: str
    frac_bits: int
    mant_bits: int
    acc_bits: int = 32

    def __post_init__(self) -> None:
        check_choice("log A·V family", self.family, LOG_AV_DEFAULTS)
        check_int("log A·V frac_bits", self.frac_bits, 0, 32)
        check_int("log A·V acc_bits", self.acc_bits, 8, 62)
        if self.family == "sqrt2":
            check_int("log A·V mant_bits", self.mant_bits, 1, 16)
        else:
            check_int("log A·V mant_bits", self.mant_bits, 0, 0)
        if self.family == "bitlog2":
            check_int("log A·V frac_bits", self.frac_bits, 0, 0)

    @classmethod
    def default(cls, family: str, **overrides: Any) -> LogAVParams:
        """Our default structure for ``family`` (see :data:`LOG_AV_DEFAULTS`), with overrides."""
        check_choice("log A·V family", family, LOG_AV_DEFAULTS)
        frac_bits, mant_bits, acc_bits = LOG_AV_DEFAULTS[family]
        fields = {"frac_bits": frac_bits, "mant_bits": mant_bits, "acc_bits": acc_bits, **overrides}
        return cls(family=family, **fields)

    def _check_quantizer(self, quantizer: Any) -> None:
        expected = _QUANTIZER_TYPES[self.family]
        if not isinstance(quantizer, expected):
            raise ParamError(
                f"log A·V of family {self.family!r} needs {expected.__name__}, not {quantizer!r}"
            )

    def table(self, quantizer: Sqrt2Params | AdaLogParams) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(mant, exp)`` for every nonzero code ``c = 0 .. 2**bits - 1``.

        log-√2: ``exp[c] = ceil(c/2)``, ``mant[c] = 2**P`` (even c) or ``round(sqrt(2)*2**P)`` (odd c),
        so ``mant * 2**(-exp - P) ~= 2**(-c/2)``. AdaLog: ``mant = M[k]``, ``exp = E[k]``, so
        ``mant * 2**(-exp) / Dn = level / scale``.
        """
        self._check_quantizer(quantizer)
        if self.family == "bitlog2":
            raise ParamError("log A·V of family 'bitlog2' has no mantissa table: its levels D are integers")
        if self.family == "sqrt2":
            odd = sqrt2_mantissa(self.mant_bits)
            mant = tuple(odd if c % 2 else 1 << self.mant_bits for c in range(quantizer.n_codes))
            return mant, tuple((c + 1) // 2 for c in range(quantizer.n_codes))
        return quantizer.lut_m, quantizer.lut_e

    def shifts(self, quantizer: Sqrt2Params | AdaLogParams) -> tuple[int, ...]:
        """``F - exp[c]`` per code: positive = left shift, negative = arithmetic right shift."""
        return tuple(self.frac_bits - e for e in self.table(quantizer)[1])

    def acc_scale(self, quantizer: BitLog2Params | Sqrt2Params | AdaLogParams) -> float:
        """Real value of one accumulator LSB per unit of ``v - z_v`` (multiply by ``s_v``).

        bitlog2: ``1/delta``; sqrt2: ``delta * 2**-(P+F)``; adalog: ``scale / (Dn * 2**F)``.
        Fold it, times ``s_v / s_out``, into the following requantization
        (:meth:`golden.params.RequantParams.from_real`).
        """
        self._check_quantizer(quantizer)
        if self.family == "bitlog2":
            if quantizer.delta is None:
                raise ParamError("log A·V acc_scale needs a calibrated BitLog2 delta, not None")
            return 1.0 / quantizer.delta
        if self.family == "sqrt2":
            return math.ldexp(quantizer.delta, -(self.mant_bits + self.frac_bits))
        return math.ldexp(quantizer.scale / quantizer.dn, -self.frac_bits)

    def term_bound(self, quantizer: BitLog2Params | Sqrt2Params | AdaLogParams, operand_abs_max: int) -> int:
        """The largest ``|term|`` for ``|v - z_v| <= operand_abs_max``."""
        check_int("log A·V operand_abs_max", operand_abs_max, 0)
        self._check_quantizer(quantizer)
        if self.family == "bitlog2":
            return operand_abs_max * quantizer.max_level
        mant, exp = self.table(quantizer)
        bound = 0
        for m, e in zip(mant, exp, strict=True):
            product = operand_abs_max * m
            shift = self.frac_bits - e
            # A floored negative term can exceed the truncated magnitude by one LSB.
            bound = max(bound, product << shift if shift >= 0 else -((-product) >> -shift))
        return bound

    def required_acc_bits(
        self, quantizer: BitLog2Params | Sqrt2Params | AdaLogParams, n_terms: int, operand_abs_max: int
    ) -> int:
        """Signed width that holds any sum of ``n_terms`` terms (worst case, no softmax assumption)."""
        check_int("log A·V n_terms", n_terms, 1)
        return (n_terms * self.term_bound(quantizer, operand_abs_max)).bit_length() + 1

    def to_dict(self) -> dict[str, Any]:
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LogAVParams:
        return params_from_dict(cls, data)
