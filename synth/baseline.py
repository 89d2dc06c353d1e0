"""The committed synthesis baseline (``synth/baseline.json``) and the check against it.

The baseline holds LUT and flip-flop counts per design and FPGA target, and the tolerance: a
design fails when its LUT count exceeds ``baseline + max(ceil(relative * baseline), absolute)``
(10 % or 8 LUTs, whichever is larger, as committed). Flip-flop growth is reported, not failed.
Designs without an entry are "new", not failures; shrinking is reported so the baseline can be
tightened with ``python -m synth --update-baseline``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib

from golden.fileio import write_atomic

__all__ = [
    "BASELINE_PATH",
    "BASELINE_TARGETS",
    "Finding",
    "allowed_luts",
    "check",
    "load",
    "updated",
    "write",
]

BASELINE_PATH = pathlib.Path(__file__).with_name("baseline.json")
#: Targets whose LUT counts are baselined (the generic gate count is informational).
BASELINE_TARGETS: tuple[str, ...] = ("ice40", "ecp5")
DEFAULT_TOLERANCE = {"relative": 0.10, "absolute_luts": 8}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One design on one target compared with the baseline.

    ``status`` is ``ok``, ``grew`` (a failure), ``shrank``, ``new`` (no baseline entry) or ``error``
    (no counts: the tool failed).
    """

    design: str
    target: str
    status: str
    luts: int | None
    baseline_luts: int | None = None
    allowed_luts: int | None = None
    ffs: int | None = None
    baseline_ffs: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("grew", "error")

    def describe(self) -> str:
        if self.status == "new":
            return (
                f"new      {self.design} {self.target}: {self.luts} LUTs, {self.ffs} FFs (no baseline entry)"
            )
        if self.status == "error":
            return f"ERROR    {self.design} {self.target}: no counts (synthesis failed)"
        change = f"LUTs {self.baseline_luts} -> {self.luts}, FFs {self.baseline_ffs} -> {self.ffs}"
        if self.status == "grew":
            return (
                f"GREW     {self.design} {self.target}: {change}; more than the allowed {self.allowed_luts}"
            )
        if self.status == "shrank":
            return f"shrank   {self.design} {self.target}: {change}; run --update-baseline to lock it in"
        return f"ok       {self.design} {self.target}: {change} (allowed up to {self.allowed_luts})"


def load(path: pathlib.Path = BASELINE_PATH) -> dict:
    """The baseline document, or an empty one (default tolerance) when the file does not exist."""
    path = pathlib.Path(path)
    if not path.exists():
        return {"tolerance": dict(DEFAULT_TOLERANCE), "designs": {}}
    return json.loads(path.read_text())


def allowed_luts(baseline_luts: int, tolerance: dict) -> int:
    """The largest LUT count that still passes: baseline plus the larger of the two margins."""
    margin = max(math.ceil(tolerance["relative"] * baseline_luts), tolerance["absolute_luts"])
    return baseline_luts + margin


def check(results: list[dict], baseline: dict) -> list[Finding]:
    """Compare each result's LUTs on :data:`BASELINE_TARGETS` with ``baseline``."""
    tolerance = baseline.get("tolerance", DEFAULT_TOLERANCE)
    findings = []
    for result in results:
        entry = baseline.get("designs", {}).get(result["name"], {})
        for target in BASELINE_TARGETS:
            counts = result["targets"].get(target)
            if counts is None:
                continue
            if "error" in counts:
                findings.append(Finding(result["name"], target, "error", None))
                continue
            luts, ffs = counts["lut"], counts["ff"]
            if target not in entry:
                findings.append(Finding(result["name"], target, "new", luts, ffs=ffs))
                continue
            base_luts, base_ffs = entry[target]["lut"], entry[target].get("ff")
            limit = allowed_luts(base_luts, tolerance)
            status = "grew" if luts > limit else "shrank" if luts < base_luts else "ok"
            findings.append(Finding(result["name"], target, status, luts, base_luts, limit, ffs, base_ffs))
    return findings


def updated(results: list[dict], baseline: dict, measured_with: dict[str, str] | None = None) -> dict:
    """``baseline`` with the LUT/FF counts of ``results`` merged in (other entries kept).

    ``measured_with`` (tool versions) is recorded: counts move when Yosys changes.
    """
    designs = {name: dict(entry) for name, entry in baseline.get("designs", {}).items()}
    for result in results:
        for target in BASELINE_TARGETS:
            counts = result["targets"].get(target)
            if counts is not None and "error" not in counts:
                designs.setdefault(result["name"], {})[target] = {"lut": counts["lut"], "ff": counts["ff"]}
    return {
        "about": (
            "LUT/FF counts of each block's bare synthesis (Yosys synth_ice40 / synth_ecp5, see "
            "synth/flow.py). A block fails `python -m synth --check-baseline` when its LUTs exceed "
            "baseline + max(ceil(relative * baseline), absolute_luts). Regenerate with "
            "`python -m synth --update-baseline`."
        ),
        "measured_with": measured_with or baseline.get("measured_with", {}),
        "tolerance": baseline.get("tolerance", dict(DEFAULT_TOLERANCE)),
        "designs": dict(sorted(designs.items())),
    }


def write(document: dict, path: pathlib.Path = BASELINE_PATH) -> None:
    """Write the baseline atomically, keys in a stable order."""
    write_atomic(pathlib.Path(path), json.dumps(document, indent=2) + "\n")
