"""RepQ-ViT calibration (``--method repq``): searches, the lazy first pass, the reparameterization.

The procedure (``../shared/QUANTIZERS.md``, "Calibration procedures"):

1. One fake-quantized forward pass over the calibration images in which every quantizer
   initializes lazily, in network order, on the already-quantized upstream activations
   (:class:`RepQCalibrator` as the hooks of :func:`golden.vit.fakequant_forward`): uniform
   quantizers by RepQ's percentile triplet + MSE (per tensor; per channel for the post-LayerNorm
   inputs of qkv and fc1; weights per output channel), log-√2 Δ by the same percentiles,
   BitLog2 δ by :func:`golden.bitlog2.search_delta`, AdaLog by :func:`adalog_search`.
2. RepQ's LayerNorm reparameterization (:func:`golden.reparam.repq_layernorm_reparam`, integer
   zero point) turns the per-channel qkv/fc1 input quantizers into per-tensor ones.
3. The second pass: the reset qkv/fc1 weight quantizers recalibrate on the reparameterized
   weights. A weight quantizer depends on the weights alone, so this runs without images.

Ours, stated once: per-tensor quantizers keep integer zero points clamped into the code range
(:meth:`golden.params.UniformParams.from_float_zero_point`) already in the first pass, so later
layers calibrate on what the shipped model computes; per-channel post-LN quantizers keep RepQ's
unclamped integer zero points until the reparameterization (whose per-tensor zero point is then
rounded and clamped). A constant channel (``hi == lo``, where RepQ divides by zero) gets the range
``[min(lo, 0), max(hi, 0)]`` (``[0, 1]`` if both are 0). Per-channel scores are computed for all
channels at once; float32 sums in another order can, in a near-tie, pick another percentile than
RepQ's loop over channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from golden import bitlog2, reparam, sqrt2, uniform
from golden.params import ADALOG_GELU_SHIFT, ADALOG_Q_RANGE, AdaLogParams, BitLog2Params, UniformParams
from golden.quantmodel import (
    PATCH_INPUT_BITS,
    QuantizedViTParams,
    build_params,
    gelu_grid,
    site_names,
    softmax_quantizer,
)
from golden.vit import fake_quantize, fakequant_forward

__all__ = [
    "PERCENTILES",
    "quantiles",
    "uniform_percentile_mse",
    "calibrate_uniform",
    "calibrate_weight",
    "calibrate_sqrt2",
    "calibrate_bitlog2",
    "adalog_search",
    "calibrate_adalog_softmax",
    "calibrate_adalog_gelu",
    "RepQCalibrator",
    "calibrate_repq",
]

#: RepQ-ViT's percentile candidates (upper; the lower one is ``1 - p``).
PERCENTILES = (0.999, 0.9999, 0.99999)
#: torch.quantile refuses larger inputs; RepQ falls back to numpy there too.
_TORCH_QUANTILE_LIMIT = 1 << 24
#: AdaLog post-GELU scale candidates under repq: max(x + shift) * 2**(-i/8), i = 0 .. 23 (ours).
ADALOG_GELU_SCALE_STEPS = 24


def quantiles(x2d: torch.Tensor, probabilities: Sequence[float]) -> torch.Tensor:
    """Linear-interpolation quantiles of every column of ``x2d`` (``[M, C]``): ``[len(p), C]`` float32."""
    x2d = x2d.to(torch.float32)
    if x2d.numel() <= _TORCH_QUANTILE_LIMIT:
        return torch.quantile(x2d, torch.tensor(probabilities, dtype=torch.float32), dim=0)
    values = np.quantile(x2d.numpy(), np.asarray(probabilities, dtype=np.float64), axis=0)
    return torch.from_numpy(values).to(torch.float32)


def uniform_percentile_mse(x2d: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RepQ-ViT's uniform calibration for every column of ``x2d`` (``[M, C]``) at once.

    For ``p`` in :data:`PERCENTILES`: ``hi = quantile(p)``, ``lo = quantile(1 - p)``,
    ``delta = (hi - lo) / (2**bits - 1)``, ``z = round(-lo / delta)``, scored by the mean squared
    error of RepQ's fake quantization; the first minimum wins.

    Returns
    -------
    delta, zero_point : Tensor
        float32 ``[C]``; the zero points are integer-valued and not clamped.
    """
    x2d = x2d.to(torch.float32)
    probabilities = [q for p in PERCENTILES for q in (p, 1.0 - p)]
    bounds = quantiles(x2d, probabilities)
    hi, lo = bounds[0::2], bounds[1::2]  # [3, C]
    flat = hi == lo
    lo = torch.where(flat, torch.clamp(lo, max=0.0), lo)
    hi = torch.where(flat, torch.clamp(hi, min=0.0), hi)
    hi = torch.where(hi == lo, lo + 1.0, hi)
    delta = (hi - lo) / (2**bits - 1)
    zero_point = (-lo / delta).round()
    fake = uniform.repq_reference(x2d[None], delta[:, None, :], zero_point[:, None, :], bits)
    score = (x2d[None] - fake).abs().pow(2).mean(dim=1)  # [3, C]
    best = torch.argmin(torch.nan_to_num(score, nan=float("inf")), dim=0)  # first minimum
    columns = torch.arange(x2d.shape[1])
    return delta[best, columns], zero_point[best, columns]


def calibrate_uniform(
    x: torch.Tensor, bits: int, *, axis: int | None = None, granularity: str = "head"
) -> UniformParams:
    """Per-tensor (``axis=None``) or per-``axis`` uniform quantizer with clamped integer zero points."""
    if axis is None:
        delta, zero = uniform_percentile_mse(x.reshape(-1, 1), bits)
        return UniformParams.from_float_zero_point(bits, float(delta[0]), float(zero[0]))
    columns = x.movedim(axis, -1)
    delta, zero = uniform_percentile_mse(columns.reshape(-1, columns.shape[-1]), bits)
    return UniformParams.from_float_zero_point(
        bits, delta.tolist(), zero.tolist(), granularity=granularity, axis=axis
    )


def calibrate_weight(weight: torch.Tensor, bits: int) -> UniformParams:
    """Per-output-channel weight quantizer (axis 0; a Conv2d weight is flattened per channel)."""
    rows = weight.reshape(weight.shape[0], -1)
    delta, zero = uniform_percentile_mse(rows.t(), bits)
    return UniformParams.from_float_zero_point(
        bits, delta.tolist(), zero.tolist(), granularity="channel", axis=0
    )


def calibrate_sqrt2(x: torch.Tensor, bits: int, variant: str) -> Any:
    """RepQ-ViT's log-√2 Δ: the percentile triplet of ``x``, first minimum of the MSE (start: max)."""
    flat = x.reshape(-1).to(torch.float32)
    best_delta, best_score = flat.max(), 1e10
    for delta in quantiles(flat[:, None], PERCENTILES)[:, 0]:
        score = (flat - sqrt2.reference_forward(flat, delta, bits, variant)).abs().pow(2).mean()
        if score < best_score:
            best_delta, best_score = delta, score
    return softmax_quantizer(variant, bits, delta=float(best_delta))


def calibrate_bitlog2(x: torch.Tensor, attn: str) -> BitLog2Params:
    """BitLog2 δ by the seed's first-minimum MSE search over every integer δ (vectorized)."""
    scheme = attn.removeprefix("bitlog2_")
    return softmax_quantizer(attn, 4, delta=bitlog2.search_delta(x, BitLog2Params(scheme)))


def adalog_search(
    u: torch.Tensor, bits: int, q_candidates: Sequence[int], scale_candidates: Sequence[float]
) -> tuple[int, float]:
    """The ``(q, scale)`` minimizing the squared error of AdaLog levels on ``u = x + shift``.

    Every candidate is scored at once, exactly in float64 from sorted values and prefix sums: the
    values between two consecutive real code boundaries ``scale * 2**(-(2j+1) q / 74)`` share one
    code, so each candidate costs ``2**bits`` binary searches. The code of ``u`` is the number of
    boundaries above it, capped at the reference's clamp code; the zero code's level is 0.
    Returns the first minimum in (q, then scale) order.
    """
    values = torch.sort(u.reshape(-1).to(torch.float64)).values
    n = values.numel()
    zero = torch.zeros(1, dtype=torch.float64)
    p1 = torch.cat([zero, values.cumsum(0)])
    p2 = torch.cat([zero, (values * values).cumsum(0)])
    codes = 1 << bits
    q = torch.tensor(list(q_candidates), dtype=torch.float64)[:, None, None]
    scale = torch.tensor(list(scale_candidates), dtype=torch.float64)[None, :, None]
    j = torch.arange(codes, dtype=torch.float64)
    boundaries = scale * torch.exp2(-(2 * j + 1) * q / 74.0)  # [Q, S, codes], decreasing in j
    below = torch.searchsorted(values, boundaries.reshape(-1)).reshape(boundaries.shape)
    shape = below.shape[:-1]
    upper = torch.cat([torch.full((*shape, 1), n), below], dim=-1)  # count == c: index in [b_c, b_{c-1})
    lower = torch.cat([below, torch.zeros((*shape, 1), dtype=torch.int64)], dim=-1)
    count = (upper - lower).to(torch.float64)
    s1, s2 = p1[upper] - p1[lower], p2[upper] - p2[lower]
    unit_levels = []
    for candidate in q_candidates:
        params = AdaLogParams(bits=bits, q=int(candidate))
        table = [params.level(min(c, params.clamp_code)) for c in range(codes + 1)]
        unit_levels.append(table)
    level = torch.tensor(unit_levels, dtype=torch.float64)[:, None, :] * scale  # [Q, S, codes + 1]
    sse = (s2 - 2 * level * s1 + level * level * count).sum(dim=-1)
    best = int(torch.argmin(sse.reshape(-1)))
    return int(q_candidates[best // sse.shape[1]]), float(scale_candidates[best % sse.shape[1]])


def _q_candidates() -> list[int]:
    return list(range(ADALOG_Q_RANGE[0], ADALOG_Q_RANGE[1] + 1))


def calibrate_adalog_softmax(x: torch.Tensor, bits: int) -> AdaLogParams:
    """AdaLog post-softmax (scale 1, shift 0): q in 10..137 by the squared error of the attention."""
    q, _ = adalog_search(x, bits, _q_candidates(), [1.0])
    return softmax_quantizer("adalog", bits, q=q)


def calibrate_adalog_gelu(x: torch.Tensor, bits: int) -> AdaLogParams:
    """AdaLog post-GELU (shift 0.16997...): q in 10..137 and a geometric ladder of scales below
    ``max(x + shift)`` (:data:`ADALOG_GELU_SCALE_STEPS` steps of 2**(1/8)), by squared error."""
    u = x.to(torch.float32) + torch.tensor([ADALOG_GELU_SHIFT], dtype=torch.float32)
    top = max(float(u.max()), 1e-6)
    scales = [top * 2.0 ** (-i / 8) for i in range(ADALOG_GELU_SCALE_STEPS)]
    q, scale = adalog_search(u, bits, _q_candidates(), scales)
    input_bits, frac_bits = gelu_grid(scale)
    return AdaLogParams(
        bits=bits,
        q=q,
        scale=scale,
        shift=ADALOG_GELU_SHIFT,
        input_bits=input_bits,
        input_frac_bits=frac_bits,
        input_signed=True,
    )


def _is_post_layernorm(site: str) -> bool:
    return site.endswith(".attn.qkv") or site.endswith(".mlp.fc1")


class RepQCalibrator:
    """Hooks for :func:`golden.vit.fakequant_forward` that calibrate each quantizer the first
    time its site is reached, then fake-quantize with it (RepQ-ViT's first pass).

    Attributes
    ----------
    activations : dict
        Calibrated activation quantizers by site (post-LN sites only after :meth:`reparameterize`).
    channel_ranges : dict
        The post-LN sites' per-channel ``(delta, zero_point)`` float32 tensors (RepQ's, unclamped).
    weights : dict
        Per-output-channel weight quantizers by layer.
    """

    def __init__(self, config: Any, on_calibrated: Any = None):
        self.config = config
        self.activations: dict[str, Any] = {}
        self.channel_ranges: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.weights: dict[str, UniformParams] = {}
        self._on_calibrated = on_calibrated

    def _calibrate(self, site: str, x: torch.Tensor) -> Any:
        c = self.config
        if site == "patch_embed":
            return calibrate_uniform(x, PATCH_INPUT_BITS)
        if site.endswith((".attn.q", ".attn.k", ".attn.v")):
            return calibrate_uniform(x, c.abits, axis=1 if c.qkv_granularity == "head" else None)
        if site.endswith(".attn.probs"):
            if c.attn == "uniform":
                return calibrate_uniform(x, c.abits)
            if c.attn.startswith("sqrt2"):
                return calibrate_sqrt2(x, c.abits, c.attn)
            if c.attn.startswith("bitlog2"):
                return calibrate_bitlog2(x, c.attn)
            return calibrate_adalog_softmax(x, c.abits)
        if site.endswith(".mlp.fc2") and c.gelu == "adalog":
            return calibrate_adalog_gelu(x, c.abits)
        return calibrate_uniform(x, c.abits)

    def activation(self, site: str, x: torch.Tensor) -> torch.Tensor:
        if _is_post_layernorm(site):
            if site not in self.channel_ranges:
                self.channel_ranges[site] = uniform_percentile_mse(
                    x.reshape(-1, x.shape[-1]), self.config.abits
                )
                self._notify(site)
            delta, zero = self.channel_ranges[site]
            return uniform.repq_reference(x, delta, zero, self.config.abits)
        if site not in self.activations:
            self.activations[site] = self._calibrate(site, x)
            self._notify(site)
        # fc2's bias is reparameterized only at the end: until then AdaLog subtracts its shift.
        return fake_quantize(x, self.activations[site], reparameterized=False)

    def weight(self, layer: str, weight: torch.Tensor) -> torch.Tensor:
        if layer not in self.weights:
            self.weights[layer] = calibrate_weight(weight, self.config.wbits)
        return uniform.fake_quant(weight, self.weights[layer])

    def _notify(self, site: str) -> None:
        if self._on_calibrated is not None:
            self._on_calibrated(site)

    def reparameterize(self, net: Any) -> None:
        """RepQ's post-LN reparameterization of every block, then recalibration of the reset
        qkv/fc1 weight quantizers on the new weights (modifies ``net``)."""
        for i, block in enumerate(net.blocks):
            for ln, layer, site in (
                ("norm1", block.qkv, f"blocks.{i}.attn.qkv"),
                ("norm2", block.fc1, f"blocks.{i}.mlp.fc1"),
            ):
                delta, zero = self.channel_ranges[site]
                result = reparam.repq_layernorm_reparam(
                    getattr(block, f"{ln}_weight"),
                    getattr(block, f"{ln}_bias"),
                    layer.weight,
                    layer.bias,
                    delta,
                    zero,
                )
                setattr(block, f"{ln}_weight", result.ln_weight)
                setattr(block, f"{ln}_bias", result.ln_bias)
                layer.weight, layer.bias = result.weight, result.bias
                self.activations[site] = UniformParams.from_float_zero_point(
                    self.config.abits, float(result.delta), float(result.zero_point)
                )
                self.weights[site] = calibrate_weight(layer.weight, self.config.wbits)


@torch.no_grad()
def calibrate_repq(context: Any) -> QuantizedViTParams:
    """The ``repq`` method of :mod:`calib.pipeline` (see the module docstring)."""
    config, net, stages = context.config, context.net, context.stages
    with stages.stage("pass 1: lazy calibration in network order"):
        bar = stages.bar(len(site_names(net.structure.depth)), "quantizers")
        calibrator = RepQCalibrator(config, on_calibrated=lambda site: bar.update(1))
        fakequant_forward(net, context.images, calibrator)
        bar.close()
    with stages.stage("LayerNorm reparameterization + weight recalibration (pass 2)"):
        calibrator.reparameterize(net)
    with stages.stage("assemble parameters"):
        return build_params(net, config, calibrator.activations, calibrator.weights)
