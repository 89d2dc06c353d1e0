"""The model run on Verilator, reduced (one image, the first transformer block, 4x4 engines): it passes,
every head goes through the head core, the reports are written, and a wrong memory image is named."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from calib.paramfile import DEFAULT_PARAMS_DIR, load_default_params, save_params
from cosim import sim

pytestmark = pytest.mark.verilator


def report(folder) -> dict:
    return json.loads((folder / "reports" / "model_sim.json").read_text())


def test_first_block_passes_through_the_rtl_and_the_head_core(tmp_path, capsys):
    status = sim.main(["--model", "--ops", "blocks.0", "--build", str(tmp_path), "--seed", "3"])
    document = report(tmp_path)
    assert status == 0, document["summary"]
    summary = document["summary"]
    assert summary["verdict"] == "pass" and summary["mismatches"] == 0 and summary["first_diverging"] is None
    assert summary["simulated_cycles"] == summary["analytical_cycles"] > 0
    operators = {row["op"]: row for row in document["operators"]}
    for name in (
        "blocks.0.attn.qkv.matmul",
        "blocks.0.attn.qkv.requant",
        "blocks.0.attn.qk.matmul",
        "blocks.0.attn.qk.requant",
        "blocks.0.attn.softmax_quant",
        "blocks.0.attn.av",
        "blocks.0.attn.av.requant",
        "blocks.0.attn.head_core",
        "blocks.0.attn.proj.matmul",
        "blocks.0.mlp.fc1.matmul",
        "blocks.0.mlp.fc2.matmul",
    ):
        assert operators[name]["status"] == "pass" and operators[name]["values"] > 0, name
    cores = [run for run in document["runs"] if run["op"] == "blocks.0.attn.head_core"]
    assert [run["part"] for run in cores] == [f"head {h}" for h in range(4)] and all(
        r["passed"] for r in cores
    )
    golden_only = {item["op"] for item in document["golden_only"]}
    assert {"blocks.0.attn.softmax", "blocks.0.mlp.gelu", "blocks.0.norm1_quant"} <= golden_only
    assert document["options"]["seed"] == 3 and len(document["model"]["sha256"]) == 64
    assert document["environment"]["verilator (simulator)"].startswith("Verilator 5.")
    page = (tmp_path / "reports" / "model_sim.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and not re.search(r"(src|href)=[\"']?https?:", page)
    assert "# Model run" in (tmp_path / "reports" / "model_sim.md").read_text()
    assert "PASS: model run" in capsys.readouterr().out


@pytest.mark.parametrize(
    "operator, selection",
    [
        ("blocks.0.attn.qkv.requant", "blocks.0.attn.qkv"),  # one requant multiplier
        ("blocks.0.mlp.fc1.matmul", "blocks.0.mlp"),  # one weight code
    ],
)
def test_a_wrong_word_in_a_memory_image_is_caught_and_named(tmp_path, operator, selection):
    status = sim.main(["--model", "--ops", selection, "--corrupt", operator, "--build", str(tmp_path)])
    document = report(tmp_path)
    assert status == 1
    first = document["summary"]["first_diverging"]
    assert first["op"] == operator and first["first_mismatch"]["expected"] != first["first_mismatch"]["got"]
    assert document["options"]["corrupt"] == operator
    failed = {row["op"] for row in document["operators"] if row["status"] == "FAIL"}
    assert failed == {operator}
    assert f"first diverging operator: `{operator}`" in (tmp_path / "reports" / "model_sim.md").read_text()


def test_bad_options_are_clear_errors(tmp_path, capsys):
    assert sim.main(["--model", "--array", "4x3", "--build", str(tmp_path)]) == 2
    assert "C a power of two" in capsys.readouterr().err
    assert (
        sim.main(
            [
                "--model",
                "--ops",
                "blocks.0.attn.qk",
                "--corrupt",
                "blocks.0.attn.softmax",
                "--build",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no simulated operator" in capsys.readouterr().err
    assert sim.main(["--model", "--ops", "blocks.9", "--build", str(tmp_path)]) == 2
    assert "no simulated operator has such a prefix" in capsys.readouterr().err
    missing = tmp_path / "no_such_params"
    assert sim.main(["--model", "--params", str(missing), "--build", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(missing) in error[0]
    shipped = str(DEFAULT_PARAMS_DIR)
    assert sim.main(["--model", "--params", shipped, "--attn", "sqrt2_17", "--build", str(tmp_path)]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_a_parameter_file_of_another_model_is_refused(tmp_path, capsys):
    params = load_default_params()
    other = dataclasses.replace(
        params, config=dataclasses.replace(params.config, model="deit_tiny_patch16_224")
    )
    save_params(other, tmp_path / "deit")
    assert sim.main(["--model", "--params", str(tmp_path / "deit"), "--build", str(tmp_path)]) == 2
    assert "made for 'deit_tiny_patch16_224'" in capsys.readouterr().err


def test_a_parameter_file_runs_and_is_named_in_the_report(tmp_path):
    params_dir = tmp_path / "params"
    save_params(load_default_params(), params_dir)
    status = sim.main(
        ["--model", "--params", str(params_dir), "--ops", "blocks.0.attn.qk", "--build", str(tmp_path)]
    )
    document = report(tmp_path)
    assert status == 0 and document["summary"]["mismatches"] == 0
    assert document["model"]["source"] == "file" and document["model"]["path"] == str(params_dir)
