"""The float tensors and the shape of a timm ``VisionTransformer``, without the module machinery.

The quantized forwards (:mod:`golden.vit`) and calibration (:mod:`calib`) work on this plain
description instead of on timm modules: every tensor they read is here, in one place, and
calibration can replace tensors (RepQ-ViT's LayerNorm reparameterization) on a copy without
touching the user's model.

Supported: the standard ViT/DeiT layout of timm's ``VisionTransformer`` (a Conv2d patch
embedding without norm, one class token, learned position embeddings added after the class
token is prepended, pre-norm ``Block``s of ``Attention`` + ``Mlp`` with GELU, no LayerScale, no
QK-norm, a final LayerNorm, class-token pooling and a Linear head). :meth:`FloatViT.from_timm`
names the first unsupported feature of any other model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from golden.params import ParamError, check_int

__all__ = ["ViTStructure", "FloatLinear", "FloatBlock", "FloatViT"]


@dataclasses.dataclass(frozen=True)
class ViTStructure:
    """The shape of a ViT: everything the forwards need besides tensors and quantizers.

    Parameters
    ----------
    img_size : tuple of int
        Input ``(height, width)``.
    patch_size : int
        Square, non-overlapping patches (the Conv2d kernel and stride).
    in_chans, embed_dim, depth, num_heads, mlp_hidden, num_classes : int
        As in timm; ``embed_dim`` must be a multiple of ``num_heads``.
    ln_eps : float
        The LayerNorm epsilon (timm's ViTs: 1e-6).
    """

    img_size: tuple[int, int]
    patch_size: int
    in_chans: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    num_classes: int
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        size = tuple(self.img_size) if isinstance(self.img_size, (list, tuple)) else ()
        if len(size) != 2:
            raise ParamError(f"structure.img_size must be [height, width], not {self.img_size!r}")
        object.__setattr__(self, "img_size", size)
        check_int("structure.patch_size", self.patch_size, 1)
        for i, side in enumerate(size):
            check_int(f"structure.img_size[{i}]", side, 1)
            if side % self.patch_size:
                raise ParamError(
                    f"structure.img_size {size} is not a multiple of patch_size {self.patch_size}"
                )
        for name in ("in_chans", "embed_dim", "depth", "num_heads", "mlp_hidden", "num_classes"):
            check_int(f"structure.{name}", getattr(self, name), 1)
        if self.embed_dim % self.num_heads:
            raise ParamError(
                f"structure.embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}"
            )
        eps = self.ln_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ParamError(f"structure.ln_eps must be a small positive number, not {eps!r}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def attn_scale(self) -> float:
        """``head_dim ** -0.5``, the factor timm (and RepQ-ViT) apply to ``q @ k.T``."""
        return self.head_dim**-0.5

    @property
    def grid(self) -> tuple[int, int]:
        return (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)

    @property
    def num_tokens(self) -> int:
        """Patches plus the class token."""
        return self.grid[0] * self.grid[1] + 1

    @property
    def patch_features(self) -> int:
        """Inputs of one patch-embedding output: ``in_chans * patch_size**2``."""
        return self.in_chans * self.patch_size**2

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["img_size"] = list(self.img_size)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ViTStructure:
        if not isinstance(data, dict):
            raise ParamError(f"structure must be a JSON object, not {data!r}")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(names - set(data) - {"ln_eps"})
        if unknown:
            raise ParamError(f"structure has no field {unknown[0]!r}")
        if missing:
            raise ParamError(f"structure.{missing[0]} is missing")
        return cls(**data)


@dataclasses.dataclass(eq=False)
class FloatLinear:
    """A Linear (weight ``[out, in]``) or the patch Conv2d (weight ``[out, C, p, p]``) and its bias."""

    weight: torch.Tensor
    bias: torch.Tensor


@dataclasses.dataclass(eq=False)
class FloatBlock:
    """One pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    norm1_weight: torch.Tensor
    norm1_bias: torch.Tensor
    qkv: FloatLinear
    proj: FloatLinear
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    fc1: FloatLinear
    fc2: FloatLinear


def _tensor(value: torch.Tensor | None, size: int) -> torch.Tensor:
    # timm layers built with bias=False have no bias: an explicit zero one keeps the forwards uniform.
    if value is None:
        return torch.zeros(size, dtype=torch.float32)
    return value.detach().to(torch.float32).clone()


def _linear(module: Any) -> FloatLinear:
    return FloatLinear(_tensor(module.weight, 0), _tensor(module.bias, module.weight.shape[0]))


@dataclasses.dataclass(eq=False)
class FloatViT:
    """Float32 tensors of a ViT plus its :class:`ViTStructure` (copies: the model is not shared)."""

    structure: ViTStructure
    patch_embed: FloatLinear
    cls_token: torch.Tensor
    pos_embed: torch.Tensor
    blocks: list[FloatBlock]
    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    head: FloatLinear

    @classmethod
    def from_timm(cls, model: torch.nn.Module) -> FloatViT:
        """Read a timm ``VisionTransformer``.

        Raises
        ------
        ParamError
            One line naming the first feature this project does not support yet.
        """
        _check_supported(model)
        proj = model.patch_embed.proj
        first = model.blocks[0]
        structure = ViTStructure(
            img_size=tuple(int(s) for s in model.patch_embed.img_size),
            patch_size=int(proj.kernel_size[0]),
            in_chans=int(proj.in_channels),
            embed_dim=int(model.embed_dim),
            depth=len(model.blocks),
            num_heads=int(first.attn.num_heads),
            mlp_hidden=int(first.mlp.fc1.out_features),
            num_classes=int(model.head.out_features),
            ln_eps=float(first.norm1.eps),
        )
        blocks = [
            FloatBlock(
                norm1_weight=_tensor(block.norm1.weight, 0),
                norm1_bias=_tensor(block.norm1.bias, structure.embed_dim),
                qkv=_linear(block.attn.qkv),
                proj=_linear(block.attn.proj),
                norm2_weight=_tensor(block.norm2.weight, 0),
                norm2_bias=_tensor(block.norm2.bias, structure.embed_dim),
                fc1=_linear(block.mlp.fc1),
                fc2=_linear(block.mlp.fc2),
            )
            for block in model.blocks
        ]
        return cls(
            structure=structure,
            patch_embed=_linear(proj),
            cls_token=_tensor(model.cls_token, 0),
            pos_embed=_tensor(model.pos_embed, 0),
            blocks=blocks,
            norm_weight=_tensor(model.norm.weight, 0),
            norm_bias=_tensor(model.norm.bias, structure.embed_dim),
            head=_linear(model.head),
        )

    def linears(self) -> list[tuple[str, FloatLinear]]:
        """Every Linear/Conv layer in network order, with its name (``blocks.0.attn.qkv``...)."""
        layers = [("patch_embed", self.patch_embed)]
        for i, block in enumerate(self.blocks):
            prefix = f"blocks.{i}"
            layers += [
                (f"{prefix}.attn.qkv", block.qkv),
                (f"{prefix}.attn.proj", block.proj),
                (f"{prefix}.mlp.fc1", block.fc1),
                (f"{prefix}.mlp.fc2", block.fc2),
            ]
        return [*layers, ("head", self.head)]


def _check_supported(model: torch.nn.Module) -> None:
    """Raise a one-line ParamError for the first feature outside the supported ViT layout."""
    from timm.models.vision_transformer import Block, VisionTransformer

    def unsupported(what: str) -> ParamError:
        return ParamError(
            f"unsupported model: {what}; Quiver supports timm ViT/DeiT models (see golden/floatvit.py)"
        )

    if not isinstance(model, VisionTransformer):
        raise unsupported(f"{type(model).__name__} is not a timm VisionTransformer")
    identity = torch.nn.Identity
    checks = [
        (
            getattr(model, "num_prefix_tokens", 1) == 1 and model.cls_token is not None,
            "needs exactly one class token",
        ),
        (getattr(model, "reg_token", None) is None, "register tokens"),
        (not getattr(model, "no_embed_class", False), "no_embed_class position embeddings"),
        (not getattr(model, "dynamic_img_size", False), "dynamic image size"),
        (model.pos_embed is not None, "no position embedding"),
        (model.global_pool == "token", f"global_pool {model.global_pool!r} (only 'token')"),
        (getattr(model, "attn_pool", None) is None, "attention pooling"),
        (isinstance(model.norm_pre, identity) and isinstance(model.fc_norm, identity), "norm_pre or fc_norm"),
        (isinstance(model.head, torch.nn.Linear), "a head that is not one Linear layer"),
        (isinstance(model.patch_embed.norm, identity), "a patch-embedding norm"),
    ]
    proj = model.patch_embed.proj
    checks.append(
        (
            isinstance(proj, torch.nn.Conv2d)
            and proj.kernel_size[0] == proj.kernel_size[1] == proj.stride[0] == proj.stride[1]
            and proj.padding in ((0, 0), "valid"),
            "a patch embedding that is not one non-overlapping square Conv2d",
        )
    )
    for i, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        checks += [
            (type(block) is Block, f"blocks.{i} is a {type(block).__name__}, not a pre-norm Block"),
            (isinstance(block.ls1, identity) and isinstance(block.ls2, identity), f"blocks.{i} LayerScale"),
            (
                isinstance(attn.q_norm, identity) and isinstance(attn.k_norm, identity),
                f"blocks.{i} QK normalization",
            ),
            (isinstance(getattr(attn, "norm", identity()), identity), f"blocks.{i} attention output norm"),
            (getattr(attn, "gate", None) is None, f"blocks.{i} gated attention"),
            (isinstance(getattr(mlp, "norm", identity()), identity), f"blocks.{i} MLP norm"),
            (
                isinstance(mlp.act, torch.nn.GELU) and mlp.act.approximate == "none",
                f"blocks.{i} activation {mlp.act!r} (only exact GELU)",
            ),
            (
                block.norm1.eps == block.norm2.eps == model.norm.eps == model.blocks[0].norm1.eps,
                f"blocks.{i} LayerNorm epsilon differs from blocks.0",
            ),
            (attn.num_heads * attn.head_dim == model.embed_dim, f"blocks.{i} attention width != embed_dim"),
            (
                mlp.fc1.out_features == model.blocks[0].mlp.fc1.out_features,
                f"blocks.{i} MLP width differs from blocks.0",
            ),
        ]
    for ok, what in checks:
        if not ok:
            raise unsupported(what)
