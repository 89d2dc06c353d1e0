"""ruff (lint and format) and Verilator's lint of every exported design, with the one waiver list."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from hw.export import export_design
from hw.registry import all_designs

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.verilator
@pytest.mark.parametrize("design", all_designs(), ids=lambda design: design.name)
def test_verilator_lint_with_only_the_documented_waivers(design, tmp_path):
    verilog, _ = export_design(design, tmp_path)
    waivers = REPO / "cosim" / "verilator_waivers.vlt"
    command = ["verilator", "--lint-only", "-Wall", str(waivers), str(verilog), "--top-module", design.name]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
