"""The model run's plan (no simulator): every integer operator of the shipped model becomes jobs whose
expectations are the captured records; corruption flips exactly one bit; reports from results."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from calib.data import load_eval_set
from calib.paramfile import load_default_params
from cosim.checks.mac_array import untile
from cosim.model_corrupt import corrupt
from cosim.model_html import html_page
from cosim.model_hw import ModelHardware, merge_formats
from cosim.model_jobs import MAX_JOB_WORDS
from cosim.model_plan import layer_of, plan_model
from cosim.model_report import build_document, markdown
from cosim.model_sim import ModelOptions, ModelRun, RunResult, parse_array
from golden.params import MacArrayParams, ParamError, UniformParams, tiled_cycles
from golden.vit import forward

SIMULATED_KINDS = {"matmul", "requant", "log_av"}


@pytest.fixture(scope="module")
def shipped():
    params = load_default_params()
    _, records = forward(params, load_eval_set(limit=2).images, "integer", capture=True)
    return params, records


@pytest.fixture(scope="module")
def plan(shipped):
    params, records = shipped
    return plan_model(ModelHardware(params, 4, 4), records, 2)


def test_every_integer_operator_is_simulated_and_every_other_one_listed(shipped, plan):
    _, records = shipped
    simulated = {run.op for run in plan.runs}
    golden_only = {item.op: item.reason for item in plan.golden_only}
    for name, record in records.items():
        integer = record.kind in SIMULATED_KINDS or (
            record.kind == "quantizer" and not isinstance(record.params["quantizer"], UniformParams)
        )
        assert (name in simulated) == integer and (name in golden_only) == (not integer), name
    assert all(reason for reason in golden_only.values())
    cores = [run for run in plan.runs if run.kind == "head_core"]
    assert len(cores) == 4 * 4 * 2 and {run.part for run in cores} == {f"head {h}" for h in range(4)}
    assert {run.image for run in plan.runs} == {0, 1}


def test_job_expectations_are_the_captured_records(shipped, plan):
    _, records = shipped
    mac = plan.hardware.mac
    rows: dict[tuple[str, int], list[np.ndarray]] = {}
    for run in plan.runs:
        if run.kind == "matmul" and run.op != "head.matmul":
            rows.setdefault((run.op, run.image), []).append(run.job.outputs[0].expected)
    assert len(rows) == (1 + 4 * 5) * 2
    for (op, image), parts in rows.items():
        expected = records[op].output[image].numpy()
        batch = (expected.shape[0],) if expected.ndim == 3 else (1,)
        m, n = expected.shape[-2:]
        got = untile(np.concatenate(parts), (batch, m, 0, n), mac.rows, mac.cols)
        np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    # Jobs stay within the harness memories: whole tiles, at most MAX_JOB_WORDS steps each.
    fc1 = [run for run in plan.runs if run.op == "blocks.0.mlp.fc1.matmul" and run.image == 0]
    assert [run.part for run in fc1] == [f"[{n}/4]" for n in range(1, 5)]
    assert all(len(run.job.inputs[0].values["last"]) <= MAX_JOB_WORDS for run in fc1)
    assert sum(run.values for run in fc1) == 50 * 256 and sum(run.useful_macs for run in fc1) == 50 * 256 * 64
    # qkv's three requantization jobs (q, k, v groups) hold exactly the record's codes.
    parts = [r for r in plan.runs if r.op == "blocks.1.attn.qkv.requant" and r.image == 1]
    assert [r.part for r in parts] == ["q", "k", "v"]
    codes = [r.job.outputs[0].expected["code"].reshape(50, -1) for r in parts]
    np.testing.assert_array_equal(
        np.concatenate(codes, axis=1), records["blocks.1.attn.qkv.requant"].output[1]
    )


def test_analytical_cycles_follow_the_formulas(plan):
    by_op = {(run.op, run.image, run.part): run for run in plan.runs}
    four = MacArrayParams(4, 4)
    qkv = [run for run in plan.runs if run.op == "blocks.0.attn.qkv.matmul" and run.image == 0]
    # 624 tiles of 64 steps in jobs of 256 tiles: each job pays the pipeline fill once.
    assert [run.analytical_cycles for run in qkv] == [tiled_cycles(t, 64, 4, 3) for t in (256, 256, 112)]
    assert sum(run.analytical_cycles for run in qkv) == four.cycles(50, 64, 192) + 2 * (4 + 3 - 1)
    assert by_op[("blocks.0.attn.qk.matmul", 0, "")].analytical_cycles == four.cycles(50, 16, 50, batch=4)
    # 10,000 BitLog2 codes, latency 1; per-tensor scores: 6 configuration words, 2,500 rows, latency 4.
    assert by_op[("blocks.2.attn.softmax_quant", 1, "")].analytical_cycles == 10_001
    assert by_op[("blocks.2.attn.qk.requant", 1, "")].analytical_cycles == 6 + 2_500 + 4
    core = by_op[("blocks.3.attn.head_core", 0, "head 2")]
    assert core.analytical_cycles == 27 + plan.hardware.core.cycles(50) == 2_741
    assert all(run.job.expected_cycles == run.analytical_cycles for run in plan.runs)
    # The shipped model, one image, 4x4 engines (jobs cut at 16,384 words add 192 fill cycles).
    assert sum(run.analytical_cycles for run in plan.runs if run.image == 0) == 835_532


def test_one_circuit_per_block_shape(plan):
    assert sorted(plan.designs) == [
        "model_attention_core_half_17_d16_4x4",
        "model_bitlog2_half_17",
        "model_mac_4x4_u8u4_acc17",
        "model_requant_s16_acc13_l4_c1",
        "model_requant_u4_acc19_l4_c64",
        "model_shiftacc_half_17_4x4_u4_acc19",
    ]
    assert merge_formats([(4, False), (8, False)]) == (8, False)
    assert merge_formats([(4, False), (4, True)]) == (5, True)
    with pytest.raises(ParamError, match="need a 9-bit field"):
        merge_formats([(8, False), (3, True)])


def _config_words(run):
    stream = next(s for s in run.job.inputs if s.port == "cfg")
    return [int(word) for word in stream.values["data"]]


def test_corrupt_flips_one_bit_of_one_word_per_image(shipped):
    params, records = shipped
    clean = plan_model(ModelHardware(params, 4, 4), records, 2, only=["blocks.0.attn"])
    dirty = plan_model(ModelHardware(params, 4, 4), records, 2, only=["blocks.0.attn"])
    changed = corrupt(dirty, records, "blocks.0.attn.av.requant")
    # The requantizer's job and the head core's (first head) in each image.
    assert sorted((run.kind, run.image) for run in changed) == [
        ("head_core", 0),
        ("head_core", 1),
        ("requant", 0),
        ("requant", 1),
    ]
    for before, after in zip(clean.runs, dirty.runs):
        if not any(s.port == "cfg" for s in before.job.inputs):
            continue
        difference = [a ^ b for a, b in zip(_config_words(before), _config_words(after))]
        flipped = [d for d in difference if d]
        assert len(flipped) == (after in changed) and all(d & (d - 1) == 0 for d in flipped)
    with pytest.raises(ValueError, match="no run-time memory image"):
        corrupt(dirty, records, "blocks.0.attn.softmax_quant")  # BitLog2: no tables at all
    with pytest.raises(ValueError, match="no simulated operator of that name"):
        corrupt(dirty, records, "blocks.0.attn.softmax")


def test_a_corrupted_weight_changes_one_code(shipped):
    params, records = shipped
    dirty = plan_model(ModelHardware(params, 4, 4), records, 1, only=["blocks.0.mlp.fc1"], heads=False)
    before = dirty.runs[0].job.inputs[0].values["b"].copy()
    corrupt(dirty, records, "blocks.0.mlp.fc1.matmul")
    after = dirty.runs[0].job.inputs[0].values["b"]
    assert int((before != after).sum()) == 1 and 0 <= after.min() and after.max() <= 15


def test_adalog_model_plans_luts_thresholds_per_head_groups_and_a_log_input_fc2():
    from calib.data import load_calibration_images
    from calib.models import build_model
    from calib.pipeline import calibrate, make_config

    model = build_model()
    config = make_config(
        "quiver_tiny_fmnist",
        model,
        wbits=4,
        abits=4,
        attn="adalog",
        gelu="adalog",
        method="repq",
        calib_images=8,
        qkv_granularity="head",
    )
    params = calibrate(model, load_calibration_images(8, model=model), config).params
    _, records = forward(params, load_eval_set(limit=1).images, "integer", capture=True)
    plan = plan_model(ModelHardware(params, 4, 4), records, 1, only=["blocks.1"])
    kinds = {(run.op.removeprefix("blocks.1."), run.kind) for run in plan.runs}
    assert {
        ("attn.av", "lut"),
        ("attn.av", "log_av"),
        ("mlp.fc2.matmul", "lut"),
        ("mlp.fc2.matmul", "log_av"),
    } <= kinds
    assert ("mlp.gelu_quant", "quantizer") in kinds and ("attn.softmax_quant", "quantizer") in kinds
    qkv = [run.part for run in plan.runs if run.op == "blocks.1.attn.qkv.requant"]
    assert qkv[:2] == ["q head 0", "q head 1"] and len(qkv) == 12
    assert [run.part for run in plan.runs if run.op == "blocks.1.attn.qk.requant"] == [
        f"head {h}" for h in range(4)
    ]
    assert "model_thresholdq_s24_b4" in plan.designs and "model_adalog_lut_b4" in plan.designs


def test_layer_names_and_array_option():
    assert layer_of("blocks.0.attn.qkv.requant") == "blocks.0.attn.qkv"
    assert layer_of("blocks.2.attn.softmax_quant") == "blocks.2.attn"
    assert layer_of("blocks.2.attn.head_core") == "blocks.2.attn"
    assert layer_of("blocks.2.attn.av") == "blocks.2.attn.av"
    assert parse_array("8X4") == (8, 4)
    for bad in ("4x3", "4", "0x4", "ax4"):
        with pytest.raises(ValueError, match="array"):
            parse_array(bad)


def _fake_run(plan, fail: str | None) -> ModelRun:
    results = []
    for run in plan.runs:
        failed = run.op == fail and run.image == 0
        first = {"index": 3, "input": None, "expected": 5, "got": 7, "port": "o"} if failed else None
        results.append(
            RunResult(
                run,
                10,
                2 if failed else 0,
                first,
                2 if failed else None,
                run.analytical_cycles,
                False,
                None,
                0.01,
            )
        )
    model = {
        "source": "shipped",
        "path": "p",
        "sha256": "0" * 64,
        "config": {"attn": "bitlog2_half_17", "gelu": "uniform"},
    }
    units = {
        name: {"block": "x", "jobs": 1, "cycles": 1, "wall_seconds": 1.0, "sim_seconds": 0.5}
        for name in plan.designs
    }
    return ModelRun(ModelOptions(images=2), plan, results, model, [0, 1], {"plan": 0.1}, units)


def test_report_names_the_first_diverging_operator_and_is_self_contained(plan):
    document = build_document(_fake_run(plan, "blocks.2.mlp.fc1.matmul"), wall_seconds=12.5)
    summary = document["summary"]
    assert summary["verdict"] == "fail" and summary["first_diverging"]["op"] == "blocks.2.mlp.fc1.matmul"
    assert summary["first_diverging"]["layer"] == "blocks.2.mlp.fc1"
    assert summary["first_diverging"]["first_mismatch"]["image"] == 0
    for field in (
        "simulated_cycles",
        "analytical_cycles",
        "wall_seconds",
        "simulated_cycles_per_second",
        "utilization_by_layer_type",
        "head_core_utilization",
    ):
        assert field in summary
    assert document["model"]["sha256"] == "0" * 64 and document["options"]["array"] == "4x4"
    assert document["environment"]["torch"] == torch.__version__.split("+")[0]
    row = next(r for r in document["operators"] if r["op"] == "blocks.2.mlp.fc1.matmul")
    assert row["status"] == "FAIL" and row["max_abs_error"] == 2
    assert any(g["op"] == "blocks.0.attn.softmax" for g in document["golden_only"])
    json.dumps(document, default=str)
    text = markdown(document)
    assert (
        "**first diverging operator: `blocks.2.mlp.fc1.matmul`**" in text
        and "## Golden-only operators" in text
    )
    page = html_page(document)
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    clean = build_document(_fake_run(plan, None), wall_seconds=1.0)
    assert clean["summary"]["verdict"] == "pass" and clean["summary"]["first_diverging"] is None


def test_cycle_counts_off_the_formula_fail_the_run(plan):
    run = _fake_run(plan, None)
    run.results[0] = dataclasses.replace(run.results[0], cycles=run.results[0].cycles + 1)
    document = build_document(run, wall_seconds=1.0)
    assert document["summary"]["verdict"] == "fail" and document["summary"]["first_diverging"] is None
    assert document["summary"]["cycle_formula_failures"] == [run.results[0].run.op]


def test_a_circuit_that_failed_to_build_is_reported_not_plotted(plan):
    run = _fake_run(plan, None)
    for index, result in enumerate(run.results):
        if result.run.kind == "head_core":
            run.results[index] = dataclasses.replace(
                result, vectors=0, cycles=0, error="Verilator build failed"
            )
    document = build_document(run, wall_seconds=1.0)
    core = next(row for row in document["operators"] if row["kind"] == "head_core")
    assert core["status"] == "FAIL" and core["errors"] and set(core["engines"].values()) == {None}
    assert document["summary"]["first_diverging"]["op"] == core["op"]
    assert html_page(document).count("data:image/png;base64,") == 3
