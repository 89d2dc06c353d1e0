"""Log-√2 golden model: comparator (integer) form, exact form and RepQ-ViT's float32 reference form."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import sqrt2
from golden.params import ParamError, Sqrt2Params

DELTAS = [1.0, 0.5551882386207581, 0.3, 0.123456, 0.05, 2.0**-7]
VARIANTS = ["sqrt2_17", "sqrt2_16"]


def every_xi(params: Sqrt2Params) -> torch.Tensor:
    return torch.arange(params.input_max + 1)


def float64_codes(xi: torch.Tensor, params: Sqrt2Params) -> torch.Tensor:
    """The definition in float64, far more precise than any grid point's distance to a threshold."""
    x = xi.to(torch.float64) / (1 << params.input_frac_bits)
    t = torch.round(-2 * torch.log2(x / params.delta))
    codes = t.clamp(0, params.max_code).to(torch.int64)
    return torch.where(t >= params.n_codes, params.zero_code, codes)


def softmax_batch(seed: int, temperature: float = 3.0) -> torch.Tensor:
    logits = torch.randn(4, 3, 197, 197, generator=torch.Generator().manual_seed(seed)) * temperature
    return torch.softmax(logits, dim=-1)


def test_hand_computed_example():
    x = torch.tensor([1.0, 0.8, 0.5, 2**-0.5, 2.0**-7.5, 2.0**-8, 0.0, 3.0])
    p17, p16 = Sqrt2Params("sqrt2_17"), Sqrt2Params("sqrt2_16")
    codes17, x_hat17 = sqrt2.reference_quantize(x, p17)
    # t = round(-2 log2 x): 0, round(0.64) = 1, 2, 1, 15, 16 (zero), inf (zero), -3 -> 0
    assert codes17.tolist() == [0, 1, 2, 1, 15, 16, 16, 0]
    assert sqrt2.reference_quantize(x, p16)[0].tolist() == [0, 1, 2, 1, 14, 16, 16, 0]
    sqrt_half = float(torch.tensor(0.5) * torch.tensor(math.sqrt(2), dtype=torch.float32))
    assert x_hat17.tolist() == [
        1.0,
        sqrt_half,
        0.5,
        sqrt_half,
        2.0**-8 * float(torch.tensor(math.sqrt(2))),
        0,
        0,
        1,
    ]
    xi = sqrt2.float_to_xi(x, p17)
    assert xi.tolist() == [65535, 52428, 32768, 46340, 362, 256, 0, 65535]
    assert sqrt2.quantize_int(xi, p17).tolist() == [0, 1, 2, 1, 15, 16, 16, 0]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("delta", DELTAS)
def test_reference_quantize_equals_the_reference_forward(variant, delta):
    params = Sqrt2Params(variant, delta=delta)
    x = torch.cat([softmax_batch(0)[0, 0].reshape(-1), torch.tensor([0.0, 1.0, delta, 2 * delta, 1e-30])])
    _, x_hat = sqrt2.reference_quantize(x, params)
    assert torch.equal(x_hat, sqrt2.reference_forward(x, params.delta, params.bits, variant))
    assert torch.equal(x_hat, sqrt2.reference_forward(x, torch.tensor(params.delta), params.bits, variant))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("delta", DELTAS)
def test_integer_form_is_the_definition_on_every_input(variant, delta):
    params = Sqrt2Params(variant, delta=delta)
    xi = every_xi(params)
    integer = sqrt2.quantize_int(xi, params)
    assert torch.equal(integer, float64_codes(xi, params))
    # On grid points (exact float32 values) the exact float comparator must agree bit for bit.
    assert torch.equal(sqrt2.quantize_exact(sqrt2.xi_to_float(xi, params), params), integer)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("delta", DELTAS)
def test_float_reference_differs_only_next_to_a_threshold(variant, delta):
    params = Sqrt2Params(variant, delta=delta)
    xi = every_xi(params)
    x = sqrt2.xi_to_float(xi, params)
    differ = sqrt2.reference_codes(x, params) != sqrt2.quantize_int(xi, params)
    thresholds = torch.tensor([params.delta * 2 ** (-(2 * j + 1) / 4) for j in range(params.n_codes)])
    distance = (x[differ, None].to(torch.float64) / thresholds - 1).abs().min(dim=1).values
    assert bool((distance < 2.0**-18).all())


@pytest.mark.parametrize("delta", DELTAS)
def test_threshold_edges_one_lsb(delta):
    params = Sqrt2Params("sqrt2_17", delta=delta)  # its code is the comparator count itself
    for j, theta in enumerate(params.thresholds):
        if theta == params.input_max:
            continue
        xi = torch.tensor([theta, theta + 1])
        low, high = sqrt2.quantize_int(xi, params).tolist()
        assert low >= j + 1 and high <= j
        assert torch.equal(sqrt2.quantize_int(xi, params), float64_codes(xi, params))


def ulp_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    target = torch.full_like(x, math.inf if steps > 0 else -math.inf)
    for _ in range(abs(steps)):
        x = torch.nextafter(x, target)
    return x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("delta", DELTAS)
def test_threshold_edges_one_ulp(variant, delta):
    params = Sqrt2Params(variant, delta=delta)
    below = torch.tensor(params.float_thresholds)  # last float32 below each T_j
    above = ulp_steps(below, 1)
    exact_below, exact_above = sqrt2.quantize_exact(below, params), sqrt2.quantize_exact(above, params)
    j = torch.arange(params.n_codes)
    expected_below = torch.where(
        j + 1 >= params.n_codes, params.zero_code, (j + 1).clamp(max=params.max_code)
    )
    assert torch.equal(exact_below, expected_below)
    assert torch.equal(exact_above, j.clamp(max=params.max_code))
    # float32 log2 may round either way within an ulp or two of T_j, never further out.
    for x in (below, above):
        got = sqrt2.reference_codes(x, params)
        assert bool(((got == exact_below) | (got == exact_above)).all())
    for steps in (-64, -16, 16, 64):
        x = ulp_steps(below if steps < 0 else above, steps)
        assert torch.equal(sqrt2.reference_codes(x, params), sqrt2.quantize_exact(x, params))


def test_sqrt2_16_never_uses_the_last_code():
    params = Sqrt2Params("sqrt2_16", delta=0.25)
    codes = sqrt2.quantize_int(every_xi(params), params)
    assert set(codes.tolist()) == set(range(15)) | {16}


def test_disagreement_on_random_softmax_is_small():
    x = softmax_batch(5)
    params = Sqrt2Params(delta=float(torch.quantile(x.reshape(-1)[:500_000], 0.999)))
    record = sqrt2.disagreement(x, params)
    assert record.elements == x.numel()
    assert record.float_vs_exact <= 1e-5 * record.elements  # float32 log2 rounding: ulps from T_j only
    assert record.grid_float_vs_integer == 0
    assert 0 < record.float_vs_integer < 0.01 * record.elements  # the 16-bit grid's truncation


def test_bad_inputs():
    params = Sqrt2Params()
    with pytest.raises(ParamError, match="non-negative"):
        sqrt2.reference_codes(torch.tensor([-0.1]), params)
    with pytest.raises(ParamError, match="NaN"):
        sqrt2.quantize_exact(torch.tensor([float("nan")]), params)
    with pytest.raises(ParamError, match=r"\[0, 65535\]"):
        sqrt2.quantize_int(torch.tensor([65536]), params)
    with pytest.raises(ParamError, match="integer tensor"):
        sqrt2.quantize_int(torch.tensor([0.5]), params)
    with pytest.raises(ParamError, match="variant"):
        sqrt2.reference_forward(torch.tensor([0.5]), 1.0, 4, "sqrt2_15")
    with pytest.raises(ParamError, match=r"\[0, 16\]"):
        sqrt2.dequantize(torch.tensor([17]), params)


probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, width=32)
params_strategy = st.builds(
    Sqrt2Params,
    variant=st.sampled_from(VARIANTS),
    bits=st.integers(2, 6),
    delta=st.floats(min_value=1e-3, max_value=2.0),
)


@settings(max_examples=60)
@given(st.lists(probabilities, min_size=1, max_size=50), params_strategy)
def test_monotone_and_in_range(values, params):
    x = torch.tensor(sorted(values), dtype=torch.float32)
    # Codes fall as x rises (the zero code 2**b ranks as the smallest value).
    for codes in (
        sqrt2.quantize_int(sqrt2.float_to_xi(x, params), params),
        sqrt2.quantize_exact(x, params),
        sqrt2.reference_codes(x, params),
    ):
        assert bool((codes[1:] <= codes[:-1]).all())
        assert int(codes.min()) >= 0 and int(codes.max()) <= params.zero_code
        if params.max_code + 1 < params.zero_code:  # sqrt2_16's clamped-away code
            assert not bool((codes == params.max_code + 1).any())
        x_hat = sqrt2.dequantize(codes, params)
        assert bool((x_hat[1:] >= x_hat[:-1]).all())
        assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= params.delta


def test_a_threshold_off_by_one_is_caught():
    """The exhaustive check above is sharp: one threshold moved by one LSB changes one code."""
    params = Sqrt2Params(delta=0.3)
    xi = every_xi(params)
    corrupt = Sqrt2Params(delta=0.3)
    thresholds = list(params.thresholds)
    thresholds[5] += 1
    corrupt.__dict__["thresholds"] = tuple(thresholds)  # overrides the cached property
    differ = sqrt2.quantize_int(xi, corrupt) != float64_codes(xi, params)
    assert xi[differ].tolist() == [thresholds[5]]
