"""Sqrt2Params: exact comparator thresholds, checked against 60-digit decimal arithmetic."""

from __future__ import annotations

import decimal
import math
import struct

import pytest

from golden.params import Sqrt2Params

CONTEXT = decimal.Context(prec=60)


def real_threshold(delta: float, j: int) -> decimal.Decimal:
    """``delta * 2**(-(2j+1)/4)`` to 60 digits, by a route independent of the integer-power test."""
    exponent = CONTEXT.multiply(decimal.Decimal(-(2 * j + 1)) / 4, CONTEXT.ln(decimal.Decimal(2)))
    return CONTEXT.multiply(decimal.Decimal(delta), CONTEXT.exp(exponent))


def next_float32(value: float) -> float:
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    return struct.unpack("<f", struct.pack("<I", bits + 1))[0]


DELTAS = [1.0, 0.5551882386207581, 0.05, 0.3, 1.7, 2.0**-7, 1e-3]


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("variant", ["sqrt2_17", "sqrt2_16"])
def test_integer_thresholds_are_the_floor_of_the_real_thresholds(delta, variant):
    params = Sqrt2Params(variant, delta=delta)
    unit = 1 << params.input_frac_bits
    for j, theta in enumerate(params.thresholds):
        scaled = CONTEXT.multiply(real_threshold(params.delta, j), decimal.Decimal(unit))
        expected = min(math.floor(scaled), params.input_max)
        assert theta == expected, (j, theta, scaled)


@pytest.mark.parametrize("delta", DELTAS)
def test_float_thresholds_are_the_last_float32_below_the_real_thresholds(delta):
    params = Sqrt2Params(delta=delta)
    for j, t in enumerate(params.float_thresholds):
        real = real_threshold(params.delta, j)
        assert decimal.Decimal(t) < real < decimal.Decimal(next_float32(t))


def test_thresholds_are_non_increasing_and_fit_the_input():
    for bits in range(2, 9):
        params = Sqrt2Params(bits=bits, delta=0.7, input_bits=12, input_frac_bits=12)
        theta = params.thresholds
        assert len(theta) == 1 << bits
        assert all(a >= b for a, b in zip(theta, theta[1:]))
        assert all(0 <= t <= params.input_max for t in theta)


def test_delta_above_the_input_range_saturates_thresholds():
    params = Sqrt2Params(delta=4.0)
    assert params.thresholds[0] == params.input_max  # T_0 = 4 * 2**-0.25 > 1


def test_codes_and_levels():
    p17, p16 = Sqrt2Params("sqrt2_17"), Sqrt2Params("sqrt2_16")
    assert (p17.max_code, p17.zero_code, p17.code_bits) == (15, 16, 5)
    assert (p16.max_code, p16.zero_code) == (14, 16)
    params = Sqrt2Params(delta=0.5)
    assert params.level(0) == 0.5
    assert params.level(2) == 0.25
    assert params.level(16) == 0.0
    assert params.level(3) == 0.5 * 2**-1.5


def test_delta_is_stored_as_float32():
    assert Sqrt2Params(delta=0.1).delta == 0.10000000149011612
