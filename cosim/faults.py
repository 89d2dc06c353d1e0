"""Fault injection into exported Verilog, to prove the checkers catch a wrong design.

:func:`swap_output_bits` rewires two bits of an output port: the module keeps its interface, but
the port now carries the internal value with bits ``a`` and ``b`` exchanged.
"""

from __future__ import annotations

import re

__all__ = ["swap_output_bits"]


def swap_output_bits(verilog: str, port: str, a: int, b: int) -> str:
    """Return ``verilog`` with bits ``a`` and ``b`` of output ``port`` swapped."""
    declaration = re.search(rf"^\s*output\s+\[(\d+):0\]\s+{re.escape(port)}\s*;\s*$", verilog, re.MULTILINE)
    if declaration is None:
        raise ValueError(f"no vector output port {port!r} in this Verilog")
    width = int(declaration.group(1)) + 1
    if not (0 <= a < width and 0 <= b < width and a != b):
        raise ValueError(f"bits {a} and {b} must be distinct and below the width {width} of {port!r}")
    header_end = verilog.index(");") + 2
    body = verilog[header_end:].replace(declaration.group(0), "", 1)
    # Rename the internal driver everywhere except escaped identifiers such as \o__payload.k.
    body = re.sub(rf"(?<![\\\w.]){re.escape(port)}(?![\w.])", f"{port}__internal", body)
    order = list(range(width - 1, -1, -1))
    order[width - 1 - a], order[width - 1 - b] = order[width - 1 - b], order[width - 1 - a]
    bits = ", ".join(f"{port}__internal[{bit}]" for bit in order)
    rewired = f"  output [{width - 1}:0] {port};\n  assign {port} = {{{bits}}};\n"
    end = body.rindex("endmodule")
    return verilog[:header_end] + body[:end] + rewired + body[end:]
