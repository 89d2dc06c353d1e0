"""Fixed-point grids and the comparator count."""

from __future__ import annotations

import pytest
import torch

from golden.fixedpoint import (
    CodeDisagreement,
    check_integer_tensor,
    comparator_count,
    from_fixed_point,
    to_fixed_point,
)
from golden.params import ParamError


def test_to_fixed_point_floors_and_saturates():
    x = torch.tensor([0.0, 2.0**-16, 1.5 * 2.0**-16, 0.999, 1.0, 7.0, -0.5, float("inf"), float("-inf")])
    assert to_fixed_point(x, 16, 16, signed=False).tolist() == [0, 1, 1, 65470, 65535, 65535, 0, 65535, 0]
    signed = to_fixed_point(torch.tensor([-0.1, -20.0, 15.9999, 20.0]), 16, 11, signed=True)
    assert signed.tolist() == [-205, -32768, 32767, 32767]
    assert to_fixed_point(torch.tensor([-0.1], dtype=torch.float64), 8, 4, signed=True).tolist() == [-2]


def test_grid_round_trip_is_exact():
    xi = torch.arange(-(1 << 15), 1 << 15)
    assert torch.equal(to_fixed_point(from_fixed_point(xi, 11), 16, 11, signed=True), xi)


def test_to_fixed_point_rejects_nan_and_integers():
    with pytest.raises(ParamError, match="NaN"):
        to_fixed_point(torch.tensor([0.5, float("nan")]), 16, 16, False)
    with pytest.raises(ParamError, match="floating-point"):
        to_fixed_point(torch.tensor([1]), 16, 16, False)


def test_check_integer_tensor():
    assert check_integer_tensor("x", torch.tensor([1, 2], dtype=torch.int32), 0, 3).dtype == torch.int64
    with pytest.raises(ParamError, match=r"x must lie in \[0, 3\], got values in \[1, 4\]"):
        check_integer_tensor("x", torch.tensor([1, 4]), 0, 3)
    with pytest.raises(ParamError, match="integer tensor"):
        check_integer_tensor("x", torch.tensor([1.0]), 0, 3)
    with pytest.raises(ParamError, match="integer tensor"):
        check_integer_tensor("x", torch.tensor([True]), 0, 3)


def test_comparator_count_equals_brute_force():
    generator = torch.Generator().manual_seed(1)
    thresholds = sorted(torch.randint(0, 100, (9,), generator=generator).tolist(), reverse=True)
    x = torch.arange(-2, 103)
    brute = (x[:, None] <= torch.tensor(thresholds)[None, :]).sum(1)
    assert torch.equal(comparator_count(x, thresholds), brute)
    floats = [0.5, 0.25, 0.25, 0.0]
    xf = torch.tensor([-1.0, 0.0, 0.1, 0.25, 0.3, 0.5, 0.7])
    assert comparator_count(xf, floats).tolist() == [4, 4, 3, 3, 1, 1, 0]


def test_disagreement_rates():
    record = CodeDisagreement(elements=200, float_vs_integer=3, float_vs_exact=1, grid_float_vs_integer=0)
    assert record.rates() == {
        "float_vs_integer": 0.015,
        "float_vs_exact": 0.005,
        "grid_float_vs_integer": 0.0,
    }
    assert CodeDisagreement(0, 0, 0, 0).rates()["float_vs_integer"] == 0.0
