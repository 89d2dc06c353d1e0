"""BitLog2Quantizer in Amaranth's simulator against the golden model."""

from __future__ import annotations

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.bitlog2 import expected_codes, jobs
from cosim.jobs import InStream, Job, OutStream, run_amaranth
from golden.params import BITLOG2_SCHEMES, BitLog2Params
from hw.bitlog2 import BitLog2Quantizer, bitlog2_code_layout
from hw.registry import find_design


@pytest.mark.parametrize("scheme", list(BITLOG2_SCHEMES))
def test_matches_golden_with_idle_and_backpressure(scheme):
    design = find_design(f"bitlog2_{scheme}")
    params = design.params
    # Exhaustive for the small schemes; edges + random for the 2^15 / 2^16 ones (Verilator does all).
    plan = jobs(design, seed=5, quick=params.input_width > 9)
    assert_all_passed(run_amaranth(design.build(), design.name, design.block, params.to_dict(), plan))


def test_one_value_per_cycle_and_latency():
    params = BitLog2Params("half_17")
    values = np.arange(300)
    job = Job(
        "throughput",
        [InStream("i", values, idle_probability=0.0)],
        [OutStream("o", expected_codes(values, params), stall_probability=0.0)],
    )
    quantizer = BitLog2Quantizer(params)
    [check] = run_amaranth(quantizer, "bitlog2_half_17", "bitlog2", params.to_dict(), [job])
    assert check.passed
    assert quantizer.latency == 1
    assert check.cycles == len(values) + quantizer.latency


def test_code_layout_fields():
    assert [name for name, _ in bitlog2_code_layout(BitLog2Params("half_17"))] == ["k", "h", "zero"]
    assert [name for name, _ in bitlog2_code_layout(BitLog2Params("single_16"))] == ["k", "zero"]
    assert bitlog2_code_layout(BitLog2Params("single_17")).size == 5


def test_rejects_wrong_parameter_object():
    with pytest.raises(TypeError, match="needs BitLog2Params, not 'half_17'"):
        BitLog2Quantizer("half_17")
