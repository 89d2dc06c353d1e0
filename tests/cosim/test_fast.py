"""The preloaded harness: same verdicts as the per-cycle bench, far fewer Python wake-ups."""

from __future__ import annotations

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.bitlog2 import expected_codes, jobs
from cosim.fast import harness_for, run_harness
from cosim.jobs import InStream, Job, OutStream
from hw.registry import find_design

pytestmark = pytest.mark.verilator

DESIGN = find_design("bitlog2_half_17")


def job(values, expected, idle=0.25, stall=0.25, name="job", seed=1):
    return Job(
        name, [InStream("i", values, idle_probability=idle)], [OutStream("o", expected, stall)], seed=seed
    )


def test_every_input_passes_and_unthrottled_cycles_equal_n_plus_latency(tmp_path):
    values = np.random.default_rng(0).permutation(512)
    expected = expected_codes(values, DESIGN.params)
    checks = run_harness(
        DESIGN, [job(values, expected, name="throttled"), job(values, expected, 0, 0, "free")], tmp_path
    )
    assert_all_passed(checks)
    throttled, free = checks
    assert free.cycles == len(values) + 1  # BitLog2Quantizer.latency
    assert throttled.cycles > free.cycles * 1.2, "idle cycles and back-pressure were not applied"
    assert "preloaded harness" in free.simulator


def test_a_corrupted_expected_value_is_caught(tmp_path):
    values = np.arange(300)
    expected = expected_codes(values, DESIGN.params)
    expected["zero"][123] ^= 1
    [check] = run_harness(DESIGN, [job(values, expected)], tmp_path)
    assert check.mismatches == 1
    assert check.first_mismatch["index"] == 123 and check.first_mismatch["input"] == 123


def test_missing_output_times_out(tmp_path):
    values = np.arange(40)
    expected = expected_codes(np.arange(41), DESIGN.params)
    short = Job("short", [InStream("i", values)], [OutStream("o", expected)], timeout_cycles=200)
    [check] = run_harness(DESIGN, [short], tmp_path)
    assert check.timed_out and not check.passed
    assert check.mismatches == 1 and check.first_mismatch["index"] == 40


def test_plans_with_a_midstream_reset_are_refused():
    plan = jobs(DESIGN, seed=1)
    assert any(j.reset_after_outputs is not None for j in plan)
    with pytest.raises(ValueError, match="does not reset in the middle of a stream"):
        harness_for(DESIGN, plan)
