"""One generic cocotb testbench that plays *jobs* against any Quiver stream block.

A job (see :mod:`cosim.jobs`) lists input streams (packed payload words to send, in order, in
phases: a phase starts when the previous one has been sent completely) and output streams (the
words the golden model expects). The bench is driver + monitor + scoreboard in one per-cycle
loop, which is what makes it fast on Verilator:

* after each rising edge it drives every input stream (``valid`` with random idle cycles, the
  next payload) and every output stream's ``ready`` (random back-pressure);
* in the ``ReadOnly`` phase it samples the settled handshakes: a transfer happens where
  ``valid & ready`` (stream rule 1);
* the scoreboard compares every received word with the expected one, counts every mismatch,
  logs the first few (expected vs got) and does not stop at the first.

The job file is named by the environment variable ``QUIVER_JOBS``; it names the result files.
The cocotb test fails (so ``results.xml`` records it) when any job has a mismatch or times out.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

MAX_LOGGED_MISMATCHES = 10


def limbs_to_ints(limbs: np.ndarray) -> list[int]:
    """``[n, L]`` uint64 limbs (little-endian) to Python ints."""
    limbs = np.asarray(limbs, dtype=np.uint64).reshape(len(limbs), -1)
    words = [0] * len(limbs)
    for index in range(limbs.shape[1]):
        column = limbs[:, index].tolist()
        words = [word | (part << (64 * index)) for word, part in zip(words, column)]
    return words


def ints_to_limbs(words: list[int], count: int) -> np.ndarray:
    limbs = [[(word >> (64 * i)) & ((1 << 64) - 1) for i in range(count)] for word in words]
    return np.array(limbs, dtype=np.uint64).reshape(len(words), count)


class InputStream:
    def __init__(self, dut, spec: dict, arrays, rng: random.Random):
        self.name = spec["port"]
        self.valid = getattr(dut, f"{self.name}__valid")
        self.ready = getattr(dut, f"{self.name}__ready")
        self.payload = getattr(dut, f"{self.name}__payload")
        self.words = limbs_to_ints(arrays[spec["words"]])
        self.phase = spec.get("phase", 0)
        self.idle = float(spec.get("idle_probability", 0.0))
        self.rng = rng
        self.index = 0
        self.offering = False

    @property
    def done(self) -> bool:
        return self.index >= len(self.words)

    def drive(self, active: bool) -> None:
        # Rule 2: once offered, a payload stays until it transfers; idle cycles only come between.
        if (
            not self.offering
            and active
            and not self.done
            and not (self.idle and self.rng.random() < self.idle)
        ):
            self.payload.value = self.words[self.index]
            self.valid.value = 1
            self.offering = True
        elif not self.offering:
            self.valid.value = 0

    def sample(self) -> bool:
        if self.offering and self.ready.value:
            self.index += 1
            self.offering = False
            return True
        return False


class OutputStream:
    def __init__(self, dut, spec: dict, arrays, rng: random.Random, log):
        self.name = spec["port"]
        self.valid = getattr(dut, f"{self.name}__valid")
        self.ready = getattr(dut, f"{self.name}__ready")
        self.payload = getattr(dut, f"{self.name}__payload")
        self.expected = limbs_to_ints(arrays[spec["expected"]])
        self.stall = float(spec.get("stall_probability", 0.0))
        self.rng = rng
        self.log = log
        self.got: list[int] = []
        self.mismatches = 0
        self.first_mismatch = None
        self.accepting = False

    @property
    def done(self) -> bool:
        return len(self.got) >= len(self.expected)

    def drive(self) -> None:
        self.accepting = not (self.stall and self.rng.random() < self.stall)
        self.ready.value = int(self.accepting)

    def sample(self) -> bool:
        if not (self.accepting and self.valid.value):
            return False
        word = int(self.payload.value)
        index = len(self.got)
        self.got.append(word)
        expected = self.expected[index] if index < len(self.expected) else None
        if word != expected:
            self.mismatches += 1
            if self.first_mismatch is None:
                self.first_mismatch = {"index": index, "expected": expected, "got": word}
            if self.mismatches <= MAX_LOGGED_MISMATCHES:
                self.log.error("%s[%d]: expected %s, got %#x", self.name, index, expected, word)
        return True


async def reset(dut, cycles: int = 2) -> None:
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


def idle_all(inputs, outputs) -> None:
    for stream in inputs:
        stream.valid.value = 0
        stream.offering = False
    for stream in outputs:
        stream.ready.value = 0


async def play(dut, job: dict, arrays, log) -> dict:
    """Run one job from reset to its last expected output (or a timeout)."""
    rng = random.Random(job.get("seed", 0))
    inputs = [InputStream(dut, spec, arrays, rng) for spec in job["streams_in"]]
    outputs = [OutputStream(dut, spec, arrays, rng, log) for spec in job["streams_out"]]
    timeout = int(job.get("timeout_cycles", 10_000))
    interrupt_after = job.get("reset_after_outputs")
    idle_all(inputs, outputs)
    await reset(dut)
    if interrupt_after is not None:
        # A reset in the middle of a stream: run part of the job, reset, then run it all again.
        await run_cycles(dut, inputs, outputs, timeout, stop_after_outputs=int(interrupt_after))
        idle_all(inputs, outputs)
        await reset(dut)
        inputs = [InputStream(dut, spec, arrays, rng) for spec in job["streams_in"]]
        outputs = [OutputStream(dut, spec, arrays, rng, log) for spec in job["streams_out"]]
        idle_all(inputs, outputs)
    started = time.perf_counter()
    cycles, timed_out = await run_cycles(dut, inputs, outputs, timeout)
    wall = time.perf_counter() - started
    idle_all(inputs, outputs)
    extra = await count_extra_outputs(dut, outputs, int(job.get("drain_cycles", 16)))
    idle_all(inputs, outputs)
    return {
        "name": job["name"],
        "cycles": cycles,
        "timed_out": timed_out,
        "wall_seconds": wall,
        "inputs": {stream.name: stream.index for stream in inputs},
        "outputs": {
            stream.name: {
                "vectors": len(stream.expected),
                "received": len(stream.got),
                "missing": max(0, len(stream.expected) - len(stream.got)),
                "extra": extra[stream.name],
                "mismatches": stream.mismatches
                + max(0, len(stream.expected) - len(stream.got))
                + extra[stream.name],
                "first_mismatch": stream.first_mismatch,
            }
            for stream in outputs
        },
        "_got": {stream.name: stream.got for stream in outputs},
    }


async def run_cycles(dut, inputs, outputs, timeout: int, stop_after_outputs: int | None = None):
    """Cycle loop; returns (cycles until the last output transfer, timed out?)."""
    cycle = last_progress = last_output = 0
    while True:
        pending = [stream.phase for stream in inputs if not stream.done]
        active_phase = min(pending) if pending else None
        for stream in inputs:
            stream.drive(stream.phase == active_phase)
        for stream in outputs:
            stream.drive()
        await ReadOnly()
        progress = False
        for stream in inputs:
            progress |= stream.sample()
        for stream in outputs:
            if stream.sample():
                progress = True
                last_output = cycle + 1
        await RisingEdge(dut.clk)
        cycle += 1
        if progress:
            last_progress = cycle
        received = sum(len(stream.got) for stream in outputs)
        if stop_after_outputs is not None and received >= stop_after_outputs:
            return last_output, False
        if all(stream.done for stream in outputs) and all(stream.done for stream in inputs):
            return last_output, False
        if cycle - last_progress > timeout:
            return last_output, True


async def count_extra_outputs(dut, outputs, cycles: int) -> dict[str, int]:
    """After the last expected word, keep ``ready`` high a while: any further word is an error."""
    extra = {stream.name: 0 for stream in outputs}
    for _ in range(cycles):
        for stream in outputs:
            stream.ready.value = 1
        await ReadOnly()
        for stream in outputs:
            if stream.valid.value:
                extra[stream.name] += 1
        await RisingEdge(dut.clk)
    return extra


@cocotb.test()
async def run_jobs(dut):
    """Play every job of ``$QUIVER_JOBS`` and write the result files it names."""
    jobs_path = pathlib.Path(os.environ["QUIVER_JOBS"])
    spec = json.loads(jobs_path.read_text())
    arrays = np.load(jobs_path.with_suffix(".npz"))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    results, got_arrays, failures = [], {}, []
    for job in spec["jobs"]:
        result = await play(dut, job, arrays, dut._log)
        for port, words in result.pop("_got").items():
            limb_count = arrays[next(s["expected"] for s in job["streams_out"] if s["port"] == port)].shape[1]
            got_arrays[f"{job['name']}/{port}"] = ints_to_limbs(words, limb_count)
        bad = sum(output["mismatches"] for output in result["outputs"].values())
        if bad or result["timed_out"]:
            failures.append(f"{job['name']}: {bad} mismatches{', timed out' if result['timed_out'] else ''}")
        dut._log.info(
            "%s: %d cycles, %s",
            job["name"],
            result["cycles"],
            ", ".join(
                f"{p}: {o['vectors']} vectors, {o['mismatches']} mismatches"
                for p, o in result["outputs"].items()
            ),
        )
        results.append(result)
    np.savez(spec["results_npz"], **got_arrays)
    pathlib.Path(spec["results_json"]).write_text(json.dumps({"results": results}, indent=1))
    assert not failures, "; ".join(failures)
