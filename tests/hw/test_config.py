"""ConfigMap: addresses, memory images, and registers written through the cfg stream."""

from __future__ import annotations

import pytest
from amaranth import ClockDomain, Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.config import ConfigField, ConfigMap

MAP = ConfigMap([ConfigField("zero_point", signed(9)), ConfigField("table", unsigned(12), depth=3)])


def test_addresses_and_widths():
    assert [MAP.base("zero_point"), MAP.base("table")] == [0, 1]
    assert (MAP.addr_width, MAP.data_width) == (2, 12)


def test_image_is_twos_complement_and_checked():
    assert MAP.image({"zero_point": -3, "table": [1, 2, 4095]}) == [(0, 509), (1, 1), (2, 2), (3, 4095)]
    with pytest.raises(ValueError, match=r"'table'\[2\] = 4096 does not fit"):
        MAP.image({"zero_point": 0, "table": [1, 2, 4096]})
    with pytest.raises(ValueError, match="needs 3 entries, got 2"):
        MAP.image({"zero_point": 0, "table": [1, 2]})
    with pytest.raises(ValueError, match=r"missing \['table'\]"):
        MAP.image({"zero_point": 0})


class Holder(wiring.Component):
    def __init__(self):
        super().__init__({"cfg": In(MAP.signature()), "zp": Out(signed(9)), "t2": Out(unsigned(12))})

    def elaborate(self, platform):
        m = Module()
        registers = MAP.elaborate(m, self.cfg)
        m.d.comb += [self.zp.eq(registers["zero_point"]), self.t2.eq(registers["table"][2])]
        return m


def test_registers_follow_the_image():
    dut = Holder()
    seen = {}

    async def bench(ctx):
        for address, word in MAP.image({"zero_point": -100, "table": [7, 8, 999]}):
            ctx.set(dut.cfg.valid, 1)
            ctx.set(dut.cfg.payload, {"addr": address, "data": word})
            assert ctx.get(dut.cfg.ready)
            await ctx.tick()
        ctx.set(dut.cfg.valid, 0)
        seen["zp"], seen["t2"] = ctx.get(dut.zp), ctx.get(dut.t2)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert seen == {"zp": -100, "t2": 999}


def test_bad_fields_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        ConfigMap([ConfigField("a", 1), ConfigField("a", 2)])
    with pytest.raises(ValueError, match="depth must be a positive integer, not 0"):
        ConfigField("a", 1, depth=0)


class Partial(wiring.Component):
    """Registers for ``zero_point`` only (reset-less); ``table`` writes exposed as (hit, index)."""

    def __init__(self):
        super().__init__(
            {"cfg": In(MAP.signature()), "zp": Out(signed(9)), "hit": Out(1), "index": Out(unsigned(2))}
        )

    def elaborate(self, platform):
        m = Module()
        registers = MAP.elaborate(m, self.cfg, fields=["zero_point"], reset_less=True)
        hit, index = MAP.write_target(self.cfg, "table")
        m.d.comb += [self.zp.eq(registers["zero_point"]), self.hit.eq(hit), self.index.eq(index)]
        assert set(registers) == {"zero_point"}
        return m


def test_partial_reset_less_registers_and_table_write_targets():
    dut = Partial()
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = dut
    seen = []

    async def bench(ctx):
        for address, word in MAP.image({"zero_point": -7, "table": [1, 2, 3]}):
            ctx.set(dut.cfg.valid, 1)
            ctx.set(dut.cfg.payload, {"addr": address, "data": word})
            hit = ctx.get(dut.hit)
            seen.append((hit, ctx.get(dut.index) if hit else None))  # the index matters on a hit only
            await ctx.tick()
        ctx.set(dut.cfg.valid, 0)
        ctx.set(domain.rst, 1)
        await ctx.posedge(domain.clk)
        ctx.set(domain.rst, 0)
        await ctx.tick()
        seen.append(ctx.get(dut.zp))

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert seen == [(0, None), (1, 0), (1, 1), (1, 2), -7]  # the register survived the reset
    with pytest.raises(ValueError, match="no field 'nope'"):
        MAP.write_target(None, "nope")
