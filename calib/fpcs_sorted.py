"""Sorted views of a tensor for exact per-level sums of a uniform quantizer, without quantizing it.

A uniform code ``clamp(round(x / s) + z, 0, qmax)`` is a non-decreasing function of ``x`` (float32
division and rounding are monotone), so on the sorted values the elements of each code form one
contiguous run. :meth:`SortedColumns.level_starts` finds where each run starts by binary search,
evaluating the golden model's own float32 code expression at the probed values, so the runs are
exactly the golden codes. Sums over a run of any per-element weight are then two lookups in a
float64 prefix sum (accumulated in blocks, so its rounding error stays near that of a pairwise
sum).
"""

from __future__ import annotations

import math

import torch

from calib.fpcs_exact import uniform_codes
from calib.fpcs_grams import scale_key

__all__ = ["SortedColumns", "blocked_cumsum"]

_BLOCK = 1024


def blocked_cumsum(values: torch.Tensor) -> torch.Tensor:
    """Inclusive float64 prefix sums along the last axis, summed within blocks of 1024 and then
    across blocks: the error grows with ``1024 + n / 1024`` rather than ``n``."""
    values = values.to(torch.float64)
    length = values.shape[-1]
    padded = torch.nn.functional.pad(values, (0, (-length) % _BLOCK))
    blocks = padded.reshape(*values.shape[:-1], -1, _BLOCK)
    inner = torch.cumsum(blocks, dim=-1)
    offsets = torch.cumsum(inner[..., -1], dim=-1) - inner[..., -1]
    return (inner + offsets[..., None]).reshape(*values.shape[:-1], -1)[..., :length]


class SortedColumns:
    """Columns of values, each sorted, with float64 prefix sums of chosen weights.

    Parameters
    ----------
    values : Tensor, float32, shape (G, n)
        One row per group (a per-tensor quantizer has one row of all elements).
    """

    def __init__(self, values: torch.Tensor) -> None:
        self.sorted, self.order = torch.sort(values.to(torch.float32), dim=1, stable=True)
        self.groups, self.size = self.sorted.shape
        self._iterations = max(1, math.ceil(math.log2(self.size + 1)))
        self._x_sums = self.prefix_sums(values)
        self._x2_sums = self.prefix_sums(values.to(torch.float64) ** 2)

    def prefix_sums(self, weights: torch.Tensor) -> torch.Tensor:
        """Float64 prefix sums (G, n + 1) of ``weights`` (G, n, in the element order of ``values``)
        taken in sorted order."""
        ordered = torch.gather(weights.to(torch.float64), 1, self.order)
        return torch.nn.functional.pad(blocked_cumsum(ordered), (1, 0))

    def level_starts(self, scale: torch.Tensor, zero_point: torch.Tensor, qmax: int) -> torch.Tensor:
        """Start index (P, G, qmax + 2) of every code's run for candidates (P, G): entry ``c`` is the
        number of elements with code below ``c`` (entry 0 is 0, entry ``qmax + 1`` is ``n``)."""
        count, groups = scale.shape
        shape = (count, groups, qmax)
        s = scale[:, :, None].expand(shape)
        z = zero_point[:, :, None].expand(shape)
        c = torch.arange(1, qmax + 1, dtype=torch.float32)[None, None, :].expand(shape)
        group = torch.arange(groups)[None, :, None].expand(shape)
        lo = torch.zeros(shape, dtype=torch.int64)
        hi = torch.full(shape, self.size, dtype=torch.int64)
        for _ in range(self._iterations):
            mid = (lo + hi) // 2
            probe = self.sorted[group, mid.clamp(max=self.size - 1)]
            reached = (uniform_codes(probe, s, z, qmax) >= c) | (mid >= self.size)
            hi = torch.where(reached, mid, hi)
            lo = torch.where(reached, lo, mid + 1)
        first = torch.zeros((count, groups, 1), dtype=torch.int64)
        last = torch.full((count, groups, 1), self.size, dtype=torch.int64)
        return torch.cat([first, lo, last], dim=2)

    @staticmethod
    def run_sums(sums: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Per-run totals (P, G, L) of a prefix-sum table (G, n + 1) for run starts (P, G, L + 1)."""
        at = torch.gather(sums[None].expand(starts.shape[0], -1, -1), 2, starts)
        return at[:, :, 1:] - at[:, :, :-1]

    def squared_error(self, starts: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """``sum (x - x_hat)^2`` per candidate and group (float64, (P, G)) where every element of run
        ``c`` dequantizes to ``levels[..., c]`` (float64, (P, G, L))."""
        s1 = self.run_sums(self._x_sums, starts)
        s2 = self.run_sums(self._x2_sums, starts)
        counts = (starts[:, :, 1:] - starts[:, :, :-1]).to(torch.float64)
        return (s2 - 2 * levels * s1 + levels * levels * counts).sum(dim=2)

    @staticmethod
    def classes_key(starts: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        """Integer keys (P, G, ·) equal for two candidates only if they dequantize every element to
        the same exact value: the scale, then ``(start, c - z)`` of each non-empty run in order."""
        count, groups, runs = starts.shape[0], starts.shape[1], starts.shape[2] - 1
        nonempty = starts[:, :, 1:] > starts[:, :, :-1]
        # Non-empty runs first, in order (a stable sort on the "empty" flag).
        order = torch.sort((~nonempty).to(torch.int8), dim=2, stable=True).indices
        kept = torch.gather(nonempty, 2, order)
        run_start = torch.where(kept, torch.gather(starts[:, :, :-1], 2, order), -1)
        code = order.to(torch.float32) - torch.round(zero_point)[:, :, None]
        run_code = torch.where(kept, code.to(torch.int64), 0)
        pairs = torch.stack([run_start, run_code], dim=3).reshape(count, groups, 2 * runs)
        return torch.cat([scale_key(scale), pairs], dim=2)
