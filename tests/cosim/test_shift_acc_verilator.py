"""ShiftAccumulate through the exported Verilog on Verilator: every family, the formula, faults."""

from __future__ import annotations

import json

import pytest
from streamutil import assert_all_passed

from cosim.checks.mac_array import matmul_job
from cosim.checks.shift_acc import LIMIT, jobs, limit_codes_and_v, tile_log_matmul
from cosim.faults import swap_output_bits
from cosim.jobs import run_verilator
from golden.params import BitLog2Params
from hw.export import export_design
from hw.registry import Design, find_design
from hw.shift_acc import ShiftAccumulate

pytestmark = pytest.mark.verilator


def exported(design: Design, folder):
    verilog, sidecar = export_design(design, folder)
    return verilog, json.loads(sidecar.read_text())


@pytest.mark.parametrize("name", ["shiftacc_bitlog2_half_17", "shiftacc_sqrt2_4b", "shiftacc_adalog_4b"])
def test_full_plan_matches_golden_and_the_cycle_formula(name, tmp_path):
    """BitLog2 Half_17; log-√2 in both variants; AdaLog LUTs of seven q (119 and 137 floor terms)."""
    design = find_design(name)
    verilog, sidecar = exported(design, tmp_path)
    checks = run_verilator(sidecar, verilog, jobs(design, seed=11), tmp_path / "work")
    assert_all_passed(checks)
    assert sum(check.expected_cycles is not None for check in checks) == 4


def test_single_scheme_and_an_accumulator_at_its_limits(tmp_path):
    """BitLog2 Single_17 (no half bit), 5-bit signed V, a 16-bit accumulator reaching both ends."""
    design = Design("shiftacc_bitlog2_single_17_acc16", "shift_acc", LIMIT, lambda: ShiftAccumulate(LIMIT))
    verilog, sidecar = exported(design, tmp_path)
    product = tile_log_matmul(*limit_codes_and_v(), LIMIT, BitLog2Params("single_17"))
    plan = [
        matmul_job("limits", [product] * 4, seed=1),
        matmul_job("limits-reset", [product] * 3, seed=2, reset_after_outputs=4),
        matmul_job(
            "limits-throughput",
            [product] * 3,
            seed=3,
            idle=0,
            stall=0,
            expected_cycles=LIMIT.cycles(9, 16, 5),
        ),
    ]
    assert_all_passed(run_verilator(sidecar, verilog, plan, tmp_path / "work"))


def test_swapped_output_bits_are_caught(tmp_path):
    design = find_design("shiftacc_adalog_4b")
    verilog, sidecar = exported(design, tmp_path)
    verilog.write_text(swap_output_bits(verilog.read_text(), "o__payload", 31, 46))
    [check] = run_verilator(sidecar, verilog, jobs(design, seed=2, quick=True)[:1], tmp_path / "work")
    assert not check.passed and check.mismatches > 0
    assert check.extra["bench_mismatches"] == check.mismatches
    assert check.first_mismatch["expected"] != check.first_mismatch["got"]


def test_corrupted_expected_value_fails_the_bench(tmp_path):
    design = find_design("shiftacc_sqrt2_4b")
    verilog, sidecar = exported(design, tmp_path)
    job = jobs(design, seed=3, quick=True)[0]
    job.outputs[0].expected[21, 3] -= 1
    [check] = run_verilator(sidecar, verilog, [job], tmp_path / "work")
    assert check.mismatches == 1 and check.extra["bench_mismatches"] == 1
    assert check.first_mismatch["index"] == 21
