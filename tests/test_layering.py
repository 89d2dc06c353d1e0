"""The dependency arrows: hw never loads torch; golden never loads amaranth or cocotb."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in output.split()}


def test_hw_imports_without_torch():
    modules = loaded_after("import hw.registry, hw.export; hw.registry.all_designs()")
    assert "torch" not in modules and "cocotb" not in modules


def test_golden_imports_without_amaranth_or_cocotb():
    modules = loaded_after("import golden, golden.params, golden.bitlog2")
    assert "amaranth" not in modules and "cocotb" not in modules


def test_golden_params_are_standard_library_only():
    modules = loaded_after("import golden.params")
    assert not modules & {"torch", "numpy", "amaranth", "cocotb"}
