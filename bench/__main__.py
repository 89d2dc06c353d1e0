"""``make bench``: speed figures of one run, with ratios, to ``build/reports/bench.{json,md}``.

Usage::

    python -m bench                 # bitlog2_single_17, full sizes (a few minutes)
    python -m bench --quick         # bitlog2_half_16, small sizes (proves the bench runs)
    python -m bench --design bitlog2_half_17 --no-cpp

Figures are measured once each in this run, on a shared machine: read the ratios, not the third
digit. No figure is compared with a threshold; a simulator run with mismatches is marked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import sys
import time

import torch

from golden.fileio import write_atomic
from hw.export import export_design
from hw.registry import find_design

from . import calib_speed, golden_speed, sim_speed
from .figures import Figure, format_value

#: (design, Amaranth vectors, C++ loop cycles, golden elements, δ-search heads x tokens)
SIZES = {
    "full": ("bitlog2_single_17", 4000, 20_000_000, 4_000_000, (3, 197)),
    "quick": ("bitlog2_half_16", 300, 200_000, 100_000, (1, 64)),
}
#: The δ search's reference loop costs one pass per candidate (M - max D of them): a small-M scheme.
DELTA_SEARCH_SCHEME = "half_17"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Speed figures measured in one run.")
    parser.add_argument("--quick", action="store_true", help="small sizes, smallest design (for tests)")
    parser.add_argument("--design", help="registered design to simulate (default per size)")
    parser.add_argument("--no-cpp", action="store_true", help="skip the plain Verilator C++ loop")
    parser.add_argument("--build", type=pathlib.Path, default=pathlib.Path("build"), help="output folder")
    return parser.parse_args(argv)


def environment() -> dict:
    """Threads and load: the context every figure needs."""
    return {
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


#: (label, numerator key, denominator key): rates divide faster by slower; for times (δ search)
#: the seed's loop time is divided by the vectorized time, so every ratio reads "x times faster".
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("Verilator C++ loop vs Verilator + cocotb", "sim.cpp", "sim.cocotb"),
    ("Verilator + cocotb vs Amaranth simulator", "sim.cocotb", "sim.amaranth"),
    ("Verilator C++ loop vs Amaranth simulator", "sim.cpp", "sim.amaranth"),
    (
        "BitLog2 integer form vs the seed's reference form",
        "golden.bitlog2_integer",
        "golden.bitlog2_reference",
    ),
    (
        "BitLog2 delta search, vectorized vs the seed's loop",
        "calib.bitlog2_delta_seed_loop",
        "calib.bitlog2_delta_vectorized",
    ),
)


def ratios(figures: list[Figure]) -> list[dict]:
    """How many times faster, for each pair of :data:`RATIOS` measured in this run."""
    values = {figure.key: figure.value for figure in figures if figure.value}
    return [
        {"ratio": label, "value": values[numerator] / values[denominator]}
        for label, numerator, denominator in RATIOS
        if numerator in values and denominator in values
    ]


def write_report(
    figures: list[Figure], found_ratios: list[dict], meta: dict, reports: pathlib.Path
) -> pathlib.Path:
    """Write ``bench.json`` and ``bench.md`` atomically; return the Markdown path."""
    document = {"meta": meta, "figures": [dataclasses.asdict(f) for f in figures], "ratios": found_ratios}
    write_atomic(reports / "bench.json", json.dumps(document, indent=1) + "\n")
    context = ", ".join(f"{key} {value}" for key, value in meta["environment"].items())
    lines = ["# Speed figures (one run of `python -m bench`)", "", f"Context: {context}.", ""]
    lines += ["| section | what | value | unit | note |", "|---|---|---|---|---|"]
    for f in figures:
        shown = format_value(f.value) if f.value is not None else "skipped"
        lines.append(f"| {f.section} | {f.name} | {shown} | {f.unit} | {f.note} |")
    lines += ["", "| ratio | times faster |", "|---|---|"]
    lines += [f"| {r['ratio']} | {format_value(r['value'])} |" for r in found_ratios]
    write_atomic(reports / "bench.md", "\n".join(lines) + "\n")
    return reports / "bench.md"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    default_design, vectors, cpp_cycles, elements, (heads, tokens) = SIZES["quick" if args.quick else "full"]
    try:
        design = find_design(args.design or default_design)
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    env = environment()
    print(
        f"Quiver make bench: {design.name}, torch threads {env['torch_threads']}, "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, {env['cpu_count']} CPUs, load {env['load_average_1min']}"
    )
    work = args.build / "bench"
    verilog, sidecar_path = export_design(design, work / "verilog")
    sidecar = json.loads(sidecar_path.read_text())

    measurements = [
        lambda: [sim_speed.verilator_cocotb(design, sidecar, verilog, work / "sim-work")],
        lambda: [sim_speed.amaranth_simulator(design, sidecar, vectors)],
        lambda: (
            []
            if args.no_cpp
            else [sim_speed.verilator_cpp(design, sidecar, verilog, work / "cpp", cpp_cycles)]
        ),
        lambda: golden_speed.bitlog2_throughput(
            getattr(design.params, "scheme", DELTA_SEARCH_SCHEME), elements
        ),
        lambda: [golden_speed.vit_forward(images=8 if args.quick else 64)],
        lambda: calib_speed.bitlog2_delta_search(DELTA_SEARCH_SCHEME, heads, tokens),
        lambda: calib_speed.method_calibrations(args.quick),
    ]
    figures: list[Figure] = []
    section = None
    for measure in measurements:
        for figure in measure():
            if figure.section != section:
                section = figure.section
                print(f"{section}:")
            print(figure.line(), flush=True)
            figures.append(figure)
    found = ratios(figures)
    print("ratios:")
    for ratio in found:
        print(f"  {ratio['ratio']:60s} {format_value(ratio['value']):>8s}x faster")
    meta = {
        "design": design.name,
        "quick": args.quick,
        "environment": env,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = write_report(figures, found, meta, args.build / "reports")
    print(f"reports: {markdown} (+ .json); {meta['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
