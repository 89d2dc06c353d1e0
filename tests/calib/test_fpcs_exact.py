"""calib.fpcs_exact and calib.fpcs_sorted: the codes are the golden model's, bit for bit, and the
sorted-run sums equal direct quantization."""

from __future__ import annotations

import pytest
import torch

from calib.fpcs_exact import (
    adalog_codes,
    adalog_exact,
    log_units,
    uniform_exact,
    uniform_integers,
    uniform_integers_into,
)
from calib.fpcs_sorted import SortedColumns, blocked_cumsum
from golden import adalog
from golden.params import ADALOG_GELU_SHIFT, AdaLogParams
from golden.uniform import adalog_reference


@pytest.mark.parametrize("bits", [3, 4, 6, 8])
def test_uniform_exact_rounds_to_the_golden_value(bits):
    generator = torch.Generator().manual_seed(bits)
    x = torch.randn(4000, generator=generator) * 3
    for scale, zero in ((0.0371, 3.0), (0.2, 2.0**bits - 1), (1.3e-3, 0.0)):
        s, z = torch.tensor(scale), torch.tensor(zero)
        exact = uniform_exact(x, s, z, bits)
        assert torch.equal(exact.to(torch.float32), adalog_reference(x, s, z, bits))
        assert torch.equal(exact, uniform_integers(x, s, z, bits).double() * s.double())


@pytest.mark.parametrize("bits,q", [(4, 18), (4, 37), (4, 137), (3, 11), (6, 29)])
def test_adalog_codes_are_the_golden_codes(bits, q):
    generator = torch.Generator().manual_seed(q)
    softmax = torch.softmax(torch.randn(64, 64, generator=generator) * 3, dim=-1)
    params = AdaLogParams(bits=bits, q=q)
    codes = adalog_codes(log_units(softmax, torch.ones(1), torch.zeros(1)), q, bits)
    assert torch.equal(codes, adalog.reference_codes(softmax, params))
    exact = adalog_exact(softmax, q, torch.ones(1), torch.zeros(1), bits)
    golden = adalog.reference_forward(softmax, q, 1.0, 0.0, bits).double()
    assert bool(((exact - golden).abs() <= 2**-23 * golden.abs()).all())


@pytest.mark.parametrize("q,scale", [(50, 3.25), (20, 1.7), (137, 0.9)])
def test_adalog_gelu_codes_and_levels(q, scale):
    x = torch.nn.functional.gelu(torch.randn(5000, generator=torch.Generator().manual_seed(q)) * 2)
    shift, s = torch.tensor([ADALOG_GELU_SHIFT]), torch.tensor([scale])
    params = AdaLogParams(
        4, q, scale, ADALOG_GELU_SHIFT, input_bits=16, input_frac_bits=11, input_signed=True
    )
    codes = adalog_codes(log_units(x, s, shift), q, 4)
    assert torch.equal(codes, adalog.reference_codes(x, params))
    exact = adalog_exact(x, q, s, shift, 4, reparameterized=True)
    golden = adalog.reference_forward(x, q, s, shift, 4).double()
    assert bool(((exact - golden).abs() <= 2**-23 * golden.abs()).all())
    # Before the bias reparameterization the level minus the shift, exactly.
    unshifted = adalog_exact(x, q, s, shift, 4, reparameterized=False)
    assert torch.equal(unshifted, exact - float(shift))


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_sorted_runs_match_direct_quantization(bits):
    generator = torch.Generator().manual_seed(bits)
    values = torch.randn(3, 500, generator=generator)
    values[:, :50] = values[:, 50:100]  # repeated values
    columns = SortedColumns(values)
    scale = torch.rand((9, 3), generator=generator) * 0.5 + 0.01
    zero = torch.randint(0, 2**bits, (9, 3), generator=generator).to(torch.float32)
    starts = columns.level_starts(scale, zero, 2**bits - 1)
    k = uniform_integers(values[None], scale[:, :, None], zero[:, :, None], bits)
    codes = k + zero[:, :, None]
    for c in range(2**bits):
        assert torch.equal(starts[:, :, c], (codes < c).sum(dim=2))
    levels = (torch.arange(2**bits, dtype=torch.float64) - zero.double()[:, :, None]) * scale.double()[
        :, :, None
    ]
    direct = ((values.double()[None] - k.double() * scale.double()[:, :, None]) ** 2).sum(dim=2)
    assert torch.allclose(columns.squared_error(starts, levels), direct, rtol=1e-10, atol=0)
    into = uniform_integers_into(torch.empty(500), values[1], scale[2, 1], zero[2, 1], bits)
    assert torch.equal(into, k[2, 1])


def test_blocked_cumsum_is_a_cumsum():
    values = torch.randn(2, 3000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(blocked_cumsum(values), torch.cumsum(values, dim=1), rtol=0, atol=1e-11)


def test_classes_key_equal_only_for_equal_dequantized_values():
    values = torch.linspace(-1, 1, 200)[None]
    columns = SortedColumns(values)
    # same scale, zero points 7 and 8: nothing clamps at this scale, so x_hat is the same
    scale = torch.tensor([[0.5], [0.5], [0.25]])
    zero = torch.tensor([[7.0], [8.0], [7.0]])
    starts = columns.level_starts(scale, zero, 15)
    keys = SortedColumns.classes_key(starts, scale, zero)
    assert torch.equal(keys[0], keys[1]) and not torch.equal(keys[0], keys[2])
    x_hat = uniform_exact(values[None], scale[:, :, None], zero[:, :, None], 4)
    assert torch.equal(x_hat[0], x_hat[1])
