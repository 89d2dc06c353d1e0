"""Fast Verilator runs: the block inside :class:`cosim.harness.StreamHarness`, preloaded jobs.

:func:`run_harness` plays the same :class:`cosim.jobs.Job` objects as
:func:`cosim.jobs.run_verilator`, with the same checks (vectors, mismatches, first mismatch
decoded, cycles), but Python never runs per clock cycle: inputs are preloaded into harness
memories, the clock runs free until ``done``, outputs are read back from memory. Idle cycles
and back-pressure come from LFSRs in the harness (probabilities quantized to 1/256), so they are
as random as the per-cycle bench's, reproducibly from the job seed.

Use it for large jobs (whole layers, exhaustive sweeps) and for ``make sim``; the per-cycle bench
stays the plain cocotb reference that the unit tests also run.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import random
import re
import threading

import numpy as np
from amaranth.back import verilog

from golden.fileio import write_atomic, write_atomic_with
from hw.export import tool_versions

from . import harness as harness_module
from .harness import HarnessStream, StreamHarness
from .jobs import Check, Job, _from_limbs, _limbs, _single_input, compare
from .payload import count, pack, unpack

__all__ = ["harness_for", "export_harness", "run_harness"]

HARNESS_BENCH = "cosim.benches.harness_bench"
#: Amaranth silences a dependency's DeprecationWarning with ``warnings.catch_warnings``, which is
#: process-wide: two threads converting at once can leave one unprotected (an error under pytest's
#: ``-W error``). Callers that run harnesses in threads (``make sim``) convert one at a time.
_CONVERSION_LOCK = threading.Lock()


def _depth(words: int) -> int:
    return max(16, 1 << max(0, words - 1).bit_length())


def harness_for(sidecar: dict, jobs: list[Job], min_depths: dict[str, int] | None = None) -> StreamHarness:
    """A harness around the exported block whose memories hold the largest of ``jobs`` (and at
    least ``min_depths[port]`` words, so runs of different job sets can share one build)."""
    inputs: dict[str, tuple[int, int]] = {}
    outputs: dict[str, int] = {}
    for job in jobs:
        for stream in job.inputs:
            words, phase = inputs.get(stream.port, (0, stream.phase))
            inputs[stream.port] = (max(words, count(stream.values)), phase)
        for stream in job.outputs:
            outputs[stream.port] = max(outputs.get(stream.port, 0), count(stream.expected))
    floor = min_depths or {}
    return StreamHarness(
        sidecar,
        [
            HarnessStream(port, _depth(max(words, floor.get(port, 0))), phase)
            for port, (words, phase) in inputs.items()
        ],
        [HarnessStream(port, _depth(max(words, floor.get(port, 0)))) for port, words in outputs.items()],
    )


def _drop_memory_init(text: str, memories: list[str]) -> str:
    """Remove the all-zero ``initial`` block Yosys writes for each harness memory.

    The bench preloads every word it uses, and a 2^16-word memory would otherwise add 2^16
    lines (and minutes of C++ compile time) per memory.
    """
    for name in memories:
        declaration = rf"(\n\s*reg \[[^\]]+\] {re.escape(name)} \[[^\]]+\];)"
        zero_fill = rf"\n\s*initial begin\n(?:\s*{re.escape(name)}\[\d+\] = [^;]+;\n)+\s*end\n"
        pattern = declaration + zero_fill
        text, replaced = re.subn(pattern, r"\1\n", text)
        if replaced != 1:
            raise RuntimeError(f"harness memory {name!r}: expected one initial block, found {replaced}")
    return text


def _harness_key(sidecar: dict, harness: StreamHarness) -> str:
    """What the harness Verilog depends on: the block's ports and payloads, the memory shapes and
    the harness generator itself (so an edit to :mod:`cosim.harness` regenerates it)."""
    key = hashlib.sha256()
    for part in (
        json.dumps([sidecar["name"], sidecar["ports"], sidecar["streams"]], sort_keys=True),
        repr((harness._inputs, harness._outputs)),
        pathlib.Path(harness_module.__file__).read_text(),
        json.dumps(tool_versions(), sort_keys=True),
    ):
        key.update(part.encode())
        key.update(b"\0")
    return key.hexdigest()[:16]


def export_harness(sidecar: dict, harness: StreamHarness, out_dir: pathlib.Path) -> tuple[pathlib.Path, dict]:
    """Write ``<design>__harness.v`` and its sidecar; return the Verilog path and the sidecar.

    Converting a harness with large memories takes seconds, so the Verilog is also kept in a
    cache beside the Verilator builds (:func:`cosim.runner.default_build_root`), keyed by
    everything it depends on, and reused from there.
    """
    from .runner import default_build_root

    name = f"{sidecar['name']}__harness"
    cached = default_build_root() / "harness-verilog" / f"{name}-{_harness_key(sidecar, harness)}.v"
    if cached.exists():
        text = cached.read_text()
        harness._MustUse__silence = True  # described by its cached Verilog, not elaborated again
    else:
        text = _drop_memory_init(
            verilog.convert(harness, name=name, emit_src=False), list(harness.memories.values())
        )
        write_atomic(cached, text)
    harness_sidecar = {
        "name": name,
        "design": sidecar["name"],
        "ports": harness.metadata.as_json(),
        "memories": harness.memories,
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "tools": tool_versions(),
    }
    out_dir = pathlib.Path(out_dir)
    write_atomic(out_dir / f"{name}.v", text)
    write_atomic(out_dir / f"{name}.json", json.dumps(harness_sidecar, indent=2) + "\n")
    return out_dir / f"{name}.v", harness_sidecar


def _threshold(probability: float) -> int:
    """Idle/stall when an LFSR byte is below this: probability in steps of 1/256."""
    return min(255, max(0, round(probability * 256)))


def run_harness(
    sidecar: dict,
    verilog_path: pathlib.Path,
    jobs: list[Job],
    workdir: pathlib.Path,
    *,
    waves: bool = False,
    min_depths: dict[str, int] | None = None,
    received: dict[str, dict] | None = None,
) -> list[Check]:
    """Play ``jobs`` on an exported block (``verilog_path`` + its ``sidecar``) inside the harness.

    Same arguments and result as :func:`cosim.jobs.run_verilator`: one Check per output stream.
    ``min_depths`` (words per port) sizes the harness memories beyond the largest job, so other
    job sets of the same block reuse the build; ``received``, if given, gets every job's decoded
    outputs (``received[job.name][port]``), e.g. to measure the size of a difference.
    """
    from .runner import build, port_names, result_paths, run_jobs
    from .toolchain import check_verilator

    workdir = pathlib.Path(workdir).resolve() / f"{sidecar['name']}__harness"
    workdir.mkdir(parents=True, exist_ok=True)
    with _CONVERSION_LOCK:
        harness = harness_for(sidecar, jobs, min_depths)
        harness_path, harness_sidecar = export_harness(sidecar, harness, workdir)
    streams = sidecar["streams"]
    memories = harness_sidecar["memories"]
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for number, job in enumerate(jobs):
        seeds = random.Random(job.seed)
        spec = {
            "name": job.name,
            "timeout_cycles": job.timeout_cycles,
            "drain_cycles": min(255, job.drain_cycles),
            "reset_after": job.reset_after_outputs or 0,
            "streams_in": [],
            "streams_out": [],
        }
        for stream in job.inputs:
            shape = streams[stream.port]["payload"]
            key = f"j{number}_in_{stream.port}"
            arrays[key] = _limbs(pack(shape, stream.values, stream.port), shape["width"])
            spec["streams_in"].append(
                {
                    "port": stream.port,
                    "memory": memories[stream.port],
                    "words": key,
                    "idle": _threshold(stream.idle_probability),
                    "seed": seeds.getrandbits(32),
                }
            )
        for stream in job.outputs:
            shape = streams[stream.port]["payload"]
            spec["streams_out"].append(
                {
                    "port": stream.port,
                    "memory": memories[stream.port],
                    "expected_count": count(stream.expected),
                    "stall": _threshold(stream.stall_probability),
                    "seed": seeds.getrandbits(32),
                    "limbs": max(1, (shape["width"] + 63) // 64),
                }
            )
        specs.append(spec)
    jobs_path = workdir / "jobs.json"
    outputs = result_paths(jobs_path)
    document = {"jobs": specs, "results_json": str(outputs["json"]), "results_npz": str(outputs["npz"])}
    write_atomic_with(jobs_path.with_suffix(".npz"), lambda path: np.savez(open(path, "wb"), **arrays))
    write_atomic(jobs_path, json.dumps(document, indent=1))

    top = harness_sidecar["name"]
    public = port_names(harness_sidecar["ports"]) + sorted(memories.values())
    build_dir = build([harness_path, verilog_path], top, public, waves=waves)
    results = run_jobs(build_dir, top, jobs_path, waves=waves, bench_module=HARNESS_BENCH)
    got_arrays = np.load(outputs["npz"])
    simulator = f"Verilator {check_verilator()} + cocotb (preloaded harness)"
    checks = []
    for job, result in zip(jobs, results["results"]):
        for stream in job.outputs:
            shape = streams[stream.port]["payload"]
            got = unpack(shape, _from_limbs(got_arrays[f"{job.name}/{stream.port}"]))
            if received is not None:
                received.setdefault(job.name, {})[stream.port] = got
            mismatches, first = compare(stream.expected, got, _single_input(job))
            extra = result["outputs"][stream.port]["extra"]
            checks.append(
                Check(
                    job=job.name,
                    design=sidecar["name"],
                    block=sidecar["block"],
                    port=stream.port,
                    params=sidecar["params"],
                    simulator=simulator,
                    seed=job.seed,
                    vectors=count(stream.expected),
                    mismatches=mismatches + extra,
                    first_mismatch=first,
                    cycles=result["cycles"],
                    wall_seconds=result["wall_seconds"],
                    timed_out=result["timed_out"],
                    extra={"extra_outputs": extra, "midstream_resets": result["resets"]},
                    expected_cycles=job.expected_cycles,
                )
            )
    return checks
