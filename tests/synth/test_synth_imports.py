"""synth/ sits on hw/ and golden.params only: importing and listing its work loads no torch."""

from __future__ import annotations

import subprocess
import sys


def test_synth_imports_without_torch_or_cocotb():
    code = (
        "import sys, synth.__main__, synth.flow, synth.sweep, synth.report, synth.baseline; "
        "from hw.registry import all_designs; synth.sweep.sweep_designs(all_designs()); "
        "print(' '.join(sorted(sys.modules)))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = {name.split(".")[0] for name in output.split()}
    assert "torch" not in modules and "cocotb" not in modules
