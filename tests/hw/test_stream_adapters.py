"""Stream adapters in Amaranth's simulator: every value kept, in order, with idle cycles and back-pressure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amaranth import unsigned
from amaranth.lib import data
from streamutil import assert_all_passed

from cosim.jobs import InStream, Job, OutStream, config_stream, run_amaranth
from golden import sqrt2
from golden.params import BitLog2Params, LogAVParams, MacArrayParams, ShiftAccParams, Sqrt2Params
from hw.bitlog2 import bitlog2_code_layout
from hw.config import ConfigField, ConfigMap
from hw.mac_array import mac_step_layout
from hw.shift_acc import shift_acc_step_layout
from hw.stream_adapters import CodeGather, ConfigSplitter, Lanes, ZeroPointBroadcast, gather_layout
from hw.threshold_quant import ThresholdQuantizer

THROTTLES = [(0.0, 0.0), (0.4, 0.0), (0.0, 0.5), (0.3, 0.3)]


def run(component, plan):
    return run_amaranth(component, "adapter", "stream_adapters", {}, plan)


def row_layout(cols: int) -> data.StructLayout:
    return data.StructLayout({"v": data.ArrayLayout(unsigned(4), cols), "last": unsigned(1)})


def gather_job(rng, rows: int, cols: int, steps: int, idle: float, stall: float, seed: int) -> Job:
    codes = rng.integers(0, 32, steps * rows)
    v = rng.integers(0, 16, (steps, cols))
    last = (np.arange(steps) % 7 == 6).astype(np.int64)
    expected = {"codes": codes.reshape(steps, rows), "v": v, "last": last}
    return Job(
        f"gather-{rows}x{cols}",
        [
            InStream("i", codes, idle_probability=idle),
            InStream("row", {"v": v, "last": last}, idle_probability=idle),
        ],
        [OutStream("o", expected, stall_probability=stall)],
        seed=seed,
        outputs_follow_inputs=False,
    )


@pytest.mark.parametrize("rows", [1, 2, 4, 5])
@pytest.mark.parametrize(("idle", "stall"), THROTTLES)
def test_gather_keeps_every_code_in_order(rows, idle, stall):
    rng = np.random.default_rng(rows)
    gather = CodeGather(unsigned(5), rows, row_layout(3))
    checks = run(gather, [gather_job(rng, rows, 3, 40, idle, stall, seed=rows + 10)])
    assert_all_passed(checks)
    if idle == stall == 0.0:
        # One code per cycle sustained: the last step leaves `latency` cycles after its last code.
        assert checks[0].cycles == 40 * rows + gather.latency


def test_gather_of_struct_codes_into_a_shift_accumulate_step():
    """BitLog2 code structs gathered and joined with a V row give exactly the engine's step layout
    once the zero points are broadcast."""
    params = ShiftAccParams.for_quantizer(BitLog2Params("half_17"), LogAVParams.default("bitlog2"), rows=3)
    code = bitlog2_code_layout(BitLog2Params("half_17"))
    rows = data.StructLayout({"v": data.ArrayLayout(unsigned(8), params.cols), "last": unsigned(1)})
    gathered = gather_layout(code, params.rows, rows)
    broadcast = ZeroPointBroadcast(shift_acc_step_layout(params), ["zv"])
    broadcast._MustUse__silence = True  # built to compare its input layout, never elaborated
    assert broadcast.i.payload.shape() == gathered
    rng = np.random.default_rng(3)
    steps = 25
    codes = {
        "k": rng.integers(0, 16, steps * 3),
        "h": rng.integers(0, 2, steps * 3),
        "zero": rng.integers(0, 2, steps * 3),
    }
    v, last = rng.integers(0, 256, (steps, params.cols)), np.arange(steps) % 2
    expected = {"codes": {key: value.reshape(steps, 3) for key, value in codes.items()}, "v": v, "last": last}
    job = Job(
        "bitlog2-gather",
        [InStream("i", codes), InStream("row", {"v": v, "last": last})],
        [OutStream("o", expected)],
        seed=5,
        outputs_follow_inputs=False,
    )
    assert_all_passed(run(CodeGather(code, 3, rows), [job]))


@pytest.mark.parametrize(("idle", "stall"), THROTTLES)
def test_broadcast_fills_zero_points_of_a_mac_step(idle, stall):
    params = MacArrayParams(rows=3, cols=2, a_bits=4, b_bits=6, b_signed=True)
    broadcast = ZeroPointBroadcast(mac_step_layout(params), ["za", "zb"])
    rng = np.random.default_rng(8)
    n = 60
    steps = {"a": rng.integers(0, 16, (n, 3)), "b": rng.integers(-32, 32, (n, 2))}
    steps["last"] = rng.integers(0, 2, n)
    image = broadcast.config_image({"za": 11, "zb": -7})
    expected = {**steps, "za": np.full((n, 3), 11), "zb": np.full((n, 2), -7)}
    expected = {name: expected[name] for name in ("a", "b", "za", "zb", "last")}
    job = Job(
        "broadcast",
        [config_stream(image), InStream("i", steps, idle_probability=idle)],
        [OutStream("o", expected, stall_probability=stall)],
        seed=9,
    )
    checks = run(broadcast, [job])
    assert_all_passed(checks)
    if idle == stall == 0.0:
        assert checks[0].cycles == len(image) + n  # configuration words, then one step per cycle


def test_a_wrong_zero_point_is_caught():
    params = MacArrayParams(rows=2, cols=2, a_bits=4, b_bits=4)
    broadcast = ZeroPointBroadcast(mac_step_layout(params), ["za", "zb"])
    steps = {"a": np.ones((4, 2), int), "b": np.ones((4, 2), int), "last": np.zeros(4, int)}
    expected = {**steps, "za": np.full((4, 2), 3), "zb": np.full((4, 2), 4)}
    expected = {name: expected[name] for name in ("a", "b", "za", "zb", "last")}
    job = Job(
        "wrong",
        [config_stream(broadcast.config_image({"za": 3, "zb": 5})), InStream("i", steps)],
        [OutStream("o", expected)],
    )
    [check] = run(broadcast, [job])
    assert check.mismatches == 4 and check.first_mismatch["got"]["zb"] == [5, 5]


def test_rejections():
    params = MacArrayParams(rows=2, cols=2)
    with pytest.raises(ValueError, match=r"array fields of the layout, not \('last',\)"):
        ZeroPointBroadcast(mac_step_layout(params), ["last"])
    with pytest.raises(TypeError, match="needs a StructLayout"):
        ZeroPointBroadcast(unsigned(3), ["za"])
    with pytest.raises(ValueError, match="rows must be an integer in 1..64, not 0"):
        CodeGather(unsigned(3), 0, row_layout(2))
    with pytest.raises(ValueError, match="without 'codes'"):
        CodeGather(unsigned(3), 2, data.StructLayout({"codes": unsigned(1)}))


@pytest.mark.parametrize(("idle", "stall"), THROTTLES)
def test_config_splitter_routes_each_region_its_own_words(idle, stall):
    small = ConfigMap([ConfigField("zero_point", unsigned(4)), ConfigField("flag", unsigned(1))])
    table = ConfigMap([ConfigField("entry", unsigned(20), depth=9)])
    splitter = ConfigSplitter({"small": small, "table": table})
    images = {
        "small": small.image({"zero_point": 11, "flag": 1}),
        "table": table.image({"entry": [(n * 40503) % (1 << 20) for n in range(9)]}),
    }
    words = splitter.image(images)
    assert [address >> 4 for address, _ in words] == [0] * 2 + [1] * 9  # region above 4 address bits
    job = Job(
        "split",
        [
            InStream(
                "i", {"addr": [a for a, _ in words], "data": [d for _, d in words]}, idle_probability=idle
            )
        ],
        [
            OutStream(
                name, {"addr": [a for a, _ in image], "data": [d for _, d in image]}, stall_probability=stall
            )
            for name, image in images.items()
        ],
        seed=4,
        outputs_follow_inputs=False,
    )
    assert_all_passed(run(splitter, [job]))


def test_config_splitter_rejections():
    small = ConfigMap([ConfigField("x", unsigned(2))])
    with pytest.raises(ValueError, match="needs a dict of ConfigMaps"):
        ConfigSplitter({})
    with pytest.raises(ValueError, match="identifiers but 'i'"):
        ConfigSplitter({"i": small})
    splitter = ConfigSplitter({"only": small})
    splitter._MustUse__silence = True  # built to compute images only
    with pytest.raises(ValueError, match=r"config regions are \['only'\], not \['other'\]"):
        splitter.image({"other": []})


@pytest.mark.parametrize(("idle", "stall"), THROTTLES)
def test_lanes_of_comparator_banks_share_their_thresholds(idle, stall):
    params = Sqrt2Params("sqrt2_17", bits=4, delta=0.5)
    lanes = Lanes(lambda: ThresholdQuantizer(params), 3)
    rng = np.random.default_rng(31)
    xi = rng.integers(0, 1 << 16, (60, 3)) >> rng.integers(0, 16, (60, 3))  # every code range
    expected = sqrt2.quantize_int(torch.from_numpy(xi), params).numpy()
    job = Job(
        "lanes",
        [
            config_stream(ThresholdQuantizer.config_image(params), idle_probability=idle),
            InStream("i", xi, idle_probability=idle),
        ],
        [OutStream("o", expected, stall_probability=stall)],
        seed=7,
    )
    checks = run(lanes, [job])
    assert_all_passed(checks)
    assert lanes.lanes == 3 and lanes.latency == 2  # the comparator bank's


def test_lanes_rejections():
    with pytest.raises(ValueError, match="lanes must be an integer in 1..64, not 0"):
        Lanes(lambda: ThresholdQuantizer(Sqrt2Params()), 0)
    with pytest.raises(ValueError, match=r"ports i, o \(and cfg\), not \['i', 'o', 'row'\]"):
        Lanes(lambda: CodeGather(unsigned(3), 2, row_layout(2)), 2)
