"""FPCS candidate grids: AdaLog's percentile (scale, zero point) grids and their refinement.

Every grid is built with the reference's float32 operations in its order (``torch.quantile`` of
the percentile pair (0.9, 1.0) and its complement ``1 - pct``, ``linspace`` splits, division by
``2**bits - 1``), so the candidates are bit-identical to AdaLog's ``calculate_percentile_*``
methods. Candidates are stored as ``(P, G)`` tensors: ``P`` candidates for each of ``G`` groups
(output channels of a weight, heads of a matmul operand, input channels before the post-LayerNorm
reparameterization, or one group for a per-tensor quantizer). Candidate ``i`` of a step-1 grid
pairs zero point ``i // n_scales`` with scale ``i % n_scales``, as the reference's
``repeat`` / ``repeat_interleave`` order does.
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = [
    "PERCENTILES",
    "QUANTILE_LIMIT",
    "UniformGrid",
    "percentile_pair",
    "weight_grid",
    "conv_weight_grid",
    "activation_grid",
    "channel_activation_grid",
    "operand_grid",
    "refine",
]

#: The percentile pair of every FPCS grid: ``hi in {q0.9, max}``, ``lo in {q0.1, min}``.
PERCENTILES = (0.9, 1.0)
#: ``torch.quantile`` refused more elements than this before PyTorch 2.5 (pytorch#64947); the
#: reference then averages the quantiles of equal mini-batches, which we reproduce.
QUANTILE_LIMIT = 1 << 24
#: The smallest activation scale the reference allows (its ``clamp(min=1e-4)``).
ACTIVATION_SCALE_FLOOR = 1e-4


@dataclasses.dataclass(frozen=True)
class UniformGrid:
    """Step-1 candidates of one uniform (scale, zero point) search.

    Attributes
    ----------
    scale : Tensor, float32, shape (P, G)
        Candidate scales.
    zero_point : Tensor, float32, shape (P, G)
        Candidate zero points (integers held in float32, as the reference adds them to float32
        codes).
    delta : Tensor, float32, shape (G,)
        The spacing of the first two scales: the first refinement step spreads its offsets over
        one such spacing.
    scale_floor : float or None
        Lower clamp applied to refined scales (activations only).
    """

    scale: torch.Tensor
    zero_point: torch.Tensor
    delta: torch.Tensor
    scale_floor: float | None = None

    @property
    def candidates(self) -> int:
        return self.scale.shape[0]

    @property
    def groups(self) -> int:
        return self.scale.shape[1]

    def pick(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate ``index`` of every group (negative counts from the end), as ``(scale, zp)``
        of shape (G,): the reference starts some quantizers at candidate ``-2``."""
        return self.scale[index].clone(), self.zero_point[index].clone()


def _pct() -> tuple[torch.Tensor, torch.Tensor]:
    pct = torch.tensor(PERCENTILES)
    return pct, 1 - pct


def _minibatch_quantile(flat: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``quantile(x.view(mb, -1), q, dim=-1).mean(-1)`` with the smallest ``mb`` (1, 2, 4, ...) whose
    rows fit :data:`QUANTILE_LIMIT` and divide the tensor, as the reference's retry loop finds it."""
    batches = 1
    while flat.numel() // batches > QUANTILE_LIMIT or flat.numel() % batches:
        batches *= 2
        if batches > flat.numel():
            raise ValueError(f"cannot split {flat.numel()} elements into equal quantile mini-batches")
    return torch.quantile(flat.view(batches, -1), q, dim=-1).mean(dim=-1)


def percentile_pair(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(uppers, lowers)``, each of shape (2,): the quantiles (0.9, 1.0) and (0.1, 0.0) of the
    flattened float32 tensor ``flat``."""
    pct, low_pct = _pct()
    flat = flat.reshape(-1).to(torch.float32)
    return _minibatch_quantile(flat, pct), _minibatch_quantile(flat, low_pct)


def _split_scales(
    delta_min: torch.Tensor, delta_max: torch.Tensor, n_scales: int, levels: int
) -> torch.Tensor:
    # (delta_min + linspace(0, 1, n) * (delta_max - delta_min)) / (2**bits - 1), shape (n, G).
    splits = torch.linspace(0, 1, steps=n_scales)[:, None] * (delta_max - delta_min)[None, :]
    return (delta_min[None, :] + splits) / (2 * levels - 1)


def _grid(
    delta_min: torch.Tensor,
    delta_max: torch.Tensor,
    bits: int,
    n_zero_points: int,
    eq_n: int,
    scale_floor: float | None,
) -> UniformGrid:
    levels = 2 ** (bits - 1)
    n_scales = eq_n // n_zero_points
    scales = _split_scales(delta_min, delta_max, n_scales, levels).repeat(n_zero_points, 1)
    if scale_floor is not None:
        scales = scales.clamp(min=scale_floor)
    first = int(levels - n_zero_points / 2)
    zero_points = torch.arange(first, first + n_zero_points).repeat_interleave(n_scales)
    zero_points = zero_points[:, None].expand_as(scales).to(torch.float32).contiguous()
    return UniformGrid(scales, zero_points, scales[1] - scales[0], scale_floor)


def weight_grid(weight: torch.Tensor, bits: int, eq_n: int = 128) -> UniformGrid:
    """Per-output-channel grid of a Linear weight (out, in): ``min(16, 2**(bits-1))`` zero points
    (AdaLog's ``calculate_percentile_weight_candidates``)."""
    pct, low_pct = _pct()
    w = weight.detach().reshape(weight.shape[0], -1).to(torch.float32)
    uppers, lowers = torch.quantile(w, pct, dim=-1), torch.quantile(w, low_pct, dim=-1)
    return _grid(uppers[0] - lowers[0], uppers[1] - lowers[1], bits, min(16, 2 ** (bits - 1)), eq_n, None)


def conv_weight_grid(weight: torch.Tensor, bits: int, eq_n: int = 128) -> UniformGrid:
    """Per-output-channel grid of a Conv2d weight: ``2**(bits-1)`` zero points (the conv layer's
    own ``calculate_percentile_weight_candidates``, which does not cap them at 16)."""
    pct, low_pct = _pct()
    w = weight.detach().reshape(weight.shape[0], -1).to(torch.float32)
    uppers, lowers = torch.quantile(w, pct, dim=-1), torch.quantile(w, low_pct, dim=-1)
    return _grid(uppers[0] - lowers[0], uppers[1] - lowers[1], bits, 2 ** (bits - 1), eq_n, None)


def activation_grid(x: torch.Tensor, bits: int, eq_n: int = 128) -> UniformGrid:
    """Per-tensor grid of a Linear input: ``min(16, 2**bits)`` zero points, scales clamped at 1e-4
    (``calculate_percentile_activation_candidates``, ``channel_wise=False``); one group."""
    uppers, lowers = percentile_pair(x)
    delta_min = (uppers[0:1] - lowers[0:1]).to(torch.float32)
    delta_max = (uppers[1:2] - lowers[1:2]).to(torch.float32)
    return _grid(delta_min, delta_max, bits, min(16, 2**bits), eq_n, ACTIVATION_SCALE_FLOOR)


def channel_activation_grid(x: torch.Tensor, bits: int, eq_n: int = 128) -> UniformGrid:
    """Per-input-channel grid of a post-LayerNorm Linear input (``channel_wise=True``): one group
    per channel of the last axis."""
    pct, low_pct = _pct()
    flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
    uppers, lowers = torch.quantile(flat, pct, dim=0), torch.quantile(flat, low_pct, dim=0)
    return _grid(
        uppers[0] - lowers[0], uppers[1] - lowers[1], bits, min(16, 2**bits), eq_n, ACTIVATION_SCALE_FLOOR
    )


def operand_grid(x: torch.Tensor, bits: int, eq_n: int = 128) -> UniformGrid:
    """Per-head grid of an attention matmul operand of shape (B, H, ...): ``min(16, 2**(bits-1))``
    zero points (``AsymmetricallyBatchingQuantMatMul.calculate_percentile_candidates``)."""
    heads = x.shape[1]
    per_head = x.detach().transpose(0, 1).contiguous().reshape(heads, -1).to(torch.float32)
    uppers = torch.stack([percentile_pair(per_head[h])[0] for h in range(heads)], dim=1)
    lowers = torch.stack([percentile_pair(per_head[h])[1] for h in range(heads)], dim=1)
    return _grid(uppers[0] - lowers[0], uppers[1] - lowers[1], bits, min(16, 2 ** (bits - 1)), eq_n, None)


def refine(
    scale: torch.Tensor,
    delta: torch.Tensor,
    new_per_survivor: int,
    scale_floor: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FPCS refinement step: each survivor scale (rows of ``scale``, shape (k, G)) becomes
    ``new_per_survivor`` scales at offsets ``(linspace(0, 1, n) - 0.5) * delta`` (survivor-major
    order). Returns ``(scales (k * n, G), next delta = delta / (n - 0.5))``."""
    offsets = (torch.linspace(0, 1, steps=new_per_survivor)[:, None] - 0.5) * delta[None, :]
    scales = (scale[:, None, :] + offsets[None, :, :]).reshape(-1, scale.shape[1])
    if scale_floor is not None:
        scales = scales.clamp(min=scale_floor)
    return scales, delta / (new_per_survivor - 0.5)
