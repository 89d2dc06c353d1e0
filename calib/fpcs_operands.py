"""FPCS objective of a per-head uniform attention-matmul operand (``q``, ``k^T`` of ``q @ k^T``, or
``V`` of ``A @ V``), with the other operand already quantized (``_search_best_A_scale`` /
``_search_best_B_scale`` of AdaLog's ``AsymmetricallyBatchingQuantMatMul``).

The score of head ``h`` is ``Sum_b mean_ij (raw - out)^2`` with ``out = x_hat @ other`` (``side =
"left"``) or ``other @ x_hat`` (``"right"``). The fast score takes one of two routes:

* Gram route, when the contracted axis is the short one (``q`` and ``k``: head dim 64 against 197
  tokens): ``||x_hat_b Y_b - raw_b||^2 = s^2 <K_b' K_b, Y_b Y_b'> - 2 <x_hat_b, raw_b Y_b'> +
  ||raw_b||^2``. Both Grams are products of small integers (float32 holds them exactly), so the
  quadratic term is an exact integer; the linear term comes from sorted prefix sums.
* Direct route otherwise (``V``, contracted over the 197 keys): a float32 product screens the
  candidates (the float32 band), a float64 product re-scores the close ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from calib.fpcs_core import Candidates, FastScores, Problem, relative_radius
from calib.fpcs_exact import uniform_exact, uniform_integers, uniform_integers_into
from calib.fpcs_grams import row_classes
from calib.fpcs_select import Tier
from calib.fpcs_sorted import SortedColumns

__all__ = ["OperandProblem"]

_CHUNK = 8


class OperandProblem(Problem):
    """Per-head search of one operand of a batched matmul.

    Parameters
    ----------
    target : Tensor (B, H, m, n)
        The operand whose quantizer is searched (full precision).
    other_hat : Tensor (B, H, ...), float64
        The exact dequantized other operand.
    raw_out : Tensor (B, H, M, N)
        The full-precision product.
    side : {"left", "right"}
        ``out = target_hat @ other`` or ``other @ target_hat``.
    other_codes, other_scale : Tensor, optional
        Integer codes (same shape as ``other_hat``) and per-head scales (H,) with
        ``other_hat = other_codes * other_scale``: the Gram route's fixed Gram is then exact.
    """

    def __init__(
        self,
        target: torch.Tensor,
        other_hat: torch.Tensor,
        raw_out: torch.Tensor,
        side: str,
        bits: int,
        band: float = 1e-9,
        band_float32: float = 1e-4,
        other_codes: torch.Tensor | None = None,
        other_scale: torch.Tensor | None = None,
    ) -> None:
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', not {side!r}")
        self.target = target.detach().to(torch.float32).contiguous()
        self.other = other_hat.detach().to(torch.float64).contiguous()
        self.raw = raw_out.detach().to(torch.float32).contiguous()
        self.side, self.bits = side, bits
        self.band, self.band_float32 = band, band_float32
        self.other_codes, self.other_scale = other_codes, other_scale
        self.groups = self.target.shape[1]
        self._prepared = False

    def _product(self, x_hat: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return x_hat @ other if self.side == "left" else other @ x_hat

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        x_hat = uniform_exact(self.target[:, group], candidate["scale"], candidate["zero_point"], self.bits)
        d2 = (self.raw[:, group].double() - self._product(x_hat, self.other[:, group])) ** 2
        return float(d2.mean(dim=(1, 2)).sum())

    # -- fast scores -------------------------------------------------------------------------
    def _orient(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rows-times-fixed orientation: the searched operand's rows contract over its last axis."""
        return tensor if self.side == "left" else tensor.transpose(-1, -2)

    def _prepare(self) -> None:
        rows = self._orient(self.target).contiguous()  # (B, H, M, d): contracted over d
        rows = rows.transpose(0, 1).contiguous().transpose(0, 1)  # each head contiguous
        raw = self._orient(self.raw)
        self.rows = rows
        self.gram_route = rows.shape[-1] < rows.shape[-2]
        self.per_image = raw.shape[-1] * raw.shape[-2]
        self.energy = (raw.double() ** 2).sum(dim=(0, 2, 3))
        self.sorted = SortedColumns(rows.transpose(0, 1).reshape(self.groups, -1))
        self.raw_oriented = raw
        fixed = self.other if self.side == "left" else self.other.transpose(-1, -2)  # (B, H, d, N)
        self.fixed = fixed
        if self.gram_route:
            if self.other_codes is not None:
                codes = self.other_codes.to(torch.float32)
                codes = codes if self.side == "left" else codes.transpose(-1, -2)
                self.fixed_gram = codes @ codes.transpose(-1, -2)  # small integers: exact in float32
                self.fixed_factor = self.other_scale.double() ** 2
            else:
                self.fixed_gram = fixed @ fixed.transpose(-1, -2)
                self.fixed_factor = torch.ones(self.groups, dtype=torch.float64)
            cross = raw.double() @ fixed.transpose(-1, -2)  # (B, H, M, d)
            self.cross_sums = self.sorted.prefix_sums(cross.transpose(0, 1).reshape(self.groups, -1))
        self._prepared = True

    def fast_scores(self, candidates: Candidates) -> FastScores:
        if not self._prepared:
            self._prepare()
        scale, zero_point = candidates["scale"], candidates["zero_point"]
        qmax = 2**self.bits - 1
        starts = self.sorted.level_starts(scale, zero_point, qmax)
        classes = row_classes(SortedColumns.classes_key(starts, scale, zero_point))
        if self.gram_route:
            values = self._gram_scores(scale, zero_point, starts)
            return FastScores(values, relative_radius(values, self.band), classes)
        values = self._direct_scores(scale, zero_point)
        tier = Tier("float64", lambda p, g: self._pair_scores(candidates, p, g))
        return FastScores(values, relative_radius(values, self.band_float32), classes, [tier])

    def _gram_scores(
        self, scale: torch.Tensor, zero_point: torch.Tensor, starts: torch.Tensor
    ) -> torch.Tensor:
        count = scale.shape[0]
        codes = torch.arange(2**self.bits, dtype=torch.float64)
        levels = (codes[None, None, :] - torch.round(zero_point).double()[:, :, None]) * scale.double()[
            :, :, None
        ]
        linear = (levels * SortedColumns.run_sums(self.cross_sums, starts)).sum(dim=2)
        quadratic = torch.empty((count, self.groups), dtype=torch.float64)
        for head in range(self.groups):
            rows, gram = self.rows[:, head], self.fixed_gram[:, head].double()
            buffer = torch.empty_like(rows)
            for index in range(count):
                k = uniform_integers_into(
                    buffer, rows, scale[index, head], zero_point[index, head], self.bits
                )
                code_gram = torch.bmm(k.transpose(1, 2), k)  # small integers: exact in float32
                quadratic[index, head] = (code_gram.double() * gram).sum()
        s = scale.double()
        total = s * s * quadratic * self.fixed_factor[None, :] - 2 * linear + self.energy[None, :]
        return total / self.per_image

    def _direct_scores(self, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        """The float32 screening tier: ``(K @ fixed) * s`` of every candidate, oriented as rows @ fixed."""
        count = scale.shape[0]
        values = torch.empty((count, self.groups), dtype=torch.float64)
        for head in range(self.groups):
            rows, fixed = self.rows[:, head], self.fixed[:, head].to(torch.float32)
            raw = self.raw_oriented[:, head].double()
            buffer = torch.empty_like(rows)
            for index in range(count):
                k = uniform_integers_into(
                    buffer, rows, scale[index, head], zero_point[index, head], self.bits
                )
                out = (k @ fixed).double() * float(scale[index, head])
                values[index, head] = ((out - raw) ** 2).sum()
        return values / self.per_image

    def _pair_scores(
        self, candidates: Candidates, p: torch.Tensor, g: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The float64 tier: exact-valued products of the requested candidate/head pairs."""
        values = torch.empty(p.shape[0], dtype=torch.float64)
        for index, (i, j) in enumerate(zip(p.tolist(), g.tolist())):
            s, z = candidates["scale"][i, j], candidates["zero_point"][i, j]
            k = uniform_integers(self.target[:, j], s, z, self.bits).double()
            out = self._product(k, self.other[:, j]) * float(s)
            values[index] = ((out - self.raw[:, j].double()) ** 2).sum() / self.per_image
        return values, relative_radius(values, self.band)
