"""Requantizer through the exported Verilog on Verilator: per-channel and per-tensor tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.requant import jobs, row_stimulus, rows_job, structure
from cosim.jobs import run_verilator
from golden.params import RequantParams
from hw.export import export_design
from hw.registry import all_designs, find_design

pytestmark = pytest.mark.verilator

DESIGNS = [design.name for design in all_designs() if design.block == "requant"]


def exported(name, folder):
    verilog, sidecar = export_design(find_design(name), folder)
    return verilog, json.loads(sidecar.read_text())


@pytest.mark.parametrize("name", DESIGNS)
def test_every_parameter_set_matches_golden(name, tmp_path):
    design = find_design(name)
    verilog, sidecar = exported(name, tmp_path)
    plan = jobs(design, seed=11)
    checks = run_verilator(sidecar, verilog, plan, tmp_path / "work")
    assert_all_passed(checks)
    labels = {check.job.split("/")[1] for check in checks}
    assert any(label.startswith("every-shift") for label in labels)
    assert any(label.startswith("per-tensor") for label in labels)


def test_throughput_and_a_corrupted_table_word(tmp_path):
    design = find_design("requant_c64_l8_u8")
    verilog, sidecar = exported(design.name, tmp_path)
    requantizer = structure(design)
    params: RequantParams = design.params
    acc, channel = row_stimulus(np.random.default_rng(4), params, 8, 300, channel_limit=64)
    load = rows_job("load", requantizer, params, acc[:3], channel[:3], seed=1)
    stream = rows_job("stream", requantizer, params, acc, channel, seed=1, load=False)
    for job in (load, stream):
        job.inputs[-1].idle_probability = 0.0
        job.outputs[0].stall_probability = 0.0
    corrupted = rows_job("corrupted", requantizer, params, acc, channel, seed=2)
    words = corrupted.inputs[0].values["data"]
    words[9] = words[9] ^ (1 << 45)  # a high multiplier bit of channel 9
    load_check, stream_check, corrupted_check = run_verilator(
        sidecar, verilog, [load, stream, corrupted], tmp_path / "work"
    )
    assert load_check.passed and stream_check.passed
    # The bench resets before every job: the tables survived it.
    assert stream_check.cycles == len(acc) + sidecar["latency"]
    assert corrupted_check.mismatches > 0
    assert corrupted_check.first_mismatch["input"]["channel"] == 8


def test_make_sim_harness_runs_the_plan_beside_the_status_port(tmp_path):
    # make sim's preloaded harness wraps the block; channel_error is a port outside the streams.
    from cosim.fast import run_harness

    design = find_design("requant_c32_l1_s8")
    verilog, sidecar = exported(design.name, tmp_path)
    assert "channel_error" in {port for port in sidecar["ports"]["interface"]["members"]}
    assert_all_passed(run_harness(sidecar, verilog, jobs(design, seed=1), tmp_path / "work"))
