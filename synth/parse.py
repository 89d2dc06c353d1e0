"""Read Yosys cell statistics and nextpnr timing from the tools' output.

Yosys ``stat -json`` is the primary source (its layout: ``{"design": {"num_cells_by_type":
{...}}}``, or per module under ``"modules"`` in older releases); the text ``stat`` is the fallback,
in both the current layout (count before the cell type) and the older one (``Number of cells:``,
type before count). Cells are then summarized per target into LUTs, flip-flops, carry cells, DSPs
and block RAMs. nextpnr prints ``Max frequency for clock 'name': 242.31 MHz`` once after placement
and again after routing; the last figure of each clock counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

__all__ = [
    "StatParseError",
    "cells_from_stat_json",
    "cells_from_stat_text",
    "summarize_cells",
    "fmax_by_clock",
    "pnr_utilisation",
]

#: Yosys bookkeeping cells that are not hardware.
IGNORED_CELLS = frozenset({"$scopeinfo"})


class StatParseError(ValueError):
    """The tool output holds no cell statistics for the requested module."""


def _counts(node: dict) -> dict[str, int] | None:
    for key in ("num_cells_by_type", "cells_by_type"):
        if isinstance(node.get(key), dict):
            return {name: int(count) for name, count in node[key].items() if name not in IGNORED_CELLS}
    return None


def cells_from_stat_json(text: str, top: str | None = None) -> dict[str, int]:
    """Cell type -> count from Yosys ``stat -json`` output.

    The whole-design totals are used when present; otherwise the module ``top`` (Yosys writes
    module names with a leading backslash) or, without ``top``, the only module.

    Raises
    ------
    StatParseError
        When the text is not JSON or holds no cell counts.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise StatParseError(f"stat -json output is not JSON ({error})") from None
    if isinstance(document.get("design"), dict) and (counts := _counts(document["design"])) is not None:
        return counts
    modules = document.get("modules", {})
    if top is not None:
        candidates = [modules.get(f"\\{top}"), modules.get(top)]
    else:
        candidates = list(modules.values()) if len(modules) == 1 else []
    for node in candidates:
        if isinstance(node, dict) and (counts := _counts(node)) is not None:
            return counts
    raise StatParseError(f"no cell counts for module {top or '(the only one)'} in stat -json output")


_NEW_CELLS_TOTAL = re.compile(r"^\s*(\d+)\s+cells\s*$")
_NEW_CELL_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s*$")
_OLD_CELLS_TOTAL = re.compile(r"^\s*Number of cells:\s*(\d+)\s*$")
_OLD_CELL_LINE = re.compile(r"^\s+(\S+)\s+(\d+)\s*$")


def _module_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = re.match(r"^===\s*(.+?)\s*===\s*$", line)
        if header:
            current = sections.setdefault(header.group(1), [])
        elif current is not None:
            current.append(line)
    return sections


def _cells_after(lines: list[str], total: re.Pattern, entry: re.Pattern, order: Callable) -> dict | None:
    for start, line in enumerate(lines):
        if total.match(line):
            counts: dict[str, int] = {}
            for following in lines[start + 1 :]:
                match = entry.match(following)
                if not match:
                    break
                name, count = order(match)
                if name not in IGNORED_CELLS:
                    counts[name] = count
            return counts
    return None


def cells_from_stat_text(text: str, top: str | None = None) -> dict[str, int]:
    """Cell type -> count from Yosys's text ``stat`` report (current or older layout).

    Raises
    ------
    StatParseError
        When no module section with a cell count is found.
    """
    sections = _module_sections(text)
    if top is not None and top in sections:
        chosen = [sections[top]]
    elif "design hierarchy" in sections:
        chosen = [sections["design hierarchy"]]
    else:
        chosen = list(sections.values())[:1]
    for lines in chosen:
        for total, entry, order in (
            (_NEW_CELLS_TOTAL, _NEW_CELL_LINE, lambda m: (m.group(2), int(m.group(1)))),
            (_OLD_CELLS_TOTAL, _OLD_CELL_LINE, lambda m: (m.group(1), int(m.group(2)))),
        ):
            counts = _cells_after(lines, total, entry, order)
            if counts is not None:
                return counts
    raise StatParseError(f"no cell counts for module {top or '(the first one)'} in the stat text")


def _is_generic_flop(cell: str) -> bool:
    return cell.startswith("$_") and ("DFF" in cell or "DLATCH" in cell or cell.startswith("$_SR_"))


#: Per target: summary column -> predicate on the cell type name.
CELL_CLASSES: dict[str, dict[str, Callable[[str], bool]]] = {
    "ice40": {
        "lut": lambda cell: cell == "SB_LUT4",
        "ff": lambda cell: cell.startswith("SB_DFF"),
        "carry": lambda cell: cell == "SB_CARRY",
        "dsp": lambda cell: cell == "SB_MAC16",
        "bram": lambda cell: cell.startswith("SB_RAM") or cell.startswith("SB_SPRAM"),
    },
    "ecp5": {
        "lut": lambda cell: cell == "LUT4",
        "ff": lambda cell: cell == "TRELLIS_FF",
        "carry": lambda cell: cell == "CCU2C",
        "dsp": lambda cell: cell in {"MULT18X18D", "MULT9X9D", "ALU54B", "ALU24B"},
        "bram": lambda cell: cell in {"DP16KD", "PDPW16KD"},
        # Distributed RAM and the wide-function muxes that combine LUT4s into LUT5..LUT7.
        "lutram": lambda cell: cell == "TRELLIS_DPR16X4",
        "wide_mux": lambda cell: cell in {"PFUMX", "L6MUX21"},
    },
    "generic": {
        "ff": _is_generic_flop,
        "gates": lambda cell: cell.startswith("$_") and not _is_generic_flop(cell),
    },
}


def summarize_cells(target: str, cells: dict[str, int]) -> dict[str, int]:
    """Counts per summary column for ``target``, plus ``cells`` (all) and ``other`` (unclassified)."""
    classes = CELL_CLASSES[target]
    summary = dict.fromkeys(classes, 0)
    other = 0
    for cell, count in cells.items():
        column = next((name for name, belongs in classes.items() if belongs(cell)), None)
        if column is None:
            other += count
        else:
            summary[column] += count
    summary["cells"] = sum(cells.values())
    summary["other"] = other
    return summary


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s*([0-9.]+)\s*MHz")


def fmax_by_clock(log: str) -> dict[str, float]:
    """Clock name -> the last maximum frequency nextpnr reported for it (MHz)."""
    found: dict[str, float] = {}
    for clock, mhz in _FMAX.findall(log):
        found[clock] = float(mhz)
    return found


_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$", re.MULTILINE)


def pnr_utilisation(log: str) -> dict[str, list[int]]:
    """Resource -> ``[used, available]`` from nextpnr's last "Device utilisation" block."""
    used: dict[str, list[int]] = {}
    for resource, count, available in _UTILISATION.findall(log):
        used[resource] = [int(count), int(available)]
    return used
