"""The BitLog2 golden model: integer form == the seed's reference form, on every input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import bitlog2
from golden.params import BITLOG2_SCHEMES, BitLog2Params, ParamError

SCHEMES = list(BITLOG2_SCHEMES)


def every_xi(params: BitLog2Params) -> torch.Tensor:
    return torch.arange(1 << params.input_width)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_integer_form_equals_reference_on_every_input(scheme):
    params = BitLog2Params(scheme)
    xi = every_xi(params)
    level = bitlog2.code_to_level(bitlog2.quantize_int(xi, params))
    # A float in the middle of each grid cell floors back onto xi (saturating at M - 1).
    x = (xi.clamp(max=params.m - 1).to(torch.float64) + 0.5) / params.m
    reference_level, _ = bitlog2.reference_quantize(x.to(torch.float32), params)
    assert torch.equal(level, reference_level)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_levels_are_the_published_set(scheme):
    params = BitLog2Params(scheme)
    level = bitlog2.code_to_level(bitlog2.quantize_int(every_xi(params), params))
    assert sorted(set(level.tolist())) == params.levels()
    assert len(params.levels()) == int(scheme.split("_")[1])


def test_published_values_half_17():
    assert BitLog2Params("half_17").levels() == [
        0,
        1,
        2,
        3,
        4,
        6,
        8,
        12,
        16,
        24,
        32,
        48,
        64,
        96,
        128,
        192,
        256,
    ]
    assert BitLog2Params("single_16").levels() == [0] + [1 << k for k in range(15)]


@pytest.mark.parametrize(
    ("xi", "k", "h", "zero", "level"),
    [(0, 0, 0, 1, 0), (1, 0, 0, 0, 1), (2, 1, 0, 0, 2), (3, 1, 1, 0, 3), (5, 2, 0, 0, 4), (6, 2, 1, 0, 6),
     (255, 7, 1, 0, 192), (383, 8, 0, 0, 256), (384, 8, 0, 0, 256), (511, 8, 0, 0, 256)],
)  # fmt: skip
def test_hand_computed_half_17_codes(xi, k, h, zero, level):
    params = BitLog2Params("half_17")
    code = bitlog2.quantize_int(torch.tensor([xi]), params)
    assert (int(code.k), int(code.h), int(code.zero)) == (k, h, zero)
    assert int(bitlog2.code_to_level(code)) == level


@pytest.mark.parametrize("scheme", SCHEMES)
def test_forms_agree_on_random_softmax(scheme):
    params = BitLog2Params(scheme, delta=BitLog2Params(scheme).m // 2)
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(8, 4, 50, 50, generator=generator) * torch.tensor([0.5, 2.0, 5.0, 12.0]).view(
        1, 4, 1, 1
    )
    attention = torch.softmax(logits, dim=-1)
    level, x_hat = bitlog2.reference_quantize(attention, params)
    xi = bitlog2.float_to_xi(attention, params)
    integer_level = bitlog2.code_to_level(bitlog2.quantize_int(xi, params))
    assert torch.equal(level, integer_level)
    assert torch.equal(x_hat, bitlog2.dequantize(integer_level, params.delta))


def test_float_to_xi_matches_floor_times_m_in_float32():
    params = BitLog2Params("half_17")
    x = torch.tensor([0.0, 1 / 384, 0.5, 0.99999, 1.0, 2.0, -0.1])
    assert bitlog2.float_to_xi(x, params).tolist() == [0, 1, 192, 383, 383, 383, 0]


@pytest.mark.parametrize("scheme", ["half_16", "half_17", "single_16"])
def test_delta_search_equals_the_seeds_loop(scheme):
    params = BitLog2Params(scheme)
    generator = torch.Generator().manual_seed(3)
    for sharpness in (1.0, 4.0, 10.0):
        attention = torch.softmax(torch.randn(2, 12, 12, generator=generator) * sharpness, dim=-1)
        assert bitlog2.search_delta(attention, params) == bitlog2.search_delta_reference(attention, params)


def test_delta_search_minimises_the_error():
    params = BitLog2Params("half_17")
    attention = torch.softmax(torch.randn(4, 50, 50, generator=torch.Generator().manual_seed(1)) * 3, dim=-1)
    best = bitlog2.search_delta(attention, params)
    level = bitlog2.code_to_level(bitlog2.quantize_int(bitlog2.float_to_xi(attention, params), params))

    def error(delta):
        return float(((attention - bitlog2.dequantize(level, delta)) ** 2).mean())

    assert error(best) <= error(best - 1) and error(best) <= error(best + 1)


def test_integer_input_out_of_range_is_rejected():
    params = BitLog2Params("half_16")
    with pytest.raises(ParamError, match=r"input xi must lie in \[0, 255\], got \[0, 256\]"):
        bitlog2.quantize_int(torch.tensor([0, 256]), params)
    with pytest.raises(ParamError, match="integer tensor"):
        bitlog2.quantize_int(torch.tensor([0.5]), params)


def test_params_reject_bad_values_and_round_trip():
    with pytest.raises(ParamError, match="scheme must be one of .* not 'half_18'"):
        BitLog2Params("half_18")
    with pytest.raises(ParamError, match="delta must be at most 255, not 256"):
        BitLog2Params("half_16", delta=256)
    with pytest.raises(ParamError, match="delta must be an integer, not 2.5"):
        BitLog2Params("half_16", delta=2.5)
    params = BitLog2Params("single_17", delta=40000)
    assert BitLog2Params.from_dict(params.to_dict()) == params
    with pytest.raises(ParamError, match="no field 'bits'"):
        BitLog2Params.from_dict({"scheme": "half_16", "bits": 4})


@pytest.mark.parametrize(
    ("scheme", "width", "max_k", "k_width"),
    [("single_16", 15, 14, 4), ("single_17", 16, 15, 4), ("half_16", 8, 7, 3), ("half_17", 9, 8, 4)],
)
def test_widths(scheme, width, max_k, k_width):
    params = BitLog2Params(scheme)
    assert (params.input_width, params.max_k, params.k_width) == (width, max_k, k_width)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False, width=32), min_size=1, max_size=50),
    st.sampled_from(SCHEMES),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_monotone_and_in_range(values, scheme, delta_fraction):
    m = BitLog2Params(scheme).m
    delta = 1 + int(delta_fraction * (m - 2))  # delta ranges over 1 .. M - 1
    params = BitLog2Params(scheme, delta=delta)
    x = torch.tensor(sorted(values), dtype=torch.float32)
    xi = bitlog2.float_to_xi(x, params)
    level = bitlog2.code_to_level(bitlog2.quantize_int(xi, params))
    reference_level, x_hat = bitlog2.reference_quantize(x, params)
    assert torch.equal(level, reference_level)
    assert bool((level[1:] >= level[:-1]).all()) and bool((x_hat[1:] >= x_hat[:-1]).all())
    # A leading-one code keeps the top one or two bits of xi: 0 only for xi = 0, never above xi.
    assert bool(((level == 0) == (xi == 0)).all()) and bool((level <= xi).all())
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= (params.m - 1) / delta
