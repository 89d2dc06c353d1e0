"""Uniform affine quantization: integer-code form == RepQ-ViT and AdaLog reference forms."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import uniform
from golden.params import ParamError, UniformParams


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_hand_computed_example():
    params = UniformParams(4, 0.5, 3)
    x = torch.tensor([-2.0, -1.25, -0.25, 0.0, 0.25, 0.75, 6.0, 100.0])
    # round(x / 0.5) = -4, -2 (half to even: -2.5), -0 (-0.5), 0, 0 (0.5), 2 (1.5), 12, 200
    assert uniform.quantize(x, params).tolist() == [0, 1, 3, 3, 3, 5, 15, 15]
    assert uniform.fake_quant(x, params).tolist() == [-1.5, -1.0, 0.0, 0.0, 0.0, 1.0, 6.0, 6.0]


CASES = [
    UniformParams(8, 0.0371, 131),
    UniformParams(4, 0.21, 9),
    UniformParams(4, [0.1, 0.2, 0.05, 0.4, 0.3], [0, 3, 8, 15, 7], granularity="channel", axis=0),
    UniformParams(4, [0.1, 0.2, 0.05, 0.4, 0.3, 0.25], [1, 3, 8, 15, 7, 0], granularity="channel", axis=-1),
    UniformParams(6, [0.1, 0.2, 0.05], [30, 3, 40], granularity="head", axis=1),
    UniformParams(4, 0.3, 0, signed=True),
]


def view(values, params: UniformParams, x: torch.Tensor) -> torch.Tensor:
    shape = [1] * x.ndim
    if params.axis is not None:
        shape[params.axis] = len(values)
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"{p.granularity}-{p.bits}-{p.signed}")
def test_integer_form_equals_both_references(params):
    x = randn(5, 3, 7, 6) * 2
    scale, zero = view(params.scale, params, x), view(params.zero_point, params, x)
    fake = uniform.fake_quant(x, params)
    if params.signed:
        assert torch.equal(fake, uniform.adalog_reference(x, scale, bits=params.bits, symmetric=True))
    else:
        assert torch.equal(fake, uniform.repq_reference(x, scale, zero, params.bits))
        assert torch.equal(fake, uniform.adalog_reference(x, scale, zero, params.bits))
    codes = uniform.quantize(x, params)
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= params.qmin and int(codes.max()) <= params.qmax
    assert torch.equal(uniform.dequantize(codes, params), fake)


def test_adalog_rounds_a_fractional_zero_point_repq_does_not():
    x = randn(1000, seed=2)
    adalog = uniform.adalog_reference(x, 0.1, 7.4, 4)
    assert torch.equal(adalog, uniform.repq_reference(x, 0.1, 7.0, 4))
    repq = uniform.repq_reference(x, 0.1, 7.4, 4)
    # RepQ's fractional zero point puts the clamps off the grid: the lowest value is -7.4 * 0.1.
    assert float(repq.min()) == pytest.approx(-0.74)
    assert not torch.equal(adalog, repq)


def test_candidate_grids_broadcast():
    x = randn(64, seed=3)
    deltas = torch.tensor([0.05, 0.1, 0.2]).reshape(3, 1)
    zeros = torch.tensor([8.0, 7.0, 9.0]).reshape(3, 1)
    batched = uniform.repq_reference(x, deltas, zeros, 4)
    for i in range(3):
        single = uniform.fake_quant(x, UniformParams(4, float(deltas[i]), int(zeros[i])))
        assert torch.equal(batched[i], single)


def test_views_and_mismatched_axes():
    params = CASES[2]
    assert uniform.scale_view(params, 3).shape == (5, 1, 1)
    assert uniform.zero_point_view(params, 2).dtype == torch.int64
    with pytest.raises(ParamError, match="axis 0 of the tensor has size 4"):
        uniform.quantize(torch.zeros(4, 5), params)
    with pytest.raises(ParamError, match="out of range"):
        uniform.quantize(torch.zeros(()), params)


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)


@settings(max_examples=100)
@given(st.lists(finite, min_size=1, max_size=64), st.sampled_from(CASES[:2] + CASES[-1:]))
def test_monotone_and_in_range(values, params):
    x = torch.tensor(sorted(values), dtype=torch.float32)
    codes = uniform.quantize(x, params)
    values_hat = uniform.dequantize(codes, params)
    assert bool((codes[1:] >= codes[:-1]).all())
    assert bool((values_hat[1:] >= values_hat[:-1]).all())
    assert int(codes.min()) >= params.qmin and int(codes.max()) <= params.qmax
    lo = (params.qmin - params.zero_point[0]) * params.scale[0]
    hi = (params.qmax - params.zero_point[0]) * params.scale[0]
    assert float(values_hat.min()) >= lo - 1e-6 and float(values_hat.max()) <= hi + 1e-6
