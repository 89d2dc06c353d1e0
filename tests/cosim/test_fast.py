"""The preloaded harness: same verdicts as the per-cycle bench, far fewer Python wake-ups."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.bitlog2 import expected_codes, jobs
from cosim.fast import run_harness
from cosim.faults import swap_output_bits
from cosim.jobs import InStream, Job, OutStream
from hw.export import export_design
from hw.registry import find_design

pytestmark = pytest.mark.verilator

DESIGN = find_design("bitlog2_half_17")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    verilog, sidecar = export_design(DESIGN, tmp_path_factory.mktemp("verilog"))
    return json.loads(sidecar.read_text()), verilog


def play(exported, jobs, tmp_path):
    sidecar, verilog = exported
    return run_harness(sidecar, verilog, jobs, tmp_path)


def job(values, expected, idle=0.25, stall=0.25, name="job", seed=1):
    return Job(
        name, [InStream("i", values, idle_probability=idle)], [OutStream("o", expected, stall)], seed=seed
    )


def test_every_input_passes_and_unthrottled_cycles_equal_n_plus_latency(exported, tmp_path):
    values = np.random.default_rng(0).permutation(512)
    expected = expected_codes(values, DESIGN.params)
    checks = play(
        exported, [job(values, expected, name="throttled"), job(values, expected, 0, 0, "free")], tmp_path
    )
    assert_all_passed(checks)
    throttled, free = checks
    assert free.cycles == len(values) + 1  # BitLog2Quantizer.latency
    assert throttled.cycles > free.cycles * 1.2, "idle cycles and back-pressure were not applied"
    assert "preloaded harness" in free.simulator


def test_a_corrupted_expected_value_is_caught(exported, tmp_path):
    values = np.arange(300)
    expected = expected_codes(values, DESIGN.params)
    expected["zero"][123] ^= 1
    [check] = play(exported, [job(values, expected)], tmp_path)
    assert check.mismatches == 1
    assert check.first_mismatch["index"] == 123 and check.first_mismatch["input"] == 123


def test_missing_output_times_out(exported, tmp_path):
    values = np.arange(40)
    expected = expected_codes(np.arange(41), DESIGN.params)
    short = Job("short", [InStream("i", values)], [OutStream("o", expected)], timeout_cycles=200)
    [check] = play(exported, [short], tmp_path)
    assert check.timed_out and not check.passed
    assert check.mismatches == 1 and check.first_mismatch["index"] == 40


def test_reset_in_the_middle_of_a_stream(exported, tmp_path):
    plan = [j for j in jobs(DESIGN, seed=1) if j.reset_after_outputs is not None]
    [check] = play(exported, plan, tmp_path)
    assert check.passed and check.extra["midstream_resets"] == 1


def test_the_exported_file_is_what_runs(exported, tmp_path):
    sidecar, verilog = exported
    faulty = tmp_path / "faulty.v"
    faulty.write_text(swap_output_bits(verilog.read_text(), "o__payload", 2, 4))
    values = np.arange(512)
    [check] = run_harness(sidecar, faulty, [job(values, expected_codes(values, DESIGN.params))], tmp_path)
    assert check.mismatches > 0 and check.first_mismatch["expected"] != check.first_mismatch["got"]
