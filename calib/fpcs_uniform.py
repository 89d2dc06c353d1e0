"""FPCS objectives of AdaLog's uniform quantizers (Linear weights and inputs).

Each class states the reference's objective for one kind of search, its straightforward expression
(:meth:`reference_score`: codes from the golden quantizer, exact dequantized values, float64) and
the fast evaluation of all candidates (:meth:`fast_scores`). Scores follow the reference's
reductions: the squared error, averaged over the output features, then over the tokens, then
summed over the images (``Sum_b mean_t mean_o``). With every image of the same size this is the
total squared error divided by a constant, which the fast scores use.

Fast scores, all float64 from exact integer parts:

* weight MSE: direct, batched;
* input MSE: sorted prefix sums (:mod:`calib.fpcs_sorted`);
* output MSE, weight candidates: ``||X w_hat - y||^2 = s^2 k'Gk - 2 s k'(X'y) + y'y`` with the input
  Gram ``G = X'X`` computed once, ``k'Gk`` once per distinct code vector (late FPCS steps repeat
  codes and only move the scale);
* output MSE, input candidates: ``||X_hat W'- Y||^2 = s^2 <K'K, W'W> - 2 <X_hat, Y W> + Y'Y`` with the
  code Gram ``K'K`` an int8 product (exact) and ``<X_hat, Y W>`` from sorted prefix sums.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from calib.fpcs_core import Candidates, FastScores, Problem, relative_radius
from calib.fpcs_exact import uniform_exact, uniform_integers, uniform_integers_into
from calib.fpcs_grams import dedupe_rows, int8_gram, quadratic_rows, row_classes, scale_key
from calib.fpcs_sorted import SortedColumns

__all__ = [
    "WeightSelfProblem",
    "ActivationSelfProblem",
    "ChannelActivationSelfProblem",
    "WeightOutputProblem",
    "ActivationOutputProblem",
]

_CHUNK = 16


def _token_sum(d2: torch.Tensor) -> float:
    """Mean over the token axes (all but the first), then the sum over images."""
    if d2.ndim > 1:
        d2 = d2.mean(dim=tuple(range(1, d2.ndim)))
    return float(d2.sum())


def _levels(scale: torch.Tensor, zero_point: torch.Tensor, qmax: int) -> torch.Tensor:
    """Exact value ``(c - z) * s`` of every code ``c`` (float64, (P, G, qmax + 1))."""
    codes = torch.arange(qmax + 1, dtype=torch.float64)
    return (codes[None, None, :] - torch.round(zero_point).double()[:, :, None]) * scale.double()[:, :, None]


def _weight_codes(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct code rows of candidates (P, G, n) and the index (P, G) of each candidate's row."""
    count, groups, width = codes.shape
    unique, inverse = dedupe_rows(codes.reshape(count * groups, width).to(torch.int16))
    return unique, inverse.reshape(count, groups)


def _weight_classes(code_index: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Classes of candidates with the same scale and code row (so the same ``k * s``)."""
    return row_classes(torch.cat([scale_key(scale), code_index[:, :, None]], dim=2))


class WeightSelfProblem(Problem):
    """Per-output-channel weight search on the weight's own MSE (``_search_best_w_scale_self``).

    Parameters
    ----------
    weight : Tensor (out, in)
        The weight (a Conv2d weight flattened to (out, in*kh*kw)).
    bits : int
        Weight bits.
    """

    def __init__(self, weight: torch.Tensor, bits: int, band: float = 1e-9) -> None:
        self.weight = weight.detach().reshape(weight.shape[0], -1).to(torch.float32).contiguous()
        self.bits, self.band = bits, band
        self.groups = self.weight.shape[0]

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        w = self.weight[group]
        w_hat = uniform_exact(w, candidate["scale"], candidate["zero_point"], self.bits)
        return float(((w.double() - w_hat) ** 2).mean())

    def fast_scores(self, candidates: Candidates) -> FastScores:
        scale, zero_point = candidates["scale"], candidates["zero_point"]
        codes = uniform_integers(self.weight[None], scale[:, :, None], zero_point[:, :, None], self.bits)
        values = torch.empty(scale.shape, dtype=torch.float64)
        w = self.weight.double()[None]
        for start in range(0, scale.shape[0], _CHUNK):
            part = slice(start, start + _CHUNK)
            w_hat = codes[part].double() * scale[part].double()[:, :, None]
            values[part] = ((w - w_hat) ** 2).mean(dim=-1)
        _, code_index = _weight_codes(codes)
        return FastScores(values, relative_radius(values, self.band), _weight_classes(code_index, scale))


class ActivationSelfProblem(Problem):
    """Per-tensor Linear-input search on the input's own MSE (``_search_best_a_scale_self``).

    ``x`` has shape (images, tokens..., in); one group.
    """

    groups = 1

    def __init__(
        self, x: torch.Tensor, bits: int, band: float = 1e-9, sorted_x: SortedColumns | None = None
    ) -> None:
        self.x = x.detach().to(torch.float32).contiguous()
        self.bits, self.band = bits, band
        self.per_image = self.x.numel() // self.x.shape[0]
        self._sorted = sorted_x

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        x_hat = uniform_exact(self.x, candidate["scale"], candidate["zero_point"], self.bits)
        d2 = (self.x.double() - x_hat) ** 2
        if d2.ndim > 2:
            d2 = d2.mean(dim=tuple(range(1, d2.ndim - 1)))
        return float(d2.mean(dim=1).sum())

    def fast_scores(self, candidates: Candidates) -> FastScores:
        if self._sorted is None:
            self._sorted = SortedColumns(self.x.reshape(1, -1))
        scale, zero_point = candidates["scale"], candidates["zero_point"]
        qmax = 2**self.bits - 1
        starts = self._sorted.level_starts(scale, zero_point, qmax)
        values = self._sorted.squared_error(starts, _levels(scale, zero_point, qmax)) / self.per_image
        classes = row_classes(SortedColumns.classes_key(starts, scale, zero_point))
        return FastScores(values, relative_radius(values, self.band), classes)


class ChannelActivationSelfProblem(Problem):
    """Per-input-channel search on the input's own MSE, before the post-LayerNorm
    reparameterization (``channel_wise=True``): one group per channel of the last axis."""

    def __init__(self, x: torch.Tensor, bits: int, band: float = 1e-9) -> None:
        x = x.detach().to(torch.float32)
        self.columns = x.reshape(x.shape[0], -1, x.shape[-1]).permute(2, 0, 1).contiguous()
        self.bits, self.band = bits, band
        self.groups, _, self.tokens = self.columns.shape
        self._sorted: SortedColumns | None = None

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        column = self.columns[group]
        x_hat = uniform_exact(column, candidate["scale"], candidate["zero_point"], self.bits)
        return float(((column.double() - x_hat) ** 2).mean(dim=1).sum())

    def fast_scores(self, candidates: Candidates) -> FastScores:
        if self._sorted is None:
            self._sorted = SortedColumns(self.columns.reshape(self.groups, -1))
        scale, zero_point = candidates["scale"], candidates["zero_point"]
        qmax = 2**self.bits - 1
        starts = self._sorted.level_starts(scale, zero_point, qmax)
        values = self._sorted.squared_error(starts, _levels(scale, zero_point, qmax)) / self.tokens
        classes = row_classes(SortedColumns.classes_key(starts, scale, zero_point))
        return FastScores(values, relative_radius(values, self.band), classes)


class WeightOutputProblem(Problem):
    """Per-output-channel weight search on the layer output's MSE with the input quantized
    (``_search_best_w_scale``; also the patch-embedding convolution on unfolded patches).

    Parameters
    ----------
    x_hat : Tensor (images, tokens..., in), float64
        The exact dequantized layer input (full precision where the reference leaves it so).
    raw_out : Tensor (images, tokens..., out)
        The full-precision layer output.
    weight : Tensor (out, in); bias : Tensor (out,) or None
    input_codes : Tensor (images, tokens..., in), optional
        Integer codes with ``x_hat = input_codes * input_scale`` (a per-tensor uniform input), so
        the input Gram is an exact int8 product.
    """

    def __init__(
        self,
        x_hat: torch.Tensor,
        raw_out: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        bits: int,
        band: float = 1e-9,
        input_codes: torch.Tensor | None = None,
        input_scale: float | None = None,
    ) -> None:
        self.images = x_hat.shape[0]
        self.x = x_hat.detach().reshape(-1, x_hat.shape[-1]).to(torch.float64).contiguous()
        self.raw_columns = raw_out.detach().reshape(-1, raw_out.shape[-1]).to(torch.float32).t().contiguous()
        self.weight = weight.detach().reshape(weight.shape[0], -1).to(torch.float32).contiguous()
        self.bias = None if bias is None else bias.detach().to(torch.float32)
        self.bits, self.band = bits, band
        self.groups = self.weight.shape[0]
        self.input_codes = None if input_codes is None else input_codes.reshape(-1, x_hat.shape[-1])
        self.input_scale = input_scale
        self._gram: torch.Tensor | None = None

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        w_hat = uniform_exact(self.weight[group], candidate["scale"], candidate["zero_point"], self.bits)
        out = self.x @ w_hat
        if self.bias is not None:
            out = out + float(self.bias[group])
        d2 = (self.raw_columns[group].double() - out) ** 2
        return _token_sum(d2.reshape(self.images, -1))

    def _prepare(self) -> None:
        target = self.raw_columns.double().t()
        if self.bias is not None:
            target = target - self.bias.double()
        if self.input_codes is not None:
            self._gram = int8_gram_scaled(self.input_codes, self.input_scale)
        else:
            self._gram = self.x.t() @ self.x
        self._cross = self.x.t() @ target  # (in, out)
        self._energy = (target * target).sum(dim=0)  # (out,)

    def fast_scores(self, candidates: Candidates) -> FastScores:
        if self._gram is None:
            self._prepare()
        scale, zero_point = candidates["scale"], candidates["zero_point"]
        count, groups = scale.shape
        codes = uniform_integers(self.weight[None], scale[:, :, None], zero_point[:, :, None], self.bits)
        unique, code_index = _weight_codes(codes)
        quadratic = quadratic_rows(unique, self._gram)[code_index]
        s = scale.double()
        linear = torch.einsum("pgi,ig->pg", codes.double(), self._cross) * s
        tokens = self.x.shape[0] // self.images
        values = (s * s * quadratic - 2 * linear + self._energy[None, :]) / tokens
        return FastScores(values, relative_radius(values, self.band), _weight_classes(code_index, scale))


def int8_gram_scaled(codes: torch.Tensor, scale: float | None) -> torch.Tensor:
    """``(s K)'(s K)`` from the exact integer Gram of the codes ``K`` (rows, n)."""
    s = float(torch.tensor(scale, dtype=torch.float32))
    return int8_gram(codes) * (s * s)


class ActivationOutputProblem(Problem):
    """Per-tensor Linear-input search on the layer output's MSE with the weight quantized
    (``_search_best_a_scale``); one group.

    Parameters
    ----------
    x : Tensor (images, tokens..., in)
        Full-precision layer input.
    raw_out : Tensor (images, tokens..., out)
        Full-precision layer output.
    weight_hat : Tensor (out, in), float64
        The exact dequantized weight; ``bias`` the layer's.
    """

    groups = 1

    def __init__(
        self,
        x: torch.Tensor,
        raw_out: torch.Tensor,
        weight_hat: torch.Tensor,
        bias: torch.Tensor | None,
        bits: int,
        band: float = 1e-9,
        sorted_x: SortedColumns | None = None,
    ) -> None:
        self.x = x.detach().to(torch.float32).contiguous()
        self.raw = raw_out.detach().to(torch.float32).contiguous()
        self.weight = weight_hat.detach().to(torch.float64).contiguous()
        self.bias = None if bias is None else bias.detach().to(torch.float64)
        self.bits, self.band = bits, band
        self._sorted = sorted_x
        self._prepared = False

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        x_hat = uniform_exact(self.x, candidate["scale"], candidate["zero_point"], self.bits)
        out = torch.nn.functional.linear(x_hat, self.weight, self.bias)
        return _token_sum(((self.raw.double() - out) ** 2).mean(dim=-1))

    def _prepare(self) -> None:
        self.flat = self.x.reshape(-1, self.x.shape[-1])
        target = self.raw.reshape(-1, self.raw.shape[-1]).double()
        if self.bias is not None:
            target = target - self.bias
        self._gram = self.weight.t() @ self.weight
        if self._sorted is None:
            self._sorted = SortedColumns(self.flat.reshape(1, -1))
        self._cross_sums = self._sorted.prefix_sums((target @ self.weight).reshape(1, -1))
        self._energy = float((target * target).sum())
        self._prepared = True

    def fast_scores(self, candidates: Candidates) -> FastScores:
        if not self._prepared:
            self._prepare()
        scale, zero_point = candidates["scale"], candidates["zero_point"]
        qmax = 2**self.bits - 1
        starts = self._sorted.level_starts(scale, zero_point, qmax)
        linear = (_levels(scale, zero_point, qmax) * SortedColumns.run_sums(self._cross_sums, starts)).sum(2)
        quadratic = torch.empty(scale.shape[0], dtype=torch.float64)
        buffer = torch.empty_like(self.flat)
        for index in range(scale.shape[0]):
            codes = uniform_integers_into(buffer, self.flat, scale[index, 0], zero_point[index, 0], self.bits)
            quadratic[index] = (int8_gram(codes, qmax) * self._gram).sum()
        s = scale.double()
        total = s * s * quadratic[:, None] - 2 * linear + self._energy
        per_image = self.flat.shape[0] // self.x.shape[0] * self.raw.shape[-1]
        values = total / per_image
        classes = row_classes(SortedColumns.classes_key(starts, scale, zero_point))
        return FastScores(values, relative_radius(values, self.band), classes)
