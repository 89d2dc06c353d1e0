"""Log decoders through the exported Verilog on Verilator: every code, and a fault caught."""

from __future__ import annotations

import json

import pytest
from streamutil import assert_all_passed

from cosim.checks.logdecode import jobs
from cosim.faults import swap_output_bits
from cosim.jobs import run_verilator
from hw.export import export_design
from hw.registry import find_design

pytestmark = pytest.mark.verilator


def exported(name, folder):
    verilog, sidecar = export_design(find_design(name), folder)
    return verilog, json.loads(sidecar.read_text())


@pytest.mark.parametrize("name", ["logdecode_bitlog2_half_17", "logdecode_sqrt2_4b"])
def test_every_code_matches_golden(name, tmp_path):
    verilog, sidecar = exported(name, tmp_path)
    checks = run_verilator(sidecar, verilog, jobs(find_design(name), seed=11), tmp_path / "work")
    assert_all_passed(checks)


def test_swapped_output_bits_are_caught(tmp_path):
    verilog, sidecar = exported("logdecode_sqrt2_4b", tmp_path)
    # mant bit 8 (set only by even codes' 256) against exp bit 0 (odd exps).
    verilog.write_text(swap_output_bits(verilog.read_text(), "o__payload", 8, 9))
    [check] = run_verilator(
        sidecar, verilog, jobs(find_design("logdecode_sqrt2_4b"), seed=2)[:1], tmp_path / "work"
    )
    assert not check.passed and check.mismatches > 0
    assert check.first_mismatch["input"] is not None
