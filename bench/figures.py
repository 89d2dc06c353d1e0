"""One measured figure (or the reason it was skipped), and timing helpers."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Figure", "format_value", "skipped", "median_seconds"]


@dataclasses.dataclass
class Figure:
    """A measured ``value`` in ``unit`` (a rate such as cycles/s, or seconds), or ``value=None`` and
    a ``note`` saying why it was not measured.

    ``key`` is a stable identifier (``sim.cocotb``) that ratios refer to; ``details`` holds what
    the value was computed from (cycles, seconds, vectors, mismatches...).
    """

    section: str
    key: str
    name: str
    value: float | None
    unit: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    def line(self) -> str:
        if self.value is None:
            return f"  {self.name:60s} skipped: {self.note}"
        note = f"  ({self.note})" if self.note else ""
        return f"  {self.name:60s} {format_value(self.value):>14s} {self.unit}{note}"


def format_value(value: float) -> str:
    """Thousands separators for large values, three significant digits for small ones."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def skipped(section: str, key: str, name: str, unit: str, reason: str) -> Figure:
    """A figure that could not be measured, with the reason."""
    return Figure(section, key, name, None, unit, note=reason)


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``work`` (after one untimed warm-up call)."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
