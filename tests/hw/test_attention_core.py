"""AttentionCore in Amaranth's simulator: BitLog2, log-√2 and AdaLog heads against the golden model,
with idle cycles, back-pressure, padding, a reset, the cycle formula and a wrong memory image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from streamutil import assert_all_passed

from cosim.checks.attention_core import head_config, head_golden, head_job, inspected_core, jobs, random_head
from cosim.jobs import run_amaranth
from golden.params import AdaLogParams, BitLog2Params, LogAVParams, ParamError, Sqrt2Params
from hw.attention_core import AttentionCore, AttentionCoreParams
from hw.registry import find_design

SQRT2 = AttentionCoreParams(
    head_dim=8,
    tokens=11,
    rows=3,
    cols=4,
    probs=Sqrt2Params("sqrt2_17", bits=4, delta=0.9, input_bits=24, input_frac_bits=24),
    log_av=LogAVParams.default("sqrt2", acc_bits=27),
)
ADALOG = AttentionCoreParams(
    head_dim=4,
    tokens=9,
    rows=2,
    cols=2,
    qk_bits=3,
    v_bits=5,
    qk_acc_bits=12,
    probs=AdaLogParams(bits=4, q=119, input_bits=24, input_frac_bits=24),
    log_av=LogAVParams.default("adalog", acc_bits=28),
    out_bits=6,
)


def run(params: AttentionCoreParams, plan):
    return run_amaranth(AttentionCore(params), "core", "attention_core", params.to_dict(), plan)


def test_registered_core_matches_golden():
    design = find_design("attention_core_bitlog2_half_17")
    assert design.params.head_dim == 16 and design.params.tokens == 50
    checks = run(design.params, jobs(design, seed=3, quick=True))
    assert_all_passed(checks)
    timed = [check for check in checks if check.expected_cycles is not None]
    assert timed and all(check.cycles == check.expected_cycles for check in timed)


@pytest.mark.parametrize("params", [SQRT2, ADALOG], ids=["sqrt2_17", "adalog_q119"])
def test_comparator_bank_families(params):
    """Run-time thresholds (and the AdaLog LUT, whose q = 119 gives probability 0 a nonzero code)."""
    rng = np.random.default_rng(5)
    plan = [
        head_job("random", params, random_head(rng, params, params.tokens), seed=1),
        head_job("short", params, random_head(rng, params, 1), seed=2),
        head_job("extremes", params, random_head(rng, params, params.rows + 1, extreme=True), seed=3),
        head_job("timed", params, random_head(rng, params, params.tokens), seed=4, timed=True),
        head_job("reset", params, random_head(rng, params, 5), seed=5, reset_after_outputs=3),
    ]
    assert_all_passed(run(params, plan))


@pytest.mark.parametrize(
    "rows, cols, lanes, tokens",
    [
        (1, 1, None, 7),  # Q·Kᵀ-bound
        (2, 8, 1, 7),  # A·V-bound: one probability per cycle
        (5, 2, 1, 7),
        (2, 8, None, 7),  # R quantizers: a step per cycle
        (5, 2, None, 7),
        (4, 2, 2, 7),
        (4, 64, None, 7),  # A·V-bound even with R quantizers
        (4, 64, None, 2),  # fewer tokens than rows: the engine's drain sets the pace
    ],
)
def test_cycles_equal_the_formula(rows, cols, lanes, tokens):
    params = AttentionCoreParams(head_dim=4, tokens=tokens, rows=rows, cols=cols, lanes=lanes)
    head = random_head(np.random.default_rng(rows * 10 + cols), params, params.tokens)
    image = head_config(inspected_core(params), head)
    job = head_job("timed", params, head, seed=1, timed=True, image=image)
    assert job.expected_cycles == len(image) + max(params.qk_cycles(), params.av_cycles())
    scores, out = run(params, [job])
    assert scores.passed and out.passed, (scores.cycles, scores.expected_cycles)


def test_quantizer_lanes_speed_up_the_av_chain():
    one, four = (AttentionCoreParams(rows=4, cols=16, lanes=lanes) for lanes in (1, None))
    assert four.quantizer_lanes == 4 and four.to_dict()["lanes"] == 4
    assert four.av_cycles() < one.av_cycles() and four.cycles() < one.cycles()


def test_a_wrong_requant_multiplier_in_the_memory_image_is_caught():
    params = AttentionCoreParams(head_dim=4, tokens=6, rows=2, cols=2)
    rng = np.random.default_rng(9)
    head = random_head(rng, params, params.tokens)
    core = inspected_core(params)
    wrong = dataclasses.replace(
        head, score_requant=dataclasses.replace(head.score_requant, multiplier=(1 << 15,))
    )
    job = head_job("wrong", params, head, seed=1, image=head_config(core, wrong))
    scores, out = run(params, [job])
    assert scores.mismatches > 0 and not scores.passed


def test_golden_head_pads_rows_with_probability_zero():
    params = AttentionCoreParams(head_dim=4, tokens=5, rows=4, cols=2)
    head = random_head(np.random.default_rng(2), params, 5)
    golden = head_golden(head, params.rows)
    assert golden.padded_xi.shape == (8, 5) and not golden.padded_xi[5:].any()
    np.testing.assert_array_equal(golden.padded_out[:5], golden.out)


def test_config_regions_and_latency():
    core = inspected_core(ADALOG)
    regions = ["qk_zero_points", "score_requant", "v_zero_point", "quantizer", "lut", "av_requant"]
    bases = [core.region_base(name) for name in regions]
    # Regions in declaration order, each as large as the largest block map (18 threshold words).
    assert bases == [number * bases[1] for number in range(len(regions))] and bases[1] == 32
    assert core.qk_latency == 7 and core.av_latency == 3 + 2 + 4 + 4
    bitlog2 = inspected_core(AttentionCoreParams())
    with pytest.raises(ValueError, match="config regions are .*, not 'quantizer'"):
        bitlog2.region_base("quantizer")


def test_rejections():
    with pytest.raises(ParamError, match="head_dim must be a power of two up to 64, not 12"):
        AttentionCoreParams(head_dim=12)
    with pytest.raises(ParamError, match="cols must be a power of two up to 64, not 3"):
        AttentionCoreParams(cols=3)
    with pytest.raises(ParamError, match="probs must be a BitLog2, log-√2 or AdaLog quantizer"):
        AttentionCoreParams(probs=LogAVParams.default("bitlog2"))
    with pytest.raises(ParamError, match="does not match"):
        AttentionCoreParams(probs=BitLog2Params("half_17"), log_av=LogAVParams.default("sqrt2"))
    with pytest.raises(ParamError, match="lanes must divide rows = 4, not 3"):
        AttentionCoreParams(rows=4, lanes=3)
    with pytest.raises(TypeError, match="AttentionCore needs AttentionCoreParams"):
        AttentionCore(BitLog2Params("half_17"))
    with pytest.raises(ValueError, match="needs matching probs"):
        inspected_core(SQRT2).config_image(
            q_zero_point=0,
            k_zero_point=0,
            v_zero_point=0,
            score_requant=SQRT2.score_requant,
            av_requant=SQRT2.av_requant,
        )
