"""calib.fpcs_grid and the AdaLog grids of calib.adalog_calib against a literal, loop-by-loop
transcription of the reference's candidate construction (AdaLog ``calculate_percentile_*``,
``weight_fpcs`` / ``activation_fpcs`` / ``_fpcs``, ``positive_percentile``)."""

from __future__ import annotations

import pytest
import torch

from calib.adalog_calib import gelu_initial_scale, gelu_scale_range
from calib.fpcs_grid import (
    activation_grid,
    channel_activation_grid,
    conv_weight_grid,
    operand_grid,
    refine,
    weight_grid,
)
from golden.params import ADALOG_GELU_SHIFT


def literal_grid(hi: torch.Tensor, lo: torch.Tensor, bits: int, n_zero: int, floor: float | None):
    """Candidates (P, G) from per-group quantiles ``hi``/``lo`` (2, G), one candidate at a time."""
    levels = 2 ** (bits - 1)
    n_scale = 128 // n_zero
    delta_min, delta_max = hi[0] - lo[0], hi[1] - lo[1]
    fractions = torch.linspace(0, 1, steps=n_scale)
    scales, zeros = [], []
    for i in range(n_zero):
        for j in range(n_scale):
            scale = (delta_min + fractions[j] * (delta_max - delta_min)) / (2 * levels - 1)
            scales.append(scale.clamp(min=floor) if floor is not None else scale)
            zeros.append(torch.full_like(scale, float(int(levels - n_zero / 2) + i)))
    return torch.stack(scales), torch.stack(zeros)


def quantiles(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    pct = torch.tensor([0.9, 1.0])
    return torch.quantile(x, pct, dim=dim), torch.quantile(x, 1 - pct, dim=dim)


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_weight_grid(bits):
    w = torch.randn(10, 37, generator=torch.Generator().manual_seed(bits))
    grid = weight_grid(w, bits)
    scales, zeros = literal_grid(*quantiles(w, -1), bits, min(16, 2 ** (bits - 1)), None)
    assert torch.equal(grid.scale, scales) and torch.equal(grid.zero_point, zeros)
    assert torch.equal(grid.delta, scales[1] - scales[0])
    conv = conv_weight_grid(w.reshape(10, 1, 37), bits)
    scales, zeros = literal_grid(*quantiles(w, -1), bits, 2 ** (bits - 1), None)
    assert torch.equal(conv.scale, scales) and torch.equal(conv.zero_point, zeros)


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_activation_grids(bits):
    x = torch.randn(3, 11, 7, generator=torch.Generator().manual_seed(bits)) * 2
    grid = activation_grid(x, bits)
    hi, lo = quantiles(x.reshape(1, -1), -1)
    scales, zeros = literal_grid(hi, lo, bits, min(16, 2**bits), 1e-4)
    assert torch.equal(grid.scale, scales) and torch.equal(grid.zero_point, zeros)
    channel = channel_activation_grid(x, bits)
    scales, zeros = literal_grid(*quantiles(x.reshape(-1, 7), 0), bits, min(16, 2**bits), 1e-4)
    assert torch.equal(channel.scale, scales) and torch.equal(channel.zero_point, zeros)


def test_activation_scale_floor_applies_to_the_grid_and_the_delta():
    x = torch.full((2, 3, 4), 1e-6)
    x[0, 0, 0] = 1e-5
    grid = activation_grid(x, 4)
    assert bool((grid.scale == 1e-4).all())
    assert float(grid.delta[0]) == 0.0


@pytest.mark.parametrize("bits", [3, 4])
def test_operand_grid_per_head(bits):
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(7))
    grid = operand_grid(x, bits)
    per_head = x.transpose(0, 1).reshape(3, -1)
    hi, lo = quantiles(per_head, -1)
    scales, zeros = literal_grid(hi, lo, bits, min(16, 2 ** (bits - 1)), None)
    assert torch.equal(grid.scale, scales) and torch.equal(grid.zero_point, zeros)
    assert torch.equal(grid.pick(-2)[0], scales[-2])


def test_refine_offsets_survivor_major():
    survivors = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    delta = torch.tensor([0.5, 0.25])
    scales, next_delta = refine(survivors, delta, 8)
    offsets = torch.linspace(0, 1, steps=8) - 0.5
    for k in range(2):
        for o in range(8):
            assert torch.equal(scales[k * 8 + o], survivors[k] + offsets[o] * delta)
    assert torch.equal(next_delta, delta / 7.5)
    floored, _ = refine(torch.tensor([[1e-4]]), torch.tensor([1.0]), 8, 1e-4)
    assert float(floored.min()) == pytest.approx(1e-4)


def literal_positive_percentile(x: torch.Tensor) -> torch.Tensor:
    values = torch.where(x > 0, x, torch.tensor(float("nan")))
    ordered, _ = values.sort()
    count = (~torch.isnan(ordered)).sum().float()
    ranks = ((count * torch.tensor([0.9, 1.0])).ceil().long() - 1).clamp(min=0)
    picked = ordered[ranks]
    return torch.nan_to_num(picked, nan=0.0) + ADALOG_GELU_SHIFT


def test_gelu_scale_range_and_start():
    x = torch.nn.functional.gelu(torch.randn(4, 9, 13, generator=torch.Generator().manual_seed(3)))
    scale_range = gelu_scale_range(x)
    assert torch.equal(scale_range, literal_positive_percentile(x.reshape(-1)))
    fractions = torch.tensor([i / 127 for i in range(128)])
    start = scale_range[0:1] + (scale_range[1:2] - scale_range[0:1]) * fractions
    assert torch.equal(gelu_initial_scale(scale_range), start[126:127])
    assert torch.equal(gelu_scale_range(-torch.ones(5)), torch.full((2,), ADALOG_GELU_SHIFT))
