"""The decoded form of a log code, shared by the log decoders and the shift-accumulate.

Every log quantizer's code (BitLog2 ``{k, h, zero}``, a log-√2 code, an AdaLog code) decodes to
a level ``mant * 2**(-exp)`` (times a per-layer real factor folded into requantization), or to an
exact zero. The shift-accumulate multiplies an operand by ``mant`` and shifts it by
``F - exp`` (left when positive, arithmetic right when negative), exactly as
:func:`golden.intops.log_matmul` defines; ``exp`` is signed so that BitLog2's integer levels
(left shifts by ``k - 1``) fit the same form.
"""

from __future__ import annotations

from amaranth import signed, unsigned
from amaranth.lib import data

__all__ = ["mant_exp_layout"]


def mant_exp_layout(mant_bits: int, exp_bits: int) -> data.StructLayout:
    """``{mant: unsigned(mant_bits), exp: signed(exp_bits), zero: unsigned(1)}``."""
    for name, value in (("mant_bits", mant_bits), ("exp_bits", exp_bits)):
        if not isinstance(value, int) or not 1 <= value <= 32:
            raise ValueError(f"Log code {name} must be an integer in [1, 32], not {value!r}")
    return data.StructLayout({"mant": unsigned(mant_bits), "exp": signed(exp_bits), "zero": unsigned(1)})
