"""ShiftAccumulate in Amaranth's simulator against golden.intops (BitLog2, log-√2, AdaLog A·V)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamutil import assert_all_passed

from cosim.checks.mac_array import matmul_job
from cosim.checks.shift_acc import LIMIT, jobs, limit_codes_and_v, random_codes, tile_log_matmul
from cosim.jobs import run_amaranth
from cosim.payload import pack, unpack
from golden.intops import AccumulatorOverflowError, bitlog2_matmul
from golden.params import (
    BITLOG2_SCHEMES,
    AdaLogParams,
    BitLog2Params,
    LogAVParams,
    ShiftAccParams,
    Sqrt2Params,
)
from hw.export import describe_shape
from hw.registry import Design, find_design
from hw.shift_acc import ShiftAccumulate, shift_acc_step_layout


def design_for(params: ShiftAccParams, name: str = "shiftacc_test") -> Design:
    return Design(name=name, block="shift_acc", params=params, build=lambda: ShiftAccumulate(params))


def run(design: Design, plan):
    return run_amaranth(design.build(), design.name, design.block, design.params.to_dict(), plan)


@pytest.mark.parametrize("name", ["shiftacc_bitlog2_half_17", "shiftacc_sqrt2_4b", "shiftacc_adalog_4b"])
def test_registered_designs_match_golden(name):
    design = find_design(name)
    checks = run(design, jobs(design, seed=7, quick=True))
    assert_all_passed(checks)
    assert any(check.expected_cycles for check in checks)


@pytest.mark.parametrize("scheme", list(BITLOG2_SCHEMES))
def test_every_bitlog2_scheme(scheme):
    params = ShiftAccParams.for_quantizer(
        BitLog2Params(scheme), LogAVParams.default("bitlog2"), rows=3, cols=4, v_bits=6, v_signed=True
    )
    assert_all_passed(run(design_for(params), jobs(design_for(params), seed=1, quick=True)))


@pytest.mark.parametrize(
    "bits, precision, frac_bits, v_bits, v_signed",
    [(4, 8, 8, 8, False), (3, 4, 2, 5, True), (5, 8, 8, 4, False), (2, 1, 0, 3, True)],
)
def test_sqrt2_both_variants(bits, precision, frac_bits, v_bits, v_signed):
    """Includes F below the largest exp (frac_bits 2 and 0): those terms are floored."""
    av = LogAVParams.default("sqrt2", mant_bits=precision, frac_bits=frac_bits)
    params = ShiftAccParams.for_quantizer(
        Sqrt2Params(bits=bits), av, rows=2, cols=3, v_bits=v_bits, v_signed=v_signed
    )
    assert_all_passed(run(design_for(params), jobs(design_for(params), seed=bits, quick=True)))


@pytest.mark.parametrize("q", [10, 25, 37, 74, 119, 137])
def test_adalog_over_the_q_range(q):
    """One build serves every q: the LUT contents arrive decoded. Large q floors the low levels."""
    params = ShiftAccParams.for_quantizer(
        AdaLogParams(bits=4), LogAVParams.default("adalog"), rows=3, cols=2, v_bits=8, v_signed=True
    )
    quantizer = AdaLogParams(bits=4, q=q)
    rng = np.random.default_rng(q)
    products = []
    for m, k, n in [(4, 17, 3), (2, 1, 2), (3, 65, 1)]:
        codes = random_codes(rng, quantizer, (m, k))
        v, zv = rng.integers(-128, 128, (k, n)), rng.integers(-128, 128, n)
        products.append(tile_log_matmul(codes, v, zv, params, quantizer))
    smallest = np.full((3, 9), quantizer.n_codes - 1)
    for v, zv in ((127, -128), (-128, 127)):
        products.append(tile_log_matmul(smallest, np.full((9, 2), v), zv, params, quantizer))
    if q >= 119:
        assert max(quantizer.lut_e) > params.frac_bits  # floored terms are exercised
    assert_all_passed(run(design_for(params), [matmul_job(f"q{q}", products, seed=q)]))


def test_accumulator_reaches_its_limits_exactly():
    code, v, zv = limit_codes_and_v()
    expected = bitlog2_matmul(code, torch.tensor(v), torch.tensor(zv), LIMIT.av)
    assert expected[:, :2].tolist() == [[32767, 16385], [-32768, -32768], [16384, 16384]]
    with pytest.raises(AccumulatorOverflowError):
        bitlog2_matmul(code, torch.tensor(v), torch.tensor(zv), LogAVParams.default("bitlog2", acc_bits=15))
    product = tile_log_matmul(code, v, zv, LIMIT, BitLog2Params("single_17"))
    plan = [
        matmul_job("limits", [product] * 3, seed=2),
        matmul_job("limits-reset", [product] * 3, seed=3, reset_after_outputs=4),
    ]
    assert_all_passed(run(design_for(LIMIT), plan))


@pytest.mark.parametrize("rows, cols", [(4, 4), (1, 2), (3, 1)])
@pytest.mark.parametrize("m, k, n", [(8, 1, 8), (5, 2, 9), (4, 3, 4), (7, 4, 3), (3, 17, 7)])
def test_cycles_equal_the_formula(rows, cols, m, k, n):
    quantizer = Sqrt2Params(bits=4)
    params = ShiftAccParams.for_quantizer(quantizer, LogAVParams.default("sqrt2"), rows=rows, cols=cols)
    rng = np.random.default_rng(m + k + n)
    codes, v, zv = random_codes(rng, quantizer, (m, k)), rng.integers(0, 256, (k, n)), rng.integers(0, 256, n)
    job = matmul_job(
        "throughput",
        [tile_log_matmul(codes, v, zv, params, quantizer)],
        seed=1,
        idle=0.0,
        stall=0.0,
        expected_cycles=params.cycles(m, k, n),
    )
    engine = ShiftAccumulate(params)
    [check] = run_amaranth(engine, "shiftacc_test", "shift_acc", params.to_dict(), [job])
    assert check.passed, (check.cycles, check.expected_cycles)
    assert engine.cycles(m, k, n) == check.cycles and engine.latency == 4


def test_step_layout():
    params = ShiftAccParams.for_quantizer(AdaLogParams(bits=4), LogAVParams.default("adalog"), rows=2, cols=3)
    layout = shift_acc_step_layout(params)
    assert [name for name, _ in layout] == ["codes", "v", "zv", "last"]
    # AdaLog codes arrive decoded: mant (5 bits), exp (7 bits, up to E = 55 at q = 137), zero.
    assert layout.size == 2 * (5 + 7 + 1) + 3 * 8 + 3 * 8 + 1
    bitlog2 = ShiftAccParams(rows=1, cols=1, scheme="half_17")
    assert shift_acc_step_layout(bitlog2)["codes"].shape.size == 4 + 1 + 1


def test_step_payload_packs_and_unpacks_arrays_of_code_structs():
    """The stream payload of R code structs goes through cosim.payload both ways unchanged."""
    quantizer = BitLog2Params("half_17")
    params = ShiftAccParams.for_quantizer(quantizer, LogAVParams.default("bitlog2"), rows=3, cols=2)
    rng = np.random.default_rng(4)
    product = tile_log_matmul(
        random_codes(rng, quantizer, (4, 5)), rng.integers(0, 256, (5, 3)), 7, params, quantizer
    )
    shape = describe_shape(shift_acc_step_layout(params))
    words = pack(shape, product.steps, "i")
    back = unpack(shape, words)
    assert set(back["codes"]) == {"k", "h", "zero"} and back["codes"]["k"].shape == (len(words), 3)
    for name in ("k", "h", "zero"):
        np.testing.assert_array_equal(back["codes"][name], product.steps["codes"][name])
    np.testing.assert_array_equal(back["v"], product.steps["v"])


def test_rejections():
    with pytest.raises(TypeError, match="ShiftAccumulate needs ShiftAccParams"):
        ShiftAccumulate(LogAVParams.default("bitlog2"))
    params = ShiftAccParams.for_quantizer(Sqrt2Params(bits=4), LogAVParams.default("sqrt2"))
    with pytest.raises(ValueError, match="3-bit codes do not match the engine's 4 bits"):
        tile_log_matmul(np.zeros((1, 1)), np.zeros((1, 1)), 0, params, Sqrt2Params(bits=3))
    with pytest.raises(TypeError, match="needs Sqrt2Params"):
        tile_log_matmul(np.zeros((1, 1)), np.zeros((1, 1)), 0, params, AdaLogParams())
    with pytest.raises(ValueError, match=r"v must lie in \[0, 255\]"):
        tile_log_matmul(np.zeros((1, 1)), np.full((1, 1), 256), 0, params, Sqrt2Params(bits=4))
