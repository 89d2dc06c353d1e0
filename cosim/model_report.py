"""Reports of the model run: ``model_sim.json``, ``model_sim.md`` and a self-contained ``model_sim.html``.

Per operator (network order; all images and parts summed): the circuit, vectors (transfers) and
values compared, mismatches, the first mismatch (image, part, port, transfer, expected, got), the
largest ``|got - expected|``, simulated and analytical cycles, and for engines the utilization
``useful MACs / (cells x cycles)``. The first diverging operator in network order is named when
any output differs. Golden-only operators are listed with their reason, never as passed. Also:
wall time, simulated cycles per second, tool versions, seed and the parameter file's SHA-256.
The HTML page embeds its plots as base64 PNG. Every file is written atomically.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
from typing import Any

from golden.fileio import write_atomic

from .model_jobs import MAX_JOB_WORDS
from .model_sim import ModelRun, RunResult
from .report import environment

__all__ = ["build_document", "markdown", "write_model_report", "summary_line", "first_text", "REPORT_NAME"]

REPORT_NAME = "model_sim"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _operator_rows(run: ModelRun) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for result in run.results:
        r = result.run
        row = rows.setdefault(
            r.op,
            {
                "op": r.op,
                "layer": r.layer,
                "kind": r.kind,
                "units": [],
                "jobs": 0,
                "values": 0,
                "vectors": 0,
                "mismatches": 0,
                "first_mismatch": None,
                "max_abs_error": None,
                "cycles": 0,
                "analytical_cycles": 0,
                "cycles_match": True,
                "useful_macs": 0,
                "cell_cycles": 0,
                "engines": {},
                "errors": [],
                "timed_out": False,
            },
        )
        if r.unit not in row["units"]:
            row["units"].append(r.unit)
        row["jobs"] += 1
        row["values"] += r.values
        row["vectors"] += result.vectors
        row["mismatches"] += result.mismatches
        row["cycles"] += result.cycles
        row["analytical_cycles"] += r.analytical_cycles
        row["cycles_match"] &= result.cycles_match
        row["timed_out"] |= result.timed_out
        if result.error:
            row["errors"].append(result.error)
        if result.first_mismatch and row["first_mismatch"] is None:
            row["first_mismatch"] = {"image": r.image, "part": r.part, **result.first_mismatch}
        if result.max_abs_error is not None:
            row["max_abs_error"] = max(row["max_abs_error"] or 0, result.max_abs_error)
        if r.cells:
            row["useful_macs"] += r.useful_macs
            row["cell_cycles"] += r.cells * result.cycles
        for engine, (macs, cells) in r.engines.items():
            useful, cell_cycles = row["engines"].get(engine, (0, 0))
            row["engines"][engine] = (useful + macs, cell_cycles + cells * result.cycles)
    out = []
    for row in rows.values():
        row["utilization"] = row["useful_macs"] / row["cell_cycles"] if row["cell_cycles"] else None
        row["engines"] = {
            name: (useful / cell_cycles if cell_cycles else None)
            for name, (useful, cell_cycles) in row["engines"].items()
        }
        diverged = row["mismatches"] > 0 or row["timed_out"] or bool(row["errors"])
        row["status"] = "FAIL" if diverged or not row["cycles_match"] else "pass"
        row["diverged"] = diverged
        out.append(row)
    return out


def _layer_type(op: str) -> str:
    return re.sub(r"^blocks\.\d+\.", "blocks.*.", op)


def _utilization_by_type(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Engine utilization per operator type (e.g. ``blocks.*.attn.qkv.matmul``), over all blocks."""
    totals: dict[str, list[int]] = {}
    for row in rows:
        if row["cell_cycles"]:
            useful, cells = totals.setdefault(_layer_type(row["op"]), [0, 0])
            totals[_layer_type(row["op"])] = [useful + row["useful_macs"], cells + row["cell_cycles"]]
    return {name: useful / cells for name, (useful, cells) in totals.items()}


def build_document(run: ModelRun, wall_seconds: float) -> dict[str, Any]:
    """The JSON report of a model run (see the module docstring)."""
    rows = _operator_rows(run)
    results: list[RunResult] = run.results
    first = next((row for row in rows if row["diverged"]), None)
    cycles = sum(result.cycles for result in results)
    sim_seconds = sum(unit.get("sim_seconds", 0.0) for unit in run.units.values())
    failed = [result for result in results if not result.passed]
    options = run.options
    core_rows = [row for row in rows if row["kind"] == "head_core"]
    verdict = "pass" if results and not failed else "fail"
    summary = {
        "verdict": verdict,
        "operators_simulated": len(rows),
        "golden_only_operators": len(run.plan.golden_only),
        "jobs": len(results),
        "failed_jobs": len(failed),
        "values": sum(row["values"] for row in rows),
        "vectors": sum(result.vectors for result in results),
        "mismatches": sum(result.mismatches for result in results),
        "first_diverging": None
        if first is None
        else {
            "op": first["op"],
            "layer": first["layer"],
            "first_mismatch": first["first_mismatch"],
            "errors": first["errors"],
        },
        "cycle_formula_failures": [row["op"] for row in rows if not row["cycles_match"]],
        "simulated_cycles": cycles,
        "analytical_cycles": sum(result.run.analytical_cycles for result in results),
        "wall_seconds": round(wall_seconds, 2),
        "simulation_seconds": round(sim_seconds, 3),
        "simulated_cycles_per_second": round(cycles / sim_seconds) if sim_seconds else None,
        "simulated_cycles_per_wall_second": round(cycles / wall_seconds) if wall_seconds else None,
        "utilization_by_layer_type": _utilization_by_type(rows),
        "notes": run.plan.notes,
        "head_core_utilization": {
            name: _mean([row["engines"].get(name) for row in core_rows])
            for name in ("Q·Kᵀ MAC array", "A·V shift-accumulate")
        }
        if core_rows
        else {},
    }
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": summary,
        "options": {
            "images": options.images,
            "attn": run.model["config"]["attn"],
            "gelu": run.model["config"]["gelu"],
            "array": f"{options.rows}x{options.cols}",
            "seed": options.seed,
            "waves": options.waves,
            "only": list(options.only or []),
            "corrupt": options.corrupt,
            "throttle": options.throttle,
        },
        "model": {key: value for key, value in run.model.items()},
        "environment": environment() | {"verilator (simulator)": _simulator(run)},
        "stages_seconds": {name: round(value, 2) for name, value in run.stages.items()},
        "circuits": run.units,
        "operators": rows,
        "golden_only": [vars(item) for item in run.plan.golden_only],
        "filtered_out": run.plan.filtered_out,
        "runs": [
            {
                "op": result.run.op,
                "image": result.run.image,
                "part": result.run.part,
                "unit": result.run.unit,
                "job": result.run.job.name,
                "vectors": result.vectors,
                "values": result.run.values,
                "mismatches": result.mismatches,
                "first_mismatch": result.first_mismatch,
                "max_abs_error": result.max_abs_error,
                "cycles": result.cycles,
                "analytical_cycles": result.run.analytical_cycles,
                "timed_out": result.timed_out,
                "error": result.error,
                "passed": result.passed,
            }
            for result in results
        ],
    }


def _mean(values: list[float | None]) -> float | None:
    values = [value for value in values if value is not None]
    return sum(values) / len(values) if values else None


def _simulator(run: ModelRun) -> str:
    return next((unit["simulator"] for unit in run.units.values() if unit.get("simulator")), "not run")


def summary_line(document: dict[str, Any]) -> str:
    s = document["summary"]
    verdict = "PASS" if s["verdict"] == "pass" else f"FAIL ({s['failed_jobs']} of {s['jobs']} jobs)"
    line = (
        f"{verdict}: model run, {s['operators_simulated']} operators in {s['jobs']} jobs, "
        f"{s['values']:,} values ({s['vectors']:,} transfers) compared, {s['mismatches']:,} mismatches, "
        f"{s['simulated_cycles']:,} cycles (analytical {s['analytical_cycles']:,})"
    )
    if s["first_diverging"]:
        line += f"; first diverging: {s['first_diverging']['op']}"
    if s["cycle_formula_failures"]:
        line += f"; cycles differ from the formula: {', '.join(s['cycle_formula_failures'])}"
    return line


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def first_text(row: dict[str, Any]) -> str:
    if row["errors"]:
        return "simulator error: " + row["errors"][0]
    first = row["first_mismatch"]
    if first is None:
        return "timed out" if row["timed_out"] else "—"
    where = f"image {first['image']}" + (f" {first['part']}" if first["part"] else "")
    return (
        f"{where}, {first['port']} #{first['index']}: expected {_short(first.get('expected'))}, "
        f"got {_short(first.get('got'))}"
    )


def error_text(row: dict[str, Any]) -> str:
    return "—" if row["max_abs_error"] is None else str(row["max_abs_error"])


def utilization_text(row: dict[str, Any]) -> str:
    if row["engines"]:
        return ", ".join(f"{name} {_percent(value)}" for name, value in row["engines"].items())
    return _percent(row["utilization"])


def _timing_sentence(throttle: float) -> str:
    if throttle:
        return (
            f"Jobs ran with random idle cycles and back-pressure (probability {throttle}), so their "
            "cycles are not compared with the analytical count."
        )
    return (
        "Jobs run without idle cycles or back-pressure, so simulated cycles must equal the analytical "
        "count (MacArrayParams/ShiftAccParams.cycles, configuration words + values + latency, the head "
        f"core's formula). A job holds at most {MAX_JOB_WORDS:,} words per stream; a layer cut into "
        "several jobs pays the pipeline fill once per job."
    )


def markdown(document: dict[str, Any]) -> str:
    s, o, m = document["summary"], document["options"], document["model"]
    lines = [
        "# Model run: every integer operator through the RTL",
        "",
        f"{summary_line(document)}.",
        "",
        f"Generated {document['generated']}. Model: {m['source']} parameters `{m['path']}` "
        f"(sha256 `{m['sha256']}`), attention `{o['attn']}`, GELU `{o['gelu']}`; {o['images']} image(s) "
        f"of the shipped evaluation set; {o['array']} engines; seed {o['seed']}.",
        "",
        f"- wall time {s['wall_seconds']} s; RTL simulation {s['simulation_seconds']} s for "
        f"{s['simulated_cycles']:,} cycles = {s['simulated_cycles_per_second'] or 0:,} simulated cycles/s "
        f"({s['simulated_cycles_per_wall_second'] or 0:,} per second of wall time)",
        f"- stages: {', '.join(f'{name} {sec} s' for name, sec in document['stages_seconds'].items())}",
    ]
    if s["first_diverging"]:
        first = s["first_diverging"]
        lines.append(f"- **first diverging operator: `{first['op']}`** (layer `{first['layer']}`)")
    if o["corrupt"]:
        lines.append(f"- deliberately corrupted hardware memory image: `{o['corrupt']}`")
    lines += [f"- {note}" for note in s["notes"]]
    lines += [
        "",
        "Every output is compared for equality with the captured golden record (no tolerance). "
        + _timing_sentence(o["throttle"]),
        "",
        "| layer | operator | circuit | jobs | values (transfers) | mismatches | first mismatch "
        "| max abs err | cycles | analytical | utilization | status |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for row in document["operators"]:
        lines.append(
            f"| {row['layer']} | {row['op']} | {', '.join(row['units'])} | {row['jobs']} "
            f"| {row['values']:,} ({row['vectors']:,}) "
            f"| {row['mismatches']:,} | {first_text(row)} | {error_text(row)} | {row['cycles']:,} "
            f"| {row['analytical_cycles']:,} | {utilization_text(row)} | {row['status']} |"
        )
    lines += [
        "",
        "## Engine utilization per layer type",
        "",
        "| operator type | useful MACs / (cells x cycles) |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {_percent(value)} |" for name, value in s["utilization_by_layer_type"].items()]
    for name, value in s["head_core_utilization"].items():
        lines.append(f"| attention head core: {name} | {_percent(value)} |")
    lines += [
        "",
        "## Golden-only operators (not simulated at this stage)",
        "",
        "| operator | kind | reason |",
        "|---|---|---|",
    ]
    lines += [f"| {item['op']} | {item['kind']} | {item['reason']} |" for item in document["golden_only"]]
    if document["filtered_out"]:
        lines += ["", f"Not selected (--ops): {len(document['filtered_out'])} operators."]
    lines += [
        "",
        "## Circuits",
        "",
        "| circuit | block | jobs | cycles | wall s |",
        "|---|---|---:|---:|---:|",
    ]
    for name, unit in document["circuits"].items():
        lines.append(
            f"| {name} | {unit.get('block', '—')} | {unit.get('jobs', 0)} | {unit.get('cycles', 0):,} "
            f"| {unit.get('wall_seconds', unit.get('error', '—'))} |"
        )
    lines += ["", "## Environment", ""]
    lines += [f"- {name}: {version}" for name, version in document["environment"].items()]
    return "\n".join(lines) + "\n"


def write_model_report(run: ModelRun, out_dir: pathlib.Path, wall_seconds: float) -> dict[str, Any]:
    """Write ``model_sim.{json,md,html}`` under ``out_dir``; return the JSON document."""
    from .model_html import html_page  # model_html builds on this module's text helpers

    document = build_document(run, wall_seconds)
    out_dir = pathlib.Path(out_dir)
    write_atomic(out_dir / f"{REPORT_NAME}.json", json.dumps(document, indent=1, default=str) + "\n")
    write_atomic(out_dir / f"{REPORT_NAME}.md", markdown(document))
    write_atomic(out_dir / f"{REPORT_NAME}.html", html_page(document))
    return document
