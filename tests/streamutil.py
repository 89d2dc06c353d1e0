"""Small helpers shared by the stream tests."""

from __future__ import annotations

from cosim.jobs import Check


def assert_all_passed(checks: list[Check]) -> None:
    """Every check compared at least one vector and found no mismatch."""
    assert checks, "no checks ran"
    bad = [(c.job, c.port, c.mismatches, c.first_mismatch, c.timed_out) for c in checks if not c.passed]
    assert not bad, f"mismatches: {bad}"
