"""MAC utilization per engine size: analytical figures on the shipped model, and the simulation check
failing when a simulated cycle count differs from the formula."""

from __future__ import annotations

import dataclasses
import json

import pytest

from calib.data import load_eval_set
from calib.paramfile import load_default_params
from cosim import model_sim, model_utilization
from cosim.model_hw import ModelHardware
from cosim.model_plan import plan_model
from golden.vit import forward


@pytest.fixture(scope="module")
def shipped():
    params = load_default_params()
    _, records = forward(params, load_eval_set(limit=1).images, "integer", capture=True)
    return params, records


def totals(shipped, rows: int, cols: int):
    params, records = shipped
    plan = plan_model(ModelHardware(params, rows, cols), records, 1, heads=False)
    return plan, model_utilization.utilization_rows(plan.runs)


def test_every_engine_layer_type_is_counted_once_per_size(shipped):
    plan, rows = totals(shipped, 4, 4)
    types = {row["layer_type"] for row in rows}
    assert {"blocks.*.attn.qkv.matmul", "blocks.*.attn.qk.matmul", "blocks.*.attn.av", "head.matmul"} <= types
    assert sum(row["useful_macs"] for row in rows) == sum(run.useful_macs for run in plan.runs if run.cells)
    assert all(0 < row["utilization"] <= 1 for row in rows)


def test_larger_arrays_do_the_same_work_in_fewer_cycles_at_lower_utilization(shipped):
    _, small = totals(shipped, 2, 2)
    _, large = totals(shipped, 8, 8)
    assert sum(r["useful_macs"] for r in small) == sum(r["useful_macs"] for r in large)
    assert sum(r["analytical_cycles"] for r in large) < sum(r["analytical_cycles"] for r in small)
    head_small, head_large = (
        next(r for r in rows if r["layer_type"] == "head.matmul") for rows in (small, large)
    )
    assert head_large["utilization"] < head_small["utilization"]  # 10 classes on 8 columns: tiling loss


@dataclasses.dataclass
class FakeResult:
    run: object
    cycles: int
    passed: bool = True


@pytest.mark.parametrize("offset, status", [(0, 0), (1, 1)])
def test_simulated_cycles_off_the_formula_fail_the_command(shipped, monkeypatch, tmp_path, offset, status):
    def fake_run_model(options, build, log):
        plan = plan_model(ModelHardware(shipped[0], options.rows, options.cols), shipped[1], 1, heads=False)
        engine_runs = [run for run in plan.runs if run.cells]
        results = [FakeResult(run, run.analytical_cycles) for run in plan.runs]
        results[plan.runs.index(engine_runs[-1])].cycles += offset  # one job, one cycle off
        return dataclasses.make_dataclass("Run", ["results"])(results)

    monkeypatch.setattr(model_sim, "run_model", fake_run_model)
    assert model_utilization.main(["--sizes", "2x2", "--simulate", "--build", str(tmp_path)]) == status
    document = json.loads((tmp_path / "reports" / "mac_utilization.json").read_text())
    (entry,) = document["sizes"]
    assert bool(entry["simulation"]["failed"]) == bool(offset)
    assert entry["total"]["simulated_cycles"] == entry["total"]["analytical_cycles"] + offset
    assert ("FAILED against simulation" in (tmp_path / "reports" / "mac_utilization.md").read_text()) == bool(
        offset
    )


def test_a_malformed_size_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        model_utilization.main(["--sizes", "4by4", "--build", str(tmp_path)])
    assert "RxC" in capsys.readouterr().err
