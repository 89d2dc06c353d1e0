"""calib.fpcs_select: the tiered top-k equals the exact top-k whenever the radii hold."""

from __future__ import annotations

import pytest
import torch

from calib.fpcs_select import Tier, TierStats, select_exact, select_tiered


def test_select_exact_orders_by_score_then_index():
    scores = torch.tensor([[3.0, 1.0], [1.0, 1.0], [2.0, 0.5], [1.0, 2.0]], dtype=torch.float64)
    assert select_exact(scores, 3).tolist() == [[1, 2], [3, 0], [2, 1]]


def _noisy_tiers(truth: torch.Tensor, radii: list[float], generator: torch.Generator) -> list[Tier]:
    """Tiers whose values are the truth moved by up to 90 % of their (relative) radius."""
    tiers = []
    for radius in radii:

        def score(p, g, radius=radius):
            value = truth[p, g]
            noise = (torch.rand(value.shape, generator=generator, dtype=torch.float64) * 2 - 1) * 0.9
            return value * (1 + radius * noise), value.abs() * radius

        tiers.append(Tier(f"r{radius}", score))
    tiers.append(Tier("reference", lambda p, g: (truth[p, g], torch.zeros(p.shape, dtype=torch.float64))))
    return tiers


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 4, 16])
def test_tiered_equals_exact(seed, k):
    generator = torch.Generator().manual_seed(seed)
    count, groups = 64, 5
    truth = torch.rand((count, groups), generator=generator, dtype=torch.float64) + 1.0
    # near-ties and exact ties, the cases that need the reference
    truth[10] = truth[11] * (1 + 1e-7)
    truth[20] = truth[21]
    truth[:8] = truth[:8].round(decimals=1)
    first_radius = 1e-2
    noise = (torch.rand(truth.shape, generator=generator, dtype=torch.float64) * 2 - 1) * 0.9
    first = (truth * (1 + first_radius * noise), truth.abs() * first_radius)
    stats = TierStats()
    chosen = select_tiered(first, _noisy_tiers(truth, [1e-4, 1e-9], generator), k, stats=stats)
    assert torch.equal(chosen, select_exact(truth, k))
    assert stats.worst_radius_use < 1
    assert stats.evaluated.get("reference", 0) < count * groups


def test_classes_resolve_ties_without_the_reference():
    truth = torch.tensor([[2.0], [1.0], [1.0], [1.0], [3.0]], dtype=torch.float64)
    classes = torch.tensor([[0], [1], [1], [1], [4]])
    first = (truth.clone(), torch.full_like(truth, 1e-3))
    calls = []

    def reference(p, g):
        calls.append(len(p))
        return truth[p, g], torch.zeros(p.shape, dtype=torch.float64)

    chosen = select_tiered(first, [Tier("reference", reference)], 3, classes)
    assert chosen[:, 0].tolist() == [1, 2, 3]
    assert calls == []


def test_one_reference_score_serves_a_class():
    truth = torch.tensor([[1.0], [1.0 + 1e-12], [1.0 + 1e-12], [5.0]], dtype=torch.float64)
    classes = torch.tensor([[0], [1], [1], [3]])
    first = (truth.clone(), torch.full_like(truth, 1e-6))
    seen = []

    def reference(p, g):
        seen.extend(p.tolist())
        return truth[p, g], torch.zeros(p.shape, dtype=torch.float64)

    chosen = select_tiered(first, [Tier("reference", reference)], 2, classes)
    assert chosen[:, 0].tolist() == [0, 1]
    assert sorted(seen) == [0, 1]


def test_a_radius_that_does_not_hold_is_visible_in_the_statistics():
    truth = torch.tensor([[1.0], [1.1]], dtype=torch.float64)
    first = (
        torch.tensor([[1.05], [1.06]], dtype=torch.float64),
        torch.full((2, 1), 0.02, dtype=torch.float64),
    )
    stats = TierStats()
    select_tiered(
        first, [Tier("reference", lambda p, g: (truth[p, g], torch.zeros(p.shape)))], 1, stats=stats
    )
    assert stats.worst_radius_use > 1


def test_class_members_take_the_representatives_estimate():
    truth = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    first = (
        torch.tensor([[1.0 + 1e-15], [1.0]], dtype=torch.float64),
        torch.full((2, 1), 1e-9, dtype=torch.float64),
    )
    reference = Tier("reference", lambda p, g: (truth[p, g], torch.zeros(p.shape, dtype=torch.float64)))
    chosen = select_tiered(first, [reference], 2, torch.tensor([[0], [0]]))
    assert chosen[:, 0].tolist() == [0, 1]
