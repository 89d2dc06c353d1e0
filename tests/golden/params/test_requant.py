"""RequantParams and dyadic(): normalised multipliers, shifts, error bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from golden.params import ParamError, RequantParams, dyadic


@given(st.floats(min_value=2.0**-45, max_value=2.0**15, allow_nan=False, allow_infinity=False))
def test_dyadic_is_normalised_and_accurate(real):
    m, s = dyadic(real)
    assert (1 << 15) <= m < (1 << 16)
    assert 0 <= s <= 62
    assert abs(math.ldexp(m, -s) - real) <= real * 2.0**-16


def test_dyadic_fixed_examples():
    assert dyadic(1.0) == (1 << 15, 15)
    assert dyadic(0.75) == (3 << 14, 16)
    assert dyadic(0.0) == (0, 0)
    # f * 2**16 = 65535.99... rounds up to 2**16 and renormalises.
    assert dyadic(1 - 2.0**-20) == (1 << 15, 15)
    # round half to even on the 17th bit: 1 + 2**-16 -> 0x8000.8 -> 0x8000 (even)
    assert dyadic(1 + 2.0**-16) == (1 << 15, 15)
    assert dyadic(1 + 3 * 2.0**-16) == ((1 << 15) + 2, 15)
    assert dyadic(0.001, mult_bits=8) == (131, 17)


@pytest.mark.parametrize(
    ("real", "message"),
    [
        (-1.0, "non-negative"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (2.0**16, "left shift"),
        (2.0**-60, "too small"),
        (True, "True"),
    ],
)
def test_dyadic_rejects(real, message):
    with pytest.raises(ParamError, match=message):
        dyadic(real)


def test_from_real_per_channel():
    params = RequantParams.from_real([0.5, 0.001, 0.0], bias=[1, -2, 3], out_bits=4, out_zero_point=8)
    assert params.multiplier == (1 << 15, dyadic(0.001)[0], 0)
    assert params.shift == (16, dyadic(0.001)[1], 0)
    assert params.bias == (1, -2, 3)
    assert params.real_multiplier(0) == 0.5
    assert (params.qmin, params.qmax, params.channels, params.product_bits) == (0, 15, 3, 48)


def test_signed_output_range():
    params = RequantParams((1,), (0,), out_bits=8, out_signed=True, out_zero_point=-128)
    assert (params.qmin, params.qmax) == (-128, 127)
