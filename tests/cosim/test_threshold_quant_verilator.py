"""ThresholdQuantizer through the exported Verilog on Verilator: many parameter sets per build."""

from __future__ import annotations

import json

import pytest
from streamutil import assert_all_passed

from cosim.checks.threshold_quant import data_job, edge_inputs, jobs
from cosim.jobs import run_verilator
from golden.params import AdaLogParams
from hw.export import export_design
from hw.registry import find_design
from hw.threshold_quant import ThresholdQuantizer

pytestmark = pytest.mark.verilator


def exported(name, folder):
    verilog, sidecar = export_design(find_design(name), folder)
    return verilog, json.loads(sidecar.read_text())


@pytest.mark.parametrize("name", ["thresholdq_u16_b4", "thresholdq_s16_b4"])
def test_every_input_of_every_parameter_set_matches_golden(name, tmp_path):
    design = find_design(name)
    verilog, sidecar = exported(name, tmp_path)
    plan = jobs(design, seed=11)
    checks = run_verilator(sidecar, verilog, plan, tmp_path / "work")
    assert_all_passed(checks)
    exhaustive = [check for check in checks if check.job.endswith("/exhaustive")]
    assert len(exhaustive) >= 5 and all(check.vectors == 1 << 16 for check in exhaustive)
    assert checks[0].simulator.startswith("Verilator 5.")


def test_24_bit_grid_thresholds_ends_and_random(tmp_path):
    design = find_design("thresholdq_u24_b4")
    verilog, sidecar = exported(design.name, tmp_path)
    # Three of the plan's sets (log-√2, the q = 74 ties, the q = 137 clamp) plus the resets.
    plan = [
        job
        for job in jobs(design, seed=12)
        if any(
            f"/{label}/" in job.name
            for label in ("sqrt2_17-d1.0", "adalog-softmax-q74", "adalog-softmax-q137")
        )
    ]
    assert len(plan) == 5
    checks = run_verilator(sidecar, verilog, plan, tmp_path / "work")
    assert_all_passed(checks)
    assert checks[0].vectors > 100_000


def test_throughput_and_a_corrupted_threshold_word(tmp_path):
    design = find_design("thresholdq_u24_b4")
    verilog, sidecar = exported(design.name, tmp_path)
    params = AdaLogParams(bits=4, q=50, input_bits=24, input_frac_bits=24)
    values = edge_inputs(params)
    image = ThresholdQuantizer.config_image(params)
    load = data_job("load", params, values[:3], seed=1, image=image)
    stream = data_job("stream", params, values, seed=1)
    for job in (load, stream):
        job.inputs[-1].idle_probability = 0.0
        job.outputs[0].stall_probability = 0.0
    bad_image = list(image)
    bad_image[9] = (bad_image[9][0], bad_image[9][1] - 1)
    corrupted = data_job("corrupted", params, values, seed=2, image=bad_image)
    load_check, stream_check, corrupted_check = run_verilator(
        sidecar, verilog, [load, stream, corrupted], tmp_path / "work"
    )
    assert load_check.passed and stream_check.passed
    # The bench resets before every job: the configuration survived it.
    assert stream_check.cycles == len(values) + sidecar["latency"]
    assert corrupted_check.mismatches == 1
    assert corrupted_check.first_mismatch["input"] == params.thresholds[9]
