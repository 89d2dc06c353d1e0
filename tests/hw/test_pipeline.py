"""The stall-everything pipeline keeps every value, in order, under any back-pressure."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from streamutil import assert_all_passed

from cosim.jobs import InStream, Job, OutStream, run_amaranth
from hw.pipeline import stall_pipeline


class PlusOneChain(wiring.Component):
    """Adds ``depth`` to each value through ``depth`` registered stages."""

    def __init__(self, depth):
        self.depth = depth
        super().__init__({"i": In(stream.Signature(unsigned(8))), "o": Out(stream.Signature(unsigned(8)))})

    def elaborate(self, platform):
        m = Module()
        enable = stall_pipeline(m, self.i, self.o, self.depth)
        stages = [Signal(8, name=f"stage{n}") for n in range(self.depth - 1)] + [self.o.payload]
        with m.If(enable):
            for previous, stage in zip([self.i.payload] + stages, stages):
                m.d.sync += stage.eq(previous + 1)
        return m


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize(("idle", "stall"), [(0.0, 0.0), (0.5, 0.0), (0.0, 0.6), (0.4, 0.4)])
def test_values_survive_stalls(depth, idle, stall):
    values = np.arange(200) % 200
    job = Job(
        "chain",
        [InStream("i", values, idle_probability=idle)],
        [OutStream("o", (values + depth) % 256, stall)],
    )
    checks = run_amaranth(PlusOneChain(depth), "chain", "test", {}, [job])
    assert_all_passed(checks)
    if idle == stall == 0.0:
        assert checks[0].cycles == len(values) + depth


def test_rejects_bad_depth():
    m = Module()
    with pytest.raises(ValueError, match="positive integer, not 0"):
        stall_pipeline(m, None, None, 0)
    m._MustUse__silence = True
