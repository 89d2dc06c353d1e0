"""A simulation harness in RTL: memories feed a block's input streams and record its outputs.

Driving a stream from Python costs a Python wake-up per clock cycle (~15 µs on Verilator under
cocotb). For whole layers the bench instead *preloads* the input words into harness memories
through VPI (about 1 µs a word, no clock), pulses ``start``, and awaits ``done``: the clock then
runs at Verilator's own speed. The harness keeps the stream discipline honest while doing so:

* each input stream is offered from its memory in order, with pseudo-random idle cycles (a 32-bit
  Galois LFSR per stream: idle when its low byte is below ``<port>_idle``), and holds ``valid``
  and ``payload`` until the transfer (stream rules 1 and 2; see :mod:`hw.pipeline`);
* input streams run in phases: phase ``p`` starts when every stream of an earlier phase is done
  (configuration before data, like :class:`cosim.jobs.InStream`);
* each output stream is accepted with pseudo-random back-pressure (``<port>_stall``) and every
  word is written to its memory; words beyond ``<port>_expected`` are counted in ``<port>_extra``;
* ``done`` rises ``drain`` cycles after every input is sent and every expected output arrived, or
  when nothing moved for ``timeout`` cycles (then ``timed_out`` is set); ``cycles`` counts from
  ``start`` to the last expected output;
* ``reset_after`` (non-zero) resets the block in the middle of the stream, once that many outputs
  have arrived: the block's sync domain is held in reset for two cycles (``ResetInserter``), then
  the whole job (configuration included) runs again from the start and only that run counts.

The harness instantiates the block's *exported* Verilog module by name (an ``Instance`` built
from the sidecar's port list), so the file that ``make verilog`` wrote is exactly what runs; the
two files are compiled together. This is verification infrastructure, not a design: it is
exported as ``<design>__harness`` and never synthesized.
"""

from __future__ import annotations

import dataclasses
import types

from amaranth import ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["HarnessStream", "StreamHarness", "LFSR_TAPS"]

#: Galois LFSR taps of x^32 + x^22 + x^2 + x + 1 (maximal length).
LFSR_TAPS = 0x80200003


@dataclasses.dataclass(frozen=True)
class HarnessStream:
    """One stream of the wrapped block: its port name, memory depth and (inputs) phase."""

    port: str
    depth: int
    phase: int = 1


def _lfsr_next(state: Signal):
    return (state >> 1) ^ Mux(state[0], LFSR_TAPS, 0)


class _Stream:
    """The three signals of one stream port of the instantiated block."""

    def __init__(self, name: str, width: int):
        self.payload = Signal(width, name=f"dut_{name}__payload")
        self.valid = Signal(name=f"dut_{name}__valid")
        self.ready = Signal(name=f"dut_{name}__ready")


def _ports(sidecar_ports: dict) -> list[dict]:
    found = []

    def walk(node: dict) -> None:
        for member in node.get("members", {}).values():
            if member.get("type") == "port":
                found.append(member)
            else:
                walk(member)

    walk(sidecar_ports["interface"])
    return found


class StreamHarness(wiring.Component):
    """Wraps an exported block: input memories ``in_<port>``, output memories ``out_<port>``.

    Parameters
    ----------
    sidecar : dict
        The block's export sidecar (:func:`hw.export.export_design`): its module name, ports
        and stream payload layouts.
    inputs, outputs : list of HarnessStream
        Memory depth per stream (the largest job's word count).
    counter_width : int
        Width of the count, cycle and timeout registers.
    """

    def __init__(
        self,
        sidecar: dict,
        inputs: list[HarnessStream],
        outputs: list[HarnessStream],
        counter_width: int = 32,
    ):
        self._sidecar = sidecar
        self._inputs = list(inputs)
        self._outputs = list(outputs)
        members = {
            "start": In(1),
            "done": Out(1),
            "timed_out": Out(1),
            "cycles": Out(counter_width),
            "timeout": In(counter_width),
            "drain": In(8),
            "reset_after": In(counter_width),
            "resets": Out(8),
        }
        for stream in self._inputs:
            members[f"{stream.port}_count"] = In(counter_width)
            members[f"{stream.port}_idle"] = In(8)
            members[f"{stream.port}_seed"] = In(32)
        for stream in self._outputs:
            members[f"{stream.port}_expected"] = In(counter_width)
            members[f"{stream.port}_received"] = Out(counter_width)
            members[f"{stream.port}_extra"] = Out(counter_width)
            members[f"{stream.port}_stall"] = In(8)
            members[f"{stream.port}_seed"] = In(32)
        super().__init__(members)

    @property
    def memories(self) -> dict[str, str]:
        """Verilog name of each stream's memory, by port."""
        names = {stream.port: f"in_{stream.port}" for stream in self._inputs}
        names.update({stream.port: f"out_{stream.port}" for stream in self._outputs})
        return names

    def elaborate(self, platform) -> Module:
        m = Module()
        dut_reset = Signal()
        streams = {
            name: _Stream(name, stream["payload"]["width"])
            for name, stream in self._sidecar["streams"].items()
        }
        # The block's own reset also pulses for a mid-stream reset; the harness keeps running.
        connections = {"i_clk": ClockSignal("sync"), "i_rst": ResetSignal("sync") | dut_reset}
        for port in _ports(self._sidecar["ports"]):
            stream_name, _, member = port["name"].rpartition("__")
            if stream_name not in streams:
                # A port outside the streams (e.g. a sticky status flag): inputs are tied low,
                # outputs go to an unread wire; the jobs check streams only.
                if port["dir"] == "in":
                    connections[f"i_{port['name']}"] = Const(0, port["width"])
                else:
                    connections[f"o_{port['name']}"] = Signal(port["width"], name=f"dut_{port['name']}")
                continue
            signal = getattr(streams[stream_name], member)
            connections[f"{'i' if port['dir'] == 'in' else 'o'}_{port['name']}"] = signal
        m.submodules.dut = Instance(self._sidecar["name"], **connections)
        dut = types.SimpleNamespace(**streams)
        running = Signal()
        finished = Signal()
        moved = Signal()
        idle_cycles = Signal.like(self.cycles)
        drain_left = Signal(8)
        armed = Signal()  # a mid-stream reset is still to come
        reset_left = Signal(2)
        # Counters restart at start and when a mid-stream reset ends; streams move only when active.
        restart = Signal()
        active = Signal()
        m.d.comb += [
            dut_reset.eq(reset_left != 0),
            restart.eq((self.start & ~running) | (reset_left == 1)),
            active.eq(running & ~dut_reset),
        ]

        phases = sorted({stream.phase for stream in self._inputs})
        sent_all = {}
        phase_done = {phase: Signal(name=f"phase{phase}_done") for phase in phases}
        for stream in self._inputs:
            port = getattr(dut, stream.port)
            width = len(port.payload)
            m.submodules[f"in_{stream.port}"] = words = memory.Memory(
                shape=unsigned(width), depth=stream.depth, init=[]
            )
            read = words.read_port(domain="comb")
            index = Signal.like(self.cycles, name=f"{stream.port}_index")
            offering = Signal(name=f"{stream.port}_offering")
            lfsr = Signal(32, name=f"{stream.port}_lfsr")
            earlier = [phase_done[p] for p in phases if p < stream.phase]
            allowed = active & (Const(1) if not earlier else _all(earlier))
            done = Signal(name=f"{stream.port}_sent_all")
            new_offer = Signal(name=f"{stream.port}_new_offer")
            m.d.comb += [
                done.eq(index >= getattr(self, f"{stream.port}_count")),
                # valid comes from registered state only (rule 3), never from ready.
                new_offer.eq(
                    ~offering & allowed & ~done & (lfsr[:8] >= getattr(self, f"{stream.port}_idle"))
                ),
                read.addr.eq(index),
                port.payload.eq(read.data),
                port.valid.eq((offering & active) | new_offer),
            ]
            sent_all[stream.port] = done
            with m.If(self.start & ~running):
                m.d.sync += lfsr.eq(getattr(self, f"{stream.port}_seed") | 1)
            with m.Elif(running):
                m.d.sync += lfsr.eq(_lfsr_next(lfsr))
            with m.If(restart):
                m.d.sync += [index.eq(0), offering.eq(0)]
            with m.Elif(active):
                with m.If(port.valid & port.ready):
                    m.d.sync += [index.eq(index + 1), offering.eq(0)]
                # Rule 2: an offer not taken stands until it is.
                with m.Elif(new_offer):
                    m.d.sync += offering.eq(1)
        for phase in phases:
            m.d.comb += phase_done[phase].eq(
                _all([sent_all[s.port] for s in self._inputs if s.phase == phase])
            )

        received_all = []
        received_total = Const(0, len(self.cycles))
        for stream in self._outputs:
            port = getattr(dut, stream.port)
            width = len(port.payload)
            m.submodules[f"out_{stream.port}"] = words = memory.Memory(
                shape=unsigned(width), depth=stream.depth, init=[]
            )
            write = words.write_port()
            received = getattr(self, f"{stream.port}_received")
            extra = getattr(self, f"{stream.port}_extra")
            expected = getattr(self, f"{stream.port}_expected")
            lfsr = Signal(32, name=f"{stream.port}_lfsr")
            accepting = Signal(name=f"{stream.port}_accepting")
            m.d.comb += [
                accepting.eq(active & (lfsr[:8] >= getattr(self, f"{stream.port}_stall"))),
                port.ready.eq(accepting),
                write.addr.eq(received),
                write.data.eq(port.payload),
                write.en.eq(accepting & port.valid & (received < expected)),
            ]
            with m.If(self.start & ~running):
                m.d.sync += lfsr.eq(getattr(self, f"{stream.port}_seed") | 1)
            with m.Elif(running):
                m.d.sync += lfsr.eq(_lfsr_next(lfsr))
            with m.If(restart):
                m.d.sync += [received.eq(0), extra.eq(0)]
            with m.Elif(accepting & port.valid):
                with m.If(received < expected):
                    m.d.sync += received.eq(received + 1)
                with m.Else():
                    m.d.sync += extra.eq(extra + 1)
            received_all.append(received >= expected)
            received_total = received_total + received

        inputs_moved = [getattr(dut, s.port).valid & getattr(dut, s.port).ready for s in self._inputs]
        outputs_moved = [getattr(dut, s.port).valid & getattr(dut, s.port).ready for s in self._outputs]
        m.d.comb += [
            moved.eq(_any(inputs_moved + outputs_moved)),
            finished.eq(_all(list(sent_all.values()) + received_all)),
        ]
        all_received = _all(received_all)
        with m.If(restart):
            m.d.sync += [self.cycles.eq(0), idle_cycles.eq(0), drain_left.eq(self.drain)]
        with m.If(self.start & ~running):
            m.d.sync += [
                running.eq(1),
                armed.eq(self.reset_after != 0),
                self.resets.eq(0),
                self.done.eq(0),
                self.timed_out.eq(0),
            ]
        with m.Elif(dut_reset):
            m.d.sync += reset_left.eq(reset_left - 1)
        with m.Elif(running):
            with m.If(~all_received):
                m.d.sync += self.cycles.eq(self.cycles + 1)
            m.d.sync += idle_cycles.eq(Mux(moved, 0, idle_cycles + 1))
            with m.If(armed & (received_total >= self.reset_after)):
                m.d.sync += [armed.eq(0), reset_left.eq(2), self.resets.eq(self.resets + 1)]
            with m.Elif(finished):
                with m.If(drain_left == 0):
                    m.d.sync += [running.eq(0), self.done.eq(1)]
                with m.Else():
                    m.d.sync += drain_left.eq(drain_left - 1)
            with m.Elif(idle_cycles >= self.timeout):
                m.d.sync += [running.eq(0), self.done.eq(1), self.timed_out.eq(1)]
        return m


def _all(signals):
    result = Const(1)
    for signal in signals:
        result = result & signal
    return result


def _any(signals):
    result = Const(0)
    for signal in signals:
        result = result | signal
    return result
