"""``make sim``'s entry point: reports written, non-zero exit on a faulty design."""

from __future__ import annotations

import json

import pytest

from cosim import sim
from cosim.faults import swap_output_bits

pytestmark = pytest.mark.verilator


def test_sim_passes_and_writes_reports(tmp_path, capsys):
    assert sim.main(["--designs", "bitlog2_half_16", "--build", str(tmp_path), "--seed", "4"]) == 0
    report = json.loads((tmp_path / "reports" / "bitexact.json").read_text())
    assert report["summary"]["verdict"] == "pass"
    assert report["summary"]["mismatches"] == 0
    assert report["summary"]["vectors"] == 256 + 200
    check = report["checks"][0]
    assert check["params"] == {"kind": "BitLog2Params", "scheme": "half_16", "delta": None}
    assert check["seed"] == 4 and check["cycles"] > 256 and check["simulator"].startswith("Verilator")
    markdown = (tmp_path / "reports" / "bitexact.md").read_text()
    assert "| bitlog2 | bitlog2_half_16 | exhaustive (o) |" in markdown
    assert "PASS: 2 checks, 456 vectors compared, 0 mismatches" in capsys.readouterr().out


def test_sim_fails_on_corrupted_verilog(tmp_path, capsys):
    assert sim.main(["--designs", "bitlog2_half_16", "--build", str(tmp_path)]) == 0
    verilog = tmp_path / "verilog" / "bitlog2_half_16.v"
    verilog.write_text(swap_output_bits(verilog.read_text(), "o__payload", 1, 3))
    status = sim.main(["--designs", "bitlog2_half_16", "--build", str(tmp_path), "--use-existing-verilog"])
    assert status == 1
    report = json.loads((tmp_path / "reports" / "bitexact.json").read_text())
    assert report["summary"]["verdict"] == "fail"
    first = report["checks"][0]["first_mismatch"]
    assert first["expected"] != first["got"]
    assert "FAIL" in capsys.readouterr().out


def test_unknown_design_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match=r"unknown design or block \['nope'\]"):
        sim.main(["--designs", "nope", "--build", str(tmp_path)])
