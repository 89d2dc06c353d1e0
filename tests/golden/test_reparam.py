"""RepQ-ViT post-LayerNorm reparameterization with an integer zero point."""

from __future__ import annotations

import torch

from golden.reparam import repq_layernorm_reparam

C, OUT, TOKENS = 48, 20, 300


def setup(dtype: torch.dtype = torch.float64, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    normalized = torch.randn(TOKENS, C, generator=generator, dtype=dtype)
    gamma = torch.rand(C, generator=generator, dtype=dtype) * 3 + 0.2
    beta = torch.randn(C, generator=generator, dtype=dtype)
    weight = torch.randn(OUT, C, generator=generator, dtype=dtype)
    bias = torch.randn(OUT, generator=generator, dtype=dtype)
    y = normalized * gamma + beta
    lo, hi = y.min(dim=0).values, y.max(dim=0).values
    delta = (hi - lo) / 15
    zero_point = torch.round(-lo / delta)
    return normalized, gamma, beta, weight, bias, delta, zero_point


def codes(y: torch.Tensor, delta: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.round(y / delta) + zero_point, 0, 15).to(torch.int64)


def test_integer_zero_point_reproduces_the_per_channel_codes_exactly():
    normalized, gamma, beta, weight, bias, delta, zero_point = setup()
    out = repq_layernorm_reparam(gamma, beta, weight, bias, delta, zero_point)
    assert float(out.zero_point) == round(float(zero_point.mean()))
    per_channel = codes(normalized * gamma + beta, delta, zero_point)
    per_tensor = codes(normalized * out.ln_weight + out.ln_bias, out.delta, out.zero_point)
    assert torch.equal(per_tensor, per_channel)


def test_fractional_zero_point_shifts_the_rounding():
    normalized, gamma, beta, weight, bias, delta, zero_point = setup()
    out = repq_layernorm_reparam(gamma, beta, weight, bias, delta, zero_point, integer_zero_point=False)
    assert float(out.zero_point) == float(zero_point.mean())
    assert float(out.zero_point) != round(float(out.zero_point))
    per_channel = codes(normalized * gamma + beta, delta, zero_point)
    per_tensor = torch.clamp(
        torch.round((normalized * out.ln_weight + out.ln_bias) / out.delta) + out.zero_point, 0, 15
    )
    assert not torch.equal(per_tensor, per_channel.to(per_tensor.dtype))


def test_the_linear_layer_computes_the_same_function():
    for integer_zero_point in (True, False):
        normalized, gamma, beta, weight, bias, delta, zero_point = setup(seed=1)
        out = repq_layernorm_reparam(gamma, beta, weight, bias, delta, zero_point, integer_zero_point)
        before = (normalized * gamma + beta) @ weight.T + bias
        after = (normalized * out.ln_weight + out.ln_bias) @ out.weight.T + out.bias
        torch.testing.assert_close(after, before, rtol=1e-12, atol=1e-12)
        no_bias = repq_layernorm_reparam(gamma, beta, weight, None, delta, zero_point, integer_zero_point)
        torch.testing.assert_close(no_bias.bias, out.bias - bias, rtol=1e-12, atol=1e-12)


def test_float32_follows_repq_operation_order():
    _, gamma, beta, weight, bias, delta, zero_point = (t.float() for t in setup(seed=2))
    out = repq_layernorm_reparam(gamma, beta, weight, bias, delta, zero_point, integer_zero_point=False)
    # RepQ-ViT's loop body, as read from its test_quant.py
    act_min = -zero_point * delta
    target_delta, target_zero_point = torch.mean(delta), torch.mean(zero_point)
    r = delta / target_delta
    b = act_min / r - (-target_zero_point * target_delta)
    assert torch.equal(out.ln_weight, gamma / r)
    assert torch.equal(out.ln_bias, beta / r - b)
    assert torch.equal(out.weight, weight * r)
    assert torch.equal(out.bias, bias + torch.mm(weight * r, b.reshape(-1, 1)).reshape(-1))
    assert gamma.dtype == out.ln_weight.dtype == torch.float32
