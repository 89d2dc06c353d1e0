"""LogAVParams: defaults, mantissa/exponent tables, real scale, accumulator bounds."""

from __future__ import annotations

import math

import pytest

from golden.params import AdaLogParams, BitLog2Params, LogAVParams, ParamError, Sqrt2Params
from golden.params.logav import sqrt2_mantissa


def test_defaults():
    assert LogAVParams.default("bitlog2") == LogAVParams("bitlog2", 0, 0, 32)
    assert LogAVParams.default("sqrt2") == LogAVParams("sqrt2", 8, 8, 32)
    assert LogAVParams.default("adalog") == LogAVParams("adalog", 12, 0, 32)
    assert LogAVParams.default("sqrt2", frac_bits=4).frac_bits == 4
    with pytest.raises(ParamError, match="'nope'"):
        LogAVParams.default("nope")


def test_sqrt2_mantissa_is_round_sqrt2():
    for precision in range(1, 17):
        assert sqrt2_mantissa(precision) == round(math.sqrt(2) * 2**precision)
    assert sqrt2_mantissa(8) == 362


def test_sqrt2_table():
    av = LogAVParams.default("sqrt2")
    mant, exp = av.table(Sqrt2Params())
    assert mant == (256, 362) * 8
    assert exp == (0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8)
    for c in range(16):
        assert abs(mant[c] * 2.0 ** -(exp[c] + 8) - 2 ** (-c / 2)) <= 2 ** (-c / 2) * 2e-4
    assert av.shifts(Sqrt2Params()) == tuple(8 - e for e in exp)


def test_adalog_table_is_the_lut():
    quantizer = AdaLogParams(q=18)
    assert LogAVParams.default("adalog").table(quantizer) == (quantizer.lut_m, quantizer.lut_e)


def test_kind_must_match_the_quantizer():
    with pytest.raises(ParamError, match="needs Sqrt2Params"):
        LogAVParams.default("sqrt2").table(AdaLogParams())
    with pytest.raises(ParamError, match="no mantissa table"):
        LogAVParams.default("bitlog2").table(BitLog2Params("half_17", 300))


def test_acc_scale():
    assert LogAVParams.default("bitlog2").acc_scale(BitLog2Params("half_17", 300)) == 1 / 300
    with pytest.raises(ParamError, match="delta"):
        LogAVParams.default("bitlog2").acc_scale(BitLog2Params("half_17"))
    assert LogAVParams.default("sqrt2").acc_scale(Sqrt2Params(delta=0.5)) == 0.5 * 2.0**-16
    assert LogAVParams.default("adalog").acc_scale(AdaLogParams(q=20, scale=3.0)) == 3.0 / 30 / 4096


def test_term_bounds():
    sqrt2 = LogAVParams.default("sqrt2")
    assert sqrt2.term_bound(Sqrt2Params(), 15) == 15 * 256 * 256  # code 0: 2**P << F
    adalog = LogAVParams.default("adalog")
    assert adalog.term_bound(AdaLogParams(q=37), 255) == 255 * 30 * 4096
    assert LogAVParams.default("bitlog2").term_bound(BitLog2Params("single_17"), 15) == 15 * 32768
    # 197 keys of 8-bit V at code 0: 197 * 255 * 2**16 needs 33 bits (sign included).
    assert sqrt2.required_acc_bits(Sqrt2Params(), 197, 255) == 33


@pytest.mark.parametrize(
    ("av", "quantizer"),
    [
        (LogAVParams("sqrt2", frac_bits=0, mant_bits=3), Sqrt2Params()),
        (LogAVParams("sqrt2", frac_bits=5, mant_bits=8), Sqrt2Params(bits=3)),
        (LogAVParams("adalog", frac_bits=2, mant_bits=0), AdaLogParams(q=90)),
    ],
)
def test_term_bound_is_tight(av, quantizer):
    """Brute force over every code and operand: the bound holds and is reached."""
    mant, exp = av.table(quantizer)
    largest = 0
    for d in range(-7, 8):
        for m, e in zip(mant, exp):
            shift = av.frac_bits - e
            term = d * m << shift if shift >= 0 else (d * m) >> -shift
            largest = max(largest, abs(term))
    assert av.term_bound(quantizer, 7) == largest
