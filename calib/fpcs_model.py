"""``--method fpcs``: AdaLog's calibration of a whole ViT, one module at a time in network order.

Reference: AdaLog ``utils/calibrator.py`` (``QuantCalibrator.batching_quant_calib``): every module
is calibrated on the *full-precision* outputs of everything before it (the model stays in ``raw``
mode until the end), the post-LayerNorm reparameterization is applied as soon as qkv/fc1 are
calibrated (so later modules see the reparameterized float model), and AdaLog's fc2 bias takes
the GELU shift at the end (:func:`golden.quantmodel.build_params` does that here).

Order within a block, as the data flows: qkv (post-LN), ``q @ k^T``, ``A @ V``, proj, fc1
(post-LN), fc2. The reference walks ``named_modules()``, which visits proj before the two matmuls;
everything upstream is full precision either way, so the order does not change any input.

Ours: the patch-embedding input needs an 8-bit quantizer in this project's datapath; AdaLog leaves
it unquantized (``qconv_a_bit = 8`` disables it), so its weight search runs on the full-precision
input as the reference's does, and the 8-bit input quantizer is RepQ-ViT's percentile one
(:func:`calib.repq.calibrate_uniform`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from calib.fpcs import (
    FpcsConfig,
    PostLayerNormChoice,
    SearchContext,
    UniformChoice,
    search_attention_value,
    search_gelu_fc2,
    search_linear,
    search_patch_embedding,
    search_post_layernorm_linear,
    search_query_key,
)
from calib.pipeline import CalibrationError
from calib.repq import calibrate_uniform
from golden.floatvit import FloatLinear
from golden.params import ADALOG_GELU_SHIFT, AdaLogParams, UniformParams
from golden.quantmodel import PATCH_INPUT_BITS, QuantizedViTParams, build_params, gelu_grid, softmax_quantizer
from golden.vitops import merge_heads, patchify, split_qkv

__all__ = ["calibrate_model", "weight_params", "tensor_params", "head_params"]


def weight_params(choice: UniformChoice, bits: int) -> UniformParams:
    """Per-output-channel weight quantizer of a chosen (scale, zero point) per channel."""
    zero = [int(z) for z in choice.zero_point.tolist()]
    return UniformParams(bits, tuple(choice.scale.tolist()), tuple(zero), granularity="channel", axis=0)


def tensor_params(choice: UniformChoice, bits: int) -> UniformParams:
    """Per-tensor quantizer of a chosen (scale, zero point)."""
    return UniformParams(bits, float(choice.scale[0]), int(choice.zero_point[0]))


def head_params(choice: UniformChoice, bits: int, per_head: bool) -> UniformParams:
    """Quantizer of an attention operand: per head (axis 1) or per tensor."""
    if not per_head:
        return tensor_params(choice, bits)
    zero = [int(z) for z in choice.zero_point.tolist()]
    return UniformParams(bits, tuple(choice.scale.tolist()), tuple(zero), granularity="head", axis=1)


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


@torch.no_grad()
def _post_layernorm(
    h: torch.Tensor,
    layer: FloatLinear,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    wbits: int,
    abits: int,
    search: SearchContext,
) -> PostLayerNormChoice:
    """The post-LayerNorm search of ``layer`` (qkv or fc1) on its LayerNorm output ``h``."""
    raw = F.linear(h, layer.weight, layer.bias)
    return search_post_layernorm_linear(
        h, raw, layer.weight, layer.bias, ln_weight, ln_bias, wbits, abits, search
    )


def calibrate_model(context: Any, fast: bool = True, config: FpcsConfig | None = None) -> QuantizedViTParams:
    """The ``fpcs`` method of :mod:`calib.pipeline`: a :class:`QuantizedViTParams` for
    ``context.net`` (reparameterized in place) calibrated on ``context.images``.

    Raises
    ------
    CalibrationError
        ``config.attn`` is not ``adalog`` (FPCS searches AdaLog's post-softmax base).
    """
    qc, net, stages = context.config, context.net, context.stages
    if qc.attn != "adalog":
        raise CalibrationError(
            f"--method fpcs calibrates AdaLog's post-softmax quantizer (--attn adalog), not {qc.attn!r}; "
            "use --method repq for that scheme"
        )
    search = SearchContext(config=config or FpcsConfig(), fast=fast)
    context.fpcs = search  # statistics and per-kind wall times for reports and benchmarks
    s, wbits, abits = net.structure, qc.wbits, qc.abits
    per_head = qc.qkv_granularity == "head"
    activations: dict[str, Any] = {}
    weights: dict[str, UniformParams] = {}
    bar = stages.bar(2 + 6 * s.depth, "fpcs modules")

    images = context.images.to(torch.float32)
    embed = net.patch_embed
    patches = patchify(images, s.patch_size)
    tokens = F.conv2d(images, embed.weight, embed.bias, stride=s.patch_size).flatten(2).transpose(1, 2)
    with stages.stage("fpcs patch_embed"):
        weights["patch_embed"] = weight_params(
            search_patch_embedding(patches, tokens, embed.weight, embed.bias, wbits, search), wbits
        )
        activations["patch_embed"] = calibrate_uniform(images, PATCH_INPUT_BITS)
    bar.update(1)
    x = torch.cat([net.cls_token.expand(images.shape[0], -1, -1), tokens], dim=1) + net.pos_embed

    for i, block in enumerate(net.blocks):
        prefix = f"blocks.{i}"
        # qkv: per-channel input search, LayerNorm reparameterization, Linear search.
        h = _layer_norm(x, block.norm1_weight, block.norm1_bias, s.ln_eps)
        with stages.stage("fpcs qkv (post-LN)"):
            choice = _post_layernorm(h, block.qkv, block.norm1_weight, block.norm1_bias, wbits, abits, search)
        block.norm1_weight, block.norm1_bias = choice.reparam.ln_weight, choice.reparam.ln_bias
        block.qkv = FloatLinear(choice.reparam.weight, choice.reparam.bias)
        activations[f"{prefix}.attn.qkv"] = tensor_params(choice.linear.input, abits)
        weights[f"{prefix}.attn.qkv"] = weight_params(choice.linear.weight, wbits)
        bar.update(1)

        h = _layer_norm(x, block.norm1_weight, block.norm1_bias, s.ln_eps)
        q, k, v = split_qkv(F.linear(h, block.qkv.weight, block.qkv.bias), s.num_heads)
        scores = q @ k.transpose(-2, -1)
        with stages.stage("fpcs q @ k^T"):
            qk = search_query_key(q, k, scores, abits, search, per_head)
        activations[f"{prefix}.attn.q"] = head_params(qk.query, abits, per_head)
        activations[f"{prefix}.attn.k"] = head_params(qk.key, abits, per_head)
        bar.update(1)

        attention = (scores * s.attn_scale).softmax(dim=-1)
        mixed = attention @ v
        with stages.stage("fpcs A @ V (AdaLog)"):
            av = search_attention_value(attention, v, mixed, abits, abits, search, per_head)
        activations[f"{prefix}.attn.probs"] = softmax_quantizer("adalog", abits, q=av.q)
        activations[f"{prefix}.attn.v"] = head_params(av.value, abits, per_head)
        bar.update(1)

        o = merge_heads(mixed)
        raw = F.linear(o, block.proj.weight, block.proj.bias)
        with stages.stage("fpcs proj"):
            choice = search_linear(o, raw, block.proj.weight, block.proj.bias, wbits, abits, search, "proj")
        activations[f"{prefix}.attn.proj"] = tensor_params(choice.input, abits)
        weights[f"{prefix}.attn.proj"] = weight_params(choice.weight, wbits)
        x = x + raw
        bar.update(1)

        h = _layer_norm(x, block.norm2_weight, block.norm2_bias, s.ln_eps)
        with stages.stage("fpcs fc1 (post-LN)"):
            choice = _post_layernorm(h, block.fc1, block.norm2_weight, block.norm2_bias, wbits, abits, search)
        block.norm2_weight, block.norm2_bias = choice.reparam.ln_weight, choice.reparam.ln_bias
        block.fc1 = FloatLinear(choice.reparam.weight, choice.reparam.bias)
        activations[f"{prefix}.mlp.fc1"] = tensor_params(choice.linear.input, abits)
        weights[f"{prefix}.mlp.fc1"] = weight_params(choice.linear.weight, wbits)
        bar.update(1)

        h = _layer_norm(x, block.norm2_weight, block.norm2_bias, s.ln_eps)
        g = F.gelu(F.linear(h, block.fc1.weight, block.fc1.bias))
        raw = F.linear(g, block.fc2.weight, block.fc2.bias)
        if qc.gelu == "adalog":
            with stages.stage("fpcs fc2 (post-GELU AdaLog)"):
                gelu = search_gelu_fc2(g, raw, block.fc2.weight, block.fc2.bias, wbits, abits, search)
            input_bits, frac_bits = gelu_grid(gelu.scale)
            activations[f"{prefix}.mlp.fc2"] = AdaLogParams(
                bits=abits,
                q=gelu.q,
                scale=gelu.scale,
                shift=ADALOG_GELU_SHIFT,
                input_bits=input_bits,
                input_frac_bits=frac_bits,
                input_signed=True,
            )
            weights[f"{prefix}.mlp.fc2"] = weight_params(gelu.weight, wbits)
        else:
            with stages.stage("fpcs fc2"):
                choice = search_linear(g, raw, block.fc2.weight, block.fc2.bias, wbits, abits, search, "fc2")
            activations[f"{prefix}.mlp.fc2"] = tensor_params(choice.input, abits)
            weights[f"{prefix}.mlp.fc2"] = weight_params(choice.weight, wbits)
        x = x + raw
        bar.update(1)

    pooled = _layer_norm(x, net.norm_weight, net.norm_bias, s.ln_eps)[:, 0]
    raw = F.linear(pooled, net.head.weight, net.head.bias)
    with stages.stage("fpcs head"):
        choice = search_linear(pooled, raw, net.head.weight, net.head.bias, wbits, abits, search, "head")
    activations["head"] = tensor_params(choice.input, abits)
    weights["head"] = weight_params(choice.weight, wbits)
    bar.update(1)
    bar.close()
    with stages.stage("assemble parameters"):
        return build_params(net, qc, activations, weights)
