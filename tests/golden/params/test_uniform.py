"""UniformParams: code ranges, float32 storage, zero point rounding."""

from __future__ import annotations

from golden.params import UniformParams


def test_code_ranges():
    assert (UniformParams(4, 1.0, 0).qmin, UniformParams(4, 1.0, 0).qmax) == (0, 15)
    signed = UniformParams(4, 1.0, 0, signed=True)
    assert (signed.qmin, signed.qmax, signed.centered_bits) == (-8, 7, 5)


def test_scales_are_stored_as_float32():
    params = UniformParams(8, [0.1, 0.3], [0, 0], granularity="channel", axis=-1)
    assert params.scale == (0.10000000149011612, 0.30000001192092896)
    assert params.channels == 2


def test_sequences_become_tuples():
    params = UniformParams(8, [0.5], [3])
    assert params.scale == (0.5,) and params.zero_point == (3,)


def test_float_zero_point_rounds_half_to_even_and_clamps():
    params = UniformParams.from_float_zero_point(
        4, [1.0] * 5, [2.5, 3.5, -0.7, 15.6, 7.2], granularity="channel", axis=0
    )
    assert params.zero_point == (2, 4, 0, 15, 7)
    signed = UniformParams.from_float_zero_point(4, 1.0, -9.0, signed=True)
    assert signed.zero_point == (-8,)
