"""ThresholdQuantizer in Amaranth's simulator against the golden log-√2 and AdaLog quantizers."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import unsigned
from streamutil import assert_all_passed

from cosim.checks.threshold_quant import data_job, edge_inputs, expected_codes, jobs, parameter_sets
from cosim.jobs import run_amaranth
from golden.params import ADALOG_GELU_SHIFT, AdaLogParams, Sqrt2Params
from hw.registry import all_designs, find_design
from hw.threshold_quant import ThresholdQuantizer, log_code_shape, threshold_config_map

DESIGNS = [design.name for design in all_designs() if design.block == "threshold_quant"]


def inspected(component):
    """A component built only to look at (ports, ``fits``): not a forgotten design."""
    component._MustUse__silence = True
    return component


def run(quantizer: ThresholdQuantizer, plan, name: str = "threshold_quant"):
    return run_amaranth(quantizer, name, "threshold_quant", quantizer.params.to_dict(), plan)


@pytest.mark.parametrize("name", DESIGNS)
def test_every_parameter_set_matches_golden_with_idle_and_backpressure(name):
    design = find_design(name)
    # Thresholds ±1, range ends and random values per set; Verilator runs the exhaustive plan.
    plan = jobs(design, seed=5, quick=True)
    assert {"reset-midstream", "config-survives-reset"} <= {job.name.rsplit("/", 1)[1] for job in plan}
    assert_all_passed(run(design.build(), plan))


@pytest.mark.parametrize(
    "params",
    [
        AdaLogParams(bits=3, q=55, input_bits=10, input_frac_bits=10),
        AdaLogParams(bits=3, q=137, input_bits=10, input_frac_bits=10),
        Sqrt2Params("sqrt2_16", bits=3, delta=0.9, input_bits=10, input_frac_bits=10),
        AdaLogParams(
            bits=6,
            q=21,
            scale=3.0,
            shift=ADALOG_GELU_SHIFT,
            input_bits=11,
            input_frac_bits=6,
            input_signed=True,
        ),
        Sqrt2Params("sqrt2_17", bits=6, delta=0.7, input_bits=11, input_frac_bits=11),
    ],
    ids=["adalog3-q55", "adalog3-q137", "sqrt2_16-b3", "adalog6-gelu", "sqrt2_17-b6"],
)
@pytest.mark.parametrize("stages", [1, 2])
def test_other_widths_over_every_input(params, stages):
    quantizer = ThresholdQuantizer(params, stages=stages)
    lo, hi = (
        (params.input_min, params.input_max) if isinstance(params, AdaLogParams) else (0, params.input_max)
    )
    every_input = np.random.default_rng(1).permutation(np.arange(lo, hi + 1))
    image = ThresholdQuantizer.config_image(params)
    assert_all_passed(run(quantizer, [data_job("every-input", params, every_input, seed=2, image=image)]))


@pytest.mark.parametrize("stages", [1, 2])
def test_one_value_per_cycle_and_latency(stages):
    params = AdaLogParams(bits=4, q=119)
    quantizer = ThresholdQuantizer(params, stages=stages)
    values = edge_inputs(params)
    load = data_job("load", params, values[:5], seed=1, image=ThresholdQuantizer.config_image(params))
    # The configuration stays loaded, so the second job measures the data stream alone.
    stream = data_job("stream", params, values, seed=1)
    for job in (load, stream):
        job.inputs[-1].idle_probability = 0.0
        job.outputs[0].stall_probability = 0.0
    checks = run(quantizer, [load, stream])
    assert_all_passed(checks)
    assert quantizer.latency == stages
    assert checks[1].cycles == len(values) + quantizer.latency


def test_one_corrupted_threshold_word_is_caught():
    params = Sqrt2Params("sqrt2_17", bits=4, delta=0.5)
    image = ThresholdQuantizer.config_image(params)
    address, word = image[6]
    image[6] = (address, word + 1)  # threshold 6 one LSB too high
    values = edge_inputs(params)
    [check] = run(ThresholdQuantizer(params), [data_job("corrupted", params, values, seed=3, image=image)])
    assert check.mismatches == 1
    assert check.first_mismatch["input"] == params.thresholds[6] + 1


def test_one_circuit_serves_both_families_and_every_variant():
    quantizer = inspected(ThresholdQuantizer(Sqrt2Params()))
    sets = parameter_sets(Sqrt2Params())
    assert {type(params) for params in sets.values()} == {Sqrt2Params, AdaLogParams}
    assert all(quantizer.fits(params) for params in sets.values())
    assert not quantizer.fits(Sqrt2Params(input_bits=24, input_frac_bits=24))
    assert not quantizer.fits(AdaLogParams(input_signed=True, input_frac_bits=11))
    assert not quantizer.fits(Sqrt2Params(bits=3))


def test_code_limits_reproduce_zero_clamp_and_variants():
    limits = ThresholdQuantizer.code_limits
    assert limits(Sqrt2Params("sqrt2_17")) == (16, 15)
    assert limits(Sqrt2Params("sqrt2_16")) == (16, 14)
    assert limits(AdaLogParams(q=37)) == (16, 16)
    assert limits(AdaLogParams(q=137)) == (13, 13)
    # AdaLog q >= 119: every input at or below the clamp, 0 included, gets the clamp code.
    assert expected_codes(np.array([0]), AdaLogParams(q=137)).tolist() == [13]


def test_config_image_layout():
    params = AdaLogParams(
        bits=4, q=74, input_bits=16, input_frac_bits=11, input_signed=True, shift=ADALOG_GELU_SHIFT
    )
    image = ThresholdQuantizer.config_image(params)
    config = threshold_config_map(params)
    assert [address for address, _ in image] == list(range(18))
    assert config.base("bottom_code") == 16 and config.data_width == 16
    # Signed thresholds are two's complement words.
    assert [word - (1 << 16) * (word >> 15) for _, word in image[:16]] == list(params.thresholds)
    assert image[16:] == [(16, 16), (17, 16)]


def test_output_is_the_golden_code_word():
    assert log_code_shape(4) == unsigned(5)
    quantizer = inspected(ThresholdQuantizer(Sqrt2Params(bits=5)))
    assert quantizer.o.payload.shape() == unsigned(6)


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match="needs Sqrt2Params or AdaLogParams, not 'sqrt2_17'"):
        ThresholdQuantizer("sqrt2_17")
    with pytest.raises(ValueError, match="stages must be 1 or 2, not 3"):
        ThresholdQuantizer(Sqrt2Params(), stages=3)
    with pytest.raises(ValueError, match="stages must be 1 or 2, not True"):
        ThresholdQuantizer(Sqrt2Params(), stages=True)
    with pytest.raises(TypeError, match="needs Sqrt2Params or AdaLogParams"):
        ThresholdQuantizer.config_image(None)
