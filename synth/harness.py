"""A timing harness: the exported block between registers, on four pins instead of all its ports.

Place and route of a bare block times only its register-to-register paths: logic between an
input pin and a register (all of BitLog2's leading-one detector, for instance) is reported as an
unconstrained pin path and left out of the maximum frequency. The harness puts the block, as a
black-box instance of its exported Verilog, between registers:

* every input port bit (and the block's reset) comes from a flip-flop of a shift chain fed by
  one pin ``serial_in``;
* every output port bit is captured in a flip-flop, copied into a second shift chain on ``load``
  and shifted out on ``serial_out``.

So every path through the block starts and ends at a flip-flop, the block's logic cannot be
optimized away (every output is observable), and the pin count stays at four (clock,
``serial_in``, ``load``, ``serial_out``) whatever the block's width, which any package fits. The
harness's own cells are not counted: area figures come from the bare block (:mod:`synth.flow`
maps the harness around the block's already-mapped netlist).
"""

from __future__ import annotations

import re

from amaranth import Cat, ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.back import verilog

__all__ = ["sidecar_ports", "module_header_ports", "harness_verilog"]


def sidecar_ports(sidecar_ports_json: dict) -> list[tuple[str, str, int]]:
    """``(name, "in"/"out", width)`` of every port in a sidecar's ``ports`` tree, in order."""
    ports: list[tuple[str, str, int]] = []

    def walk(node: dict) -> None:
        for member in node.get("members", {}).values():
            if member.get("type") == "port":
                ports.append((member["name"], member["dir"], int(member["width"])))
            else:
                walk(member)

    walk(sidecar_ports_json["interface"])
    return ports


def module_header_ports(verilog_text: str, top: str) -> list[str]:
    """The port names in the header ``module top(a, b, ...);`` of the exported Verilog."""
    match = re.search(rf"module\s+{re.escape(top)}\s*\(([^)]*)\)", verilog_text)
    if match is None:
        raise ValueError(f"No module header for {top!r} in the Verilog text")
    return [name.strip() for name in match.group(1).split(",") if name.strip()]


class _TimingHarness(Elaboratable):
    def __init__(self, top: str, ports: list[tuple[str, str, int]], clock: str | None, reset: str | None):
        self._top = top
        self._ports = ports
        self._clock = clock
        self._reset = reset
        # No reset for the harness's own registers: fewer pins and no logic that is not the block's.
        self._domain = ClockDomain("sync", reset_less=True)
        self.clock = self._domain.clk
        self.serial_in = Signal()
        self.load = Signal()
        self.serial_out = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = self._domain
        inputs = {
            name: Signal(width, name=f"drive_{name}") for name, flow, width in self._ports if flow == "in"
        }
        outputs = {
            name: Signal(width, name=f"from_{name}") for name, flow, width in self._ports if flow == "out"
        }
        block_reset = Signal(name="drive_reset")
        driven = Cat(*inputs.values(), block_reset) if self._reset else Cat(*inputs.values())

        chain_in = Signal(len(driven), name="chain_in")
        m.d.sync += chain_in.eq(Cat(self.serial_in, chain_in[:-1]))
        m.d.comb += driven.eq(chain_in)

        observed = Cat(*outputs.values())
        captured = Signal(len(observed), name="captured")
        chain_out = Signal(len(observed), name="chain_out")
        m.d.sync += captured.eq(observed)
        with m.If(self.load):
            m.d.sync += chain_out.eq(captured)
        with m.Else():
            m.d.sync += chain_out.eq(chain_out >> 1)
        m.d.comb += self.serial_out.eq(chain_out[0])

        connections = {f"i_{name}": signal for name, signal in inputs.items()}
        connections |= {f"o_{name}": signal for name, signal in outputs.items()}
        if self._clock:
            connections[f"i_{self._clock}"] = self.clock
        if self._reset:
            connections[f"i_{self._reset}"] = block_reset
        m.submodules.block = Instance(self._top, **connections)
        return m


def harness_verilog(top: str, verilog_text: str, ports_json: dict) -> tuple[str, str]:
    """Verilog of the timing harness around block ``top``; returns ``(harness name, text)``.

    Parameters
    ----------
    top : str
        The block's module name (its exported Verilog is read beside the harness).
    verilog_text : str
        The block's exported Verilog, from which the clock and reset ports are read.
    ports_json : dict
        The sidecar's ``ports`` (``component.metadata.as_json()``).
    """
    header = module_header_ports(verilog_text, top)
    clock = "clk" if "clk" in header else None
    reset = "rst" if "rst" in header else None
    harness = _TimingHarness(top, sidecar_ports(ports_json), clock, reset)
    name = f"harness_{top}"
    text = verilog.convert(
        harness,
        name=name,
        ports=[harness.clock, harness.serial_in, harness.load, harness.serial_out],
        emit_src=False,
    )
    return name, text
