"""A stall-everything pipeline controller for stream blocks.

Stream rules (``amaranth.lib.stream``) that every Quiver block follows:

1. a transfer happens on a cycle where both ``valid`` and ``ready`` are high;
2. a producer holds ``valid`` and ``payload`` steady until the transfer;
3. ``valid`` never depends combinationally on ``ready``;
4. a consumer may look at ``valid`` combinationally before raising ``ready``.

:func:`stall_pipeline` implements them for a fixed-depth pipeline: all stages advance together
when the output register is empty or being read (``~o.valid | o.ready``); ``i.ready`` is that
enable, and ``o.valid`` is the last stage's valid bit (a register, so rule 3 holds).
Throughput is one transfer per cycle without back-pressure; latency equals the depth.
"""

from __future__ import annotations

from amaranth import Module, Signal


def reject(component, error: Exception) -> None:
    """Raise ``error`` from a component constructor without Amaranth's unused-elaboratable warning
    (the half-built object is garbage, not a forgotten design)."""
    component._MustUse__silence = True
    raise error


def stall_pipeline(m: Module, i_stream, o_stream, depth: int, *, domain: str = "sync") -> Signal:
    """Drive ``i.ready`` and ``o.valid`` of a ``depth``-stage pipeline; return the stage enable.

    The caller registers its payload stages under ``with m.If(enable):`` so that data moves
    exactly when the valid bits do. ``depth`` must be at least 1 (the output register).
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"Pipeline depth must be a positive integer, not {depth!r}")
    enable = Signal(name="stage_enable")
    valid = [Signal(name=f"stage{n}_valid") for n in range(depth)]
    m.d.comb += [
        enable.eq(~o_stream.valid | o_stream.ready),
        i_stream.ready.eq(enable),
        o_stream.valid.eq(valid[-1]),
    ]
    with m.If(enable):
        m.d[domain] += valid[0].eq(i_stream.valid)
        for previous, current in zip(valid, valid[1:]):
            m.d[domain] += current.eq(previous)
    return enable
