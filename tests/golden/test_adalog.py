"""AdaLog golden model: comparator (integer) form, exact form and the float32 reference form."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import adalog
from golden.params import ADALOG_GELU_SHIFT, ADALOG_R, AdaLogParams, ParamError

SOFTMAX_CASES = [AdaLogParams(q=q) for q in (10, 18, 37, 50, 74, 100, 119, 137)] + [
    AdaLogParams(bits=3, q=11, scale=0.75),
    AdaLogParams(bits=6, q=29),
]
GELU_CASES = [
    AdaLogParams(q=q, scale=s, shift=ADALOG_GELU_SHIFT, input_bits=16, input_frac_bits=11, input_signed=True)
    for q, s in ((50, 3.2), (74, 4.0), (20, 1.7), (137, 8.5))
]
CASES = SOFTMAX_CASES + GELU_CASES


def case_id(params: AdaLogParams) -> str:
    return f"b{params.bits}-q{params.q}-s{params.scale:.2f}-{'gelu' if params.shift else 'softmax'}"


def every_xi(params: AdaLogParams) -> torch.Tensor:
    return torch.arange(params.input_min, params.input_max + 1)


def float64_codes(xi: torch.Tensor, params: AdaLogParams) -> torch.Tensor:
    """The definition in float64 (exact on q = 74's ties, far from every other boundary)."""
    y = xi.to(torch.float64) / (1 << params.input_frac_bits) + params.shift
    xs = (y / params.scale).clamp(min=float(torch.tensor(1e-15, dtype=torch.float32)), max=1.0)
    k = torch.round(-torch.log2(xs) * ADALOG_R / params.q)
    codes = k.clamp(0, params.n_codes - 1).to(torch.int64)
    return torch.where(k >= params.n_codes, params.zero_code, codes)


def literal_reference(x: torch.Tensor, params: AdaLogParams, reparameterized: bool) -> torch.Tensor:
    """The seed's inference path transcribed step by step (tables filled one entry at a time)."""
    r, n_levels = 37.0, 2 ** (params.bits - 1)
    q = torch.tensor([params.q])
    table1 = torch.zeros(n_levels * 2)
    table2 = torch.zeros(n_levels * 2)
    for i in range(n_levels * 2):
        value = round((2 ** (-((params.q * i) % r) / r)) * (4 * n_levels - 2)) / (4 * n_levels - 2)
        table1[i] = math.floor(i * params.q / r)
        table2[i] = value
    scale = torch.tensor([params.scale])
    shift = torch.tensor([params.shift])
    scaled = ((x + shift) / scale).clamp(min=1e-15, max=1.0)
    x_quant = torch.round(-scaled.log2() * r / q)
    mask = x_quant < 2 * n_levels
    x_quant = torch.clamp(x_quant, 0, 2 * n_levels - 1)
    x_dequant = (2 ** (-table1[x_quant.long()])) * table2[x_quant.long()] * scale
    x_dequant = x_dequant * mask
    return x_dequant if reparameterized else x_dequant - shift


def sample(params: AdaLogParams, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if params.shift:
        x = torch.nn.functional.gelu(torch.randn(20_000, generator=generator) * 3)
        return torch.cat([x, torch.tensor([-ADALOG_GELU_SHIFT, -0.2, 0.0, params.scale, 100.0])])
    x = torch.softmax(torch.randn(50, 197, generator=generator) * 4, dim=-1).reshape(-1)
    return torch.cat([x, torch.tensor([0.0, 1.0, 1e-20, 2.0**-16])])


def test_hand_computed_example():
    params = AdaLogParams(q=18)
    x = torch.tensor([1.0, 0.5, 2.0**-3, 0.0])
    # -log2 x * 37 / 18 = 0, 2.06, 6.17, clamp(1e-15): 102.4 -> codes 0, 2, 6, zero
    codes, x_hat = adalog.reference_quantize(x, params)
    assert codes.tolist() == [0, 2, 6, 16]
    assert x_hat.tolist() == [1.0, float(torch.tensor(15 / 30)), float(torch.tensor(16 / 30)) / 4, 0.0]
    assert adalog.quantize_int(adalog.float_to_xi(x, params), params).tolist() == [0, 2, 6, 16]


@pytest.mark.parametrize("params", CASES, ids=case_id)
@pytest.mark.parametrize("reparameterized", [True, False])
def test_reference_form_equals_the_literal_reference(params, reparameterized):
    x = sample(params)
    expected = literal_reference(x, params, reparameterized)
    _, x_hat = adalog.reference_quantize(x, params, reparameterized)
    assert torch.equal(x_hat, expected)
    forward = adalog.reference_forward(x, params.q, params.scale, params.shift, params.bits, reparameterized)
    assert torch.equal(forward, expected)


def test_reference_forward_scores_many_q_at_once():
    x = sample(SOFTMAX_CASES[0], seed=3)[:4000]
    q = torch.arange(10, 138).reshape(-1, 1)
    batched = adalog.reference_forward(x, q)
    for row in (0, 8, 27, 64, 127):
        assert torch.equal(batched[row], adalog.reference_forward(x, int(q[row])))


@pytest.mark.parametrize("params", CASES, ids=case_id)
def test_integer_form_is_the_definition_on_every_input(params):
    xi = every_xi(params)
    integer = adalog.quantize_int(xi, params)
    assert torch.equal(integer, float64_codes(xi, params))
    assert torch.equal(adalog.quantize_exact(adalog.xi_to_float(xi, params), params), integer)


@pytest.mark.parametrize("params", CASES, ids=case_id)
def test_float_reference_differs_only_next_to_a_threshold(params):
    xi = every_xi(params)
    x = adalog.xi_to_float(xi, params)
    differ = adalog.reference_codes(x, params) != adalog.quantize_int(xi, params)
    j = torch.arange(params.n_codes, dtype=torch.float64)
    thresholds = params.scale * torch.exp2(-(2 * j + 1) * params.q / (2 * ADALOG_R))
    y = x[differ, None].to(torch.float64) + params.shift
    assert bool(((y / thresholds - 1).abs().min(dim=1).values < 2.0**-14).all())


@pytest.mark.parametrize("params", CASES, ids=case_id)
def test_threshold_edges_one_lsb(params):
    for j, theta in enumerate(params.thresholds):
        if theta in (params.input_min, params.input_max):
            continue
        xi = torch.tensor([theta, theta + 1])
        low, high = adalog.quantize_int(xi, params).tolist()
        assert low >= min(j + 1, params.clamp_code) and high <= j
        assert torch.equal(adalog.quantize_int(xi, params), float64_codes(xi, params))


def ulp_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    target = torch.full_like(x, math.inf if steps > 0 else -math.inf)
    for _ in range(abs(steps)):
        x = torch.nextafter(x, target)
    return x


@pytest.mark.parametrize("params", CASES, ids=case_id)
def test_threshold_edges_one_ulp(params):
    below = torch.tensor(params.float_thresholds)  # last float32 (still) below each T_j
    above = ulp_steps(below, 1)
    exact_below, exact_above = adalog.quantize_exact(below, params), adalog.quantize_exact(above, params)
    j = torch.arange(params.n_codes)
    # >= / <=: after the shift several thresholds can share one float32 ulp (tiny T_j - shift).
    assert bool((exact_below >= (j + 1).clamp(max=params.clamp_code)).all())
    assert bool((exact_above <= j.clamp(max=params.clamp_code)).all())
    for x in (below, above):
        got = adalog.reference_codes(x, params)
        assert bool(((got == exact_below) | (got == exact_above)).all())
    # float32 log2 * r / q may round across T_j a few dozen ulp away (large q), not hundreds.
    for steps in (-256, 256):
        x = ulp_steps(below if steps < 0 else above, steps)
        assert torch.equal(adalog.reference_codes(x, params), adalog.quantize_exact(x, params))


def test_q74_ties_round_half_to_even_in_every_form():
    params = AdaLogParams(q=74)
    j = torch.arange(8)
    x = torch.exp2(-(2 * j + 1).to(torch.float32))  # exactly on T_j: u = j + 1/2
    expected = torch.where(j % 2 == 0, j, j + 1)
    assert torch.equal(adalog.reference_codes(x, params), expected)
    assert torch.equal(adalog.quantize_exact(x, params), expected)
    assert torch.equal(adalog.quantize_int(adalog.float_to_xi(x, params), params), expected)


@pytest.mark.parametrize("bits", range(2, 9))
def test_clamp_code_matches_the_float_reference_for_every_q(bits):
    zero = torch.zeros(1)
    # Every q up to 6 bits; a spread of q at 7-8 bits, where 256 exact thresholds per q cost seconds.
    for q in range(10, 138, 1 if bits <= 6 else 9):
        params = AdaLogParams(bits=bits, q=q)
        assert int(adalog.reference_codes(zero, params)) == params.clamp_code
        assert int(adalog.quantize_int(torch.zeros(1, dtype=torch.int64), params)) == params.clamp_code


def test_large_q_maps_zero_to_a_nonzero_code():
    params = AdaLogParams(q=137)
    codes, x_hat = adalog.reference_quantize(torch.tensor([0.0]), params)
    assert codes.tolist() == [13] and float(x_hat) > 0


def test_gelu_bias_reparameterization_moves_the_shift_into_the_bias():
    from golden.reparam import adalog_gelu_bias_reparam

    params = GELU_CASES[0]
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(24, 40, generator=generator, dtype=torch.float64)
    bias = torch.randn(24, generator=generator, dtype=torch.float64)
    x = torch.nn.functional.gelu(torch.randn(8, 40, generator=generator) * 3)
    _, shifted = adalog.reference_quantize(x, params, reparameterized=True)
    _, plain = adalog.reference_quantize(x, params, reparameterized=False)
    before = plain.double() @ weight.T + bias
    after = shifted.double() @ weight.T + adalog_gelu_bias_reparam(bias, weight, params.shift)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)  # float32 x_hat - shift rounding


def test_disagreement_on_random_softmax_is_small():
    x = torch.softmax(torch.randn(4, 3, 197, 197, generator=torch.Generator().manual_seed(5)) * 3, dim=-1)
    record = adalog.disagreement(x, AdaLogParams(q=18))
    assert record.float_vs_exact <= 1e-5 * record.elements and record.grid_float_vs_integer == 0
    assert record.float_vs_integer < 0.01 * record.elements


def test_bad_inputs():
    params = AdaLogParams()
    with pytest.raises(ParamError, match="NaN"):
        adalog.reference_codes(torch.tensor([float("nan")]), params)
    with pytest.raises(ParamError, match="floating-point"):
        adalog.quantize_exact(torch.tensor([1]), params)
    with pytest.raises(ParamError, match=r"\[0, 65535\]"):
        adalog.quantize_int(torch.tensor([-1]), params)
    with pytest.raises(ParamError, match=r"\[0, 16\]"):
        adalog.dequantize(torch.tensor([17]), params)


inputs = st.floats(min_value=-0.5, max_value=20.0, allow_nan=False, width=32)
params_strategy = st.one_of(
    st.builds(AdaLogParams, bits=st.integers(2, 6), q=st.integers(10, 137)),
    st.builds(
        AdaLogParams,
        bits=st.integers(2, 6),
        q=st.integers(10, 137),
        scale=st.floats(min_value=0.5, max_value=12.0),
        shift=st.just(ADALOG_GELU_SHIFT),
        input_bits=st.just(16),
        input_frac_bits=st.just(11),
        input_signed=st.just(True),
    ),
)


@settings(max_examples=60)
@given(st.lists(inputs, min_size=1, max_size=50), params_strategy)
def test_monotone_and_in_range(values, params):
    x = torch.tensor(sorted(values), dtype=torch.float32)
    if not params.shift:
        x = x.clamp(min=0.0)
    for codes in (
        adalog.quantize_int(adalog.float_to_xi(x, params), params),
        adalog.quantize_exact(x, params),
        adalog.reference_codes(x, params),
    ):
        assert bool((codes[1:] <= codes[:-1]).all())
        assert int(codes.min()) >= 0 and int(codes.max()) <= params.zero_code
        x_hat = adalog.dequantize(codes, params)
        assert bool((x_hat[1:] >= x_hat[:-1]).all())
        assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= params.scale


def test_a_threshold_off_by_one_is_caught():
    """The exhaustive check above is sharp: one threshold moved by one LSB changes one code."""
    params = GELU_CASES[0]
    xi = every_xi(params)
    corrupt = AdaLogParams(**{k: v for k, v in params.to_dict().items() if k != "kind"})
    thresholds = list(params.thresholds)
    thresholds[3] -= 1
    corrupt.__dict__["thresholds"] = tuple(thresholds)  # overrides the cached property
    differ = adalog.quantize_int(xi, corrupt) != float64_codes(xi, params)
    assert xi[differ].tolist() == [thresholds[3] + 1]
