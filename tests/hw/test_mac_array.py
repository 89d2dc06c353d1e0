"""MacArray in Amaranth's simulator against golden.intops.int_matmul, and the host-side tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamutil import assert_all_passed

from cosim.checks.mac_array import (
    LIMIT,
    jobs,
    limit_operands,
    matmul_job,
    random_operands,
    tile_matmul,
    tile_result,
    untile,
)
from cosim.jobs import run_amaranth
from golden.intops import AccumulatorOverflowError, int_matmul
from golden.params import MacArrayParams
from hw.mac_array import MacArray, mac_step_layout
from hw.registry import Design, find_design


def design_for(params: MacArrayParams, name: str = "mac_test") -> Design:
    return Design(name=name, block="mac_array", params=params, build=lambda: MacArray(params))


def run(design: Design, plan):
    return run_amaranth(design.build(), design.name, design.block, design.params.to_dict(), plan)


@pytest.mark.parametrize("name", ["mac_4x4_uint4", "mac_8x8_int8"])
def test_registered_designs_match_golden(name):
    design = find_design(name)
    checks = run(design, jobs(design, seed=5, quick=True))
    assert_all_passed(checks)
    assert any(check.expected_cycles for check in checks)


# Operand formats: widths 2..8, every signedness pairing, arrays off the square.
FORMATS = [
    (3, 5, 4, False, 4, False),
    (5, 3, 6, False, 6, True),
    (4, 2, 6, True, 4, False),
    (2, 4, 8, True, 8, True),
    (3, 3, 8, False, 8, False),
    (1, 3, 2, True, 7, False),
]


@pytest.mark.parametrize("rows, cols, a_bits, a_signed, b_bits, b_signed", FORMATS)
def test_operand_formats_match_golden(rows, cols, a_bits, a_signed, b_bits, b_signed):
    params = MacArrayParams(rows, cols, a_bits, a_signed, b_bits, b_signed)
    assert_all_passed(run(design_for(params), jobs(design_for(params), seed=rows * 10 + cols, quick=True)))


def test_accumulator_reaches_its_limits_exactly():
    a, b, za, zb = limit_operands()
    expected = int_matmul(
        torch.tensor(a), torch.tensor(b), torch.tensor(za)[:, None], torch.tensor(zb), acc_bits=13
    )
    assert expected.tolist() == [[4095, 0], [-4096, 0], [0, -4095]]
    with pytest.raises(AccumulatorOverflowError):
        int_matmul(torch.tensor(a), torch.tensor(b), torch.tensor(za)[:, None], torch.tensor(zb), acc_bits=12)
    product = tile_matmul(a, b, za, zb, LIMIT)
    assert product.rows.tolist() == expected.tolist()
    plan = [
        matmul_job("limits", [product] * 3, seed=4),
        matmul_job("limits-reset", [product] * 3, seed=5, reset_after_outputs=4),
    ]
    assert_all_passed(run(design_for(LIMIT), plan))


@pytest.mark.parametrize("rows, cols", [(4, 4), (1, 1), (3, 2)])
@pytest.mark.parametrize(
    "m, k, n", [(8, 1, 8), (5, 2, 9), (4, 3, 4), (7, 4, 3), (9, 5, 5), (3, 17, 7), (1, 1, 1)]
)
def test_cycles_equal_the_formula(rows, cols, m, k, n):
    """No idle inputs, no back-pressure: the measured cycles are exactly MacArrayParams.cycles."""
    params = MacArrayParams(rows, cols, 4, False, 4, True)
    product = tile_matmul(*random_operands(np.random.default_rng(m * k * n), params, m, k, n), params)
    job = matmul_job(
        "throughput", [product], seed=1, idle=0.0, stall=0.0, expected_cycles=params.cycles(m, k, n)
    )
    array = MacArray(params)
    [check] = run_amaranth(array, "mac_test", "mac_array", params.to_dict(), [job])
    assert check.passed, (check.cycles, check.expected_cycles)
    assert array.cycles(m, k, n) == check.cycles
    assert array.latency == 3


def test_batched_products_stream_back_to_back_at_the_formula():
    """Attention heads as one stream: per-head zero points, cycles = cycles(M, K, N, batch=H)."""
    params = MacArrayParams(4, 4, 4, False, 4, False)
    rng = np.random.default_rng(9)
    heads, m, k, n = 3, 5, 6, 7
    a, b = rng.integers(0, 16, (heads, m, k)), rng.integers(0, 16, (heads, k, n))
    za, zb = rng.integers(0, 16, (heads, 1)), rng.integers(0, 16, (heads, 1))
    product = tile_matmul(a, b, za, zb, params)
    expected_cycles = params.cycles(m, k, n, batch=heads)
    job = matmul_job("heads", [product], seed=2, idle=0.0, stall=0.0, expected_cycles=expected_cycles)
    [check] = run(design_for(params), [job])
    assert check.passed and check.cycles == expected_cycles == (3 * 4 - 1) * 6 + 6 + 4 + 2


def test_back_to_back_tiles_sustain_one_step_per_cycle():
    """K >= R: every cycle after the pipeline fills accepts a k-step (R x C MACs)."""
    params = MacArrayParams(4, 4, 8, True, 8, True)
    m, k, n = 12, 16, 8
    tiles = params.tiles(m, n)
    assert params.cycles(m, k, n) == tiles * k + params.latency + params.rows - 1


def test_tiling_round_trip_and_padding():
    params = MacArrayParams(3, 4, 4, False, 4, False)
    rng = np.random.default_rng(0)
    result = rng.integers(-100, 100, (2, 7, 9))
    rows = tile_result(result, params.rows, params.cols)
    assert rows.shape == (2 * 3 * 3 * 3, 4)
    np.testing.assert_array_equal(untile(rows, ((2,), 7, 5, 9), params.rows, params.cols), result)

    a, b, za, zb = random_operands(rng, params, 7, 5, 9)
    product = tile_matmul(a, b, za, zb, params)
    assert product.tiles == 9 and len(product.steps["last"]) == 9 * 5
    assert product.steps["last"].sum() == 9 and product.steps["last"][4] == 1
    golden = int_matmul(torch.tensor(a), torch.tensor(b), torch.tensor(za)[:, None], torch.tensor(zb))
    np.testing.assert_array_equal(untile(product.rows, product.shape, 3, 4), golden.numpy())
    # Padded rows (8, 9 of tile row 2) and columns (10..12) are zero codes with zero points 0.
    assert (product.steps["a"][-5:, 1:] == 0).all() and (product.steps["za"][-5:, 1:] == 0).all()
    assert (product.steps["b"][-5:, 1:] == 0).all()


def test_batched_tiling_matches_per_head_products():
    params = MacArrayParams(2, 3, 4, False, 4, False)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 16, (3, 5, 4)), rng.integers(0, 16, (3, 4, 4))
    za, zb = rng.integers(0, 16, (3, 1)), rng.integers(0, 16, (3, 4))
    batched = tile_matmul(a, b, za, zb, params)
    singles = [tile_matmul(a[h], b[h], za[h], zb[h], params) for h in range(3)]
    np.testing.assert_array_equal(batched.rows, np.concatenate([s.rows for s in singles]))
    np.testing.assert_array_equal(batched.steps["zb"], np.concatenate([s.steps["zb"] for s in singles]))


def test_tiling_rejects_codes_outside_the_operand_format():
    params = MacArrayParams(2, 2, 4, True, 4, False)
    with pytest.raises(ValueError, match=r"a must lie in \[-8, 7\], got \[0, 8\]"):
        tile_matmul(np.array([[8, 0]]), np.zeros((2, 1)), 0, 0, params)
    with pytest.raises(ValueError, match=r"zb must lie in \[0, 15\]"):
        tile_matmul(np.zeros((1, 2)), np.zeros((2, 1)), 0, -1, params)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        tile_matmul(np.zeros((1, 2)), np.zeros((3, 1)), 0, 0, params)


def test_step_layout_and_constructor_checks():
    layout = mac_step_layout(MacArrayParams(2, 3, 4, True, 6, False))
    assert [name for name, _ in layout] == ["a", "b", "za", "zb", "last"]
    assert layout.size == 2 * 4 + 3 * 6 + 2 * 4 + 3 * 6 + 1
    with pytest.raises(TypeError, match="MacArray needs MacArrayParams, not 4"):
        MacArray(4)
