"""The catalogue of exportable designs: every block with its named example configurations.

``make verilog`` exports each design listed here; ``make sim`` and ``make synth`` take their
designs from the same list, so a block added here appears in all three. Each block module
provides ``example_designs() -> list[Design]``; add the module to :data:`BLOCK_MODULES`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from amaranth.lib import wiring

#: Modules of ``hw`` that define ``example_designs()``.
BLOCK_MODULES: tuple[str, ...] = (
    "hw.bitlog2",
    "hw.mac_array",
    "hw.logdecode",
    "hw.shift_acc",
    "hw.threshold_quant",
    "hw.adalog_lut",
    "hw.requant",
    "hw.attention_core",
)


@dataclasses.dataclass(frozen=True)
class Design:
    """One exportable configuration of a block.

    Attributes
    ----------
    name : str
        The Verilog module name (also the file stem), e.g. ``bitlog2_half_17``.
    block : str
        The block family, e.g. ``bitlog2``.
    params : object
        The parameter object (with ``to_dict()``) the component is built from.
    build : callable
        Returns a fresh :class:`wiring.Component`.
    """

    name: str
    block: str
    params: Any
    build: Callable[[], wiring.Component]


def all_designs() -> list[Design]:
    designs: list[Design] = []
    for module_name in BLOCK_MODULES:
        designs.extend(importlib.import_module(module_name).example_designs())
    names = [design.name for design in designs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Design names must be unique; repeated: {', '.join(duplicates)}")
    return designs


def find_design(name: str) -> Design:
    designs = {design.name: design for design in all_designs()}
    if name not in designs:
        raise KeyError(f"No design named {name!r}; known designs: {', '.join(sorted(designs))}")
    return designs[name]
