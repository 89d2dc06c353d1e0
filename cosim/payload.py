"""Pack and unpack stream payloads from the layout descriptions in a Verilog sidecar.

A payload is one unsigned integer on the wire (Yosys drops ``signed`` from ports); the sidecar's
layout (:func:`hw.export.describe_shape`) says how fields sit in it. Values are numpy arrays with
one entry per transfer: an ``int`` shape is an array ``[n]``, a ``struct`` a dict of field name to
value, an ``array`` layout an array ``[n, length]`` (or ``[n, length, ...]`` for nested arrays), or
for an array of structs a dict of field arrays ``[n, length]``.
Packing is vectorized over transfers with Python-int object arrays, so any width works.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PayloadError", "pack", "unpack", "count"]


class PayloadError(ValueError):
    """A value does not fit the layout (wrong field, shape or range)."""


def _as_objects(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iub" and array.dtype != object:
        raise PayloadError(f"payload values must be integers, not {array.dtype}")
    return array.astype(object)


def pack(shape: dict[str, Any], values: Any, name: str = "payload") -> np.ndarray:
    """Pack ``values`` into an object array of non-negative Python ints, one per transfer."""
    kind = shape["kind"]
    if kind == "int":
        array = _as_objects(values)
        width, signed = shape["width"], shape["signed"]
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if array.size and (array.min() < lo or array.max() > hi):
            raise PayloadError(
                f"{name} values must lie in [{lo}, {hi}] for a {'signed' if signed else 'unsigned'} "
                f"{width}-bit field, got [{array.min()}, {array.max()}]"
            )
        return array % (1 << width) if signed else array
    if kind == "struct":
        if not isinstance(values, dict):
            raise PayloadError(f"{name} needs a dict of fields, not {type(values).__name__}")
        names = [field["name"] for field in shape["fields"]]
        extra = sorted(set(values) - set(names))
        missing = sorted(set(names) - set(values))
        if extra or missing:
            raise PayloadError(f"{name} fields are {names}; missing {missing}, unexpected {extra}")
        packed = None
        for field in shape["fields"]:
            part = pack(field["shape"], values[field["name"]], f"{name}.{field['name']}") << field["offset"]
            packed = part if packed is None else packed | part
        return packed
    if kind == "array":
        # An array of structs comes as a dict of field arrays whose last dimension is the index.
        array = values if isinstance(values, dict) else np.asarray(values)
        length = _last_dimension(array)
        if length != shape["length"]:
            raise PayloadError(f"{name} needs a last dimension of {shape['length']}, got {length}")
        packed = None
        for index in range(shape["length"]):
            element = _element(array, index)
            part = pack(shape["element"], element, f"{name}[{index}]") << (index * shape["stride"])
            packed = part if packed is None else packed | part
        return packed
    raise PayloadError(f"unknown layout kind {kind!r}")


def _last_dimension(values: Any) -> int | None:
    if isinstance(values, dict):
        return _last_dimension(next(iter(values.values()))) if values else None
    return values.shape[-1] if values.ndim >= 1 else None


def _element(values: Any, index: int) -> Any:
    if isinstance(values, dict):
        return {key: _element(value, index) for key, value in values.items()}
    return np.asarray(values)[..., index]


def _stack(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {key: _stack([part[key] for part in parts]) for key in parts[0]}
    return np.stack(parts, axis=-1)


def unpack(shape: dict[str, Any], words: Any) -> Any:
    """Inverse of :func:`pack`: int64 arrays (object arrays if a field exceeds 63 bits)."""
    words = _as_objects(words)
    kind = shape["kind"]
    if kind == "int":
        width = shape["width"]
        values = words & ((1 << width) - 1)
        if shape["signed"]:
            values = np.where(values >= (1 << (width - 1)), values - (1 << width), values)
        return values.astype(np.int64) if width <= 63 else values
    if kind == "struct":
        return {field["name"]: unpack(field["shape"], words >> field["offset"]) for field in shape["fields"]}
    if kind == "array":
        parts = [unpack(shape["element"], words >> (i * shape["stride"])) for i in range(shape["length"])]
        return _stack(parts)
    raise PayloadError(f"unknown layout kind {kind!r}")


def count(values: Any) -> int:
    """Number of transfers in an unpacked value."""
    if isinstance(values, dict):
        return count(next(iter(values.values())))
    return len(values)
