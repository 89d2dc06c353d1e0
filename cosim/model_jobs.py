"""Jobs of the model run: an operator's streams cut into jobs of bounded size, with their cycle counts.

Every job holds at most :data:`MAX_JOB_WORDS` words per stream, so the harness memories (and
the seconds Amaranth spends writing them out) stay small whatever the layer, and one build per
circuit serves any model. A cut falls between whole output tiles (engines), rows (requantizer)
or values (quantizers, LUT); each job is complete on its own (configuration included), so a
layer cut into ``j`` jobs pays the pipeline fill ``j`` times, which its analytical count includes.

Jobs run without idle cycles or back-pressure: their measured cycles must equal the analytical
count (:func:`golden.params.tiled_cycles`, or configuration words + values + latency).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from golden.params import tiled_cycles

from .checks.mac_array import TiledProduct
from .jobs import InStream, Job, OutStream, config_stream
from .payload import count

__all__ = [
    "MAX_JOB_WORDS",
    "HostMismatch",
    "Piece",
    "tiled_pieces",
    "stream_pieces",
    "make_job",
    "config_words",
]

#: The most words a job sends or expects on one stream (a power of two: the harness memory depth).
MAX_JOB_WORDS = 16384


class HostMismatch(AssertionError):
    """The host's rearrangement of a captured record does not reproduce the record: a testbench
    bug (never an RTL mismatch, which the jobs report)."""


@dataclasses.dataclass
class Piece:
    """One job of an operator: the job, its analytical cycles, the values it compares (padding
    excluded), the useful multiply-accumulates and the engine's cells (0: not an engine)."""

    job: Job
    analytical_cycles: int
    values: int
    useful_macs: int = 0
    cells: int = 0
    label: str = ""


def make_job(name: str, inputs: list[InStream], outputs: list[tuple[str, Any]]) -> Job:
    """A job without idle cycles or back-pressure (its cycles are compared with the formula)."""
    return Job(
        name=name,
        inputs=inputs,
        outputs=[OutStream(port, expected, stall_probability=0.0) for port, expected in outputs],
        outputs_follow_inputs=False,
    )


def config_words(job: Job) -> int:
    return sum(count(stream.values) for stream in job.inputs if stream.port == "cfg")


def _slice(values: Any, start: int, stop: int) -> Any:
    if isinstance(values, dict):
        return {key: _slice(value, start, stop) for key, value in values.items()}
    return np.asarray(values)[start:stop]


def _ranges(total: int, per_job: int) -> list[tuple[int, int]]:
    per_job = max(1, per_job)
    return [(start, min(total, start + per_job)) for start in range(0, max(total, 1), per_job)]


def _label(number: int, total: int) -> str:
    return f"[{number + 1}/{total}]" if total > 1 else ""


def tiled_pieces(name: str, product: TiledProduct, rows: int, cols: int, latency: int) -> list[Piece]:
    """An engine's tiled product (MAC array or shift-accumulate) as jobs of whole tiles."""
    batch, m, k, n = product.shape
    tile_rows, tile_cols = math.ceil(m / rows), math.ceil(n / cols)
    ranges = _ranges(product.tiles, MAX_JOB_WORDS // k)
    pieces = []
    for number, (first, stop) in enumerate(ranges):
        tiles = np.arange(first, stop)
        real_rows = np.minimum(rows, m - (tiles // tile_cols) % tile_rows * rows)
        real_cols = np.minimum(cols, n - tiles % tile_cols * cols)
        values = int((real_rows * real_cols).sum())
        label = _label(number, len(ranges))
        job = make_job(
            f"{name}{'/' + label if label else ''}",
            [InStream("i", _slice(product.steps, first * k, stop * k), idle_probability=0.0)],
            [("o", product.rows[first * rows : stop * rows])],
        )
        job.expected_cycles = tiled_cycles(stop - first, k, rows, latency)
        pieces.append(Piece(job, job.expected_cycles, values, values * k, rows * cols, label))
    return pieces


def stream_pieces(
    name: str,
    values: Any,
    expected: Any,
    latency: int,
    image: list[tuple[int, int]] | None = None,
    per_transfer: int = 1,
    real: int | None = None,
) -> list[Piece]:
    """A block of one transfer per cycle (quantizer, LUT; requantizer rows of ``per_transfer``
    values) as jobs, each loading the configuration ``image`` first; the first ``real`` values
    (default: all) are not padding."""
    total = count(values)
    real = total * per_transfer if real is None else real
    ranges = _ranges(total, MAX_JOB_WORDS)
    pieces = []
    for number, (first, stop) in enumerate(ranges):
        label = _label(number, len(ranges))
        inputs = [] if image is None else [config_stream(image, idle_probability=0.0)]
        inputs.append(InStream("i", _slice(values, first, stop), idle_probability=0.0))
        job = make_job(
            f"{name}{'/' + label if label else ''}", inputs, [("o", _slice(expected, first, stop))]
        )
        job.expected_cycles = config_words(job) + (stop - first) + latency
        covered = min(real, stop * per_transfer) - min(real, first * per_transfer)
        pieces.append(Piece(job, job.expected_cycles, covered, label=label))
    return pieces
