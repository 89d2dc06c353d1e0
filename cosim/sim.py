"""``make sim``: the model run, then every design's verification plan on Verilator; the reports.

First the model run (:mod:`cosim.model_sim`): the shipped quantized ViT's real tensors, every
operator with integer inputs (and every attention head through the head core) through the RTL,
compared with the captured golden records; reports in ``build/reports/model_sim.{json,md,html}``
(:mod:`cosim.model_report`). ``--model`` runs only this, ``--blocks`` only the unit plans below.

Then each design of :mod:`hw.registry` is exported to ``build/verilog`` (Verilog + JSON sidecar),
compiled with Verilator (cached) inside the preloaded harness (:mod:`cosim.fast`: inputs in
memories, LFSR idle cycles and back-pressure, no Python per clock cycle), and checked with the
jobs from :mod:`cosim.checks` against the golden model. The reports go
to ``build/reports/bitexact.{json,md}``. The exit status is non-zero on any mismatch, timeout or
simulator failure.

``--use-existing-verilog`` simulates the files already in ``build/verilog`` instead of
re-exporting them (for instance after editing one by hand to see a fault caught); it and
``--designs`` select unit plans only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import pathlib
import sys
import time

from golden.quantmodel import ATTN_SCHEMES, GELU_SCHEMES
from hw.export import export_design
from hw.registry import Design, all_designs

from .checks import jobs_for
from .fast import run_harness
from .jobs import Check
from .report import summary_line, write_bitexact_report
from .runner import SimulationError
from .toolchain import ToolchainError, put_verilator_on_path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Simulate Quiver's RTL against the golden model, bit-exact.")
    parser.add_argument(
        "--seed", type=int, default=1, help="seed for stimulus order, idle cycles, back-pressure"
    )
    parser.add_argument("--build", type=pathlib.Path, default=pathlib.Path("build"), help="output folder")
    parser.add_argument("--designs", nargs="*", help="only these designs (names or block families)")
    parser.add_argument("--quick", action="store_true", help="shrink non-exhaustive plans (for tests)")
    parser.add_argument("--waves", action="store_true", help="dump waveforms (slower builds)")
    parser.add_argument("--images", type=_positive, default=1, help="images for the model run (default 1)")
    parser.add_argument("--attn", choices=ATTN_SCHEMES, help="model run: post-softmax quantizer (calibrates)")
    parser.add_argument("--gelu", choices=GELU_SCHEMES, help="model run: post-GELU quantizer (calibrates)")
    parser.add_argument(
        "--params",
        type=pathlib.Path,
        metavar="DIR",
        help="model run: this parameter file of the shipped model (from python -m calib)",
    )
    parser.add_argument("--array", default="4x4", help="model run: engines R x C, C a power of two (4x4)")
    parser.add_argument(
        "--ops", nargs="*", metavar="PREFIX", help="model run: only operators with these prefixes"
    )
    parser.add_argument(
        "--corrupt",
        metavar="OPERATOR",
        help="model run: flip one word of OPERATOR's memory image (must fail)",
    )
    parser.add_argument(
        "--throttle",
        type=float,
        default=0.0,
        metavar="P",
        help="model run: idle/back-pressure probability (0: cycles must equal the formula)",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--model", action="store_true", help="only the model run")
    scope.add_argument("--blocks", action="store_true", help="only the unit plans of the registered designs")
    parser.add_argument(
        "--use-existing-verilog",
        action="store_true",
        help="simulate build/verilog/*.v as they are (no re-export)",
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def select(designs: list[Design], wanted: list[str] | None) -> list[Design]:
    if not wanted:
        return designs
    chosen = [design for design in designs if design.name in wanted or design.block in wanted]
    unknown = set(wanted) - {d.name for d in designs} - {d.block for d in designs}
    if unknown:
        raise SystemExit(
            f"error: unknown design or block {sorted(unknown)}; see 'python -m hw.export --help'"
        )
    return chosen


def locate_verilog(design: Design, verilog_dir: pathlib.Path, reuse: bool) -> tuple[pathlib.Path, dict]:
    verilog, sidecar_path = verilog_dir / f"{design.name}.v", verilog_dir / f"{design.name}.json"
    if reuse:
        if not verilog.exists() or not sidecar_path.exists():
            raise SystemExit(f"error: {verilog} or its sidecar is missing; run 'make verilog' first")
    else:
        verilog, sidecar_path = export_design(design, verilog_dir)
    return verilog, json.loads(sidecar_path.read_text())


def run_model_sim(args: argparse.Namespace) -> int:
    """The model run and its reports; 0 when every job passed."""
    from .model_report import summary_line as model_summary
    from .model_report import write_model_report
    from .model_sim import ModelOptions, parse_array, run_model

    started = time.perf_counter()
    try:
        rows, cols = parse_array(args.array)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = ModelOptions(
        images=args.images,
        attn=args.attn,
        gelu=args.gelu,
        params=args.params,
        rows=rows,
        cols=cols,
        seed=args.seed,
        waves=args.waves,
        only=args.ops,
        corrupt=args.corrupt,
        throttle=args.throttle,
    )
    try:
        run = run_model(options, args.build)
    except ValueError as error:  # e.g. --corrupt naming no simulated operator, a bad --params file
        print(f"error: {error}", file=sys.stderr)
        return 2
    document = write_model_report(run, args.build / "reports", time.perf_counter() - started)
    print(model_summary(document))
    print(
        f"reports: {args.build / 'reports' / 'model_sim.md'} (+ .json, .html); "
        f"{document['summary']['wall_seconds']} s"
    )
    return 0 if document["summary"]["verdict"] == "pass" else 1


def run_unit_plans(args: argparse.Namespace, version: str) -> int:
    """Every selected design's verification plan and ``bitexact.{json,md}``; 0 when all passed."""
    started = time.perf_counter()
    designs = select(all_designs(), args.designs)
    verilog_dir, work_dir = args.build / "verilog", args.build / "sim-work"
    print(f"Quiver make sim: {len(designs)} designs on Verilator {version}, seed {args.seed}")

    prepared = [
        (design, *locate_verilog(design, verilog_dir, args.use_existing_verilog)) for design in designs
    ]

    def check(design: Design, verilog: pathlib.Path, sidecar: dict) -> list[Check]:
        plan = jobs_for(design, seed=args.seed, quick=args.quick)
        return run_harness(sidecar, verilog, plan, work_dir, waves=args.waves)

    # Two designs at a time: Verilator builds and simulations are single-threaded.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            (design, pool.submit(check, design, verilog, sidecar)) for design, verilog, sidecar in prepared
        ]
        checks: list[Check] = []
        errors: list[str] = []
        for design, future in futures:
            try:
                design_checks = future.result()
            except SimulationError as error:
                errors.append(f"{design.name}: {error}")
                print(f"  {design.name:28s} ERROR {str(error).splitlines()[0]}")
                continue
            checks += design_checks
            for result in design_checks:
                status = "ok " if result.passed else "BAD"
                print(
                    f"  {status} {result.job:44s} {result.vectors:>8,} vectors"
                    f" {result.mismatches:>6,} mismatches {result.cycles:>9,} cycles"
                    f" {result.wall_seconds:6.2f} s"
                )
    meta = {"seed": args.seed, "wall_seconds": round(time.perf_counter() - started, 2)}
    if errors:
        meta["errors"] = errors
    write_bitexact_report(checks, args.build / "reports", meta=meta)
    print(summary_line(checks) + (f"; {len(errors)} simulator errors" if errors else ""))
    print(f"reports: {args.build / 'reports' / 'bitexact.md'} (+ .json); {meta['wall_seconds']} s")
    return 0 if checks and all(check.passed for check in checks) and not errors else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        version = put_verilator_on_path()
    except ToolchainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Naming designs or reusing exported files is about the unit plans only.
    blocks_only = args.blocks or bool(args.designs) or args.use_existing_verilog
    statuses = []
    if not blocks_only:
        statuses.append(run_model_sim(args))
        if statuses[-1] == 2:
            return 2
    if not args.model:
        statuses.append(run_unit_plans(args, version))
    return max(statuses)


if __name__ == "__main__":
    sys.exit(main())
