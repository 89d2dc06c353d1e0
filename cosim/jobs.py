"""Jobs: what to send into a block, what the golden model expects back, and the comparison.

A :class:`Job` is backend-neutral. Two back ends play it with the same per-cycle semantics
(random idle cycles on inputs, random back-pressure on outputs, inputs grouped in phases):

* :func:`run_verilator` packs it into a job file for :mod:`cosim.benches.stream_bench` and runs
  the exported Verilog on Verilator (:mod:`cosim.runner`);
* :func:`run_amaranth` plays it on the Amaranth component in Amaranth's simulator.

Both return :class:`Check` records: vectors compared, mismatches, the first mismatch (index,
input, expected, got, decoded into fields), cycles and wall time. Received outputs are re-checked
on the host with ``numpy.array_equal`` on the decoded fields, so a fault in the bench's own
scoreboard cannot hide a mismatch either.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import random
import time
from typing import Any

import numpy as np

from golden.fileio import write_atomic_with

from .payload import count, pack, unpack

__all__ = [
    "InStream",
    "OutStream",
    "config_stream",
    "Job",
    "Check",
    "compare",
    "run_verilator",
    "run_amaranth",
]


@dataclasses.dataclass
class InStream:
    """Values to send on input stream ``port`` (unpacked: an array, or a dict of field arrays)."""

    port: str
    values: Any
    #: Phase 0 streams (configuration) are sent completely before phase 1 (data) starts.
    phase: int = 1
    idle_probability: float = 0.25


def config_stream(
    image: list[tuple[int, int]], port: str = "cfg", idle_probability: float = 0.25
) -> InStream:
    """The ``cfg`` words of a :class:`hw.config.ConfigMap` image, sent before any data (phase 0)."""
    addresses = np.array([address for address, _ in image], dtype=np.int64)
    words = np.array([word for _, word in image], dtype=object)
    return InStream(port, {"addr": addresses, "data": words}, phase=0, idle_probability=idle_probability)


@dataclasses.dataclass
class OutStream:
    """Values the golden model expects on output stream ``port``, in order."""

    port: str
    expected: Any
    stall_probability: float = 0.25


@dataclasses.dataclass
class Job:
    name: str
    inputs: list[InStream]
    outputs: list[OutStream]
    seed: int = 0
    #: Reset the block after this many outputs, then run the whole job again (only that run counts).
    reset_after_outputs: int | None = None
    timeout_cycles: int = 10_000
    drain_cycles: int = 16
    #: For jobs without idle cycles or back-pressure: the cycle count a throughput formula
    #: predicts (e.g. ``MacArrayParams.cycles``); a different measured count fails the check.
    expected_cycles: int | None = None
    #: False for blocks whose n-th output does not belong to the n-th input (a tile's rows come
    #: after its K steps): a first mismatch then names no input instead of a wrong one.
    outputs_follow_inputs: bool = True


@dataclasses.dataclass
class Check:
    """The outcome of one job on one output stream: the unit of every bit-exact report."""

    job: str
    design: str
    block: str
    port: str
    params: dict
    simulator: str
    seed: int
    vectors: int
    mismatches: int
    first_mismatch: dict | None
    cycles: int
    wall_seconds: float
    timed_out: bool = False
    extra: dict = dataclasses.field(default_factory=dict)
    expected_cycles: int | None = None

    @property
    def cycles_as_expected(self) -> bool:
        return self.expected_cycles is None or self.cycles == self.expected_cycles

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and not self.timed_out and self.vectors > 0 and self.cycles_as_expected


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _row(values: Any, index: int) -> Any:
    if isinstance(values, dict):
        return {key: _row(item, index) for key, item in values.items()}
    return _jsonable(np.asarray(values)[index])


def _equal_rows(expected: Any, got: Any) -> np.ndarray:
    """Per-transfer equality of two unpacked values (all fields, all array elements)."""
    if isinstance(expected, dict):
        rows = [_equal_rows(expected[key], got[key]) for key in expected]
        return np.logical_and.reduce(rows) if rows else np.ones(0, bool)
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape:
        raise ValueError(f"shape mismatch {expected.shape} vs {got.shape}")
    equal = expected == got
    return equal.reshape(len(equal), -1).all(axis=1) if equal.ndim > 1 else equal


def _take(values: Any, stop: int) -> Any:
    if isinstance(values, dict):
        return {key: _take(item, stop) for key, item in values.items()}
    return np.asarray(values)[:stop]


def compare(expected: Any, got: Any, inputs: Any | None = None) -> tuple[int, dict | None]:
    """Exact comparison of decoded values: (mismatching transfers, first mismatch or None).

    Missing transfers count as mismatches; the first mismatch names the index, the input at that
    index (when the block maps inputs to outputs one to one), the expected and the received value.
    """
    wanted, received = count(expected), count(got)
    common = min(wanted, received)
    equal = _equal_rows(_take(expected, common), _take(got, common))
    # numpy.array_equal on every field is the authority; the row mask only locates the first bad row.
    if common == wanted == received and all_fields_equal(expected, got):
        return 0, None
    bad = np.flatnonzero(~equal)
    mismatches = int(len(bad)) + abs(wanted - received)
    index = int(bad[0]) if len(bad) else common
    first = {
        "index": index,
        "input": _row(inputs, index) if inputs is not None and index < count(inputs) else None,
        "expected": _row(expected, index) if index < wanted else None,
        "got": _row(got, index) if index < received else None,
    }
    return mismatches, first


def all_fields_equal(expected: Any, got: Any) -> bool:
    if isinstance(expected, dict):
        return expected.keys() == got.keys() and all(all_fields_equal(expected[k], got[k]) for k in expected)
    return bool(np.array_equal(np.asarray(expected), np.asarray(got)))


def _limbs(words: np.ndarray, width: int) -> np.ndarray:
    limb_count = max(1, (width + 63) // 64)
    out = np.zeros((len(words), limb_count), dtype=np.uint64)
    for index in range(limb_count):
        out[:, index] = np.array([(int(w) >> (64 * index)) & ((1 << 64) - 1) for w in words], dtype=np.uint64)
    return out


def _from_limbs(limbs: np.ndarray) -> np.ndarray:
    words = np.zeros(len(limbs), dtype=object)
    for index in range(limbs.shape[1]):
        words = words | (limbs[:, index].astype(object) << (64 * index))
    return words


def _single_input(job: Job) -> Any:
    if not job.outputs_follow_inputs:
        return None
    data_inputs = [stream for stream in job.inputs if stream.phase == max(s.phase for s in job.inputs)]
    return data_inputs[0].values if len(data_inputs) == 1 else None


def run_verilator(
    sidecar: dict,
    verilog: pathlib.Path,
    jobs: list[Job],
    workdir: pathlib.Path,
    *,
    waves: bool = False,
) -> list[Check]:
    """Play ``jobs`` on the exported Verilog under Verilator; one :class:`Check` per output stream."""
    from .runner import build, port_names, result_paths, run_jobs
    from .toolchain import check_verilator

    streams = sidecar["streams"]
    # One folder per design: the simulator writes dump.vcd (WAVES) into its working folder.
    workdir = pathlib.Path(workdir).resolve() / sidecar["name"]
    workdir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for number, job in enumerate(jobs):
        spec = {
            "name": job.name,
            "seed": job.seed,
            "timeout_cycles": job.timeout_cycles,
            "drain_cycles": job.drain_cycles,
            "reset_after_outputs": job.reset_after_outputs,
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
                    "words": key,
                    "phase": stream.phase,
                    "idle_probability": stream.idle_probability,
                }
            )
        for stream in job.outputs:
            shape = streams[stream.port]["payload"]
            key = f"j{number}_out_{stream.port}"
            arrays[key] = _limbs(pack(shape, stream.expected, stream.port), shape["width"])
            spec["streams_out"].append(
                {"port": stream.port, "expected": key, "stall_probability": stream.stall_probability}
            )
        specs.append(spec)
    jobs_path = workdir / f"{sidecar['name']}.jobs.json"
    outputs = result_paths(jobs_path)
    document = {"jobs": specs, "results_json": str(outputs["json"]), "results_npz": str(outputs["npz"])}
    write_atomic_with(jobs_path.with_suffix(".npz"), lambda path: np.savez(open(path, "wb"), **arrays))
    write_atomic_with(jobs_path, lambda path: pathlib.Path(path).write_text(json.dumps(document, indent=1)))

    build_dir = build(verilog, sidecar["name"], port_names(sidecar["ports"]), waves=waves)
    results = run_jobs(build_dir, sidecar["name"], jobs_path, waves=waves)
    got_arrays = np.load(outputs["npz"])
    simulator = f"Verilator {check_verilator()} + cocotb"
    checks = []
    for job, result in zip(jobs, results["results"]):
        for stream in job.outputs:
            shape = streams[stream.port]["payload"]
            got = unpack(shape, _from_limbs(got_arrays[f"{job.name}/{stream.port}"]))
            mismatches, first = compare(stream.expected, got, _single_input(job))
            bench = result["outputs"][stream.port]
            extra = {"bench_mismatches": bench["mismatches"], "extra_outputs": bench["extra"]}
            # The bench also counts outputs after the last expected one; the host cannot see those.
            mismatches += bench["extra"]
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
                    mismatches=mismatches,
                    first_mismatch=first,
                    cycles=result["cycles"],
                    wall_seconds=result["wall_seconds"],
                    timed_out=result["timed_out"],
                    extra=extra,
                    expected_cycles=job.expected_cycles,
                )
            )
    return checks


def run_amaranth(component, design: str, block: str, params: dict, jobs: list[Job]) -> list[Check]:
    """Play ``jobs`` on ``component`` in Amaranth's simulator, with the bench's cycle semantics."""
    from amaranth import ClockDomain, Module
    from amaranth.sim import Simulator

    from hw.export import describe_payloads

    streams = describe_payloads(component)
    outcomes: list[dict] = []
    # An explicit sync domain gives the testbench a reset to pulse for the mid-stream reset test.
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = component

    async def testbench(ctx):
        for job in jobs:
            outcomes.append(await _play_amaranth(ctx, component, domain, streams, job))

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()

    checks = []
    for job, outcome in zip(jobs, outcomes):
        for stream in job.outputs:
            got = unpack(streams[stream.port]["payload"], np.array(outcome["got"][stream.port], dtype=object))
            mismatches, first = compare(stream.expected, got, _single_input(job))
            mismatches += outcome["extra"][stream.port]
            checks.append(
                Check(
                    job=job.name,
                    design=design,
                    block=block,
                    port=stream.port,
                    params=params,
                    simulator="Amaranth simulator",
                    seed=job.seed,
                    vectors=count(stream.expected),
                    mismatches=mismatches,
                    first_mismatch=first,
                    cycles=outcome["cycles"],
                    wall_seconds=outcome["wall_seconds"],
                    timed_out=outcome["timed_out"],
                    extra={"extra_outputs": outcome["extra"][stream.port]},
                    expected_cycles=job.expected_cycles,
                )
            )
    return checks


async def _play_amaranth(ctx, component, domain, streams: dict, job: Job) -> dict:
    rng = random.Random(job.seed)

    def port(name):
        return getattr(component, name)

    words_in = {
        s.port: [int(w) for w in pack(streams[s.port]["payload"], s.values, s.port)] for s in job.inputs
    }
    wanted = {s.port: count(s.expected) for s in job.outputs}

    def idle():
        for s in job.inputs:
            ctx.set(port(s.port).valid, 0)
        for s in job.outputs:
            ctx.set(port(s.port).ready, 0)

    async def run(stop_after: int | None) -> tuple[dict, int, bool]:
        index = {s.port: 0 for s in job.inputs}
        offering = {s.port: False for s in job.inputs}
        got: dict[str, list[int]] = {s.port: [] for s in job.outputs}
        cycle = last_progress = last_output = 0
        while True:
            pending = [s.phase for s in job.inputs if index[s.port] < len(words_in[s.port])]
            active = min(pending) if pending else None
            for s in job.inputs:
                stream = port(s.port)
                if not offering[s.port]:
                    go = s.phase == active and index[s.port] < len(words_in[s.port])
                    if go and not (s.idle_probability and rng.random() < s.idle_probability):
                        ctx.set(_raw(stream.payload), words_in[s.port][index[s.port]])
                        ctx.set(stream.valid, 1)
                        offering[s.port] = True
                    else:
                        ctx.set(stream.valid, 0)
            accepting = {}
            for s in job.outputs:
                accepting[s.port] = not (s.stall_probability and rng.random() < s.stall_probability)
                ctx.set(port(s.port).ready, int(accepting[s.port]))
            progress = False
            for s in job.inputs:
                if offering[s.port] and ctx.get(port(s.port).ready):
                    index[s.port] += 1
                    offering[s.port] = False
                    progress = True
            for s in job.outputs:
                stream = port(s.port)
                if accepting[s.port] and ctx.get(stream.valid):
                    got[s.port].append(_as_int(ctx.get(stream.payload)))
                    progress = True
                    last_output = cycle + 1
            await ctx.tick()
            cycle += 1
            if progress:
                last_progress = cycle
            received = sum(len(v) for v in got.values())
            if stop_after is not None and received >= stop_after:
                return got, last_output, False
            inputs_done = all(index[s.port] >= len(words_in[s.port]) for s in job.inputs)
            if inputs_done and all(len(got[p]) >= wanted[p] for p in wanted):
                return got, last_output, False
            if cycle - last_progress > job.timeout_cycles:
                return got, last_output, True

    started = time.perf_counter()
    idle()
    await ctx.tick()
    if job.reset_after_outputs is not None:
        await run(job.reset_after_outputs)
        idle()
        # tick() refuses to run through an asserted reset, so wait on raw clock edges instead.
        ctx.set(domain.rst, 1)
        for _ in range(2):
            await ctx.posedge(domain.clk)
        ctx.set(domain.rst, 0)
    got, cycles, timed_out = await run(None)
    idle()
    extra = {s.port: 0 for s in job.outputs}
    for _ in range(job.drain_cycles):
        for s in job.outputs:
            ctx.set(port(s.port).ready, 1)
        for s in job.outputs:
            if ctx.get(port(s.port).valid):
                extra[s.port] += 1
        await ctx.tick()
    idle()
    return {
        "got": got,
        "cycles": cycles,
        "timed_out": timed_out,
        "extra": extra,
        "wall_seconds": time.perf_counter() - started,
    }


def _raw(payload: Any) -> Any:
    """The plain value under a ``lib.data`` view, so a packed word can be set on struct payloads."""
    from amaranth.lib import data

    return payload.as_value() if isinstance(payload, data.View) else payload


def _as_int(value: Any) -> int:
    from amaranth.lib import data

    if isinstance(value, data.Const):
        return int(value.as_value().value)
    return int(value)
