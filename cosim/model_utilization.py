"""MAC utilization of the shipped model's layer shapes for several engine sizes ``R x C``.

For each size the model's integer operators are planned exactly as ``make sim`` plans them
(:func:`cosim.model_plan.plan_model`, one image, no head core) and, per layer type (``blocks.*``
merged), the engines' useful multiply-accumulates are set against their analytical cycles
(:meth:`golden.params.MacArrayParams.cycles` and :meth:`~golden.params.ShiftAccParams.cycles`):
``utilization = useful_macs / (R * C * cycles)``. Tiling loss (partial tiles of ``M`` and ``N``
padded up to ``R`` and ``C``) and the fill and drain of every product are both inside that figure.

``--simulate`` also runs the model through the RTL at every size (:func:`cosim.model_sim.run_model`)
and records the simulated cycles of the same jobs next to the analytical ones; any difference, or
any mismatch of the outputs, makes the command fail. Cold Verilator builds take a few minutes per
size; the builds are cached in ``build/model-sim``.

Usage::

    python -m cosim.model_utilization                     # analytical, default sizes
    python -m cosim.model_utilization --simulate          # and checked against Verilator
    python -m cosim.model_utilization --sizes 4x4 8x8

Writes ``build/reports/mac_utilization.{json,md}`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from golden.fileio import write_atomic

__all__ = ["DEFAULT_SIZES", "layer_type", "utilization_rows", "markdown", "main"]

DEFAULT_SIZES: tuple[str, ...] = ("2x2", "4x4", "8x8", "16x16", "4x16")
REPORT_NAME = "mac_utilization"


def layer_type(op: str) -> str:
    """``blocks.3.mlp.fc1.matmul`` -> ``blocks.*.mlp.fc1.matmul``."""
    return re.sub(r"^blocks\.\d+\.", "blocks.*.", op)


def _accumulate(rows: dict[str, dict[str, Any]], run: Any, simulated: int | None) -> None:
    row = rows.setdefault(
        layer_type(run.op),
        {
            "layer_type": layer_type(run.op),
            "unit": run.unit,
            "cells": run.cells,
            "useful_macs": 0,
            "analytical_cycles": 0,
            "simulated_cycles": None if simulated is None else 0,
        },
    )
    row["useful_macs"] += run.useful_macs
    row["analytical_cycles"] += run.analytical_cycles
    if simulated is not None:
        row["simulated_cycles"] += simulated


def utilization_rows(runs: Sequence[Any], simulated: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """Per engine layer type: useful MACs, cells, analytical (and simulated) cycles, utilization.

    ``runs`` are :class:`cosim.model_plan.OpRun` s; only engine runs (``cells > 0``) count.
    ``simulated`` maps ``id(run)`` to its measured cycles.
    """
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.cells:
            _accumulate(rows, run, None if simulated is None else simulated[id(run)])
    for row in rows.values():
        row["utilization"] = row["useful_macs"] / (row["cells"] * row["analytical_cycles"])
    return list(rows.values())


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    useful = sum(row["useful_macs"] for row in rows)
    cell_cycles = sum(row["cells"] * row["analytical_cycles"] for row in rows)
    total = {
        "useful_macs": useful,
        "analytical_cycles": sum(row["analytical_cycles"] for row in rows),
        "utilization": useful / cell_cycles if cell_cycles else None,
    }
    if rows and all(row["simulated_cycles"] is not None for row in rows):
        total["simulated_cycles"] = sum(row["simulated_cycles"] for row in rows)
    return total


def _size_entry(params: Any, records: dict, size: str, simulate: Callable | None) -> dict[str, Any]:
    from .model_hw import ModelHardware
    from .model_plan import plan_model
    from .model_sim import parse_array

    rows_, cols = parse_array(size)
    plan = plan_model(ModelHardware(params, rows_, cols), records, 1, heads=False)
    entry: dict[str, Any] = {"size": size, "rows": rows_, "cols": cols}
    simulated = None
    if simulate is not None:
        simulated, entry["simulation"] = simulate(rows_, cols, plan)
    rows = utilization_rows(plan.runs, simulated)
    entry["layers"], entry["total"] = rows, _total(rows)
    return entry


def _simulator(build: pathlib.Path, log: Callable[[str], None]) -> Callable:
    """Runs the model at ``R x C`` and maps each planned engine run to its simulated cycles."""
    from .model_sim import ModelOptions, run_model

    def simulate(rows: int, cols: int, plan: Any) -> tuple[dict[int, int], dict[str, Any]]:
        result = run_model(ModelOptions(images=1, rows=rows, cols=cols), build, log)
        by_key = {(r.run.op, r.run.part, r.run.image): r for r in result.results}
        cycles, failed = {}, []
        for run in plan.runs:
            if not run.cells:
                continue
            measured = by_key[(run.op, run.part, run.image)]
            cycles[id(run)] = measured.cycles
            if not measured.passed or measured.cycles != run.analytical_cycles:
                failed.append(f"{run.op} {run.part}".strip())
        return cycles, {"jobs": len(cycles), "failed": failed}

    return simulate


def markdown(document: dict[str, Any]) -> str:
    """One table per size, then the totals side by side."""
    simulated = document["simulated"]
    lines = [
        "# MAC utilization on the shipped model's layer shapes",
        "",
        f"Model `{document['model']}`, one image. Utilization = useful MACs / (R x C x cycles), tiling "
        "loss and fill/drain included; cycles from the analytical formula"
        + (
            ", checked against Verilator (simulated column)." if simulated else " (`--simulate` checks them)."
        ),
        "",
        "| R x C | useful MACs | analytical cycles | "
        + ("simulated cycles | " if simulated else "")
        + "utilization |",
        "|---|---|---|" + ("---|" if simulated else "") + "---|",
    ]
    for entry in document["sizes"]:
        total = entry["total"]
        sim = f"{total['simulated_cycles']:,} | " if simulated else ""
        lines.append(
            f"| {entry['size']} | {total['useful_macs']:,} | {total['analytical_cycles']:,} | {sim}"
            f"{100 * total['utilization']:.1f} % |"
        )
    for entry in document["sizes"]:
        lines += [
            "",
            f"## {entry['size']}",
            "",
            "| layer type | engine | cycles | utilization |",
            "|---|---|---|---|",
        ]
        for row in entry["layers"]:
            lines.append(
                f"| `{row['layer_type']}` | {row['unit']} | {row['analytical_cycles']:,} | "
                f"{100 * row['utilization']:.1f} % |"
            )
        failed = entry.get("simulation", {}).get("failed")
        if failed:
            lines += ["", f"FAILED against simulation: {', '.join(failed)}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cosim.model_utilization", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="engine sizes RxC")
    parser.add_argument("--simulate", action="store_true", help="check every cycle count on Verilator")
    parser.add_argument("--build", type=pathlib.Path, default=pathlib.Path("build"), help="build folder")
    args = parser.parse_args(argv)
    from .model_sim import capture_records, load_model, parse_array

    try:
        for size in args.sizes:
            parse_array(size)
    except ValueError as error:
        parser.error(str(error))
    params, _ = load_model(None, None, args.build / "model-sim", print)
    records, _, _ = capture_records(params, 1)
    simulate = _simulator(args.build, print) if args.simulate else None
    sizes = [_size_entry(params, records, size, simulate) for size in args.sizes]
    document = {"model": params.config.model, "simulated": args.simulate, "sizes": sizes}
    reports = args.build / "reports"
    write_atomic(reports / f"{REPORT_NAME}.json", json.dumps(document, indent=2) + "\n")
    write_atomic(reports / f"{REPORT_NAME}.md", markdown(document))
    for entry in sizes:
        total = entry["total"]
        sim = f", simulated {total['simulated_cycles']:,}" if "simulated_cycles" in total else ""
        print(
            f"{entry['size']:>6}: {total['analytical_cycles']:>10,} cycles{sim}, "
            f"utilization {100 * total['utilization']:.1f} %"
        )
    failed = [entry["size"] for entry in sizes if entry.get("simulation", {}).get("failed")]
    print(f"wrote {reports / (REPORT_NAME + '.md')}")
    if failed:
        print(f"FAIL: simulated cycles or outputs differ at {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
