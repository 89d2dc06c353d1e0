"""Payload packing follows the sidecar layouts exactly."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.payload import PayloadError, pack, unpack

STRUCT = {
    "kind": "struct",
    "width": 6,
    "fields": [
        {"name": "k", "offset": 0, "shape": {"kind": "int", "width": 4, "signed": False}},
        {"name": "h", "offset": 4, "shape": {"kind": "int", "width": 1, "signed": False}},
        {"name": "zero", "offset": 5, "shape": {"kind": "int", "width": 1, "signed": False}},
    ],
}
ROW = {
    "kind": "array",
    "width": 160,
    "length": 5,
    "stride": 32,
    "element": {"kind": "int", "width": 32, "signed": True},
}


def test_struct_round_trip_and_bit_positions():
    values = {"k": np.array([3, 8, 15]), "h": np.array([1, 0, 1]), "zero": np.array([0, 1, 1])}
    words = pack(STRUCT, values)
    assert words.tolist() == [3 | 16, 8 | 32, 15 | 16 | 32]
    unpacked = unpack(STRUCT, words)
    assert all(np.array_equal(unpacked[name], values[name]) for name in values)


def test_wide_signed_array_round_trip():
    rows = np.array([[-(2**31), 2**31 - 1, -1, 0, 5], [1, 2, 3, 4, -5]])
    words = pack(ROW, rows)
    assert words[0] >> 128 == 5 and (words[0] & 0xFFFFFFFF) == 2**31
    assert np.array_equal(unpack(ROW, words), rows)


def test_out_of_range_and_wrong_fields_are_rejected():
    with pytest.raises(PayloadError, match=r"payload.k values must lie in \[0, 15\]"):
        pack(STRUCT, {"k": np.array([16]), "h": np.array([0]), "zero": np.array([0])})
    with pytest.raises(PayloadError, match=r"missing \['zero'\]"):
        pack(STRUCT, {"k": np.array([1]), "h": np.array([0])})
    with pytest.raises(PayloadError, match="last dimension of 5"):
        pack(ROW, np.zeros((2, 4), dtype=np.int64))
