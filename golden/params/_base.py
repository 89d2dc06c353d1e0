"""Eager argument checks shared by the parameter classes."""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Iterable
from typing import Any


class ParamError(ValueError):
    """A parameter is malformed or out of range; the message names the field and the fix."""


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """Check that ``value`` is an int (not a bool) within ``[lo, hi]``; return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(f"{name} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        raise ParamError(f"{name} must be at least {lo}, not {value!r}")
    if hi is not None and value > hi:
        raise ParamError(f"{name} must be at most {hi}, not {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise ParamError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    return value


def params_to_dict(params: Any) -> dict[str, Any]:
    """The dataclass fields plus a ``kind`` tag, JSON-ready: tuples become lists, so the dict
    equals its own JSON round trip (a Verilog sidecar's ``params``, a parameter file)."""
    return {"kind": type(params).__name__, **_json_ready(dataclasses.asdict(params))}


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


def params_from_dict(cls: type, data: Any) -> Any:
    """Build ``cls`` from ``data``, rejecting unknown or missing fields with a one-line error."""
    if not isinstance(data, dict):
        raise ParamError(f"{cls.__name__} parameters must be a JSON object, not {data!r}")
    data = dict(data)
    kind = data.pop("kind", cls.__name__)
    if kind != cls.__name__:
        raise ParamError(f"expected parameters of kind {cls.__name__!r}, not {kind!r}")
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamError(f"{cls.__name__} has no field {unknown[0]!r} (fields: {', '.join(sorted(names))})")
    try:
        return cls(**data)
    except TypeError as error:
        raise ParamError(f"{cls.__name__}: {error}") from None


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a bool (not an int standing in for one); return it."""
    if not isinstance(value, bool):
        raise ParamError(f"{name} must be True or False, not {value!r}")
    return value


def float32(value: float) -> float:
    """The float32 nearest to ``value`` (round half to even), as a Python float.

    The references hold scales, deltas and shifts in float32 tensors, so the parameter objects
    store exactly those values; everything derived from them (thresholds, LUTs) is then exact.
    Values beyond the float32 range become ``inf``.
    """
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def check_float32(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Check a finite real number, round it to float32 and check the sign constraint; return it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"{name} must be a real number, not {value!r}")
    if not math.isfinite(value):
        raise ParamError(f"{name} must be finite, not {value!r}")
    rounded = float32(float(value))
    if not math.isfinite(rounded):
        raise ParamError(f"{name} must lie within the float32 range, not {value!r}")
    if positive and not rounded > 0.0:
        raise ParamError(f"{name} must be positive (after rounding to float32), not {value!r}")
    if nonnegative and rounded < 0.0:
        raise ParamError(f"{name} must not be negative, not {value!r}")
    return rounded


def check_tuple(name: str, value: Any, *, min_length: int = 1) -> tuple[Any, ...]:
    """Accept a scalar (one-element tuple) or a list/tuple; return a tuple."""
    if isinstance(value, (list, tuple)):
        items = tuple(value)
    else:
        items = (value,)
    if len(items) < min_length:
        raise ParamError(f"{name} must have at least {min_length} element(s), not {value!r}")
    return items
