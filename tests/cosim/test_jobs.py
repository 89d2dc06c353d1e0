"""The comparison behind every report fails on a single corrupted value."""

from __future__ import annotations

import numpy as np

from cosim.jobs import compare


def test_equal_values_pass():
    expected = {"k": np.arange(10), "zero": np.zeros(10, dtype=np.int64)}
    assert compare(expected, {key: value.copy() for key, value in expected.items()}) == (0, None)


def test_one_corrupted_value_is_caught_with_its_index_input_expected_and_got():
    expected = {"k": np.arange(10), "zero": np.zeros(10, dtype=np.int64)}
    got = {key: value.copy() for key, value in expected.items()}
    got["k"][6] = 99
    mismatches, first = compare(expected, got, inputs=np.arange(100, 110))
    assert mismatches == 1
    assert first == {"index": 6, "input": 106, "expected": {"k": 6, "zero": 0}, "got": {"k": 99, "zero": 0}}


def test_corrupted_element_of_an_array_row_is_caught():
    expected = np.arange(12).reshape(4, 3)
    got = expected.copy()
    got[2, 1] += 1
    assert compare(expected, got)[0] == 1


def test_missing_outputs_count_as_mismatches():
    mismatches, first = compare(np.arange(5), np.arange(3))
    assert mismatches == 2
    assert first["index"] == 3 and first["got"] is None
