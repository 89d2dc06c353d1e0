"""Requantizer in Amaranth's simulator against golden.intops.requantize."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator
from streamutil import assert_all_passed

from cosim.checks.requant import expected_codes, jobs, random_params, row_stimulus, rows_job
from cosim.jobs import run_amaranth
from golden.params import RequantParams
from hw.registry import Design, all_designs, find_design
from hw.requant import Requantizer

DESIGNS = [design.name for design in all_designs() if design.block == "requant"]


def run(requantizer: Requantizer, plan):
    return run_amaranth(requantizer, "requant", "requant", requantizer.params.to_dict(), plan)


def inspected(component):
    """A component built only to look at (``fits``, images): not a forgotten design."""
    component._MustUse__silence = True
    return component


def widths(**overrides) -> RequantParams:
    fields = {"multiplier": (40000,), "shift": (20,), "out_bits": 8, "out_signed": False, **overrides}
    return RequantParams(**fields)


@pytest.mark.parametrize("name", DESIGNS)
def test_every_parameter_set_matches_golden_with_idle_and_backpressure(name):
    design = find_design(name)
    plan = jobs(design, seed=5, quick=True)
    assert {"reset-midstream", "config-survives-reset"} <= {job.name.rsplit("/", 1)[1] for job in plan}
    assert_all_passed(run(design.build(), plan))


@pytest.mark.parametrize(
    "like, lanes, channels",
    [
        (widths(out_bits=4, out_signed=True, out_zero_point=-2), 1, 1),  # per tensor: one job per shift
        (widths(acc_bits=47, mult_bits=16), 4, 16),  # the widest product, 63 bits
        (widths(acc_bits=8, mult_bits=4, multiplier=(9,), out_bits=2, out_signed=True), 2, 6),
        (widths(acc_bits=12, mult_bits=31, multiplier=(1 << 30,), out_bits=16), 16, 32),
    ],
    ids=["per-tensor-l1", "acc47-l4", "acc8-l2-6ch", "mult31-l16"],
)
def test_other_structures(like, lanes, channels):
    def build():
        return Requantizer(like, lanes=lanes, channels=channels)

    plan = jobs(Design("requant_other", "requant", like, build), seed=3, quick=True)
    assert_all_passed(run(build(), plan))


def test_one_row_per_cycle_and_latency():
    rng = np.random.default_rng(7)
    params = random_params(rng, widths(), list(range(40, 48)), out_zero_point=128)
    requantizer = Requantizer(params, lanes=8)
    acc, channel = row_stimulus(rng, params, 8, 100, channel_limit=8)
    load = rows_job("load", requantizer, params, acc[:2], channel[:2], seed=1)
    stream = rows_job("stream", requantizer, params, acc, channel, seed=1, load=False)
    for job in (load, stream):
        job.inputs[-1].idle_probability = 0.0
        job.outputs[0].stall_probability = 0.0
    checks = run(requantizer, [load, stream])
    assert_all_passed(checks)
    assert requantizer.latency == 4
    assert checks[1].cycles == len(acc) + requantizer.latency


def test_one_corrupted_table_word_is_caught():
    params = widths(multiplier=(40000,) * 8, shift=(16,) * 8, bias=(3,) * 8)
    requantizer = Requantizer(params, lanes=4)
    image = requantizer.config_image(params)
    image[6] = (image[6][0], image[6][1] ^ (1 << 40))  # a multiplier bit of channel 6
    acc = np.full((8, 4), 200)
    channel = np.array([0, 4] * 4)
    job = rows_job("corrupted", requantizer, params, acc, channel, seed=2)
    job.inputs[0].values["data"] = np.array([word for _, word in image], dtype=object)
    [check] = run(requantizer, [job])
    assert check.mismatches == 4  # every row of channels 4..7
    assert check.first_mismatch["index"] == 1


def test_per_tensor_parameters_broadcast_and_ignore_the_channel():
    params = widths(multiplier=(50000,), shift=(18,), bias=(-5,), out_zero_point=7)
    requantizer = inspected(Requantizer(params, lanes=8, channels=64))
    image = requantizer.config_image(params)
    layout_bits = 32 + 16
    # Row 0 of every bank holds the one entry; the rest of the table is cleared.
    assert [address for address, _ in image] == list(range(66))
    assert all(word == ((-5) % (1 << 32)) | (50000 << 32) | (18 << layout_bits) for _, word in image[:8])
    assert all(word == 0 for _, word in image[8:64])
    assert image[-1] == (65, 1)  # broadcast
    expected = expected_codes(np.array([[1000] * 8]), np.array([13]), params)
    assert expected["code"].tolist() == [[min(255, ((995 * 50000 + (1 << 17)) >> 18) + 7)] * 8]


def test_fits_and_image_errors():
    requantizer = inspected(Requantizer(widths(multiplier=(1,) * 16, shift=(0,) * 16), lanes=8))
    assert requantizer.fits(widths(multiplier=(1,) * 8, shift=(0,) * 8))
    assert requantizer.fits(widths())
    assert not requantizer.fits(widths(multiplier=(1,) * 12, shift=(0,) * 12))  # not whole rows
    assert not requantizer.fits(widths(multiplier=(1,) * 24, shift=(0,) * 24))  # too many
    assert not requantizer.fits(widths(out_signed=True))
    with pytest.raises(ValueError, match="do not fit this circuit: 8 lanes, 16 table entries"):
        requantizer.config_image(widths(acc_bits=30))
    image = requantizer.config_image(widths(multiplier=(3,) * 8, shift=(1,) * 8))
    assert [word for _, word in image[8:16]] == [0] * 8  # unused entries are cleared


def test_rounding_form_equals_the_golden_half_up():
    rng = random.Random(5)
    for _ in range(20000):
        shift = rng.randrange(1, 63)
        product = rng.randrange(-(1 << 62), 1 << 62) >> rng.randrange(0, 62)
        assert ((product >> (shift - 1)) + 1) >> 1 == (product + ((1 << shift) >> 1)) >> shift


def test_channel_error_flags_misaligned_and_out_of_table_rows():
    params = widths(multiplier=(1,) * 12, shift=(0,) * 12)
    requantizer = Requantizer(params, lanes=4, channel_bits=5)
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = requantizer
    seen = []

    async def load(ctx, image):
        for address, word in image:
            ctx.set(requantizer.cfg.valid, 1)
            ctx.set(requantizer.cfg.payload.as_value(), address | (word << requantizer.config_map.addr_width))
            await ctx.tick()
        ctx.set(requantizer.cfg.valid, 0)

    async def send(ctx, channel):
        ctx.set(requantizer.o.ready, 1)
        ctx.set(requantizer.i.valid, 1)
        ctx.set(requantizer.i.payload.channel, channel)
        await ctx.tick()
        ctx.set(requantizer.i.valid, 0)
        await ctx.tick()
        return ctx.get(requantizer.channel_error)

    async def bench(ctx):
        await load(ctx, requantizer.config_image(params))
        seen.append(await send(ctx, 8))  # aligned, in the table
        seen.append(await send(ctx, 6))  # misaligned
        ctx.set(domain.rst, 1)
        await ctx.posedge(domain.clk)
        ctx.set(domain.rst, 0)
        await ctx.tick()
        seen.append(ctx.get(requantizer.channel_error))
        seen.append(await send(ctx, 12))  # beyond the 12-entry table
        ctx.set(domain.rst, 1)
        await ctx.posedge(domain.clk)
        ctx.set(domain.rst, 0)
        await load(ctx, requantizer.config_image(widths()))
        seen.append(await send(ctx, 6))  # broadcasting: the channel is not checked

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    assert seen == [0, 1, 0, 1, 0]


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match="needs RequantParams, not 8"):
        Requantizer(8)
    with pytest.raises(ValueError, match="lanes must be a power of two up to 64, not 3"):
        Requantizer(widths(), lanes=3)
    with pytest.raises(ValueError, match="channels must be a positive integer, not 0"):
        Requantizer(widths(), channels=0)
    with pytest.raises(ValueError, match="params have 2 channels, the table only 1"):
        Requantizer(widths(multiplier=(1, 2), shift=(0, 0)), channels=1)
    with pytest.raises(ValueError, match=r"channel_bits must be an integer in \[6, 32\], not 5"):
        Requantizer(widths(), lanes=8, channels=64, channel_bits=5)
