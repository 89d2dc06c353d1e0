"""AdaLogLut through the exported Verilog on Verilator: every code of all 128 q in one build."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.adalog_lut import code_job, expected_entries, jobs
from cosim.jobs import InStream, Job, OutStream, config_stream, run_verilator
from golden.params import AdaLogParams
from hw.adalog_lut import AdaLogLut
from hw.export import export_design
from hw.registry import find_design

pytestmark = pytest.mark.verilator

DESIGN = find_design("adalog_lut_b4")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    verilog, sidecar = export_design(DESIGN, tmp_path_factory.mktemp("verilog"))
    return json.loads(sidecar.read_text()), verilog


def test_every_code_of_every_q_matches_golden(exported, tmp_path):
    sidecar, verilog = exported
    checks = run_verilator(sidecar, verilog, jobs(DESIGN, seed=11), tmp_path)
    assert_all_passed(checks)
    every_q = [check for check in checks if check.job.endswith("/every-code")]
    assert len(every_q) == 128 and all(check.vectors == 17 * 8 for check in every_q)


def test_throughput_and_a_corrupted_lut_word(exported, tmp_path):
    sidecar, verilog = exported
    params = AdaLogParams(bits=4, q=97)
    codes = np.random.default_rng(3).permutation(np.tile(np.arange(17), 20))
    load = code_job("load", params, codes[:3], seed=1, load=True)
    stream = code_job("stream", params, codes, seed=1, load=False)
    for job in (load, stream):
        job.inputs[-1].idle_probability = 0.0
        job.outputs[0].stall_probability = 0.0
    image = AdaLogLut.config_image(params)
    image[5] = (image[5][0], image[5][1] ^ (1 << 6))  # one bit of E[5]
    corrupted = Job(
        "corrupted",
        [config_stream(image), InStream("i", np.arange(17))],
        [OutStream("o", expected_entries(np.arange(17), params))],
    )
    load_check, stream_check, corrupted_check = run_verilator(
        sidecar, verilog, [load, stream, corrupted], tmp_path
    )
    assert load_check.passed and stream_check.passed
    # The bench resets before every job: the table survived it.
    assert stream_check.cycles == len(codes) + sidecar["latency"]
    assert corrupted_check.mismatches == 1 and corrupted_check.first_mismatch["input"] == 5
