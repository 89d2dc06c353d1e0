"""RepQ-ViT calibration: the vectorized searches equal straightforward loops; the method is deterministic."""

from __future__ import annotations

import pytest
import torch

from calib.data import load_calibration_images
from calib.models import build_model
from calib.pipeline import calibrate, make_config
from calib.repq import (
    PERCENTILES,
    adalog_search,
    calibrate_adalog_gelu,
    calibrate_adalog_softmax,
    calibrate_sqrt2,
    calibrate_uniform,
    calibrate_weight,
    uniform_percentile_mse,
)
from golden import adalog, uniform
from golden.params import ADALOG_GELU_SHIFT, AdaLogParams

torch.set_num_threads(1)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def repq_loop(x: torch.Tensor, bits: int) -> tuple[float, float]:
    """RepQ-ViT's per-tensor init_quantization_scale, written as its loop."""
    best_score, delta, zero = 1e10, None, None
    for pct in PERCENTILES:
        new_max = torch.quantile(x.reshape(-1), pct)
        new_min = torch.quantile(x.reshape(-1), 1.0 - pct)
        d = (new_max - new_min) / (2**bits - 1)
        z = (-new_min / d).round()
        score = (x - uniform.repq_reference(x, d, z, bits)).abs().pow(2).mean()
        if score < best_score:
            best_score, delta, zero = score, d, z
    return float(delta), float(zero)


def test_uniform_search_equals_repq_loop_per_column():
    x = torch.randn(500, 6, generator=generator(0)) * torch.tensor([0.1, 1, 3, 10, 0.5, 2]) + 0.3
    x[:, 4] = x[:, 4].abs()  # an all-positive column: z < 0 before clamping
    delta, zero = uniform_percentile_mse(x, 4)
    for c in range(x.shape[1]):
        assert (float(delta[c]), float(zero[c])) == repq_loop(x[:, c], 4)


def test_constant_columns_get_a_finite_range():
    x = torch.zeros(100, 2)
    x[:, 1] = 2.5
    delta, zero = uniform_percentile_mse(x, 4)
    assert bool(torch.isfinite(delta).all()) and bool((delta > 0).all())
    fake = uniform.repq_reference(x, delta, zero, 4)
    assert torch.allclose(fake, x, atol=float(delta.max()) / 2)


def test_uniform_granularities_and_clamped_zero_points():
    x = torch.rand(2, 3, 10, 4, generator=generator(1)) + torch.tensor([0.0, 1.0, 2.0]).reshape(1, 3, 1, 1)
    per_tensor = calibrate_uniform(x, 4)
    assert per_tensor.granularity == "tensor"
    per_head = calibrate_uniform(x, 4, axis=1)
    assert per_head.axis == 1 and per_head.channels == 3
    assert per_head.zero_point[2] == 0  # all values >= 2: RepQ's z < 0 is clamped into the code range
    weight = torch.randn(5, 2, 3, 3, generator=generator(2))
    w = calibrate_weight(weight, 3)
    assert (w.granularity, w.axis, w.channels, w.bits) == ("channel", 0, 5, 3)
    assert w.scale[1] == repq_loop_scale(weight[1], 3)


def repq_loop_scale(row: torch.Tensor, bits: int) -> float:
    delta, _ = repq_loop(row.reshape(-1), bits)
    return float(torch.tensor(delta, dtype=torch.float32))


def test_sqrt2_search_equals_repq_loop():
    probs = torch.softmax(torch.randn(2, 3, 20, 20, generator=generator(3)) * 3, dim=-1)
    params = calibrate_sqrt2(probs, 4, "sqrt2_17")
    from golden.sqrt2 import reference_forward

    best, best_score = probs.max(), 1e10
    for pct in PERCENTILES:
        delta = torch.quantile(probs.reshape(-1), pct)
        score = (probs - reference_forward(probs, delta, 4, "sqrt2_17")).abs().pow(2).mean()
        if score < best_score:
            best, best_score = delta, score
    assert params.delta == float(best)
    assert params.input_bits == params.input_frac_bits == 24


def brute_force_adalog(u: torch.Tensor, bits: int, qs: list[int], scales: list[float]) -> tuple[int, float]:
    """Score every candidate with the reference quantizer (float32 codes, float64 error)."""
    best, best_score = None, float("inf")
    for q in qs:
        for scale in scales:
            x_hat = adalog.reference_forward(u, q, scale, 0.0, bits)
            score = float(((u.double() - x_hat.double()) ** 2).sum())
            if score < best_score:
                best, best_score = (q, scale), score
    return best


@pytest.mark.parametrize("bits", [3, 4])
def test_adalog_search_equals_brute_force(bits):
    probs = torch.softmax(torch.randn(4, 30, 30, generator=generator(bits)) * 2.5, dim=-1)
    qs = list(range(10, 138, 9))
    assert adalog_search(probs, bits, qs, [1.0]) == brute_force_adalog(probs, bits, qs, [1.0])
    gelu = torch.nn.functional.gelu(torch.randn(3000, generator=generator(7)) * 2) + ADALOG_GELU_SHIFT
    scales = [float(gelu.max()) * 2 ** (-i / 3) for i in range(5)]
    assert adalog_search(gelu, bits, qs, scales) == brute_force_adalog(gelu, bits, qs, scales)


def test_adalog_calibrations_build_valid_quantizers():
    probs = torch.softmax(torch.randn(2, 4, 16, 16, generator=generator(5)) * 2, dim=-1)
    softmax = calibrate_adalog_softmax(probs, 4)
    assert (softmax.scale, softmax.shift, softmax.input_bits, softmax.input_frac_bits) == (1.0, 0.0, 24, 24)
    gelu = calibrate_adalog_gelu(torch.nn.functional.gelu(torch.randn(2000, generator=generator(6)) * 3), 4)
    assert isinstance(gelu, AdaLogParams) and gelu.input_signed and gelu.shift == ADALOG_GELU_SHIFT
    # The signed grid covers the quantizer's whole range: its top is at or above the scale.
    assert (gelu.input_max + 1) / 2**gelu.input_frac_bits >= gelu.scale


def test_repq_calibration_is_deterministic():
    model = build_model()
    images = load_calibration_images(8)
    config = make_config(
        "quiver_tiny_fmnist", model, wbits=4, abits=4, attn="sqrt2_16", gelu="adalog", method="repq"
    )
    first = calibrate(model, images, config).params
    second = calibrate(model, images, config).params
    assert first.activation_quantizers() == second.activation_quantizers()
    for (name, a), (_, b) in zip(first.linears(), second.linears()):
        assert a.weight == b.weight, name
        assert torch.equal(a.weight_codes, b.weight_codes) and torch.equal(a.bias, b.bias), name
    assert torch.equal(first.blocks[2].norm1_weight, second.blocks[2].norm1_weight)
