"""BitLog2 through the exported Verilog on Verilator: every input, and faults caught."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.bitlog2 import expected_codes, jobs
from cosim.faults import swap_output_bits
from cosim.jobs import InStream, Job, OutStream, run_verilator
from golden.params import BITLOG2_SCHEMES
from hw.export import export_design
from hw.registry import find_design

pytestmark = pytest.mark.verilator


def exported(name, folder):
    verilog, sidecar = export_design(find_design(name), folder)
    return verilog, json.loads(sidecar.read_text())


@pytest.mark.parametrize("scheme", list(BITLOG2_SCHEMES))
def test_every_input_matches_golden(scheme, tmp_path):
    design = find_design(f"bitlog2_{scheme}")
    verilog, sidecar = exported(design.name, tmp_path)
    checks = run_verilator(sidecar, verilog, jobs(design, seed=11), tmp_path / "work")
    assert_all_passed(checks)
    exhaustive = checks[0]
    assert exhaustive.vectors == 1 << design.params.input_width
    assert exhaustive.simulator.startswith("Verilator 5.")


def test_swapped_output_bits_are_caught(tmp_path):
    design = find_design("bitlog2_half_17")
    verilog, sidecar = exported(design.name, tmp_path)
    verilog.write_text(swap_output_bits(verilog.read_text(), "o__payload", 0, 4))
    checks = run_verilator(sidecar, verilog, jobs(design, seed=2)[:1], tmp_path / "work")
    [check] = checks
    assert not check.passed
    assert check.mismatches > 0
    assert check.extra["bench_mismatches"] == check.mismatches
    first = check.first_mismatch
    assert first["expected"] != first["got"]
    assert first["input"] is not None


def test_one_corrupted_expected_value_fails_the_bench(tmp_path):
    design = find_design("bitlog2_half_16")
    verilog, sidecar = exported(design.name, tmp_path)
    values = np.arange(256)
    expected = expected_codes(values, design.params)
    expected["k"][100] = (expected["k"][100] + 1) % 8
    job = Job("corrupted", [InStream("i", values)], [OutStream("o", expected)], seed=3)
    [check] = run_verilator(sidecar, verilog, [job], tmp_path / "work")
    assert check.mismatches == 1 and check.extra["bench_mismatches"] == 1
    assert check.first_mismatch["index"] == 100 and check.first_mismatch["input"] == 100
