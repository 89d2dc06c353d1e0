"""MAC array scaling: the registered ``mac_array`` block rebuilt at several sizes and widths.

The sweep takes the first design of block family ``mac_array`` in :mod:`hw.registry`, and makes
variants of its parameter object with :func:`dataclasses.replace`: ``rows`` and ``cols`` from
:data:`SIZES`, and every operand-width field (a name like ``a_width``, ``w_bits`` or ``act_bits``;
accumulator and output widths excluded) set to each of :data:`OPERAND_WIDTHS`. Each variant is
built with the block's own component class (``type(design.build())(params)``, the constructor
convention of ``hw/``). Variants the parameter class rejects are listed as skipped with its
message. Until a ``mac_array`` block is registered the sweep only explains that it has nothing to do.
"""

from __future__ import annotations

import dataclasses
import re

from hw.registry import Design

__all__ = ["SIZES", "OPERAND_WIDTHS", "MAC_BLOCK", "operand_width_fields", "sweep_designs"]

MAC_BLOCK = "mac_array"
SIZES: tuple[tuple[int, int], ...] = ((2, 2), (4, 4), (8, 8))
OPERAND_WIDTHS: tuple[int, ...] = (4, 8)
_OPERAND_WIDTH_FIELD = re.compile(r"(?:\w+_)?(?:width|bits)")
_NOT_OPERAND = re.compile(r"acc|out|sum|result|frac|shift|mult")


def operand_width_fields(params) -> list[str]:
    """Names of the fields of ``params`` that hold an operand width."""
    return [
        field.name
        for field in dataclasses.fields(params)
        if _OPERAND_WIDTH_FIELD.fullmatch(field.name) and not _NOT_OPERAND.search(field.name)
    ]


def sweep_designs(designs: list[Design]) -> tuple[list[Design], list[str]]:
    """The sweep's variant designs, and notes: what is varied, or why the sweep or a variant was skipped.

    An empty design list with a note is the normal outcome before a ``mac_array`` block exists.
    """
    base = next((design for design in designs if design.block == MAC_BLOCK), None)
    if base is None:
        return [], [f"skipped: no '{MAC_BLOCK}' block is registered in hw.registry yet; nothing to sweep"]
    params = base.params
    if not dataclasses.is_dataclass(params) or not {"rows", "cols"} <= {
        f.name for f in dataclasses.fields(params)
    }:
        return [], [f"skipped: {type(params).__name__} has no 'rows' and 'cols' fields to sweep"]
    widths = operand_width_fields(params)
    if not widths:
        return [], [f"skipped: {type(params).__name__} has no operand-width field (e.g. 'a_width')"]
    component = base.build()
    component._MustUse__silence = True  # built only to learn its class, never elaborated
    component_class = type(component)

    swept = ", ".join(["rows", "cols", *widths])
    variants, notes = [], [f"varies {swept} of {base.name} ({type(params).__name__}); other fields kept"]
    for rows, cols in SIZES:
        for width in OPERAND_WIDTHS:
            name = f"{MAC_BLOCK}_{rows}x{cols}_w{width}"
            try:
                variant = dataclasses.replace(params, rows=rows, cols=cols, **dict.fromkeys(widths, width))
            except (TypeError, ValueError) as error:
                notes.append(f"skipped {name}: {error}")
                continue
            variants.append(
                Design(name=name, block=MAC_BLOCK, params=variant, build=lambda p=variant: component_class(p))
            )
    return variants, notes
