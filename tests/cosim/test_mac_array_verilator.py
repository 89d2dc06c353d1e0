"""MacArray through the exported Verilog on Verilator: golden products, the cycle formula, faults."""

from __future__ import annotations

import json

import pytest
from streamutil import assert_all_passed

from cosim.checks.mac_array import LIMIT, jobs, limit_operands, matmul_job, tile_matmul
from cosim.faults import swap_output_bits
from cosim.jobs import run_verilator
from cosim.report import write_bitexact_report
from hw.export import export_design
from hw.mac_array import MacArray
from hw.registry import Design, find_design

pytestmark = pytest.mark.verilator


def exported(design: Design, folder):
    verilog, sidecar = export_design(design, folder)
    return verilog, json.loads(sidecar.read_text())


@pytest.mark.parametrize("name", ["mac_4x4_uint4", "mac_8x8_int8"])
def test_full_plan_matches_golden_and_the_cycle_formula(name, tmp_path):
    design = find_design(name)
    verilog, sidecar = exported(design, tmp_path)
    checks = run_verilator(sidecar, verilog, jobs(design, seed=11), tmp_path / "work")
    assert_all_passed(checks)
    timed = [check for check in checks if check.expected_cycles is not None]
    assert len(timed) == 4 and all(check.cycles == check.expected_cycles for check in timed)
    assert checks[0].simulator.startswith("Verilator 5.")


def test_mixed_formats_and_an_accumulator_at_its_limits(tmp_path):
    """6-bit unsigned x 6-bit signed on 3 x 2 cells with the narrowest accumulator (13 bits)."""
    design = Design("mac_3x2_u6s6_acc13", "mac_array", LIMIT, lambda: MacArray(LIMIT))
    verilog, sidecar = exported(design, tmp_path)
    product = tile_matmul(*limit_operands(), LIMIT)
    plan = [
        matmul_job("limits", [product] * 4, seed=1),
        matmul_job("limits-reset", [product] * 3, seed=2, reset_after_outputs=4),
        matmul_job(
            "limits-throughput",
            [product] * 5,
            seed=3,
            idle=0,
            stall=0,
            expected_cycles=LIMIT.cycles(15, 9, 2),
        ),
    ]
    assert_all_passed(run_verilator(sidecar, verilog, plan, tmp_path / "work"))


def test_swapped_output_bits_are_caught(tmp_path):
    design = find_design("mac_4x4_uint4")
    verilog, sidecar = exported(design, tmp_path)
    verilog.write_text(swap_output_bits(verilog.read_text(), "o__payload", 3, 40))
    [check] = run_verilator(sidecar, verilog, jobs(design, seed=2, quick=True)[:1], tmp_path / "work")
    assert not check.passed and check.mismatches > 0
    assert check.extra["bench_mismatches"] == check.mismatches
    assert check.first_mismatch["expected"] != check.first_mismatch["got"]
    # Output rows do not follow inputs one to one, so no (misleading) input is named.
    assert check.first_mismatch["input"] is None


def test_corrupted_expectations_fail_the_bench(tmp_path):
    design = find_design("mac_4x4_uint4")
    verilog, sidecar = exported(design, tmp_path)
    plan = jobs(design, seed=3, quick=True)
    values, timed = plan[0], next(job for job in plan if job.expected_cycles is not None)
    values.outputs[0].expected[10, 2] += 1
    timed.expected_cycles += 1
    checks = run_verilator(sidecar, verilog, [values, timed], tmp_path / "work")
    assert checks[0].mismatches == 1 and checks[0].extra["bench_mismatches"] == 1
    assert checks[0].first_mismatch["index"] == 10
    assert checks[1].mismatches == 0 and not checks[1].passed
    assert checks[1].cycles == timed.expected_cycles - 1
    document = write_bitexact_report(checks, tmp_path / "reports")
    assert document["summary"]["verdict"] == "fail"
    assert f"cycles, formula {timed.expected_cycles:,}" in (tmp_path / "reports" / "bitexact.md").read_text()
