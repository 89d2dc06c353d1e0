"""Simulated clock cycles per second of one design under three simulators, on its own golden job.

The job is the first of the design's verification plan (:func:`cosim.checks.jobs_for`; for
BitLog2 every input value) with no idle cycles and no back-pressure, so one transfer moves per
cycle. Each run still checks every output against the golden model and reports its mismatches;
a figure from a run with mismatches is marked, never silently kept.

* Verilator + cocotb: :func:`cosim.jobs.run_verilator`; cycles and seconds are the bench's own
  cycle loop (the Verilator build is cached and timed separately).
* Amaranth's simulator: :func:`cosim.jobs.run_amaranth` on the first ``amaranth_vectors`` inputs.
* Plain Verilator C++ loop: :mod:`bench.cpp_loop`, the whole table repeated to ``cpp_cycles``.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time

from cosim.checks import jobs_for
from cosim.jobs import Job, run_amaranth, run_verilator
from cosim.payload import count
from hw.registry import Design

from . import cpp_loop
from .figures import Figure, skipped

__all__ = ["streaming_job", "verilator_cocotb", "amaranth_simulator", "verilator_cpp"]

SECTION = "simulation"
UNIT = "cycles/s"


def _truncate(values, stop: int):
    if isinstance(values, dict):
        return {key: _truncate(item, stop) for key, item in values.items()}
    return values[:stop]


def streaming_job(design: Design, *, limit: int | None = None) -> Job:
    """The design's first planned job with no idle cycles or back-pressure, optionally shortened.

    Shortening keeps the first ``limit`` inputs and outputs, which is exact only for jobs that
    map inputs to outputs one to one; other jobs are kept whole.
    """
    job = jobs_for(design, seed=1)[0]
    inputs = [dataclasses.replace(stream, idle_probability=0.0) for stream in job.inputs]
    outputs = [dataclasses.replace(stream, stall_probability=0.0) for stream in job.outputs]
    one_to_one = len(inputs) == len(outputs) == 1 and count(inputs[0].values) == count(outputs[0].expected)
    if limit is not None and one_to_one and count(inputs[0].values) > limit:
        inputs = [dataclasses.replace(inputs[0], values=_truncate(inputs[0].values, limit))]
        outputs = [dataclasses.replace(outputs[0], expected=_truncate(outputs[0].expected, limit))]
    return dataclasses.replace(job, name=f"{job.name}/streaming", inputs=inputs, outputs=outputs)


def _figure(key: str, name: str, checks: list, extra: dict) -> Figure:
    cycles = sum(check.cycles for check in checks)
    seconds = sum(check.wall_seconds for check in checks)
    mismatches = sum(check.mismatches for check in checks)
    details = {
        "cycles": cycles,
        "seconds": round(seconds, 4),
        "vectors": sum(check.vectors for check in checks),
        "mismatches": mismatches,
        **extra,
    }
    note = f"{mismatches} MISMATCHES: not bit-exact" if mismatches else ""
    return Figure(SECTION, key, name, cycles / seconds if seconds else None, UNIT, details, note)


def verilator_cocotb(design: Design, sidecar: dict, verilog: pathlib.Path, workdir: pathlib.Path) -> Figure:
    """Verilator + cocotb, on the whole streaming job."""
    from cosim.runner import build, port_names

    started = time.perf_counter()
    build(verilog, design.name, port_names(sidecar["ports"]))
    build_seconds = time.perf_counter() - started
    checks = run_verilator(sidecar, verilog, [streaming_job(design)], workdir)
    simulator = checks[0].simulator if checks else "Verilator + cocotb"
    return _figure(
        "sim.cocotb",
        f"{simulator} ({design.name})",
        checks,
        {"build_seconds_cached_or_not": round(build_seconds, 2)},
    )


def amaranth_simulator(design: Design, sidecar: dict, vectors: int) -> Figure:
    """Amaranth's simulator, on the first ``vectors`` inputs of the streaming job."""
    job = streaming_job(design, limit=vectors)
    checks = run_amaranth(design.build(), design.name, design.block, sidecar["params"], [job])
    return _figure("sim.amaranth", f"Amaranth simulator ({design.name})", checks, {})


def verilator_cpp(
    design: Design, sidecar: dict, verilog: pathlib.Path, build_root: pathlib.Path, cycles: int
) -> Figure:
    """The plain Verilator C++ loop over the whole streaming job, repeated to about ``cycles``."""
    name = f"Verilator C++ loop, no cocotb ({design.name})"
    job = streaming_job(design)
    try:
        started = time.perf_counter()
        binary = cpp_loop.build_loop(sidecar, verilog, job, build_root)
        build_seconds = time.perf_counter() - started
        table = build_root / f"{design.name}.table.bin"
        inputs, _ = cpp_loop.write_table(sidecar, job, table)
        passes = max(1, math.ceil(cycles / inputs))
        result = cpp_loop.run_loop(binary, table, passes)
    except cpp_loop.CppLoopUnsupported as error:
        return skipped(SECTION, "sim.cpp", name, UNIT, str(error))
    except (RuntimeError, OSError) as error:
        return skipped(SECTION, "sim.cpp", name, UNIT, f"build or run failed: {str(error).splitlines()[0]}")
    missing = result["expected_outputs"] - result["received"]
    bad = result["mismatches"] + missing
    details = {**result, "passes": passes, "build_seconds_cached_or_not": round(build_seconds, 2)}
    note = f"{bad} MISMATCHES or missing outputs: not bit-exact" if bad else ""
    rate = result["cycles"] / result["seconds"] if result["seconds"] else None
    return Figure(SECTION, "sim.cpp", name, rate, UNIT, details, note)
