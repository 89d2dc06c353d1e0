"""Every parameter class of golden.params (except BitLog2's): eager checks, JSON round trips."""

from __future__ import annotations

import json

import pytest

from golden.params import (
    ADALOG_GELU_SHIFT,
    AdaLogParams,
    LogAVParams,
    ParamError,
    RequantParams,
    Sqrt2Params,
    UniformParams,
)

EXAMPLES = [
    UniformParams(8, 0.1, 128),
    UniformParams(4, [0.5, 0.25, 0.125], [0, 7, 15], granularity="channel", axis=0),
    UniformParams(4, (0.5, 0.25), (0, -3), signed=True, granularity="head", axis=1),
    Sqrt2Params(),
    Sqrt2Params("sqrt2_16", bits=3, delta=0.3, input_bits=12, input_frac_bits=12),
    AdaLogParams(),
    AdaLogParams(
        bits=4,
        q=50,
        scale=3.2,
        shift=ADALOG_GELU_SHIFT,
        input_bits=16,
        input_frac_bits=11,
        input_signed=True,
    ),
    RequantParams((40000,), (20,)),
    RequantParams((40000, 32768), (20, 0), bias=(-5, 7), out_bits=4, out_signed=True, out_zero_point=-1),
    LogAVParams.default("sqrt2"),
    LogAVParams.default("adalog", acc_bits=40),
    LogAVParams.default("bitlog2"),
]


@pytest.mark.parametrize("params", EXAMPLES, ids=lambda p: type(p).__name__)
def test_to_dict_from_dict_round_trip_through_json(params):
    data = json.loads(json.dumps(params.to_dict()))
    assert data["kind"] == type(params).__name__
    assert type(params).from_dict(data) == params


@pytest.mark.parametrize("params", EXAMPLES, ids=lambda p: type(p).__name__)
def test_from_dict_rejects_unknown_fields_and_other_kinds(params):
    data = params.to_dict()
    with pytest.raises(ParamError, match="no field 'bogus'"):
        type(params).from_dict({**data, "bogus": 1})
    with pytest.raises(ParamError, match="expected parameters of kind"):
        type(params).from_dict({**data, "kind": "SomethingElse"})


@pytest.mark.parametrize("params", EXAMPLES, ids=lambda p: type(p).__name__)
def test_params_are_frozen_and_hashable(params):
    hash(params)
    with pytest.raises(AttributeError):
        params.bits = 3  # type: ignore[misc]


# (class, keyword arguments, text the message must contain: the field name and the bad value)
BAD = [
    (UniformParams, dict(bits=1, scale=1.0, zero_point=0), "uniform bits", "1"),
    (UniformParams, dict(bits=17, scale=1.0, zero_point=0), "uniform bits", "17"),
    (UniformParams, dict(bits=True, scale=1.0, zero_point=0), "uniform bits", "True"),
    (UniformParams, dict(bits=8, scale=0.0, zero_point=0), "uniform scale[0]", "0.0"),
    (UniformParams, dict(bits=8, scale=-1.0, zero_point=0), "uniform scale[0]", "-1.0"),
    (UniformParams, dict(bits=8, scale=float("nan"), zero_point=0), "uniform scale[0]", "nan"),
    (UniformParams, dict(bits=8, scale=1e-50, zero_point=0), "uniform scale[0]", "1e-50"),
    (UniformParams, dict(bits=8, scale=1e40, zero_point=0), "uniform scale[0]", "1e+40"),
    (UniformParams, dict(bits=8, scale="1", zero_point=0), "uniform scale[0]", "'1'"),
    (UniformParams, dict(bits=8, scale=1.0, zero_point=256), "uniform zero_point[0]", "256"),
    (UniformParams, dict(bits=8, scale=1.0, zero_point=-1), "uniform zero_point[0]", "-1"),
    (UniformParams, dict(bits=8, scale=1.0, zero_point=1.5), "uniform zero_point[0]", "1.5"),
    (UniformParams, dict(bits=4, scale=1.0, zero_point=8, signed=True), "uniform zero_point[0]", "8"),
    (UniformParams, dict(bits=8, scale=1.0, zero_point=0, signed=1), "uniform signed", "1"),
    (
        UniformParams,
        dict(bits=8, scale=(1.0, 2.0), zero_point=(0,), granularity="channel", axis=0),
        "uniform zero_point",
        "(0,)",
    ),
    (UniformParams, dict(bits=8, scale=(1.0, 2.0), zero_point=(0, 0)), "per-tensor", "2"),
    (UniformParams, dict(bits=8, scale=1.0, zero_point=0, axis=0), "uniform axis", "0"),
    (UniformParams, dict(bits=8, scale=1.0, zero_point=0, granularity="channel"), "uniform axis", "None"),
    (
        UniformParams,
        dict(bits=8, scale=1.0, zero_point=0, granularity="row", axis=0),
        "uniform granularity",
        "'row'",
    ),
    (UniformParams, dict(bits=8, scale=(), zero_point=()), "uniform scale", "()"),
    (Sqrt2Params, dict(variant="sqrt2_18"), "sqrt2 variant", "'sqrt2_18'"),
    (Sqrt2Params, dict(bits=1), "sqrt2 bits", "1"),
    (Sqrt2Params, dict(bits=9), "sqrt2 bits", "9"),
    (Sqrt2Params, dict(delta=0.0), "sqrt2 delta", "0.0"),
    (Sqrt2Params, dict(delta=float("inf")), "sqrt2 delta", "inf"),
    (Sqrt2Params, dict(input_bits=25), "sqrt2 input_bits", "25"),
    (Sqrt2Params, dict(input_frac_bits=-1), "sqrt2 input_frac_bits", "-1"),
    (AdaLogParams, dict(q=9), "AdaLog q", "9"),
    (AdaLogParams, dict(q=138), "AdaLog q", "138"),
    (AdaLogParams, dict(q=37.0), "AdaLog q", "37.0"),
    (AdaLogParams, dict(bits=9), "AdaLog bits", "9"),
    (AdaLogParams, dict(scale=-2.0), "AdaLog scale", "-2.0"),
    (AdaLogParams, dict(shift=-0.1), "AdaLog shift", "-0.1"),
    (AdaLogParams, dict(shift=ADALOG_GELU_SHIFT), "AdaLog input grid", "-0.1699"),
    (
        AdaLogParams,
        dict(shift=1.0, input_signed=True, input_bits=8, input_frac_bits=8),
        "AdaLog input grid",
        "-1.0",
    ),
    (AdaLogParams, dict(input_signed="yes"), "AdaLog input_signed", "'yes'"),
    (AdaLogParams, dict(input_bits=0), "AdaLog input_bits", "0"),
    (RequantParams, dict(multiplier=(1 << 16,), shift=(0,)), "requant multiplier[0]", "65536"),
    (RequantParams, dict(multiplier=(-1,), shift=(0,)), "requant multiplier[0]", "-1"),
    (RequantParams, dict(multiplier=(1,), shift=(63,)), "requant shift[0]", "63"),
    (RequantParams, dict(multiplier=(1, 2), shift=(0,)), "requant shift", "1"),
    (RequantParams, dict(multiplier=(1,), shift=(0,), bias=(1 << 31,)), "requant bias[0]", "2147483648"),
    (RequantParams, dict(multiplier=(1, 2), shift=(0, 0), bias=(1,)), "requant bias", "1"),
    (RequantParams, dict(multiplier=(1,), shift=(0,), out_bits=1), "requant out_bits", "1"),
    (RequantParams, dict(multiplier=(1,), shift=(0,), out_zero_point=256), "requant out_zero_point", "256"),
    (RequantParams, dict(multiplier=(1,), shift=(0,), out_zero_point=-1), "requant out_zero_point", "-1"),
    (RequantParams, dict(multiplier=(1,), shift=(0,), acc_bits=48), "requant acc_bits", "48"),
    (
        RequantParams,
        dict(multiplier=(1,), shift=(0,), acc_bits=40, mult_bits=24),
        "acc_bits + mult_bits",
        "40 + 24",
    ),
    (RequantParams, dict(multiplier=(1,), shift=(0,), out_signed=0), "requant out_signed", "0"),
    (LogAVParams, dict(family="log4", frac_bits=0, mant_bits=0), "log A·V family", "'log4'"),
    (LogAVParams, dict(family="bitlog2", frac_bits=3, mant_bits=0), "log A·V frac_bits", "3"),
    (LogAVParams, dict(family="adalog", frac_bits=12, mant_bits=8), "log A·V mant_bits", "8"),
    (LogAVParams, dict(family="sqrt2", frac_bits=8, mant_bits=0), "log A·V mant_bits", "0"),
    (LogAVParams, dict(family="sqrt2", frac_bits=33, mant_bits=8), "log A·V frac_bits", "33"),
    (LogAVParams, dict(family="sqrt2", frac_bits=8, mant_bits=8, acc_bits=63), "log A·V acc_bits", "63"),
]


@pytest.mark.parametrize(("cls", "kwargs", "field", "value"), BAD, ids=lambda v: str(v)[:30])
def test_bad_values_are_rejected_naming_field_and_value(cls, kwargs, field, value):
    with pytest.raises(ParamError) as error:
        cls(**kwargs)
    assert field in str(error.value)
    assert value in str(error.value)


def test_from_dict_rejects_non_objects_and_missing_fields():
    with pytest.raises(ParamError, match="must be a JSON object"):
        UniformParams.from_dict([1, 2])
    with pytest.raises(ParamError, match="UniformParams"):
        UniformParams.from_dict({"bits": 8})
