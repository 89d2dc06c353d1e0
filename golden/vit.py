"""Quantized forward of a timm ViT/DeiT in two modes: ``fakequant`` and ``integer``.

``fakequant`` (:func:`fakequant_forward`) is the references' semantics: every quantizer quantizes
and dequantizes in float32 with its reference form (RepQ-ViT uniform and log-√2, BitLog2,
AdaLog), and the matmuls, LayerNorm, softmax, GELU and residuals run in float32, in RepQ-ViT's
operation order (``(q̂ @ k̂ᵀ) * head_dim**-0.5``, then softmax, then the probability and V
quantizers). The same function, given other hooks, is the float reference (:class:`FloatHooks`)
and the forward pass that calibration runs (quantizers initialized lazily in network order).

``integer`` (:func:`integer_forward`) computes every quantized operator in integers exactly as
the hardware does (golden/README.md, "Model datapath"): zero-point matmuls, requantization
straight to the next codes, integer score codes, the log quantizers' comparator forms on integer
input grids, the shift-accumulate A·V. LayerNorm, softmax, GELU and residuals stay float32, with
the quantize/dequantize at their boundaries recorded as operators. ``capture=True`` returns every
operator as a :class:`golden.vitops.OpRecord` for co-simulation.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from golden import adalog, bitlog2, sqrt2, uniform
from golden.floatvit import FloatViT
from golden.params import AdaLogParams, BitLog2Params, ParamError, Sqrt2Params, UniformParams
from golden.quantmodel import QuantizedViTParams
from golden.vitops import OpRecord, merge_heads, patchify, run_op, split_qkv
from golden.vitplan import RequantGroup

__all__ = [
    "MODES",
    "FakeQuantHooks",
    "FloatHooks",
    "ParamsHooks",
    "fake_quantize",
    "fakequant_forward",
    "integer_forward",
    "forward",
]

MODES = ("fakequant", "integer")


class FakeQuantHooks(Protocol):
    """What :func:`fakequant_forward` asks at each quantization site (names: golden.quantmodel)."""

    def activation(self, site: str, x: torch.Tensor) -> torch.Tensor:
        """The value passed on at activation site ``site`` (fake-quantized ``x``)."""
        ...

    def weight(self, layer: str, weight: torch.Tensor) -> torch.Tensor:
        """The weight that layer ``layer`` multiplies (fake-quantized ``weight``)."""
        ...


class FloatHooks:
    """No quantization: :func:`fakequant_forward` becomes a float32 forward of the same op order."""

    def activation(self, site: str, x: torch.Tensor) -> torch.Tensor:
        return x

    def weight(self, layer: str, weight: torch.Tensor) -> torch.Tensor:
        return weight


def fake_quantize(x: torch.Tensor, quantizer: Any, *, reparameterized: bool = True) -> torch.Tensor:
    """Quantize-dequantize ``x`` with the reference float form of ``quantizer``.

    ``reparameterized=False`` makes AdaLog post-GELU subtract its shift again (before AdaLog's
    fc2 bias reparameterization, as during calibration).
    """
    if isinstance(quantizer, UniformParams):
        return uniform.fake_quant(x, quantizer)
    if isinstance(quantizer, Sqrt2Params):
        return sqrt2.reference_forward(x, quantizer.delta, quantizer.bits, quantizer.variant)
    if isinstance(quantizer, BitLog2Params):
        return bitlog2.reference_quantize(x, quantizer)[1]
    if isinstance(quantizer, AdaLogParams):
        return adalog.reference_forward(
            x, quantizer.q, quantizer.scale, quantizer.shift, quantizer.bits, reparameterized
        )
    raise ParamError(f"not a quantizer: {quantizer!r}")


class ParamsHooks:
    """The fake-quantized forward of a :class:`QuantizedViTParams` (its weights are already
    dequantized by :meth:`QuantizedViTParams.to_float`, so :meth:`weight` passes them on)."""

    def __init__(self, params: QuantizedViTParams):
        self._quantizers = params.activation_quantizers()

    def activation(self, site: str, x: torch.Tensor) -> torch.Tensor:
        return fake_quantize(x, self._quantizers[site])

    def weight(self, layer: str, weight: torch.Tensor) -> torch.Tensor:
        return weight


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def fakequant_forward(net: FloatViT, images: torch.Tensor, hooks: FakeQuantHooks) -> torch.Tensor:
    """Logits of the fake-quantized forward (float32), asking ``hooks`` at every site.

    Parameters
    ----------
    net : FloatViT
        Float tensors (e.g. :meth:`QuantizedViTParams.to_float`, or a model during calibration).
    images : Tensor
        float32 ``[B, C, H, W]``, normalized.
    hooks : FakeQuantHooks
        :class:`ParamsHooks` (fakequant mode), :class:`FloatHooks` (float), or a calibrator.
    """
    s = net.structure
    batch = images.shape[0]
    x = hooks.activation("patch_embed", images.to(torch.float32))
    x = F.conv2d(
        x, hooks.weight("patch_embed", net.patch_embed.weight), net.patch_embed.bias, stride=s.patch_size
    )
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([net.cls_token.expand(batch, -1, -1), x], dim=1) + net.pos_embed
    for i, block in enumerate(net.blocks):
        prefix = f"blocks.{i}"
        h = hooks.activation(
            f"{prefix}.attn.qkv", _layer_norm(x, block.norm1_weight, block.norm1_bias, s.ln_eps)
        )
        qkv = F.linear(h, hooks.weight(f"{prefix}.attn.qkv", block.qkv.weight), block.qkv.bias)
        q, k, v = split_qkv(qkv, s.num_heads)
        q = hooks.activation(f"{prefix}.attn.q", q)
        k = hooks.activation(f"{prefix}.attn.k", k)
        attn = (q @ k.transpose(-2, -1)) * s.attn_scale
        attn = attn.softmax(dim=-1)
        attn = hooks.activation(f"{prefix}.attn.probs", attn)
        v = hooks.activation(f"{prefix}.attn.v", v)
        o = hooks.activation(f"{prefix}.attn.proj", merge_heads(attn @ v))
        x = x + F.linear(o, hooks.weight(f"{prefix}.attn.proj", block.proj.weight), block.proj.bias)
        h = hooks.activation(
            f"{prefix}.mlp.fc1", _layer_norm(x, block.norm2_weight, block.norm2_bias, s.ln_eps)
        )
        h = F.gelu(F.linear(h, hooks.weight(f"{prefix}.mlp.fc1", block.fc1.weight), block.fc1.bias))
        h = hooks.activation(f"{prefix}.mlp.fc2", h)
        x = x + F.linear(h, hooks.weight(f"{prefix}.mlp.fc2", block.fc2.weight), block.fc2.bias)
    x = _layer_norm(x, net.norm_weight, net.norm_bias, s.ln_eps)[:, 0]
    x = hooks.activation("head", x)
    return F.linear(x, hooks.weight("head", net.head.weight), net.head.bias)


class _Runner:
    """Runs operators through :func:`run_op`, keeping records when capturing."""

    def __init__(self, capture: bool):
        self.records: dict[str, OpRecord] | None = {} if capture else None

    def __call__(self, name: str, kind: str, inputs: dict[str, Any], params: dict[str, Any]) -> Any:
        output = run_op(kind, inputs, params)
        if self.records is not None:
            self.records[name] = OpRecord(name, kind, inputs, params, output)
        return output


def _zero(value: int) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.int64)


def _quant_input(run: _Runner, name: str, x: torch.Tensor, quantizer: Any) -> Any:
    key = "x" if isinstance(quantizer, UniformParams) else "xi"
    return run(name, "quantizer", {key: x}, {"quantizer": quantizer})


def _linear(run: _Runner, name: str, codes: Any, layer: Any, plan: Any) -> torch.Tensor:
    """Matmul (zero-point or AdaLog log-input) then dequantization to float32."""
    if plan.log_av is None:
        inputs = {
            "a": codes,
            "b": plan.weight_t,
            "a_zero_point": _zero(plan.input_zero_point),
            "b_zero_point": plan.weight_zero_point,
        }
        acc = run(f"{name}.matmul", "matmul", inputs, {"acc_bits": plan.matmul_acc_bits})
    else:
        inputs = {"codes": codes, "v": plan.weight_t, "v_zero_point": plan.weight_zero_point}
        acc = run(f"{name}.matmul", "log_av", inputs, {"quantizer": layer.input, "log_av": plan.log_av})
    inputs = {"acc": acc, "bias": plan.bias_int, "scale": plan.scale}
    return run(f"{name}.dequant", "dequant", inputs, {"acc_bits": plan.acc_bits})


def _attention(
    run: _Runner, prefix: str, codes: torch.Tensor, block: Any, plan: Any, heads: int
) -> torch.Tensor:
    """qkv matmul → requant → Q·Kᵀ → score requant → softmax → quantizer → A·V → requant."""
    inputs = {
        "a": codes,
        "b": plan.qkv.weight_t,
        "a_zero_point": _zero(plan.qkv.input_zero_point),
        "b_zero_point": plan.qkv.weight_zero_point,
    }
    acc = run(f"{prefix}.qkv.matmul", "matmul", inputs, {"acc_bits": plan.qkv.matmul_acc_bits})
    qkv = run(f"{prefix}.qkv.requant", "requant", {"acc": acc}, {"groups": plan.qkv.requant, "axis": -1})
    q, k, v = split_qkv(qkv, heads)
    quant, attn = block.attn, plan.attn
    inputs = {
        "a": q,
        "b": k.transpose(-2, -1),
        "a_zero_point": uniform.zero_point_view(quant.q, 4),
        "b_zero_point": uniform.zero_point_view(quant.k, 4),
    }
    acc = run(f"{prefix}.qk.matmul", "matmul", inputs, {"acc_bits": attn.qk_acc_bits})
    score_groups = (RequantGroup(0, heads, attn.score_requant),)
    scores = run(f"{prefix}.qk.requant", "requant", {"acc": acc}, {"groups": score_groups, "axis": 1})
    softmax_params = {"frac_bits": attn.score_frac_bits, "quantizer": quant.probs}
    probs = run(f"{prefix}.softmax", "softmax", {"scores": scores}, softmax_params)
    a_codes = _quant_input(run, f"{prefix}.softmax_quant", probs, quant.probs)
    v_zero = uniform.zero_point_view(quant.v, 4)
    if attn.log_av is None:
        inputs = {
            "a": a_codes,
            "b": v,
            "a_zero_point": _zero(quant.probs.zero_point[0]),
            "b_zero_point": v_zero,
        }
        acc = run(f"{prefix}.av", "matmul", inputs, {"acc_bits": attn.av_acc_bits})
    else:
        inputs = {"codes": a_codes, "v": v, "v_zero_point": v_zero}
        acc = run(f"{prefix}.av", "log_av", inputs, {"quantizer": quant.probs, "log_av": attn.log_av})
    av_groups = (RequantGroup(0, heads, attn.av_requant),)
    out = run(f"{prefix}.av.requant", "requant", {"acc": acc}, {"groups": av_groups, "axis": 1})
    return _linear(run, f"{prefix}.proj", merge_heads(out), block.proj, plan.proj)


def integer_forward(
    params: QuantizedViTParams, images: torch.Tensor, *, capture: bool = False
) -> torch.Tensor | tuple[torch.Tensor, dict[str, OpRecord]]:
    """Logits of the integer datapath (float32), optionally with every operator captured.

    Returns
    -------
    logits : Tensor
        float32 ``[B, num_classes]``.
    records : dict of str to OpRecord
        Only with ``capture=True``: every operator in execution order, keyed by name
        (``patch_embed.input_quant``, ``blocks.0.norm1_quant``, ``blocks.0.attn.qkv.matmul``,
        ``blocks.0.attn.qkv.requant``, ``blocks.0.attn.qk.matmul``, ``blocks.0.attn.qk.requant``,
        ``blocks.0.attn.softmax``, ``blocks.0.attn.softmax_quant``, ``blocks.0.attn.av``,
        ``blocks.0.attn.av.requant``, ``blocks.0.attn.proj.matmul``, ``blocks.0.attn.proj.dequant``,
        ``blocks.0.norm2_quant``, ``blocks.0.mlp.fc1.matmul``, ``blocks.0.mlp.fc1.dequant``,
        ``blocks.0.mlp.gelu``, ``blocks.0.mlp.gelu_quant``, ``blocks.0.mlp.fc2.matmul``,
        ``blocks.0.mlp.fc2.dequant``, ..., ``head.input_quant``, ``head.matmul``, ``head.dequant``).
    """
    s, plan = params.structure, params.plan
    run = _Runner(capture)
    batch = images.shape[0]
    codes = _quant_input(run, "patch_embed.input_quant", images.to(torch.float32), params.patch_embed.input)
    y = _linear(run, "patch_embed", patchify(codes, s.patch_size), params.patch_embed, plan.patch_embed)
    x = torch.cat([params.cls_token.expand(batch, -1, -1), y], dim=1) + params.pos_embed
    for i, (block, block_plan) in enumerate(zip(params.blocks, plan.blocks)):
        prefix = f"blocks.{i}"
        h = _layer_norm(x, block.norm1_weight, block.norm1_bias, s.ln_eps)
        codes = _quant_input(run, f"{prefix}.norm1_quant", h, block.qkv.input)
        x = x + _attention(run, f"{prefix}.attn", codes, block, block_plan, s.num_heads)
        h = _layer_norm(x, block.norm2_weight, block.norm2_bias, s.ln_eps)
        codes = _quant_input(run, f"{prefix}.norm2_quant", h, block.fc1.input)
        h = _linear(run, f"{prefix}.mlp.fc1", codes, block.fc1, block_plan.fc1)
        gelu_params = {"quantizer": block.fc2.input}
        g = run(f"{prefix}.mlp.gelu", "gelu", {"x": h}, gelu_params)
        codes = _quant_input(run, f"{prefix}.mlp.gelu_quant", g, block.fc2.input)
        x = x + _linear(run, f"{prefix}.mlp.fc2", codes, block.fc2, block_plan.fc2)
    h = _layer_norm(x, params.norm_weight, params.norm_bias, s.ln_eps)[:, 0]
    codes = _quant_input(run, "head.input_quant", h, params.head.input)
    logits = _linear(run, "head", codes, params.head, plan.head)
    return (logits, run.records) if capture else logits


def _float_model(params: QuantizedViTParams) -> FloatViT:
    cached = params.__dict__.get("_float_model")
    if cached is None:
        cached = params.__dict__["_float_model"] = params.to_float()
    return cached


@torch.no_grad()
def forward(
    params: QuantizedViTParams,
    images: torch.Tensor,
    mode: str = "integer",
    *,
    capture: bool = False,
    batch_size: int | None = 32,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, OpRecord]]:
    """Logits of ``images`` under ``params`` in ``mode`` (``fakequant`` or ``integer``).

    ``batch_size`` splits large inputs (memory); ``capture=True`` (integer mode only) runs one
    batch and also returns the operator records (see :func:`integer_forward`).
    """
    if mode not in MODES:
        raise ParamError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if capture:
        if mode != "integer":
            raise ParamError("capture=True needs mode='integer' (fakequant has no integer operators)")
        return integer_forward(params, images, capture=True)
    chunks = images.split(batch_size) if batch_size else (images,)
    if mode == "integer":
        return torch.cat([integer_forward(params, chunk) for chunk in chunks])
    net, hooks = _float_model(params), ParamsHooks(params)
    return torch.cat([fakequant_forward(net, chunk, hooks) for chunk in chunks])
