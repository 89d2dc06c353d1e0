"""Top-k selection of FPCS candidates: exact (straightforward) and tiered (fast), same result.

The reference keeps the ``k`` candidates of smallest output MSE, per group, best first
(``torch.topk`` of the negated MSE). Both implementations here order candidates by
``(reference score, candidate index)``: the score first, and the lower index on an exact tie
(``torch.topk`` leaves tie order unspecified; ours is the stable choice).

* :func:`select_exact` takes the reference score of every candidate.
* :func:`select_tiered` takes a cheap first estimate of every score, each known to lie within a
  stated radius of the reference score, and re-scores with more exact tiers (the last is the
  reference expression itself) only the candidates whose intervals overlap a neighbour's inside
  the top-``k`` region. Outside those clusters the interval order *is* the reference order, so both
  functions return the same indices whenever every radius holds. Candidates known to have
  identical reference scores (same ``classes`` id, e.g. the same dequantized tensor) are ordered
  by index without re-scoring, and one re-score serves the whole class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

__all__ = ["Tier", "TierStats", "select_exact", "select_tiered"]

#: A tier scores the candidate/group pairs ``(p, g)`` it is given: returns float64 values and
#: float64 radii (bounds of ``|value - reference score|``), both shaped like ``p``.
TierFunction = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass
class Tier:
    """One scoring tier of :func:`select_tiered`: a ``name`` (for statistics) and ``score(p, g)``."""

    name: str
    score: TierFunction


@dataclasses.dataclass
class TierStats:
    """How many candidate/group pairs each tier scored (accumulates over calls)."""

    evaluated: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Largest ``|final value - estimate| / radius`` observed when a pair was re-scored: evidence
    #: that the stated radii hold (it must stay below 1).
    worst_radius_use: float = 0.0

    def add(self, name: str, count: int) -> None:
        self.evaluated[name] = self.evaluated.get(name, 0) + count


def select_exact(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (k, G) of the ``k`` smallest scores per column of ``scores`` (P, G), best first, ties
    by lower index (a stable sort)."""
    return torch.sort(scores, dim=0, stable=True).indices[:k]


def _unresolved(
    values: torch.Tensor, radii: torch.Tensor, final: torch.Tensor, classes: torch.Tensor, k: int
) -> torch.Tensor:
    """Boolean (P, G): candidates whose order relative to a neighbour of another class is still
    uncertain, inside the clusters (chains of overlapping intervals in value order) that reach the
    top ``k``."""
    order = torch.sort(values, dim=0, stable=True).indices
    lo = torch.gather(values - radii, 0, order)
    hi = torch.gather(values + radii, 0, order)
    reach = torch.cummax(hi, dim=0).values
    starts = torch.ones_like(lo, dtype=torch.bool)
    starts[1:] = lo[1:] > reach[:-1]
    cluster = torch.cumsum(starts.to(torch.int64), dim=0)  # 1-based id per column, in value order
    count = cluster.shape[0]
    table = torch.zeros((count + 1, cluster.shape[1]), dtype=torch.int64)
    sorted_classes = torch.gather(classes, 0, order)
    open_members = table.scatter_add(0, cluster, (~torch.gather(final, 0, order)).to(torch.int64))
    lowest = torch.full_like(table, count).scatter_reduce(0, cluster, sorted_classes, "amin")
    highest = torch.full_like(table, -1).scatter_reduce(0, cluster, sorted_classes, "amax")
    mixed = torch.gather(lowest, 0, cluster) != torch.gather(highest, 0, cluster)
    doubtful = mixed & (torch.gather(open_members, 0, cluster) > 0) & (cluster <= cluster[k - 1 : k])
    return torch.zeros_like(doubtful).scatter(0, order, doubtful)


def select_tiered(
    first: tuple[torch.Tensor, torch.Tensor],
    tiers: Sequence[Tier],
    k: int,
    classes: torch.Tensor | None = None,
    stats: TierStats | None = None,
) -> torch.Tensor:
    """Indices (k, G) of the ``k`` best candidates per group, equal to :func:`select_exact` on the
    reference scores.

    Parameters
    ----------
    first : (Tensor, Tensor)
        Values and radii (P, G), float64, of the cheapest tier for every candidate.
    tiers : sequence of Tier
        The more exact tiers in order; the last must be the reference expression (radius 0).
    k : int
        How many candidates to keep per group.
    classes : Tensor (P, G) int64, optional
        ``classes[p, g]`` is the lowest index of a candidate with provably the same reference score
        (default: every candidate its own class).
    """
    values, radii = first[0].clone().to(torch.float64), first[1].clone().to(torch.float64)
    count, groups = values.shape
    if classes is None:
        classes = torch.arange(count)[:, None].expand(count, groups)
    else:
        # Members of a class have the same reference score: give them their representative's
        # estimate, so that the stable sort orders them by index.
        values, radii = torch.gather(values, 0, classes), torch.gather(radii, 0, classes)
    level = torch.zeros(values.shape, dtype=torch.int64)
    last = len(tiers)
    while True:
        todo = _unresolved(values, radii, level == last, classes, k)
        if not bool(todo.any()):
            break
        # Raise every doubtful class by one tier (one representative each); batch per tier.
        masks = [todo & (level == tier_index) for tier_index in range(last)]  # before any upgrade
        for tier_index, mask in enumerate(masks):
            if not bool(mask.any()):
                continue
            # Members of a class share value, radius and tier, so the class's lowest index is doubtful too.
            p, g = torch.nonzero(mask & (classes == torch.arange(count)[:, None]), as_tuple=True)
            new_values, new_radii = tiers[tier_index].score(p, g)
            new_values, new_radii = new_values.to(torch.float64), new_radii.to(torch.float64)
            if stats is not None:
                stats.add(tiers[tier_index].name, int(p.numel()))
                used = (new_values - values[p, g]).abs() / radii[p, g].clamp(min=1e-300)
                stats.worst_radius_use = max(stats.worst_radius_use, float(used.max()))
            table_values = torch.zeros((count, groups), dtype=torch.float64)
            table_radii = torch.zeros((count, groups), dtype=torch.float64)
            done = torch.zeros((count, groups), dtype=torch.bool)
            table_values[p, g], table_radii[p, g], done[p, g] = new_values, new_radii, True
            members = torch.gather(done, 0, classes) & (level == tier_index)
            values = torch.where(members, torch.gather(table_values, 0, classes), values)
            radii = torch.where(members, torch.gather(table_radii, 0, classes), radii)
            level = torch.where(members, level + 1, level)
    return select_exact(values, k)
