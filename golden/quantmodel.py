"""The model-level container of a quantized ViT: :class:`QuantizedViTParams`.

One object holds everything the golden model (both modes) and the hardware need, and nothing
else: the calibration settings (:class:`QuantConfig`), the shape (:class:`ViTStructure`), every
quantizer's parameter object (the same classes the RTL generators take), the weight codes and
the float tensors that stay float at this stage (reparameterized LayerNorm affine, biases, class
token, position embedding). The integer datapath's derived parameters (requantization,
log-domain A·V, folded biases) are computed from it by :func:`golden.vitplan.derive_plan` and
cached in :attr:`QuantizedViTParams.plan`; ``calib.paramfile`` writes and reads it.

Quantization sites, named like the layers (network order)::

    patch_embed                     input of the patch Conv2d (8-bit, per tensor)
    blocks.{i}.attn.qkv             input of qkv (post-LN; per tensor after RepQ's reparameterization)
    blocks.{i}.attn.q / .k / .v     the attention matmul operands (per tensor or per head)
    blocks.{i}.attn.probs           post-softmax attention (uniform, log-√2, BitLog2 or AdaLog)
    blocks.{i}.attn.proj            input of proj
    blocks.{i}.mlp.fc1              input of fc1 (post-LN)
    blocks.{i}.mlp.fc2              input of fc2 = post-GELU (uniform or AdaLog)
    head                            input of the classifier

Weights are quantized per output channel (axis 0) with integer zero points.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch

from golden import reparam, uniform
from golden.floatvit import FloatBlock, FloatLinear, FloatViT, ViTStructure
from golden.params import (
    ADALOG_GELU_SHIFT,
    AdaLogParams,
    BitLog2Params,
    ParamError,
    Sqrt2Params,
    UniformParams,
    check_choice,
    check_int,
)

__all__ = [
    "SUPPORTED_BITS",
    "PATCH_INPUT_BITS",
    "ATTN_SCHEMES",
    "GELU_SCHEMES",
    "QKV_GRANULARITIES",
    "SOFTMAX_GRID_BITS",
    "GELU_GRID_BITS",
    "QuantConfig",
    "QuantLinear",
    "AttentionQuantizers",
    "BlockQuant",
    "QuantizedViTParams",
    "ActivationParams",
    "attn_quantizer_type",
    "softmax_quantizer",
    "gelu_grid",
    "build_params",
    "site_names",
]

#: Weight and activation widths the project supports (calibration, RTL, reports).
SUPPORTED_BITS = (3, 4, 6, 8)
#: The patch-embedding input is quantized with 8 bits whatever ``abits`` is (as in RepQ-ViT).
PATCH_INPUT_BITS = 8
ATTN_SCHEMES = (
    "uniform",
    "sqrt2_17",
    "sqrt2_16",
    "bitlog2_single_16",
    "bitlog2_single_17",
    "bitlog2_half_16",
    "bitlog2_half_17",
    "adalog",
)
GELU_SCHEMES = ("uniform", "adalog")
#: Granularity of the Q, K and V quantizers: per tensor (RepQ-ViT) or per head (AdaLog).
QKV_GRANULARITIES = ("tensor", "head")
#: Unsigned input grid (bits = fractional bits) of the log-√2 and AdaLog post-softmax quantizers in
#: the integer datapath: 24, because the golden model measured 16-bit grids too coarse for AdaLog at
#: q >= 37 (golden/README.md, "Input-grid limitation").
SOFTMAX_GRID_BITS = 24
#: Signed input grid width of the AdaLog post-GELU quantizer (fractional bits from its scale).
GELU_GRID_BITS = 24

ActivationParams = UniformParams | Sqrt2Params | BitLog2Params | AdaLogParams

_NAME = re.compile(r"^[A-Za-z0-9_.\-/]+$")


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """How a model was quantized and calibrated (recorded in the parameter file).

    Parameters
    ----------
    model : str
        ``quiver_tiny_fmnist`` (the shipped model) or a timm model name.
    wbits, abits : int
        Weight and activation widths, one of :data:`SUPPORTED_BITS`.
    attn : str
        Post-softmax quantizer, one of :data:`ATTN_SCHEMES`.
    gelu : str
        Post-GELU quantizer, one of :data:`GELU_SCHEMES`.
    method : str
        Calibration method name (``repq``, ``fpcs``...).
    seed : int
        Seed of any randomness in calibration.
    calib_images : int
        Number of calibration images.
    qkv_granularity : str
        ``tensor`` (RepQ-ViT) or ``head`` (AdaLog) for the Q, K, V quantizers.
    weights_sha256 : str
        Hash of the float model's state dict (:func:`calib.pipeline.state_dict_sha256`), so that
        parameters are never applied to other weights by mistake; empty if unknown.
    versions : dict of str to str
        Software versions that produced the parameters.
    """

    model: str
    wbits: int
    abits: int
    attn: str
    gelu: str
    method: str
    seed: int = 0
    calib_images: int = 32
    qkv_granularity: str = "tensor"
    weights_sha256: str = ""
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model", "method"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _NAME.match(value):
                raise ParamError(f"config.{name} must be a non-empty name, not {value!r}")
        for name in ("wbits", "abits"):
            check_int(f"config.{name}", getattr(self, name))
            check_choice(f"config.{name}", getattr(self, name), SUPPORTED_BITS)
        check_choice("config.attn", self.attn, ATTN_SCHEMES)
        check_choice("config.gelu", self.gelu, GELU_SCHEMES)
        check_int("config.seed", self.seed, 0)
        check_int("config.calib_images", self.calib_images, 1)
        check_choice("config.qkv_granularity", self.qkv_granularity, QKV_GRANULARITIES)
        if not isinstance(self.weights_sha256, str) or not re.fullmatch(
            r"([0-9a-f]{64})?", self.weights_sha256
        ):
            raise ParamError(
                f"config.weights_sha256 must be 64 hex digits or empty, not {self.weights_sha256!r}"
            )
        if not isinstance(self.versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.versions.items()
        ):
            raise ParamError(f"config.versions must map names to version strings, not {self.versions!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> QuantConfig:
        if not isinstance(data, dict):
            raise ParamError(f"config must be a JSON object, not {data!r}")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ParamError(f"config has no field {unknown[0]!r}")
        for field in dataclasses.fields(cls):
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if required and field.name not in data:
                raise ParamError(f"config.{field.name} is missing")
        return cls(**data)


def attn_quantizer_type(attn: str) -> type:
    """The parameter class of the post-softmax quantizer ``attn`` (one of :data:`ATTN_SCHEMES`)."""
    check_choice("attention scheme", attn, ATTN_SCHEMES)
    if attn == "uniform":
        return UniformParams
    if attn.startswith("sqrt2"):
        return Sqrt2Params
    if attn.startswith("bitlog2"):
        return BitLog2Params
    return AdaLogParams


def softmax_quantizer(attn: str, bits: int, **calibrated: Any) -> ActivationParams:
    """A post-softmax quantizer of scheme ``attn`` with our integer input grid.

    ``calibrated`` holds the calibrated fields: ``delta`` (log-√2, BitLog2), ``q`` (AdaLog), or
    ``scale`` and ``zero_point`` (uniform). Log-√2 and AdaLog get the unsigned
    :data:`SOFTMAX_GRID_BITS` grid; BitLog2's grid is fixed by its scheme.
    """
    kind = attn_quantizer_type(attn)
    grid = {"input_bits": SOFTMAX_GRID_BITS, "input_frac_bits": SOFTMAX_GRID_BITS}
    if kind is UniformParams:
        return UniformParams.from_float_zero_point(bits, calibrated["scale"], calibrated["zero_point"])
    if kind is Sqrt2Params:
        return Sqrt2Params(variant=attn, bits=bits, delta=calibrated["delta"], **grid)
    if kind is BitLog2Params:
        return BitLog2Params(scheme=attn.removeprefix("bitlog2_"), delta=calibrated["delta"])
    return AdaLogParams(bits=bits, q=calibrated["q"], scale=calibrated.get("scale", 1.0), **grid)


def gelu_grid(scale: float) -> tuple[int, int]:
    """``(input_bits, input_frac_bits)`` of the signed grid of an AdaLog post-GELU quantizer.

    :data:`GELU_GRID_BITS` bits; the integer part covers ``[-2**e, 2**e)`` with ``2**e > scale``
    (``e >= 0``), so every input the quantizer distinguishes is on the grid and a saturated input
    still gets code 0, as the reference gives anything at or above ``scale - shift``.
    """
    exponent = max(math.frexp(scale)[1], 0)
    return GELU_GRID_BITS, GELU_GRID_BITS - 1 - exponent


@dataclasses.dataclass(eq=False)
class QuantLinear:
    """A quantized Linear (or the patch Conv2d): input quantizer, weight quantizer, codes, bias.

    Parameters
    ----------
    input : UniformParams or AdaLogParams
        Per-tensor quantizer of the layer input (AdaLog only for fc2 after GELU).
    weight : UniformParams
        Per output channel (``granularity="channel"``, ``axis=0``).
    weight_codes : Tensor
        Integer codes, ``[out, in]`` (``[out, C, p, p]`` for the patch Conv2d).
    bias : Tensor
        float32 ``[out]``, reparameterized (RepQ's LayerNorm fold for qkv/fc1; AdaLog's GELU shift
        fold for fc2 with an AdaLog input).
    """

    input: UniformParams | AdaLogParams
    weight: UniformParams
    weight_codes: torch.Tensor
    bias: torch.Tensor

    def dequantized_weight(self) -> torch.Tensor:
        """``(codes - z) * scale`` in float32: the weight the fake-quantized references multiply."""
        return uniform.dequantize(self.weight_codes, self.weight)


@dataclasses.dataclass(frozen=True)
class AttentionQuantizers:
    """The four attention quantizers of one block: Q, K, V (uniform) and the probabilities."""

    q: UniformParams
    k: UniformParams
    v: UniformParams
    probs: ActivationParams


@dataclasses.dataclass(eq=False)
class BlockQuant:
    """One transformer block: reparameterized LayerNorms, quantized layers, attention quantizers."""

    norm1_weight: torch.Tensor
    norm1_bias: torch.Tensor
    qkv: QuantLinear
    attn: AttentionQuantizers
    proj: QuantLinear
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    fc1: QuantLinear
    fc2: QuantLinear


@dataclasses.dataclass(eq=False)
class QuantizedViTParams:
    """Everything a quantized ViT forward needs (see the module docstring for the site names).

    Checked on construction (:meth:`validate`): a malformed container raises :class:`ParamError`
    naming the field. Treat it as immutable: :attr:`plan` is cached.
    """

    config: QuantConfig
    structure: ViTStructure
    patch_embed: QuantLinear
    cls_token: torch.Tensor
    pos_embed: torch.Tensor
    blocks: list[BlockQuant]
    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    head: QuantLinear

    def __post_init__(self) -> None:
        self.validate()

    def linears(self) -> list[tuple[str, QuantLinear]]:
        """Every quantized Linear/Conv layer in network order, with its name."""
        layers = [("patch_embed", self.patch_embed)]
        for i, block in enumerate(self.blocks):
            layers += [
                (f"blocks.{i}.attn.qkv", block.qkv),
                (f"blocks.{i}.attn.proj", block.proj),
                (f"blocks.{i}.mlp.fc1", block.fc1),
                (f"blocks.{i}.mlp.fc2", block.fc2),
            ]
        return [*layers, ("head", self.head)]

    def activation_quantizers(self) -> dict[str, ActivationParams]:
        """Every activation quantizer by site name, in network order."""
        sites: dict[str, ActivationParams] = {"patch_embed": self.patch_embed.input}
        for i, block in enumerate(self.blocks):
            prefix = f"blocks.{i}"
            sites[f"{prefix}.attn.qkv"] = block.qkv.input
            for name in ("q", "k", "probs", "v"):
                sites[f"{prefix}.attn.{name}"] = getattr(block.attn, name)
            sites[f"{prefix}.attn.proj"] = block.proj.input
            sites[f"{prefix}.mlp.fc1"] = block.fc1.input
            sites[f"{prefix}.mlp.fc2"] = block.fc2.input
        sites["head"] = self.head.input
        return sites

    @property
    def plan(self) -> Any:
        """The integer datapath's derived parameters (:class:`golden.vitplan.IntegerPlan`), cached."""
        cached = self.__dict__.get("_plan")
        if cached is None:
            from golden.vitplan import derive_plan

            cached = self.__dict__["_plan"] = derive_plan(self)
        return cached

    def to_float(self) -> FloatViT:
        """The float model the fake-quantized forward runs: dequantized weights, stored float tensors."""

        def linear(layer: QuantLinear) -> FloatLinear:
            return FloatLinear(layer.dequantized_weight(), layer.bias)

        blocks = [
            FloatBlock(
                norm1_weight=b.norm1_weight,
                norm1_bias=b.norm1_bias,
                qkv=linear(b.qkv),
                proj=linear(b.proj),
                norm2_weight=b.norm2_weight,
                norm2_bias=b.norm2_bias,
                fc1=linear(b.fc1),
                fc2=linear(b.fc2),
            )
            for b in self.blocks
        ]
        return FloatViT(
            structure=self.structure,
            patch_embed=linear(self.patch_embed),
            cls_token=self.cls_token,
            pos_embed=self.pos_embed,
            blocks=blocks,
            norm_weight=self.norm_weight,
            norm_bias=self.norm_bias,
            head=linear(self.head),
        )

    def validate(self) -> None:
        """Check types, widths, granularities and tensor shapes; raise :class:`ParamError`."""
        if not isinstance(self.config, QuantConfig):
            raise ParamError(f"config must be a QuantConfig, not {type(self.config).__name__}")
        if not isinstance(self.structure, ViTStructure):
            raise ParamError(f"structure must be a ViTStructure, not {type(self.structure).__name__}")
        s, c = self.structure, self.config
        e = s.embed_dim
        _check_float("cls_token", self.cls_token, (1, 1, e))
        _check_float("pos_embed", self.pos_embed, (1, s.num_tokens, e))
        _check_float("norm.weight", self.norm_weight, (e,))
        _check_float("norm.bias", self.norm_bias, (e,))
        if not isinstance(self.blocks, list) or len(self.blocks) != s.depth:
            raise ParamError(f"blocks must be a list of structure.depth = {s.depth} blocks")
        patch = (e, s.in_chans, s.patch_size, s.patch_size)
        _check_linear("patch_embed", self.patch_embed, patch, PATCH_INPUT_BITS, c)
        for i, block in enumerate(self.blocks):
            prefix = f"blocks.{i}"
            if not isinstance(block, BlockQuant):
                raise ParamError(f"{prefix} must be a BlockQuant, not {type(block).__name__}")
            for name in ("norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias"):
                _check_float(f"{prefix}.{name.replace('_', '.')}", getattr(block, name), (e,))
            _check_linear(f"{prefix}.attn.qkv", block.qkv, (3 * e, e), c.abits, c)
            _check_linear(f"{prefix}.attn.proj", block.proj, (e, e), c.abits, c)
            _check_linear(f"{prefix}.mlp.fc1", block.fc1, (s.mlp_hidden, e), c.abits, c)
            _check_linear(f"{prefix}.mlp.fc2", block.fc2, (e, s.mlp_hidden), c.abits, c, gelu=True)
            _check_attention(f"{prefix}.attn", block.attn, s, c)
        _check_linear("head", self.head, (s.num_classes, e), c.abits, c)


def _check_float(name: str, value: Any, shape: tuple[int, ...]) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.float32:
        raise ParamError(
            f"{name} must be a float32 tensor, not {getattr(value, 'dtype', type(value).__name__)}"
        )
    if tuple(value.shape) != shape:
        raise ParamError(f"{name} has shape {tuple(value.shape)}, expected {shape}")
    if not bool(torch.isfinite(value).all()):
        raise ParamError(f"{name} holds non-finite values")


def _check_uniform(
    name: str, params: Any, bits: int, granularity: str, channels: int, axis: int | None
) -> None:
    if not isinstance(params, UniformParams):
        raise ParamError(f"{name} must be UniformParams, not {type(params).__name__}")
    if params.bits != bits:
        raise ParamError(f"{name}.bits is {params.bits}, expected {bits}")
    if params.granularity != granularity or params.channels != channels or params.axis != axis:
        raise ParamError(
            f"{name} must be per {granularity} with {channels} entries (axis {axis}), not per "
            f"{params.granularity} with {params.channels} (axis {params.axis})"
        )


def _check_linear(
    name: str, layer: Any, shape: tuple[int, ...], input_bits: int, config: QuantConfig, gelu: bool = False
) -> None:
    if not isinstance(layer, QuantLinear):
        raise ParamError(f"{name} must be a QuantLinear, not {type(layer).__name__}")
    if gelu and config.gelu == "adalog":
        if not isinstance(layer.input, AdaLogParams) or layer.input.bits != input_bits:
            raise ParamError(f"{name}.input must be {input_bits}-bit AdaLogParams (config.gelu = 'adalog')")
        if layer.input.shift != ADALOG_GELU_SHIFT or not layer.input.input_signed:
            raise ParamError(f"{name}.input must have AdaLog's GELU shift and a signed input grid")
    else:
        _check_uniform(f"{name}.input", layer.input, input_bits, "tensor", 1, None)
    _check_uniform(f"{name}.weight", layer.weight, config.wbits, "channel", shape[0], 0)
    codes = layer.weight_codes
    if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.dtype == torch.bool:
        raise ParamError(
            f"{name}.weight_codes must be an integer tensor, not {getattr(codes, 'dtype', codes)!r}"
        )
    if tuple(codes.shape) != shape:
        raise ParamError(f"{name}.weight_codes has shape {tuple(codes.shape)}, expected {shape}")
    lo, hi = layer.weight.qmin, layer.weight.qmax
    if codes.numel() and (int(codes.min()) < lo or int(codes.max()) > hi):
        raise ParamError(f"{name}.weight_codes must lie in [{lo}, {hi}]")
    _check_float(f"{name}.bias", layer.bias, (shape[0],))


def _check_attention(name: str, attn: Any, s: ViTStructure, config: QuantConfig) -> None:
    if not isinstance(attn, AttentionQuantizers):
        raise ParamError(f"{name} must be AttentionQuantizers, not {type(attn).__name__}")
    per_head = config.qkv_granularity == "head"
    for operand in ("q", "k", "v"):
        _check_uniform(
            f"{name}.{operand}",
            getattr(attn, operand),
            config.abits,
            "head" if per_head else "tensor",
            s.num_heads if per_head else 1,
            1 if per_head else None,
        )
    probs, kind = attn.probs, attn_quantizer_type(config.attn)
    if not isinstance(probs, kind):
        raise ParamError(
            f"{name}.probs must be {kind.__name__} for attn {config.attn!r}, not {type(probs).__name__}"
        )
    if kind is UniformParams:
        _check_uniform(f"{name}.probs", probs, config.abits, "tensor", 1, None)
    elif kind is BitLog2Params:
        if "bitlog2_" + probs.scheme != config.attn or probs.delta is None:
            raise ParamError(f"{name}.probs must be a calibrated BitLog2 {config.attn!r} (delta set)")
    elif kind is Sqrt2Params:
        if probs.variant != config.attn or probs.bits != config.abits:
            raise ParamError(f"{name}.probs must be a {config.abits}-bit {config.attn!r} quantizer")
    elif probs.bits != config.abits or probs.shift != 0.0 or probs.input_signed:
        raise ParamError(
            f"{name}.probs must be a {config.abits}-bit post-softmax AdaLog (shift 0, unsigned grid)"
        )


def build_params(
    net: FloatViT,
    config: QuantConfig,
    activations: dict[str, ActivationParams],
    weights: dict[str, UniformParams],
) -> QuantizedViTParams:
    """Assemble a container from calibrated quantizers (any calibration method ends here).

    Parameters
    ----------
    net : FloatViT
        The float model after any LayerNorm reparameterization (qkv/fc1 weights and biases already
        folded), with fc2's original bias: when ``activations["blocks.{i}.mlp.fc2"]`` is AdaLog,
        AdaLog's bias reparameterization (``bias - shift * sum_in W_q``, with the quantized weight)
        is applied here.
    config : QuantConfig
    activations : dict
        One parameter object per activation site (see the module docstring).
    weights : dict
        Per-output-channel :class:`UniformParams` per layer name; the weights are quantized here.
    """
    missing = [site for site in site_names(net.structure.depth) if site not in activations]
    if missing:
        raise ParamError(f"build_params: no quantizer for site {missing[0]!r}")

    def layer(name: str, float_layer: FloatLinear) -> QuantLinear:
        if name not in weights:
            raise ParamError(f"build_params: no weight quantizer for layer {name!r}")
        codes = uniform.quantize(float_layer.weight, weights[name])
        bias = float_layer.bias.to(torch.float32)
        quantizer = activations[name]
        if isinstance(quantizer, AdaLogParams):
            weight_q = uniform.dequantize(codes, weights[name])
            bias = reparam.adalog_gelu_bias_reparam(bias, weight_q, quantizer.shift)
        return QuantLinear(quantizer, weights[name], codes, bias.clone())

    blocks = []
    for i, block in enumerate(net.blocks):
        prefix = f"blocks.{i}"
        blocks.append(
            BlockQuant(
                norm1_weight=block.norm1_weight.clone(),
                norm1_bias=block.norm1_bias.clone(),
                qkv=layer(f"{prefix}.attn.qkv", block.qkv),
                attn=AttentionQuantizers(
                    q=activations[f"{prefix}.attn.q"],
                    k=activations[f"{prefix}.attn.k"],
                    v=activations[f"{prefix}.attn.v"],
                    probs=activations[f"{prefix}.attn.probs"],
                ),
                proj=layer(f"{prefix}.attn.proj", block.proj),
                norm2_weight=block.norm2_weight.clone(),
                norm2_bias=block.norm2_bias.clone(),
                fc1=layer(f"{prefix}.mlp.fc1", block.fc1),
                fc2=layer(f"{prefix}.mlp.fc2", block.fc2),
            )
        )
    return QuantizedViTParams(
        config=config,
        structure=net.structure,
        patch_embed=layer("patch_embed", net.patch_embed),
        cls_token=net.cls_token.clone(),
        pos_embed=net.pos_embed.clone(),
        blocks=blocks,
        norm_weight=net.norm_weight.clone(),
        norm_bias=net.norm_bias.clone(),
        head=layer("head", net.head),
    )


def site_names(depth: int) -> list[str]:
    """Every activation quantization site of a ``depth``-block ViT, in network order."""
    names = ["patch_embed"]
    for i in range(depth):
        names += [f"blocks.{i}.attn.{s}" for s in ("qkv", "q", "k", "probs", "v", "proj")]
        names += [f"blocks.{i}.mlp.fc1", f"blocks.{i}.mlp.fc2"]
    return [*names, "head"]
