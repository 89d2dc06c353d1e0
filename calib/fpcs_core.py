"""The FPCS machinery shared by every search: configuration, scoring problems, selection, timing.

A *problem* scores candidates of one search (a weight, an activation, a matmul operand, an AdaLog
base) against the reference's objective. It offers two scorers:

* :meth:`Problem.reference_score` — the straightforward expression for ONE candidate in ONE group:
  codes from the golden quantizer, their exact dequantized values, the layer's product and the
  squared error in float64, reduced as the reference reduces it (mean over the output and token
  axes, sum over images). The straightforward implementation calls it for every candidate; the
  fast one calls the *same function* to re-score near-ties, so the two agree by construction
  wherever it is used.
* :meth:`Problem.fast_scores` — every candidate at once, from exact integer Grams, sorted prefix
  sums or cached products, with a radius per score that bounds its distance to the reference
  score, and classes of candidates whose scores are provably equal.

:func:`choose` turns either into the reference's top-``k`` (see :mod:`calib.fpcs_select`).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping

import torch

from calib.fpcs_select import Tier, TierStats, select_exact, select_tiered

__all__ = [
    "FpcsConfig",
    "Problem",
    "SearchContext",
    "Candidates",
    "choose",
    "relative_radius",
    "FastScores",
]

#: Named candidate tensors, each of shape (P, G): e.g. ``{"scale": ..., "zero_point": ...}``.
Candidates = Mapping[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class FpcsConfig:
    """FPCS settings: AdaLog's ``configs/{3,4,6}bit.py`` values and our selection tolerances.

    Attributes
    ----------
    eq_n : int
        Candidates per step (128).
    width : int
        Survivors kept per refinement step (16; the post-GELU base/scale search keeps 32).
    steps : int
        Steps per FPCS search including the first grid step (6: five refinements).
    rounds : int
        Alternating rounds of a layer's searches (``search_round = 3``).
    band : float
        Relative bound of ``|fast score - straightforward score|`` for fast scores computed in
        float64 from exact integer products (both sides carry only float64 rounding).
    band_float32 : float
        The same for fast scores computed with float32 products (a screening tier).
    """

    eq_n: int = 128
    width: int = 16
    steps: int = 6
    rounds: int = 3
    band: float = 1e-9
    band_float32: float = 1e-4

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise ValueError(f"FPCS needs at least 2 steps (a grid and a refinement), not {self.steps}")
        if self.eq_n % self.width:
            raise ValueError(f"eq_n ({self.eq_n}) must be a multiple of width ({self.width})")


@dataclasses.dataclass
class SearchContext:
    """How a search runs and what it records: implementation, settings, statistics, wall times."""

    config: FpcsConfig = dataclasses.field(default_factory=FpcsConfig)
    fast: bool = True
    stats: TierStats = dataclasses.field(default_factory=TierStats)
    #: Wall seconds per stage name (accumulated).
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Accumulate the wall time of the enclosed block under ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def relative_radius(values: torch.Tensor, band: float) -> torch.Tensor:
    """``band * |values|`` plus a floor for scores that are exactly zero."""
    return values.abs() * band + 1e-300


@dataclasses.dataclass
class FastScores:
    """What :meth:`Problem.fast_scores` returns.

    Attributes
    ----------
    values, radii : Tensor (P, G) float64
        First-tier estimates of the reference scores and bounds of their distance to them.
    classes : Tensor (P, G) int64 or None
        Lowest index of a candidate with provably the same reference score (the same exact
        dequantized tensor); ``None``: all distinct.
    tiers : list of Tier
        More exact tiers to consult, cheapest first, before the reference expression.
    """

    values: torch.Tensor
    radii: torch.Tensor
    classes: torch.Tensor | None = None
    tiers: list[Tier] = dataclasses.field(default_factory=list)


class Problem(abc.ABC):
    """One search objective over candidates of shape (P, G)."""

    #: Number of independent groups (channels, heads, or 1 for a per-tensor quantizer).
    groups: int

    @abc.abstractmethod
    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        """The straightforward score of one candidate (0-d tensors) in one group."""

    @abc.abstractmethod
    def fast_scores(self, candidates: Candidates) -> FastScores:
        """All candidates at once (see :class:`FastScores`)."""

    def reference_matrix(self, candidates: Candidates) -> torch.Tensor:
        """:meth:`reference_score` of every candidate and group, float64 (P, G)."""
        count, groups = next(iter(candidates.values())).shape
        scores = torch.empty((count, groups), dtype=torch.float64)
        for p in range(count):
            for g in range(groups):
                scores[p, g] = self.reference_score({k: v[p, g] for k, v in candidates.items()}, g)
        return scores

    def reference_tier(self, candidates: Candidates) -> Tier:
        """The last tier of :func:`select_tiered`: the reference expression, radius 0."""

        def score(p: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            values = torch.tensor(
                [
                    self.reference_score({k: v[i, j] for k, v in candidates.items()}, j)
                    for i, j in zip(p.tolist(), g.tolist())
                ],
                dtype=torch.float64,
            )
            return values, torch.zeros_like(values)

        return Tier("reference", score)


def choose(problem: Problem, candidates: Candidates, k: int, context: SearchContext) -> torch.Tensor:
    """Indices (k, G) of the ``k`` best candidates per group, best first, ties by lower index.

    The straightforward implementation (``context.fast`` false) scores every candidate with the
    reference expression; the fast one uses :meth:`Problem.fast_scores` and re-scores only
    near-ties. Both return the same indices.
    """
    if not context.fast:
        scores = problem.reference_matrix(candidates)
        context.stats.add("reference", scores.numel())
        return select_exact(scores, k)
    fast = problem.fast_scores(candidates)
    context.stats.add("fast", fast.values.numel())
    tiers = [*fast.tiers, problem.reference_tier(candidates)]
    return select_tiered((fast.values, fast.radii), tiers, k, fast.classes, context.stats)
