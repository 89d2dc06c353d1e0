"""Per-block verification plans: for a design of :mod:`hw.registry`, the jobs that prove it.

Each module here provides ``jobs(design, *, seed, quick=False) -> list[Job]`` with golden
expectations; :data:`CHECK_MODULES` maps a block family to its module. ``make sim`` runs every
registered design's jobs on Verilator; the tests run the same jobs (``quick`` shrinks the
non-exhaustive ones) on Amaranth's simulator and on Verilator.
"""

from __future__ import annotations

import importlib

from hw.registry import Design

from ..jobs import Job

CHECK_MODULES: dict[str, str] = {
    "bitlog2": "cosim.checks.bitlog2",
    "mac_array": "cosim.checks.mac_array",
    "logdecode": "cosim.checks.logdecode",
    "shift_acc": "cosim.checks.shift_acc",
    "threshold_quant": "cosim.checks.threshold_quant",
    "adalog_lut": "cosim.checks.adalog_lut",
    "requant": "cosim.checks.requant",
    "attention_core": "cosim.checks.attention_core",
}


def jobs_for(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    if design.block not in CHECK_MODULES:
        raise KeyError(
            f"No verification plan for block {design.block!r}; add one to cosim.checks.CHECK_MODULES"
        )
    return importlib.import_module(CHECK_MODULES[design.block]).jobs(design, seed=seed, quick=quick)
