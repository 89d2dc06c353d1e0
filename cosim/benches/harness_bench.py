"""cocotb bench for :class:`cosim.harness.StreamHarness`: preload, start, await done, read back.

Python touches the simulation only between jobs: it writes every input word into the harness
memories through VPI (no clock runs meanwhile), sets the counts, idle/stall thresholds and LFSR
seeds, pulses ``start`` and awaits ``done``. The clock is cocotb's C++ clock, so no Python runs
per cycle. Results (received words, counters) are written to the files the job document names;
the host compares them with the golden model (:func:`cosim.fast.run_harness`).
"""

from __future__ import annotations

import json
import os
import pathlib
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from cosim.benches.stream_bench import ints_to_limbs, limbs_to_ints


async def play(dut, job: dict, arrays) -> tuple[dict, dict]:
    for spec in job["streams_in"]:
        memory = getattr(dut, spec["memory"])
        words = limbs_to_ints(arrays[spec["words"]])
        for index, word in enumerate(words):
            memory[index].value = word
        getattr(dut, f"{spec['port']}_count").value = len(words)
        getattr(dut, f"{spec['port']}_idle").value = spec["idle"]
        getattr(dut, f"{spec['port']}_seed").value = spec["seed"]
    for spec in job["streams_out"]:
        getattr(dut, f"{spec['port']}_expected").value = spec["expected_count"]
        getattr(dut, f"{spec['port']}_stall").value = spec["stall"]
        getattr(dut, f"{spec['port']}_seed").value = spec["seed"]
    dut.timeout.value = job["timeout_cycles"]
    dut.drain.value = job["drain_cycles"]
    dut.reset_after.value = job["reset_after"]
    started = time.perf_counter()
    await RisingEdge(dut.clk)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    await RisingEdge(dut.done)
    await ReadOnly()
    wall = time.perf_counter() - started
    result = {
        "name": job["name"],
        "cycles": int(dut.cycles.value),
        "timed_out": bool(dut.timed_out.value),
        "resets": int(dut.resets.value),
    }
    result["wall_seconds"] = wall
    result["outputs"] = {}
    got = {}
    for spec in job["streams_out"]:
        received = int(getattr(dut, f"{spec['port']}_received").value)
        memory = getattr(dut, spec["memory"])
        got[spec["port"]] = [int(memory[index].value) for index in range(received)]
        result["outputs"][spec["port"]] = {
            "received": received,
            "extra": int(getattr(dut, f"{spec['port']}_extra").value),
        }
    await RisingEdge(dut.clk)
    return result, got


@cocotb.test()
async def run_jobs(dut):
    """Play every job of ``$QUIVER_JOBS`` on the harness and write the result files it names."""
    jobs_path = pathlib.Path(os.environ["QUIVER_JOBS"])
    spec = json.loads(jobs_path.read_text())
    arrays = np.load(jobs_path.with_suffix(".npz"))
    Clock(dut.clk, 10, unit="ns").start()
    dut.start.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    results, got_arrays = [], {}
    for job in spec["jobs"]:
        result, got = await play(dut, job, arrays)
        for stream in job["streams_out"]:
            got_arrays[f"{job['name']}/{stream['port']}"] = ints_to_limbs(
                got[stream["port"]], stream["limbs"]
            )
        dut._log.info("%s: %d cycles in %.3f s", job["name"], result["cycles"], result["wall_seconds"])
        results.append(result)
    np.savez(spec["results_npz"], **got_arrays)
    pathlib.Path(spec["results_json"]).write_text(json.dumps({"results": results}, indent=1))
