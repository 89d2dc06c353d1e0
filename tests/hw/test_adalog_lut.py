"""AdaLogLut in Amaranth's simulator against the golden LUT (the shift-accumulate's table)."""

from __future__ import annotations

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.adalog_lut import code_job, expected_entries, jobs
from cosim.jobs import InStream, Job, OutStream, config_stream, run_amaranth
from golden.params import ADALOG_Q_RANGE, AdaLogParams, LogCodeParams
from hw.adalog_lut import AdaLogLut, lut_entry_layout, max_shift
from hw.logdecode import decoded_layout
from hw.registry import find_design


def run(lut: AdaLogLut, plan):
    return run_amaranth(lut, "adalog_lut", "adalog_lut", lut.params.to_dict(), plan)


def every_code(params: AdaLogParams, repeats: int = 3) -> np.ndarray:
    return np.random.default_rng(params.q).permutation(np.tile(np.arange(params.zero_code + 1), repeats))


def test_every_code_of_every_q_matches_golden():
    design = find_design("adalog_lut_b4")
    plan = jobs(design, seed=5, quick=True)
    assert len(plan) == ADALOG_Q_RANGE[1] - ADALOG_Q_RANGE[0] + 1 + 2
    assert_all_passed(run(design.build(), plan))


@pytest.mark.parametrize("bits", [2, 3, 6, 8])
def test_other_widths_over_every_code(bits):
    lut = AdaLogLut(AdaLogParams(bits=bits))
    plan = [
        code_job(
            f"q{q}", AdaLogParams(bits=bits, q=q), every_code(AdaLogParams(bits=bits, q=q)), seed=q, load=True
        )
        for q in (10, 18, 37, 74, 119, 137)
    ]
    assert_all_passed(run(lut, plan))


def test_known_table_q18():
    params = AdaLogParams(bits=4, q=18)
    entries = expected_entries(np.arange(17), params)
    assert entries["exp"].tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 0]
    assert entries["mant"].tolist() == [30, 21, 15, 22, 16, 22, 16, 23, 16, 23, 16, 24, 17, 24, 17, 24, 0]
    assert entries["zero"].tolist() == [0] * 16 + [1]


def test_zero_flag_overrides_the_low_bits():
    params = AdaLogParams(bits=4, q=25)
    # Words 16..31 all carry the zero flag; only 16 is a golden code, the others must decode alike.
    words = np.arange(16, 32)
    expected = {key: np.zeros(16, dtype=np.int64) for key in ("mant", "exp")}
    expected["zero"] = np.ones(16, dtype=np.int64)
    job = Job(
        "zero-words",
        [config_stream(AdaLogLut.config_image(params)), InStream("i", words)],
        [OutStream("o", expected)],
        seed=4,
    )
    assert_all_passed(run(AdaLogLut(params), [job]))


def test_wider_exp_output_and_the_shared_decoded_layout():
    params = AdaLogParams(bits=4, q=137)
    lut = AdaLogLut(params, exp_bits=12)
    assert lut.o.payload.exp.shape().width == 12
    assert_all_passed(run(lut, [code_job("wide", params, every_code(params), seed=1, load=True)]))
    # The default output is exactly the shift-accumulate's decoded AdaLog layout.
    default = AdaLogLut(params)
    assert default.o.payload.shape() == decoded_layout(LogCodeParams("adalog", bits=4))
    assert_all_passed(run(default, [code_job("default", params, every_code(params), seed=1, load=True)]))


def test_one_code_per_cycle_and_latency():
    params = AdaLogParams(bits=4, q=61)
    lut = AdaLogLut(params)
    codes = every_code(params, repeats=20)
    load = code_job("load", params, codes[:4], seed=1, load=True)
    stream = code_job("stream", params, codes, seed=1, load=False)
    for job in (load, stream):
        job.inputs[-1].idle_probability = 0.0
        job.outputs[0].stall_probability = 0.0
    checks = run(lut, [load, stream])
    assert_all_passed(checks)
    assert lut.latency == 1
    assert checks[1].cycles == len(codes) + lut.latency


def test_one_corrupted_lut_word_is_caught():
    params = AdaLogParams(bits=4, q=30)
    image = AdaLogLut.config_image(params)
    address, word = image[11]
    image[11] = (address, word ^ 1)  # M[11] off by one
    codes = np.arange(17)
    job = Job(
        "corrupted",
        [config_stream(image), InStream("i", codes)],
        [OutStream("o", expected_entries(codes, params))],
    )
    [check] = run(AdaLogLut(params), [job])
    assert check.mismatches == 1
    assert check.first_mismatch["input"] == 11


def test_entry_layout_and_image():
    assert max_shift(4) == 55
    layout = lut_entry_layout(4)
    assert (layout["mant"].shape.width, layout["shift"].shape.width, layout["shift"].offset) == (5, 6, 5)
    params = AdaLogParams(bits=4, q=18)
    image = AdaLogLut.config_image(params)
    assert [address for address, _ in image] == list(range(16))
    assert [(word & 31, word >> 5) for _, word in image] == list(zip(params.lut_m, params.lut_e))


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match="needs AdaLogParams, not 4"):
        AdaLogLut(4)
    with pytest.raises(ValueError, match=r"exp_bits must be an integer in \[7, 32\] for 4 bits, not 6"):
        AdaLogLut(AdaLogParams(), exp_bits=6)
    with pytest.raises(TypeError, match="needs AdaLogParams"):
        AdaLogLut.config_image(None)
