"""AdaLogParams: the LUT (fixed examples from QUANTIZERS.md), exact thresholds, ties, the clamp code."""

from __future__ import annotations

import decimal
import math
import struct

import pytest

from golden.params import ADALOG_GELU_SHIFT, ADALOG_R, AdaLogParams

CONTEXT = decimal.Context(prec=80)


def test_lut_q18_matches_the_published_example():
    params = AdaLogParams(bits=4, q=18)
    assert params.dn == 30
    assert params.lut_e == (0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7)
    assert params.lut_m == (30, 21, 15, 22, 16, 22, 16, 23, 16, 23, 16, 24, 17, 24, 17, 24)


def test_lut_q37_is_pure_shifts():
    params = AdaLogParams(bits=4, q=37)
    assert params.lut_e == tuple(range(16))
    assert params.lut_m == (30,) * 16


@pytest.mark.parametrize("bits", range(2, 9))
def test_lut_every_q(bits):
    for q in range(10, 138):
        params = AdaLogParams(bits=bits, q=q)
        e, m = params.lut_e, params.lut_m
        assert len(e) == len(m) == 1 << bits
        assert all(a <= b for a, b in zip(e, e[1:]))
        assert all(params.dn // 2 <= v <= params.dn for v in m)
        assert max(m).bit_length() == params.mantissa_bits == bits + 1
        # M[k] * 2**-E[k] / Dn approximates 2**(-k q / r) to within half a mantissa step.
        for k in range(1 << bits):
            exact = 2.0 ** (-k * q / ADALOG_R)
            assert (
                abs(math.ldexp(m[k] / params.dn, -e[k]) - exact)
                <= math.ldexp(0.5 / params.dn, -e[k]) * 1.0001
            )


def real_threshold(params: AdaLogParams, j: int) -> decimal.Decimal:
    exponent = CONTEXT.multiply(
        decimal.Decimal(-(2 * j + 1) * params.q) / (2 * ADALOG_R), CONTEXT.ln(decimal.Decimal(2))
    )
    return CONTEXT.multiply(decimal.Decimal(params.scale), CONTEXT.exp(exponent))


def expected_theta(params: AdaLogParams, j: int) -> int:
    """Largest xi with xi/2**f + shift < T_j (<= for odd j), clamped to the input range."""
    value = CONTEXT.multiply(
        real_threshold(params, j) - decimal.Decimal(params.shift), 1 << params.input_frac_bits
    )
    nearest = int(value.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    if abs(value - nearest) < decimal.Decimal("1e-50"):  # an exact tie: T_j is rational
        theta = nearest if j % 2 else nearest - 1
    else:
        theta = math.floor(value)
    return min(max(theta, params.input_min), params.input_max)


CASES = [
    AdaLogParams(q=18),
    AdaLogParams(q=37),
    AdaLogParams(q=74),  # T_j = 2**-(2j+1): exact ties on the grid
    AdaLogParams(q=137),
    AdaLogParams(bits=3, q=11, scale=0.75),
    AdaLogParams(bits=6, q=29),
    AdaLogParams(
        q=50, scale=3.2, shift=ADALOG_GELU_SHIFT, input_bits=16, input_frac_bits=11, input_signed=True
    ),
    AdaLogParams(
        q=74, scale=4.0, shift=ADALOG_GELU_SHIFT, input_bits=16, input_frac_bits=11, input_signed=True
    ),
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"b{p.bits}q{p.q}s{p.scale}sh{p.shift:.2f}")
def test_integer_thresholds_match_80_digit_arithmetic(params):
    assert params.thresholds == tuple(expected_theta(params, j) for j in range(params.n_codes))


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"b{p.bits}q{p.q}s{p.scale}sh{p.shift:.2f}")
def test_float_thresholds_bracket_the_real_thresholds(params):
    shift = decimal.Decimal(params.shift)
    for j, t in enumerate(params.float_thresholds):
        real = real_threshold(params, j)
        bits = struct.unpack("<I", struct.pack("<f", t))[0]
        after = struct.unpack("<f", struct.pack("<I", bits + 1 if t > 0 else bits - 1))[0]
        below, above = decimal.Decimal(t) + shift - real, decimal.Decimal(after) + shift - real
        tie = decimal.Decimal("1e-60")  # the 80-digit threshold is exact to far better than this
        # odd j: the tie point itself is still below the threshold; even j: it is not.
        assert (below < tie) if j % 2 else (below < -tie)
        assert (above > tie) if j % 2 else (above > -tie)


def test_q74_ties_follow_round_half_to_even():
    params = AdaLogParams(q=74)
    # x = 2**-(2j+1) lies exactly on T_j (u = j + 1/2): even j keeps code j, odd j gets j + 1.
    for j in range(8):
        xi = 1 << (16 - (2 * j + 1))
        count = sum(xi <= theta for theta in params.thresholds)
        assert count == (j if j % 2 == 0 else j + 1)


def test_clamp_code():
    assert AdaLogParams(q=118).clamp_code == 16
    assert AdaLogParams(q=119).clamp_code == 15
    assert AdaLogParams(q=137).clamp_code == 13
    assert AdaLogParams(bits=3, q=137).clamp_code == 8


def test_levels_and_widths():
    params = AdaLogParams(q=18, scale=2.0)
    assert params.level(0) == 2.0
    assert params.level(3) == 2.0 * 22 / 30 / 2
    assert params.level(params.zero_code) == 0.0
    assert (params.zero_code, params.code_bits, params.shift_bits) == (16, 5, 3)
    assert AdaLogParams(q=137).shift_bits == 6  # E[15] = 55
