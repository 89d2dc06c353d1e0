"""``build/reports/synth.{json,md}``: hardware cost per design, and quantizers side by side.

The Markdown has two tables. *All designs*: LUTs, flip-flops, carry cells (DSPs, block RAMs and
LUT RAMs when any design uses them) and Fmax per FPGA target, plus technology-independent gate
counts.
*Side by side*: the designs grouped by block family (:data:`FAMILY_ORDER` first, then any other
family in the registry), with each design's W4A4 top-1 accuracy from
``build/reports/accuracy.json`` when calibration has written it.

Accuracy rows (``calib.accuracy``: ``top1`` a fraction) are matched to designs through
:data:`DESIGN_ACCURACY`, which names the calibrated configuration (post-softmax, post-GELU
quantizer) each design implements in the model's datapath; the cell names that configuration.
Only W4A4 rows count (``wbits == abits == 4``); the ``integer`` mode is preferred, then
``fakequant``, then any. A design that is not in the map, or has no matching row, gets "—": no
number is made up.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from golden.fileio import write_atomic

__all__ = [
    "FAMILY_ORDER",
    "DESIGN_ACCURACY",
    "load_accuracy",
    "accuracy_cell",
    "pnr_failure_label",
    "design_table",
    "comparison_table",
    "write_synth_report",
]

#: Block families in the order the comparison reads best: log quantizers, LUT and decoders, the
#: shift-accumulate A·V against the plain-multiply MAC array, then requantization. Families not
#: listed follow in registry order.
FAMILY_ORDER: tuple[str, ...] = (
    "bitlog2",
    "threshold_quant",
    "sqrt2",
    "adalog",
    "adalog_lut",
    "logdecode",
    "shift_acc",
    "log_av",
    "mac_array",
    "requant",
)

FPGA_TARGETS: dict[str, str] = {"ice40": "iCE40", "ecp5": "ECP5"}
MODE_PREFERENCE: tuple[str, ...] = ("integer", "fakequant")
MISSING = "—"


#: design -> (attention quantizer, GELU quantizer) of the W4A4 model it implements. The
#: attention designs are shown with uniform GELU, the post-GELU quantizer with BitLog2 Half_17
#: attention (the shipped default); the MAC array stands for the plain-multiply A·V (uniform
#: attention). ``thresholdq_u24_b4`` is the comparator on the model's 24-bit probability grid.
DESIGN_ACCURACY: dict[str, tuple[str, str]] = {
    "bitlog2_single_16": ("bitlog2_single_16", "uniform"),
    "bitlog2_single_17": ("bitlog2_single_17", "uniform"),
    "bitlog2_half_16": ("bitlog2_half_16", "uniform"),
    "bitlog2_half_17": ("bitlog2_half_17", "uniform"),
    "thresholdq_u24_b4": ("sqrt2_17", "uniform"),
    "thresholdq_s16_b4": ("bitlog2_half_17", "adalog"),
    "adalog_lut_b4": ("adalog", "uniform"),
    "logdecode_bitlog2_half_17": ("bitlog2_half_17", "uniform"),
    "logdecode_sqrt2_4b": ("sqrt2_17", "uniform"),
    "shiftacc_bitlog2_half_17": ("bitlog2_half_17", "uniform"),
    "shiftacc_sqrt2_4b": ("sqrt2_17", "uniform"),
    "shiftacc_adalog_4b": ("adalog", "uniform"),
    "mac_4x4_uint4": ("uniform", "uniform"),
    "attention_core_bitlog2_half_17": ("bitlog2_half_17", "uniform"),
}


def load_accuracy(path: pathlib.Path) -> list[dict[str, Any]]:
    """The rows of ``accuracy.json`` (a list, or ``{"rows": [...]}``); ``[]`` when absent or unreadable."""
    try:
        document = json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    rows = document.get("rows", []) if isinstance(document, dict) else document
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def accuracy_cell(design_name: str, rows: list[dict[str, Any]]) -> str:
    """The W4A4 top-1 (%) of the configuration ``design_name`` implements, as
    ``"<top1> (<attn>/<gelu>, <mode>)"``, or "—" (see the module docstring)."""
    if design_name not in DESIGN_ACCURACY:
        return MISSING
    attn, gelu = DESIGN_ACCURACY[design_name]
    matching = [
        row
        for row in rows
        if (row.get("attn"), row.get("gelu")) == (attn, gelu)
        and row.get("wbits") == 4
        and row.get("abits") == 4
        and isinstance(row.get("top1"), int | float)
    ]
    for mode in (*MODE_PREFERENCE, None):
        chosen = [row for row in matching if mode is None or row.get("mode") == mode]
        if chosen:
            row = chosen[0]
            return f"{100 * row['top1']:.1f} ({attn}/{gelu}, {row.get('mode', 'mode?')})"
    return MISSING


def pnr_failure_label(pnr_error: str) -> str:
    """ "no fit" when nextpnr ran out of some kind of cell on the device, else "P&R failed"."""
    return "no fit" if "no BELs remaining" in pnr_error else "P&R failed"


def _number(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.1f}"
    return f"{value:,}"


def _cell(result: dict, target: str, column: str, *, with_range: bool = False) -> str:
    counts = result["targets"].get(target)
    if counts is None:
        return MISSING
    if "error" in counts:
        return "error"
    if column == "fmax_mhz" and counts.get("pnr_error"):
        return pnr_failure_label(counts["pnr_error"])
    text = _number(counts.get(column))
    spread = counts.get("fmax_range_mhz")
    low, high = (f"{bound:.0f}" for bound in spread) if spread else ("", "")
    if with_range and column == "fmax_mhz" and low != high:
        text += f" ({low}–{high})"
    return text


def _used(results: list[dict], target: str, column: str) -> bool:
    return any(result["targets"].get(target, {}).get(column) for result in results)


def _fpga_columns(results: list[dict], with_carry: bool = True) -> list[tuple[str, str, str]]:
    """``(header, target, column)`` for each FPGA target present; DSP, BRAM, LUTRAM only where used."""
    columns = []
    for target, label in FPGA_TARGETS.items():
        if not any(target in result["targets"] for result in results):
            continue
        wanted = [("LUT", "lut"), ("FF", "ff")] + ([("carry", "carry")] if with_carry else [])
        wanted += [(kind.upper(), kind) for kind in ("dsp", "bram", "lutram") if _used(results, target, kind)]
        wanted.append(("Fmax MHz", "fmax_mhz"))
        columns += [(f"{label} {header}", target, column) for header, column in wanted]
    return columns


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def design_table(results: list[dict]) -> str:
    """Every design: FPGA counts and Fmax per target, then generic gates and flip-flops."""
    columns = _fpga_columns(results)
    if any("generic" in result["targets"] for result in results):
        columns += [("gates", "generic", "gates"), ("gate FFs", "generic", "ff")]
    headers = ["design", "block"] + [header for header, _, _ in columns]
    rows = [
        [result["name"], result["block"]]
        + [_cell(result, target, column, with_range=True) for _, target, column in columns]
        for result in results
    ]
    return _markdown(headers, rows)


def _family_order(results: list[dict]) -> list[str]:
    present = list(dict.fromkeys(result["block"] for result in results))
    return [family for family in FAMILY_ORDER if family in present] + [
        family for family in present if family not in FAMILY_ORDER
    ]


def comparison_table(results: list[dict], accuracy_rows: list[dict[str, Any]]) -> str:
    """Designs grouped by block family, compact cost per FPGA target and W4A4 top-1."""
    columns = _fpga_columns(results, with_carry=False)
    headers = ["family", "design"] + [header for header, _, _ in columns] + ["W4A4 top-1"]
    rows = []
    for family in _family_order(results):
        for result in (r for r in results if r["block"] == family):
            cost = [_cell(result, target, column) for _, target, column in columns]
            rows.append([family, result["name"], *cost, accuracy_cell(result["name"], accuracy_rows)])
    return _markdown(headers, rows)


def _markdown_report(results: list[dict], meta: dict, accuracy_rows: list[dict[str, Any]]) -> str:
    tools = ", ".join(f"{package} {version}" for package, version in meta.get("tools", {}).items())
    devices = "; ".join(f"{name}: {device}" for name, device in meta.get("devices", {}).items())
    seeds = ", ".join(str(seed) for seed in meta.get("pnr_seeds", [])) or "(none)"
    accuracy_note = (
        f"from `{meta['accuracy_source']}`" if accuracy_rows else "not yet available (no accuracy.json)"
    )
    parts = [
        "# Hardware cost per design",
        "",
        f"Tools: {tools}. Devices: {devices}.",
        "LUTs, flip-flops and other cells are Yosys's counts for the bare block. Fmax is nextpnr's "
        f"estimate for the block between registers (`synth/harness.py`, so its input-to-output logic is "
        f"timed): the median over placement seeds {seeds}, with (min–max) when they differ. "
        "ECP5 LUTs are LUT4s (the PFUMX/L6MUX21 wide-function muxes are in synth.json). "
        '"no fit": the block (with the harness) needs more cells of some kind than the device has; '
        "its counts still stand.",
        "",
        "## All designs",
        "",
        design_table(results),
        "",
        "## Side by side, by block family",
        "",
        f"W4A4 top-1 {accuracy_note}, of the (attention/GELU) configuration each design implements "
        "(`DESIGN_ACCURACY` in `synth/report.py`).",
        "",
        comparison_table(results, accuracy_rows),
        "",
    ]
    errors = [
        f"- {result['name']} {target}: {counts.get('error') or counts.get('pnr_error')}"
        for result in results
        for target, counts in result["targets"].items()
        if "error" in counts or counts.get("pnr_error")
    ]
    if errors:
        parts += ["## Tool failures", "", *errors, ""]
    return "\n".join(parts)


def write_synth_report(
    results: list[dict],
    reports_dir: pathlib.Path,
    meta: dict,
    accuracy_path: pathlib.Path,
    *,
    stem: str = "synth",
) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``reports_dir`` atomically; return both paths."""
    reports_dir = pathlib.Path(reports_dir)
    accuracy_rows = load_accuracy(accuracy_path)
    meta = {**meta, "accuracy_source": str(accuracy_path) if accuracy_rows else None}
    json_path, markdown_path = reports_dir / f"{stem}.json", reports_dir / f"{stem}.md"
    write_atomic(json_path, json.dumps({"meta": meta, "designs": results}, indent=1) + "\n")
    write_atomic(markdown_path, _markdown_report(results, meta, accuracy_rows))
    return json_path, markdown_path
