"""Verilog export: every design gets its .v and a sidecar that describes its ports exactly."""

from __future__ import annotations

import hashlib
import json

from amaranth import signed, unsigned
from amaranth.lib import data

from hw import export
from hw.registry import all_designs, find_design


def test_every_design_exports(tmp_path):
    assert export.main(["--out", str(tmp_path)]) == 0
    for design in all_designs():
        verilog = (tmp_path / f"{design.name}.v").read_text()
        sidecar = json.loads((tmp_path / f"{design.name}.json").read_text())
        assert f"module {design.name}(" in verilog
        assert sidecar["verilog_sha256"] == hashlib.sha256(verilog.encode()).hexdigest()
        assert sidecar["params"] == design.params.to_dict()
        assert sidecar["tools"]["amaranth"].startswith("0.5")
        assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_sidecar_ports_and_layouts(tmp_path):
    design = find_design("bitlog2_half_17")
    verilog, sidecar_path = export.export_design(
        design, __import__("pathlib").Path(__import__("tempfile").mkdtemp())
    )
    sidecar = json.loads(sidecar_path.read_text())
    ports = sidecar["ports"]["interface"]["members"]
    assert ports["i"]["members"]["payload"] == {
        "type": "port", "name": "i__payload", "dir": "in", "width": 9, "signed": False, "init": "0"
    }  # fmt: skip
    assert sidecar["streams"]["o"]["payload"]["fields"][1] == {
        "name": "h", "offset": 4, "shape": {"kind": "int", "width": 1, "signed": False}
    }  # fmt: skip
    assert sidecar["latency"] == 1


def test_describe_shape_nested():
    layout = data.StructLayout({"row": data.ArrayLayout(signed(8), 3), "last": unsigned(1)})
    description = export.describe_shape(layout)
    assert description["width"] == 25
    element = {"kind": "int", "width": 8, "signed": True}
    assert description["fields"][0]["shape"] == {
        "kind": "array", "width": 24, "length": 3, "stride": 8, "element": element
    }  # fmt: skip


def test_verilog_does_not_depend_on_the_checkout_path(tmp_path):
    verilog, _ = export.export_design(find_design("bitlog2_half_16"), tmp_path)
    assert "/work/" not in verilog.read_text() and "src =" not in verilog.read_text()


def test_unknown_design_is_a_clear_error(capsys):
    assert export.main(["--out", "/nonexistent", "nope"]) == 2
    assert "No design named 'nope'" in capsys.readouterr().err
