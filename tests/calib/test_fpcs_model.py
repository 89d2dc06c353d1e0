"""``--method fpcs`` on a small timm ViT: the pipeline's container, both forwards, and the same
parameters from the straightforward and the fast implementation."""

from __future__ import annotations

import pytest
import torch

from calib.fpcs_core import FpcsConfig
from calib.fpcs_model import calibrate_model
from calib.pipeline import CalibrationContext, CalibrationError, StageTimer, calibrate, make_config
from golden.floatvit import FloatViT
from golden.params import AdaLogParams, UniformParams
from golden.vit import forward


def small_vit(seed: int = 0) -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VisionTransformer(
            img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=8, depth=1, num_heads=2
        )
    return model.eval()


def images(count: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def config(model, **overrides):
    settings = {"wbits": 4, "abits": 4, "attn": "adalog", "gelu": "adalog", "method": "fpcs"}
    settings.update(overrides)
    return make_config("small_vit", model, **settings, calib_images=3, qkv_granularity="head")


def test_pipeline_method_produces_a_working_container():
    model = small_vit()
    result = calibrate(model, images(), config(model))
    params = result.params
    block = params.blocks[0]
    assert isinstance(block.attn.probs, AdaLogParams) and block.attn.probs.shift == 0.0
    assert isinstance(block.fc2.input, AdaLogParams) and block.fc2.input.input_signed
    assert isinstance(block.attn.q, UniformParams) and block.attn.q.granularity == "head"
    assert any(name.startswith("fpcs") for name in result.seconds)
    for mode in ("fakequant", "integer"):
        logits = forward(params, images(2, seed=5), mode)
        assert logits.shape == (2, 3) and bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("gelu,granularity", [("adalog", "head"), ("uniform", "tensor")])
def test_straightforward_and_fast_give_the_same_container(gelu, granularity):
    model = small_vit(seed=2)
    quant_config = make_config(
        "small_vit",
        model,
        wbits=4,
        abits=4,
        attn="adalog",
        gelu=gelu,
        method="fpcs",
        calib_images=3,
        qkv_granularity=granularity,
    )
    # A smaller search (32 candidates, 3 steps, 2 rounds) keeps the straightforward run short.
    small = FpcsConfig(eq_n=32, width=8, steps=3, rounds=2)
    results = []
    for fast in (True, False):
        context = CalibrationContext(model, FloatViT.from_timm(model), images(), quant_config, StageTimer())
        with torch.no_grad():
            results.append(calibrate_model(context, fast=fast, config=small))
    fast_params, slow_params = results
    assert fast_params.activation_quantizers() == slow_params.activation_quantizers()
    for (name, fast_layer), (_, slow_layer) in zip(fast_params.linears(), slow_params.linears()):
        assert fast_layer.weight == slow_layer.weight, name
        assert torch.equal(fast_layer.weight_codes, slow_layer.weight_codes), name
        assert torch.equal(fast_layer.bias, slow_layer.bias), name


def test_other_attention_schemes_are_refused():
    model = small_vit()
    with pytest.raises(CalibrationError, match="--attn adalog"):
        calibrate(model, images(), config(model, attn="bitlog2_half_17"))
