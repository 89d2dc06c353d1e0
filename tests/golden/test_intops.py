"""Integer operators: zero-point matmul, bias folding, requantization, log-domain A·V."""

from __future__ import annotations

import pytest
import torch

from golden import adalog, bitlog2, sqrt2
from golden.intops import (
    AccumulatorOverflowError,
    adalog_matmul,
    bitlog2_matmul,
    check_accumulator,
    fold_bias,
    int_matmul,
    log_matmul,
    requantize,
    sqrt2_matmul,
)
from golden.params import AdaLogParams, BitLog2Params, LogAVParams, ParamError, RequantParams, Sqrt2Params


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def naive_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise products summed over k: independent of torch's matmul."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(dim=-2)


# ---------------------------------------------------------------------------------------------- matmul


def test_int_matmul_with_zero_points_per_tensor_head_and_channel():
    a = torch.randint(0, 16, (2, 3, 5, 13), generator=generator(0))
    b = torch.randint(0, 16, (13, 7), generator=generator(1))
    a_zero = torch.tensor([3, 8, 15]).reshape(3, 1, 1)  # per head
    b_zero = torch.randint(0, 16, (7,), generator=generator(2))  # per output channel (W.T columns)
    acc = int_matmul(a, b, a_zero, b_zero)
    assert acc.dtype == torch.int64
    assert torch.equal(acc, naive_matmul(a - a_zero, b - b_zero))
    assert torch.equal(int_matmul(a, b, 4, 9), naive_matmul(a - 4, b - 9))


def test_int_matmul_signed_operands():
    a = torch.randint(-8, 8, (6, 40), generator=generator(3))
    b = torch.randint(-128, 128, (40, 9), generator=generator(4))
    assert torch.equal(int_matmul(a, b), naive_matmul(a, b))


def test_int_matmul_overflow_is_reported():
    a = torch.full((1, 4), 255)
    b = torch.full((4, 1), 255)  # 4 * 255**2 = 260100 needs 19 signed bits
    assert int(int_matmul(a, b, acc_bits=19)) == 260100
    with pytest.raises(AccumulatorOverflowError, match=r"int_matmul: value 260100 .* 18-bit .* 19 bits"):
        int_matmul(a, b, acc_bits=18)


def test_check_accumulator_edges():
    check_accumulator(torch.tensor([-128, 127]), 8, "x")
    with pytest.raises(AccumulatorOverflowError, match="value 128"):
        check_accumulator(torch.tensor([128]), 8, "x")
    with pytest.raises(AccumulatorOverflowError, match="value -129 .* 9 bits"):
        check_accumulator(torch.tensor([5, -129]), 8, "x")


def test_int_matmul_rejects_float_and_bool_operands():
    with pytest.raises(ParamError, match="integer tensor"):
        int_matmul(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(ParamError, match="zero point"):
        int_matmul(torch.ones(2, 2, dtype=torch.int64), torch.ones(2, 2, dtype=torch.int64), 0.5)


# ---------------------------------------------------------------------------------------- bias, requant


def test_fold_bias_rounds_half_to_even():
    bias = torch.tensor([2.5, 3.5, -2.5, 0.49, -7.7]) * 0.01 * 0.5
    folded = fold_bias(bias.double(), 0.01, torch.full((5,), 0.5))
    assert folded.tolist() == [2, 4, -2, 0, -8]
    assert folded.dtype == torch.int64
    with pytest.raises(ParamError, match="not finite"):
        fold_bias(torch.tensor([1.0]), 0.0, 1.0)


def python_requant(t: int, m: int, s: int, zero: int, lo: int, hi: int) -> int:
    y = t * m if s == 0 else (t * m + (1 << (s - 1))) >> s
    return min(max(y + zero, lo), hi)


def test_requantize_equals_python_integers():
    channels = 6
    multiplier = (32768, 65535, 40000, 1, 0, 51234)
    shift = (15, 31, 0, 1, 7, 40)
    bias = (0, -1000, 17, 5, 0, 1 << 30)
    params = RequantParams(multiplier, shift, bias, out_bits=8, out_signed=True, out_zero_point=-3)
    acc = torch.randint(-(1 << 24), 1 << 24, (50, channels), generator=generator(5))
    got = requantize(acc, params)
    expected = [
        [
            python_requant(int(acc[i, c]) + bias[c], multiplier[c], shift[c], -3, -128, 127)
            for c in range(channels)
        ]
        for i in range(acc.shape[0])
    ]
    assert got.tolist() == expected


def test_requantize_rounds_ties_half_up():
    params = RequantParams((1,), (1,), out_bits=8, out_signed=True)
    acc = torch.tensor([1, -1, 3, -3, 2, -2])  # /2: 0.5 -0.5 1.5 -1.5 1 -1
    assert requantize(acc, params).tolist() == [1, 0, 2, -1, 1, -1]


def test_requantize_per_channel_along_an_axis():
    params = RequantParams((32768, 49152, 16384), (16, 16, 16), out_bits=4, out_zero_point=8)
    acc = torch.arange(-30, 30).reshape(2, 3, 10)
    got = requantize(acc, params, axis=1)
    factor = torch.tensor([0.5, 0.75, 0.25]).reshape(1, 3, 1)
    expected = torch.clamp(torch.floor(acc * factor + 0.5) + 8, 0, 15).to(torch.int64)
    assert torch.equal(got, expected)
    with pytest.raises(ParamError, match="3 channels but the accumulator axis 2 has size 10"):
        requantize(acc, params, axis=2)


def test_requantize_overflow_checks():
    params = RequantParams((1,), (0,), bias=(100,), acc_bits=8)
    assert requantize(torch.tensor([27]), params).tolist() == [127]
    with pytest.raises(AccumulatorOverflowError, match="acc \\+ bias"):
        requantize(torch.tensor([28]), params)
    with pytest.raises(AccumulatorOverflowError, match="requantize input"):
        requantize(torch.tensor([300]), params)


def test_requantize_from_real_is_within_one_code_of_real_rounding():
    reals = [0.0123, 0.000456, 0.1]
    params = RequantParams.from_real(reals, bias=[10, -20, 0], out_bits=8, out_zero_point=128)
    acc = torch.randint(-20000, 20000, (200, 3), generator=generator(6))
    got = requantize(acc, params)
    real = (acc + torch.tensor([10, -20, 0])).double() * torch.tensor(reals, dtype=torch.float64)
    expected = torch.clamp(torch.round(real) + 128, 0, 255)
    assert int((got - expected).abs().max()) <= 1
    assert float((got == expected).double().mean()) > 0.98
    assert requantize(torch.tensor(5), params.__class__((32768,), (15,))).ndim == 0


# ------------------------------------------------------------------------------------------- log A·V


def naive_log_matmul(codes, v, v_zero, mant, exp, frac_bits):
    """term = floor(d * mant[c] * 2**(F - exp[c])) per (m, k, n), zero code 0, summed over k."""
    d = (v - v_zero)[..., None, :, :]
    table_m = torch.tensor([*mant, 0])[codes][..., :, :, None]
    table_s = torch.tensor([*[frac_bits - e for e in exp], 0])[codes][..., :, :, None]
    product = d * table_m
    left = product * (2 ** table_s.clamp(min=0))
    right = torch.div(product, 2 ** (-table_s).clamp(min=0), rounding_mode="floor")
    return torch.where(table_s >= 0, left, right).sum(dim=-2)


def random_log_codes(shape, zero_code, seed):
    codes = torch.randint(0, zero_code + 1, shape, generator=generator(seed))
    return codes


@pytest.mark.parametrize(
    ("av", "quantizer"),
    [
        (LogAVParams.default("sqrt2"), Sqrt2Params(delta=0.5)),  # F >= every exponent: no truncation
        (LogAVParams("sqrt2", frac_bits=3, mant_bits=6), Sqrt2Params()),  # right shifts for c >= 7
        (LogAVParams.default("adalog"), AdaLogParams(q=137)),  # E up to 55: deep right shifts
        (LogAVParams("adalog", frac_bits=0, mant_bits=0), AdaLogParams(bits=3, q=20)),
        (LogAVParams.default("adalog"), AdaLogParams(bits=6, q=29)),
    ],
)
def test_log_matmul_equals_the_elementwise_definition(av, quantizer):
    mant, exp = av.table(quantizer)
    codes = random_log_codes((2, 9, 23), quantizer.zero_code, seed=7)
    v = torch.randint(0, 16, (2, 23, 5), generator=generator(8))
    v_zero = torch.tensor([7, 9]).reshape(2, 1, 1)  # per head; d takes both signs
    expected = naive_log_matmul(codes, v, v_zero, mant, exp, av.frac_bits)
    assert torch.equal(log_matmul(codes, v, v_zero, mant, exp, frac_bits=av.frac_bits, acc_bits=62), expected)
    family_matmul = sqrt2_matmul if av.family == "sqrt2" else adalog_matmul
    assert torch.equal(family_matmul(codes, v, v_zero, quantizer, av), expected)


def test_floor_shift_of_negative_terms():
    # d = -1, mant 3, exp 2, F 0: floor(-3/4) = -1 (not 0, as truncation towards zero would give)
    codes = torch.tensor([[0]])
    acc = log_matmul(codes, torch.tensor([[0]]), 1, [3], [2], frac_bits=0, acc_bits=8)
    assert acc.tolist() == [[-1]]


def test_bitlog2_matmul_is_the_shift_add():
    params = BitLog2Params("half_17", 300)
    x = torch.softmax(torch.randn(3, 11, 29, generator=generator(9)) * 3, dim=-1)
    code = bitlog2.quantize_int(bitlog2.float_to_xi(x, params), params)
    v = torch.randint(0, 256, (3, 29, 6), generator=generator(10))
    v_zero = 131
    d = (v - v_zero)[:, None, :, :]
    k, h, zero = (t[..., None] for t in code)
    shift_add = (d << k) + h * (d << (k - 1).clamp(min=0))
    expected = torch.where(zero.bool(), 0, shift_add).sum(dim=-2)
    got = bitlog2_matmul(code, v, v_zero, LogAVParams.default("bitlog2"))
    assert torch.equal(got, expected)
    level = bitlog2.code_to_level(code)
    assert torch.equal(got, naive_matmul(level, v - v_zero))


def test_real_scale_of_the_accumulators():
    x = torch.softmax(torch.randn(4, 50, 50, generator=generator(11)) * 3, dim=-1)
    v = torch.randint(0, 16, (4, 50, 8), generator=generator(12))
    v_zero, v_scale = 7, 0.05
    v_hat = (v - v_zero).double() * v_scale

    quantizer = Sqrt2Params(delta=0.6)
    av = LogAVParams.default("sqrt2")
    codes = sqrt2.quantize_int(sqrt2.float_to_xi(x, quantizer), quantizer)
    real = sqrt2_matmul(codes, v, v_zero, quantizer, av).double() * av.acc_scale(quantizer) * v_scale
    reference = sqrt2.dequantize(codes, quantizer).double() @ v_hat
    torch.testing.assert_close(real, reference, rtol=0, atol=2e-4 * float(reference.abs().max()))

    quantizer = AdaLogParams(q=25)
    av = LogAVParams.default("adalog")
    codes = adalog.quantize_int(adalog.float_to_xi(x, quantizer), quantizer)
    real = adalog_matmul(codes, v, v_zero, quantizer, av).double() * av.acc_scale(quantizer) * v_scale
    reference = adalog.dequantize(codes, quantizer).double() @ v_hat
    # Only terms with E[k] > F = 12 are floored: at most 50 LSBs of 1 / (30 * 2**12) each.
    torch.testing.assert_close(real, reference, rtol=0, atol=50 / (30 * 4096) * v_scale + 1e-12)

    quantizer = BitLog2Params("single_17", 40000)
    av = LogAVParams.default("bitlog2")
    code = bitlog2.quantize_int(bitlog2.float_to_xi(x, quantizer), quantizer)
    real = bitlog2_matmul(code, v, v_zero, av).double() * av.acc_scale(quantizer) * v_scale
    reference = bitlog2.code_to_level(code).double() / 40000 @ v_hat
    torch.testing.assert_close(real, reference, rtol=1e-12, atol=1e-15)


def test_log_matmul_overflow_and_required_width():
    quantizer, av = Sqrt2Params(), LogAVParams.default("sqrt2", acc_bits=33)
    codes = torch.zeros(1, 197, dtype=torch.int64)  # every key at code 0: the worst case
    v = torch.full((197, 1), 255)
    assert av.required_acc_bits(quantizer, 197, 255) == 33
    assert int(sqrt2_matmul(codes, v, 0, quantizer, av)) == 197 * 255 * 2**16
    with pytest.raises(AccumulatorOverflowError, match="log_matmul: .* 32-bit .* 33 bits"):
        sqrt2_matmul(codes, v, 0, quantizer, LogAVParams.default("sqrt2"))


def test_log_matmul_rejects_bad_codes_and_families():
    quantizer, av = Sqrt2Params(), LogAVParams.default("sqrt2")
    v = torch.zeros(3, 2, dtype=torch.int64)
    with pytest.raises(ParamError, match=r"codes must lie in \[0, 16\]"):
        sqrt2_matmul(torch.tensor([[0, 17, 1]]), v, 0, quantizer, av)
    with pytest.raises(ParamError, match="family 'sqrt2'"):
        sqrt2_matmul(torch.tensor([[0, 1, 1]]), v, 0, quantizer, LogAVParams.default("adalog"))
    with pytest.raises(ParamError, match="family 'adalog'"):
        adalog_matmul(torch.tensor([[0, 1, 1]]), v, 0, AdaLogParams(), av)
    with pytest.raises(ParamError, match="family 'bitlog2'"):
        code = bitlog2.BitLog2Code(
            torch.zeros(1, 3, dtype=torch.int64),
            torch.zeros(1, 3, dtype=torch.int64),
            torch.ones(1, 3, dtype=torch.int64),
        )
        bitlog2_matmul(code, v, 0, av)
    with pytest.raises(ParamError, match="same length"):
        log_matmul(torch.tensor([[0]]), torch.tensor([[0]]), 0, [1, 2], [0], frac_bits=0, acc_bits=8)
