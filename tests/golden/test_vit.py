"""Quantized ViT forward: fakequant and integer modes, the capture, the container's checks.

The containers come from a quick RepQ-ViT calibration (8 images) of the shipped model and of a
randomly initialized DeiT-Tiny (2 images); the fakequant/integer agreement figures are printed by
``bench/golden_vit.py``, not asserted here.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from calib.data import load_calibration_images, load_eval_set
from calib.models import build_model
from calib.pipeline import calibrate, make_config
from golden import vitops
from golden.floatvit import FloatViT
from golden.params import BitLog2Params, ParamError, UniformParams, dyadic
from golden.vit import FloatHooks, fakequant_forward, forward, integer_forward
from golden.vitops import merge_heads, outputs_equal, patchify, quantizer_grid, replay, split_qkv
from golden.vitplan import SCORE_BITS, signed_bits

torch.set_num_threads(1)

SHIPPED_SCHEMES = [
    ("bitlog2_half_17", "uniform", "tensor"),
    ("sqrt2_17", "adalog", "tensor"),
    ("adalog", "adalog", "head"),
    ("uniform", "uniform", "head"),
]


@pytest.fixture(scope="module")
def shipped():
    model = build_model()
    return model, load_calibration_images(8), load_eval_set(limit=6)


def quick_params(model, images, name, attn, gelu, granularity, bits=4):
    config = make_config(
        name,
        model,
        wbits=bits,
        abits=bits,
        attn=attn,
        gelu=gelu,
        method="repq",
        calib_images=len(images),
        qkv_granularity=granularity,
    )
    return calibrate(model, images, config).params


@pytest.fixture(scope="module", params=SHIPPED_SCHEMES, ids=lambda s: "-".join(s))
def shipped_params(request, shipped):
    model, images, _ = shipped
    return quick_params(model, images, "quiver_tiny_fmnist", *request.param)


@pytest.fixture(scope="module")
def deit():
    model = build_model("deit_tiny_patch16_224")
    images = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    params = quick_params(model, images[:2], "deit_tiny_patch16_224", "sqrt2_16", "adalog", "head")
    return model, params, images[2:]


# ------------------------------------------------------------------------------------------ float


def test_float_hooks_reproduce_the_timm_forward(shipped):
    model, _, eval_set = shipped
    with torch.no_grad():
        expected = model(eval_set.images)
        got = fakequant_forward(FloatViT.from_timm(model), eval_set.images, FloatHooks())
    # timm's fused attention sums in another order: equal up to float32 rounding.
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_float_and_quantized_layers_share_names(shipped_params):
    net = shipped_params.to_float()
    assert [name for name, _ in net.linears()] == [name for name, _ in shipped_params.linears()]
    assert torch.equal(net.blocks[1].fc2.weight, shipped_params.blocks[1].fc2.dequantized_weight())


def test_unsupported_models_are_named(shipped):
    model, _, _ = shipped
    model = build_model()
    model.global_pool = "avg"
    with pytest.raises(ParamError, match="global_pool 'avg'"):
        FloatViT.from_timm(model)


# ---------------------------------------------------------------------------------------- capture


def check_capture(params, images):
    """Every captured operator replays exactly, and consecutive operators chain exactly."""
    logits, records = integer_forward(params, images, capture=True)
    assert torch.equal(logits, forward(params, images, "integer"))
    for record in records.values():
        assert outputs_equal(replay(record), record.output), record.name
    s = params.structure
    out = {name: record.output for name, record in records.items()}
    inputs = {name: record.inputs for name, record in records.items()}
    assert torch.equal(
        inputs["patch_embed.matmul"]["a"], patchify(out["patch_embed.input_quant"], s.patch_size)
    )
    assert torch.equal(inputs["patch_embed.dequant"]["acc"], out["patch_embed.matmul"])
    for i in range(s.depth):
        p = f"blocks.{i}"
        assert torch.equal(inputs[f"{p}.attn.qkv.matmul"]["a"], out[f"{p}.norm1_quant"])
        assert torch.equal(inputs[f"{p}.attn.qkv.requant"]["acc"], out[f"{p}.attn.qkv.matmul"])
        q, k, v = split_qkv(out[f"{p}.attn.qkv.requant"], s.num_heads)
        assert torch.equal(inputs[f"{p}.attn.qk.matmul"]["a"], q)
        assert torch.equal(inputs[f"{p}.attn.qk.matmul"]["b"], k.transpose(-2, -1))
        assert torch.equal(inputs[f"{p}.attn.qk.requant"]["acc"], out[f"{p}.attn.qk.matmul"])
        assert torch.equal(inputs[f"{p}.attn.softmax"]["scores"], out[f"{p}.attn.qk.requant"])
        quant_inputs = inputs[f"{p}.attn.softmax_quant"]
        assert torch.equal(quant_inputs.get("xi", quant_inputs.get("x")), out[f"{p}.attn.softmax"])
        av = inputs[f"{p}.attn.av"]
        assert outputs_equal(av.get("codes", av.get("a")), out[f"{p}.attn.softmax_quant"])
        assert torch.equal(av.get("v", av.get("b")), v)
        assert torch.equal(inputs[f"{p}.attn.av.requant"]["acc"], out[f"{p}.attn.av"])
        assert torch.equal(inputs[f"{p}.attn.proj.matmul"]["a"], merge_heads(out[f"{p}.attn.av.requant"]))
        assert torch.equal(inputs[f"{p}.mlp.fc1.matmul"]["a"], out[f"{p}.norm2_quant"])
        assert torch.equal(inputs[f"{p}.mlp.gelu"]["x"], out[f"{p}.mlp.fc1.dequant"])
        gelu_in = inputs[f"{p}.mlp.gelu_quant"]
        assert torch.equal(gelu_in.get("xi", gelu_in.get("x")), out[f"{p}.mlp.gelu"])
        fc2 = inputs[f"{p}.mlp.fc2.matmul"]
        assert torch.equal(fc2.get("a", fc2.get("codes")), out[f"{p}.mlp.gelu_quant"])
    assert torch.equal(out["head.dequant"], logits)
    return records


def test_shipped_model_capture_replays_and_chains(shipped, shipped_params):
    _, _, eval_set = shipped
    records = check_capture(shipped_params, eval_set.images[:3])
    kinds = {record.kind for record in records.values()}
    config = shipped_params.config
    log_inputs = config.attn != "uniform" or config.gelu == "adalog"
    assert kinds == set(vitops.OP_KINDS) - (set() if log_inputs else {"log_av"})
    probs = shipped_params.blocks[0].attn.probs
    assert records["blocks.0.attn.softmax_quant"].params["quantizer"] is probs
    groups = records["blocks.0.attn.qkv.requant"].params["groups"]
    per_head = shipped_params.config.qkv_granularity == "head"
    assert len(groups) == (3 * shipped_params.structure.num_heads if per_head else 3)


def test_fakequant_and_integer_both_run_and_mostly_agree(shipped, shipped_params):
    model, _, eval_set = shipped
    fake = forward(shipped_params, eval_set.images, "fakequant")
    integer = forward(shipped_params, eval_set.images, "integer")
    assert fake.shape == integer.shape == (len(eval_set.images), 10)
    assert fake.dtype == integer.dtype == torch.float32
    # Not a figure (bench/golden_vit.py measures those): the two modes stay close on the logits.
    assert float((fake - integer).abs().max()) < 0.5 * float(fake.abs().max())


def test_random_deit_tiny_both_modes_and_capture(deit):
    model, params, images = deit
    assert params.blocks[0].attn.q.granularity == "head"
    fake = forward(params, images, "fakequant")
    integer = forward(params, images, "integer")
    assert fake.shape == integer.shape == (2, 1000)
    check_capture(params, images)


def test_batching_does_not_change_results(shipped):
    model, images, eval_set = shipped
    params = quick_params(model, images, "quiver_tiny_fmnist", "bitlog2_half_17", "uniform", "tensor")
    whole = forward(params, eval_set.images, "integer", batch_size=None)
    assert torch.equal(forward(params, eval_set.images, "integer", batch_size=4), whole)
    assert torch.equal(integer_forward(params, eval_set.images[:2]), whole[:2])


def test_a_corrupted_record_is_caught_by_replay(shipped):
    model, images, eval_set = shipped
    params = quick_params(model, images, "quiver_tiny_fmnist", "bitlog2_half_17", "uniform", "tensor")
    _, records = integer_forward(params, eval_set.images[:2], capture=True)
    record = records["blocks.1.attn.av.requant"]
    corrupted = record.output.clone()
    corrupted.view(-1)[7] ^= 1
    assert not outputs_equal(replay(record), corrupted)
    code = records["blocks.1.attn.softmax_quant"].output
    assert not outputs_equal(code, code._replace(h=1 - code.h))


# ------------------------------------------------------------------------------- widths and plan


def test_score_requantization_never_saturates(shipped):
    model, images, _ = shipped
    params = quick_params(model, images, "quiver_tiny_fmnist", "bitlog2_half_17", "uniform", "tensor")
    block, plan = params.blocks[0], params.plan.blocks[0].attn
    d = params.structure.head_dim
    q, k = block.attn.q, block.attn.k
    # The largest |acc| a head can produce: every q and k code at the end farthest from its zero point.
    far_q = 0 if q.zero_point[0] > q.qmax - q.zero_point[0] else q.qmax
    real = q.scale[0] * k.scale[0] * params.structure.attn_scale
    lo, hi = -(1 << (SCORE_BITS - 1)), (1 << (SCORE_BITS - 1)) - 1
    overflow_one_bit_finer = False
    for far_k in (0, k.qmax):
        inputs = {
            "a": torch.full((1, 1, 1, d), far_q),
            "b": torch.full((1, 1, d, 1), far_k),
            "a_zero_point": torch.tensor(q.zero_point[0]),
            "b_zero_point": torch.tensor(k.zero_point[0]),
        }
        acc = int(vitops.run_op("matmul", inputs, {"acc_bits": plan.qk_acc_bits}))
        m, s = plan.score_requant.multiplier[0], plan.score_requant.shift[0]
        assert lo <= (acc * m + (1 << (s - 1))) >> s <= hi
        m, s = dyadic(math.ldexp(real, plan.score_frac_bits + 1))
        overflow_one_bit_finer |= not lo <= (acc * m + (1 << (s - 1))) >> s <= hi
    assert overflow_one_bit_finer  # f is the largest that fits


def test_accumulator_widths_are_worst_cases(shipped):
    model, images, _ = shipped
    params = quick_params(model, images, "quiver_tiny_fmnist", "sqrt2_17", "adalog", "tensor")
    plan = params.plan
    assert plan.blocks[0].qkv.matmul_acc_bits == signed_bits(64 * 15 * 15)
    assert plan.patch_embed.matmul_acc_bits == signed_bits(16 * 255 * 15)
    attn = plan.blocks[0].attn
    probs = params.blocks[0].attn.probs
    assert attn.av_acc_bits == attn.log_av.required_acc_bits(probs, params.structure.num_tokens, 15)
    assert attn.av_requant.acc_bits == attn.av_acc_bits
    fc2 = plan.blocks[0].fc2
    assert fc2.log_av is not None and fc2.log_av.family == "adalog"
    assert fc2.acc_bits >= fc2.matmul_acc_bits


def test_quantizer_grid_of_each_family():
    x = torch.tensor([0.0, 0.25, 0.999999])
    assert torch.equal(quantizer_grid(x, BitLog2Params("half_17", delta=300)), torch.tensor([0, 96, 383]))
    assert torch.equal(quantizer_grid(x, UniformParams(4, 0.1, 0)), x)
    with pytest.raises(ParamError, match="not a quantizer"):
        quantizer_grid(x, "bitlog2")


# ------------------------------------------------------------------------------------ validation


def test_container_rejects_malformed_fields(shipped):
    model, images, _ = shipped
    params = quick_params(model, images, "quiver_tiny_fmnist", "bitlog2_half_17", "uniform", "tensor")
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    container = type(params)

    def rebuild(**changes):
        return container(**{**fields, **changes})

    with pytest.raises(ParamError, match=r"pos_embed has shape \(1, 49, 64\), expected \(1, 50, 64\)"):
        rebuild(pos_embed=params.pos_embed[:, :49])
    block = dataclasses.replace(
        params.blocks[0],
        qkv=dataclasses.replace(params.blocks[0].qkv, weight_codes=params.blocks[0].qkv.weight_codes + 16),
    )
    with pytest.raises(ParamError, match=r"blocks.0.attn.qkv.weight_codes must lie in \[0, 15\]"):
        rebuild(blocks=[block, *params.blocks[1:]])
    attn = dataclasses.replace(params.blocks[1].attn, probs=UniformParams(4, 0.1, 0))
    block = dataclasses.replace(params.blocks[1], attn=attn)
    with pytest.raises(ParamError, match="blocks.1.attn.probs must be BitLog2Params"):
        rebuild(blocks=[params.blocks[0], block, *params.blocks[2:]])
    with pytest.raises(ParamError, match="config.wbits must be one of 3, 4, 6, 8, not 5"):
        dataclasses.replace(params.config, wbits=5)
    with pytest.raises(ParamError, match="config.attn must be one of"):
        dataclasses.replace(params.config, attn="log2")
    with pytest.raises(ParamError, match="mode must be one of fakequant, integer"):
        forward(params, torch.zeros(1, 1, 28, 28), "float")
