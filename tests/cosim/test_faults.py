"""Fault injection keeps the module's interface and rewires exactly two bits."""

from __future__ import annotations

import pytest

from cosim.faults import swap_output_bits
from hw.export import export_design
from hw.registry import find_design


def test_swap_output_bits_rewires_the_port(tmp_path):
    verilog, _ = export_design(find_design("bitlog2_half_16"), tmp_path)
    text = verilog.read_text()
    faulty = swap_output_bits(text, "o__payload", 0, 4)
    swapped = ", ".join(f"o__payload__internal[{bit}]" for bit in (0, 3, 2, 1, 4))
    assert f"assign o__payload = {{{swapped}}};" in faulty
    assert faulty.count("output [4:0] o__payload;") == 1
    with pytest.raises(ValueError, match="no vector output port 'nope'"):
        swap_output_bits(text, "nope", 0, 1)
    with pytest.raises(ValueError, match="below the width 5"):
        swap_output_bits(text, "o__payload", 0, 5)
