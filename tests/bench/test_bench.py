"""``python -m bench --quick`` runs end to end, and the plain C++ loop catches a wrong expectation.

Benchmarks are not tests: nothing here looks at a speed, only at what was measured and checked.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import bench.__main__ as bench_cli
from bench import calib_speed, cpp_loop, sim_speed
from bench.figures import Figure, format_value
from hw.export import export_design
from hw.registry import find_design


def test_streaming_job_has_no_idle_cycles_and_can_be_shortened():
    job = sim_speed.streaming_job(find_design("bitlog2_half_16"), limit=100)
    assert [s.idle_probability for s in job.inputs] == [0.0]
    assert [s.stall_probability for s in job.outputs] == [0.0]
    assert len(job.inputs[0].values) == 100 and len(job.outputs[0].expected["k"]) == 100
    whole = sim_speed.streaming_job(find_design("bitlog2_half_16"))
    assert len(whole.inputs[0].values) == 256  # every 8-bit input


def test_ratios_only_between_figures_measured_in_this_run():
    figures = [
        Figure("simulation", "sim.cocotb", "cocotb", 100_000.0, "cycles/s"),
        Figure("simulation", "sim.amaranth", "amaranth", 5_000.0, "cycles/s"),
        Figure("simulation", "sim.cpp", "cpp", None, "cycles/s", note="skipped"),
        Figure("calibration", "calib.bitlog2_delta_vectorized", "fast", 0.5, "s"),
        Figure("calibration", "calib.bitlog2_delta_seed_loop", "loop", 10.0, "s"),
    ]
    found = {ratio["ratio"]: ratio["value"] for ratio in bench_cli.ratios(figures)}
    assert found == {
        "Verilator + cocotb vs Amaranth simulator": 20.0,
        "BitLog2 delta search, vectorized vs the seed's loop": 20.0,
    }


def test_formatting_keeps_small_values_readable():
    assert format_value(1_234_567.8) == "1,234,568"
    assert format_value(0.01234) == "0.0123"


def test_each_method_is_one_timed_calibration(monkeypatch):
    calls = []
    import calib.pipeline

    monkeypatch.setattr(calib.pipeline, "calibrate", lambda model, images, config: calls.append(config))
    methods = {
        "Fake": (
            "calib.fake",
            {"wbits": 4, "abits": 4, "attn": "sqrt2_17", "gelu": "uniform", "method": "repq"},
        )
    }
    (figure,) = calib_speed.method_calibrations(quick=True, methods=methods)
    assert len(calls) == 1 and calls[0].attn == "sqrt2_17" and calls[0].calib_images == 8
    assert figure.key == "calib.fake" and figure.value is not None and figure.unit == "s"


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory) -> pathlib.Path:
    build = tmp_path_factory.mktemp("bench-build")
    # Calibration is tested in tests/calib; keep this run to the bench's own parts.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(calib_speed, "METHODS", {})
        assert bench_cli.main(["--quick", "--build", str(build)]) == 0
    return build


@pytest.mark.verilator
@pytest.mark.slow
def test_quick_bench_measures_every_simulator_bit_exact(quick_bench):
    report = json.loads((quick_bench / "reports" / "bench.json").read_text())
    figures = {figure["key"]: figure for figure in report["figures"]}
    for key in ("sim.cocotb", "sim.amaranth", "sim.cpp"):
        assert figures[key]["value"] is not None, figures[key]["note"]
        assert figures[key]["details"]["mismatches"] == 0
    assert figures["sim.cpp"]["details"]["received"] == figures["sim.cpp"]["details"]["expected_outputs"]
    assert figures["golden.bitlog2_integer"]["value"] is not None
    assert figures["calib.bitlog2_delta_vectorized"]["note"] == ""  # both searches chose the same delta
    assert report["meta"]["environment"]["torch_threads"] >= 1
    assert (quick_bench / "reports" / "bench.md").read_text().startswith("# Speed figures")


@pytest.mark.verilator
@pytest.mark.slow
def test_cpp_loop_counts_a_corrupted_expectation(quick_bench, tmp_path):
    design = find_design("bitlog2_half_16")
    verilog, sidecar_path = export_design(design, tmp_path)
    sidecar = json.loads(sidecar_path.read_text())
    job = sim_speed.streaming_job(design)
    # The quick bench built this loop already: same Verilog, same generated main, so it is cached.
    binary = cpp_loop.build_loop(sidecar, verilog, job, quick_bench / "bench" / "cpp")
    table = tmp_path / "table.bin"
    inputs, outputs = cpp_loop.write_table(sidecar, job, table)
    words = np.fromfile(table, dtype="<u8")
    words[2 + inputs + 37] ^= 1  # flip one bit of the 38th expected output
    words.tofile(table)
    result = cpp_loop.run_loop(binary, table, passes=1)
    assert result["mismatches"] == 1 and result["first_mismatch_index"] == 37
    assert result["first_expected"] ^ result["first_got"] == 1
    assert result["received"] == outputs
