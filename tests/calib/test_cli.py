"""``python -m calib``: an end-to-end run on the shipped model, and every kind of bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from calib import pipeline
from calib.cli import main
from calib.paramfile import JSON_NAME, TENSOR_NAME, load_params

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def test_end_to_end_on_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "run" / "params"
    code = main(
        [
            "--calib-images",
            "8",
            "--attn",
            "adalog",
            "--gelu",
            "adalog",
            "--wbits",
            "6",
            "--out",
            str(out),
            "--eval",
            "--eval-images",
            "40",
            "--no-progress",
            "--seed",
            "3",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert sorted(path.name for path in out.iterdir()) == [JSON_NAME, TENSOR_NAME]
    params = load_params(out)
    assert (params.config.wbits, params.config.abits, params.config.attn, params.config.gelu) == (
        6,
        4,
        "adalog",
        "adalog",
    )
    assert (params.config.seed, params.config.calib_images, params.config.method) == (3, 8, "repq")
    for stage in ("pass 1: lazy calibration in network order", "write parameter file", "evaluate integer"):
        assert f"  {stage}: " in printed
    assert "top-1 on 40 images: fp32 " in printed and "integer " in printed


def test_fpcs_method_through_the_cli(tmp_path, capsys):
    out = tmp_path / "fpcs"
    arguments = ["--method", "fpcs", "--attn", "adalog", "--gelu", "adalog", "--qkv-granularity", "head"]
    assert main([*arguments, "--calib-images", "2", "--out", str(out), "--no-progress"]) == 0
    params = load_params(out)
    assert (params.config.method, params.config.qkv_granularity, params.config.calib_images) == (
        "fpcs",
        "head",
        2,
    )
    printed = capsys.readouterr().out
    for stage in ("fpcs A @ V (AdaLog)", "fpcs fc2 (post-GELU AdaLog)", "write parameter file"):
        assert f"  {stage}: " in printed


def test_module_entry_point_reports_bad_bits_in_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "calib", "--wbits", "5", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "--wbits: '5' bits are not supported; use one of 3, 4, 6, 8" in run.stderr
    assert not (tmp_path / "x").exists()


BAD_ARGUMENTS = [
    (["--abits", "2"], "--abits: '2' bits are not supported"),
    (["--wbits", "four"], "--wbits: 'four' bits are not supported"),
    (["--attn", "log2"], "--attn: invalid choice: 'log2'"),
    (["--gelu", "relu"], "--gelu: invalid choice: 'relu'"),
    (["--method", "gptq"], "--method: invalid choice: 'gptq'"),
    (["--qkv-granularity", "channel"], "--qkv-granularity: invalid choice"),
    (["--calib-images", "0"], "--calib-images: '0' is not a positive integer"),
    (["--calib-images", "65"], "calibration images: .* asked for 65 calibration images, it holds 64"),
    (["--eval-images", "-3", "--eval"], "--eval-images: '-3' is not a positive integer"),
    (["--seed", "-1"], "--seed: '-1' is not a non-negative integer"),
    (["--model", "vit_tinyy_patch16_224"], "unknown model 'vit_tinyy_patch16_224'"),
    (["--model", "resnet18"], "unsupported model: ResNet is not a timm VisionTransformer"),
    (["--checkpoint", "{tmp}/missing.pth"], "checkpoint .*missing.pth does not exist"),
    (["--data", "{tmp}/no_images"], "--data: .*no_images"),
    (["--eval", "--eval-data", "{tmp}/no_images"], "--eval-data: .*no_images"),
    (["--out", "{tmp}/a_file"], "--out .*a_file is a file; give a directory"),
    (["--unknown-flag"], "unrecognized arguments: --unknown-flag"),
]


@pytest.mark.parametrize(
    "arguments, message", BAD_ARGUMENTS, ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else ""
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(
    tmp_path, capsys, arguments, message, monkeypatch
):
    monkeypatch.setattr("calib.pipeline.METHOD_MODULES", {"fpcs": "calib._not_written_yet"})
    (tmp_path / "a_file").write_text("not a directory")
    out = tmp_path / "out"
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(out)]
    try:
        code = main([*arguments, "--no-progress"])
    except SystemExit as exit:
        code = exit.code
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([line for line in error if "error" in line]) == 1
    assert re.search(message, error[-1]), error
    assert not out.exists()


def test_an_unregistered_method_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("calib.pipeline.METHOD_MODULES", {"fpcs": "calib._not_written_yet"})
    monkeypatch.delitem(pipeline.METHODS, "fpcs", raising=False)
    assert main(["--method", "fpcs", "--out", str(tmp_path / "out")]) == 2
    assert "method 'fpcs' is not available yet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
