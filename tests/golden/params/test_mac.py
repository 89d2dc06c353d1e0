"""MacArrayParams, LogCodeParams, ShiftAccParams: checks, derived widths, decoding, the cycle formula."""

from __future__ import annotations

import json

import pytest

from golden.params import (
    ADALOG_Q_RANGE,
    BITLOG2_SCHEMES,
    MAC_LATENCY,
    SHIFT_ACC_LATENCY,
    AdaLogParams,
    BitLog2Params,
    LogAVParams,
    LogCodeParams,
    MacArrayParams,
    ParamError,
    ShiftAccParams,
    Sqrt2Params,
    bitlog2_mant_exp,
    signed_width,
    tiled_cycles,
)

EXAMPLES = [
    MacArrayParams(),
    MacArrayParams(8, 8, 8, True, 8, True, 40),
    LogCodeParams("bitlog2", scheme="single_16"),
    LogCodeParams("sqrt2", bits=4, mant_bits=8),
    LogCodeParams("adalog", bits=6),
    ShiftAccParams(),
    ShiftAccParams.for_quantizer(
        AdaLogParams(), LogAVParams.default("adalog"), rows=2, cols=8, v_signed=True
    ),
]


@pytest.mark.parametrize("params", EXAMPLES, ids=lambda p: type(p).__name__)
def test_to_dict_from_dict_round_trip_through_json(params):
    data = json.loads(json.dumps(params.to_dict()))
    assert data["kind"] == type(params).__name__
    assert type(params).from_dict(data) == params


def test_tiled_cycles_formula():
    # One tile: K steps, then `latency` cycles to row 0, then R - 1 more rows.
    assert tiled_cycles(1, 5, 4, 3) == 5 + 3 + 3
    # Compute bound (K >= R): tiles follow each other every K cycles.
    assert tiled_cycles(4, 9, 4, 3) == 3 * 9 + 9 + 4 + 2
    # Drain bound (K < R): every tile after the first costs R cycles.
    assert tiled_cycles(4, 1, 4, 3) == 3 * 4 + 1 + 4 + 2
    assert tiled_cycles(0, 7, 4, 3) == 0
    with pytest.raises(ParamError, match="steps must be at least 1, not 0"):
        tiled_cycles(1, 0, 4, 3)


def test_mac_array_cycles_and_tiles():
    params = MacArrayParams(4, 4, 4, False, 4, False)
    assert params.latency == MAC_LATENCY == 3
    assert params.tiles(5, 9) == 2 * 3
    assert params.cycles(4, 1, 4) == 1 + 4 + 2
    assert params.cycles(8, 5, 8) == 3 * 5 + 5 + 4 + 2
    assert params.cycles(17, 64, 3) == 4 * 64 + 64 + 4 + 2
    assert params.cycles(0, 3, 5) == 0
    with pytest.raises(ParamError, match="K must be at least 1"):
        params.cycles(4, 0, 4)


def test_mac_array_ranges_and_widths():
    params = MacArrayParams(a_bits=6, a_signed=True, b_bits=4, b_signed=False, acc_bits=11)
    assert params.a_range == (-32, 31) and params.b_range == (0, 15)
    assert params.product_bits == 11  # |a - za| <= 63, |b - zb| <= 15: 945 < 2**10
    assert params.required_acc_bits(1) == 11
    assert MacArrayParams(a_bits=8, b_bits=8).required_acc_bits(65) == (65 * 255 * 255).bit_length() + 1


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"rows": 0}, "rows must be at least 1, not 0"),
        ({"cols": 65}, "cols must be at most 64, not 65"),
        ({"a_bits": 9}, "a_bits must be at most 8, not 9"),
        ({"b_bits": 1}, "b_bits must be at least 2, not 1"),
        ({"a_signed": 1}, "a_signed must be True or False, not 1"),
        ({"acc_bits": 16}, "acc_bits must be at least 17, not 16"),
        ({"acc_bits": 63}, "acc_bits must be at most 62, not 63"),
    ],
)
def test_mac_array_rejects_bad_fields(fields, message):
    with pytest.raises(ParamError, match=message):
        MacArrayParams(**fields)


def test_signed_width():
    assert [signed_width(lo, hi) for lo, hi in [(0, 0), (-1, 0), (0, 1), (-8, 7), (-9, 7), (0, 55)]] == [
        1,
        1,
        2,
        4,
        5,
        7,
    ]


@pytest.mark.parametrize("scheme", list(BITLOG2_SCHEMES))
def test_bitlog2_decoding_gives_every_level_exactly(scheme):
    quantizer = BitLog2Params(scheme)
    code = LogCodeParams.of(quantizer)
    levels = set()
    for k in range(quantizer.max_k + 1):
        for h in (0, 1) if quantizer.half and k else (0,):
            mant, exp, zero = code.decode((k, h, 0))
            assert zero == 0 and mant in code.mantissas and code.exp_range[0] <= exp <= code.exp_range[1]
            levels.add(mant * 2**-exp)
            assert mant < 1 << code.mant_width
    assert code.decode((3, 1, 1)) == (0, 0, 1)
    # Every level the quantizer produces is reached (Half_17's 384 needs an input it never gets).
    assert set(quantizer.levels()) - {0} <= levels


def test_bitlog2_mant_exp():
    assert bitlog2_mant_exp(0, 0) == (2, 1)
    assert bitlog2_mant_exp(5, 1) == (3, -4)  # 3 * 2**4 = 48 = 32 + 16
    with pytest.raises(ParamError, match="h must be at most 0, not 1"):
        bitlog2_mant_exp(0, 1)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("precision", [1, 8, 16])
def test_sqrt2_decoding_is_the_golden_table(bits, precision):
    code = LogCodeParams("sqrt2", bits=bits, mant_bits=precision)
    mant, exp = LogAVParams.default("sqrt2", mant_bits=precision).table(Sqrt2Params(bits=bits))
    assert [code.decode(c) for c in range(1 << bits)] == [(m, e, 0) for m, e in zip(mant, exp)]
    assert code.decode(1 << bits) == (0, 0, 1)
    assert set(mant) == set(code.mantissas)
    assert max(mant) < 1 << code.mant_width and code.exp_range == (min(exp), max(exp))


@pytest.mark.parametrize("bits", range(2, 9))
def test_adalog_widths_hold_every_lut(bits):
    code = LogCodeParams("adalog", bits=bits)
    lo, hi = code.exp_range
    for q in range(ADALOG_Q_RANGE[0], ADALOG_Q_RANGE[1] + 1):
        quantizer = AdaLogParams(bits=bits, q=q)
        assert max(quantizer.lut_m) < 1 << code.mant_width
        assert lo <= min(quantizer.lut_e) and max(quantizer.lut_e) <= hi
    assert hi == max(AdaLogParams(bits=bits, q=ADALOG_Q_RANGE[1]).lut_e)
    assert code.mantissas is None
    with pytest.raises(ParamError, match="run-time LUT"):
        code.decode(3)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"family": "uniform"}, "family must be one of"),
        ({"family": "bitlog2"}, "scheme must be one of"),
        ({"family": "bitlog2", "scheme": "half_17", "bits": 4}, "BitLog2 has a scheme"),
        ({"family": "sqrt2", "bits": 4}, "mant_bits must be at least 1"),
        ({"family": "adalog", "bits": 4, "mant_bits": 3}, "mant_bits must be at most 0"),
        ({"family": "adalog", "scheme": "half_17", "bits": 4}, "scheme is for BitLog2 only"),
        ({"family": "sqrt2", "bits": 9, "mant_bits": 8}, "bits must be at most 8"),
    ],
)
def test_log_code_rejects_bad_fields(fields, message):
    with pytest.raises(ParamError, match=message):
        LogCodeParams(**fields)


def test_shift_acc_for_each_quantizer():
    bitlog2 = ShiftAccParams.for_quantizer(BitLog2Params("half_17"), LogAVParams.default("bitlog2"))
    assert (bitlog2.family, bitlog2.scheme, bitlog2.bits, bitlog2.frac_bits) == (
        "bitlog2",
        "half_17",
        None,
        0,
    )
    # D = (2 + h) * 2**(k - 1): the product is pre-shifted by max_k - 1 = 7.
    assert bitlog2.max_left_shift == 7 and bitlog2.product_bits == 8 + 1 + 2
    sqrt2 = ShiftAccParams.for_quantizer(Sqrt2Params(bits=4), LogAVParams.default("sqrt2"), v_bits=6)
    assert sqrt2.code == LogCodeParams("sqrt2", bits=4, mant_bits=8)
    assert sqrt2.av == LogAVParams.default("sqrt2")
    # Right shifts: by exp = 0..8 (4-bit codes); AdaLog's E up to 55 is clamped at the product width.
    assert sqrt2.max_left_shift == 8 and sqrt2.max_right_shift == 8
    adalog = ShiftAccParams.for_quantizer(AdaLogParams(q=137), LogAVParams.default("adalog", acc_bits=40))
    assert adalog.acc_bits == 40 and adalog.code.exp_range == (0, 55) and adalog.max_left_shift == 12
    assert adalog.max_right_shift == 12 + (8 + 1 + 5) - 1
    assert bitlog2.max_right_shift == 8
    assert adalog.latency == SHIFT_ACC_LATENCY == 4
    assert adalog.cycles(197, 197, 64) == tiled_cycles(50 * 16, 197, 4, 4)
    with pytest.raises(ParamError, match="does not match LogAVParams family 'adalog'"):
        ShiftAccParams.for_quantizer(Sqrt2Params(), LogAVParams.default("adalog"))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"rows": 0}, "rows must be at least 1"),
        ({"v_bits": 17}, "v_bits must be at most 16"),
        ({"v_signed": "yes"}, "v_signed must be True or False"),
        ({"family": "sqrt2"}, "scheme is for BitLog2 only"),
        ({"frac_bits": 3}, "frac_bits must be at most 0"),
        ({"acc_bits": 7}, "acc_bits must be at least 8"),
    ],
)
def test_shift_acc_rejects_bad_fields(fields, message):
    with pytest.raises(ParamError, match=message):
        ShiftAccParams(**fields)
