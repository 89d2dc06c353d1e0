"""LogDecoder in Amaranth's simulator: every code against LogCodeParams.decode."""

from __future__ import annotations

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.logdecode import every_code, expected_decoded, jobs
from cosim.jobs import InStream, Job, OutStream, run_amaranth
from golden.params import BITLOG2_SCHEMES, LogCodeParams
from hw.logdecode import LogDecoder, decoded_layout
from hw.registry import Design


def run(params: LogCodeParams, plan):
    return run_amaranth(LogDecoder(params), "logdecode_test", "logdecode", params.to_dict(), plan)


def plan_for(params: LogCodeParams, seed: int = 3):
    return jobs(
        Design("logdecode_test", "logdecode", params, lambda: LogDecoder(params)), seed=seed, quick=True
    )


@pytest.mark.parametrize("scheme", list(BITLOG2_SCHEMES))
def test_bitlog2_every_code(scheme):
    params = LogCodeParams("bitlog2", scheme=scheme)
    assert_all_passed(run(params, plan_for(params)))


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("precision", [1, 8, 16])
def test_sqrt2_every_code(bits, precision):
    params = LogCodeParams("sqrt2", bits=bits, mant_bits=precision)
    assert_all_passed(run(params, plan_for(params, seed=bits)))


def test_codes_above_the_zero_code_are_zero():
    params = LogCodeParams("sqrt2", bits=3, mant_bits=8)
    codes = every_code(params)
    assert len(codes) == 16
    expected = expected_decoded(codes, params)
    assert (expected["zero"] == (codes >= 8)).all() and (expected["mant"][8:] == 0).all()


def test_one_code_per_cycle_and_latency():
    params = LogCodeParams("sqrt2", bits=4, mant_bits=8)
    codes = np.tile(np.arange(17), 10)
    job = Job(
        "throughput",
        [InStream("i", codes, idle_probability=0.0)],
        [OutStream("o", expected_decoded(codes, params), stall_probability=0.0)],
    )
    decoder = LogDecoder(params)
    [check] = run_amaranth(decoder, "logdecode_test", "logdecode", params.to_dict(), [job])
    assert check.passed and check.cycles == len(codes) + decoder.latency


def test_layouts_and_rejections():
    assert [name for name, _ in decoded_layout(LogCodeParams("bitlog2", scheme="half_17"))] == [
        "mant",
        "exp",
        "zero",
    ]
    assert decoded_layout(LogCodeParams("adalog", bits=4)).size == 5 + 7 + 1
    with pytest.raises(ValueError, match="cannot decode AdaLog codes"):
        LogDecoder(LogCodeParams("adalog", bits=4))
    with pytest.raises(TypeError, match="needs LogCodeParams"):
        LogDecoder("half_17")
