"""The calibration pipeline: method registry, evaluation, and the shipped default parameters."""

from __future__ import annotations

import json

import pytest
import torch

from calib import pipeline
from calib.data import load_calibration_images, load_eval_set
from calib.models import DEFAULT_MODEL_NAME, build_model
from calib.paramfile import DEFAULT_PARAMS_DIR, JSON_NAME, TENSOR_NAME, load_default_params, save_params
from calib.pipeline import (
    DEFAULT_SETTINGS,
    CalibrationError,
    calibrate,
    evaluate,
    get_method,
    make_config,
    register_method,
    state_dict_sha256,
)
from calib.repq import calibrate_repq
from golden.vit import forward

torch.set_num_threads(1)

#: Correct top-1 answers of the shipped default parameters on the shipped 1000-image evaluation
#: subset, measured with ``python -m calib --eval`` (see golden/README.md, "Model datapath").
DEFAULT_CORRECT = {"integer": 898, "fakequant": 895}

REGENERATE = "regenerate with: make calib ARGS='--out calib/assets/quiver_tiny_fmnist_w4a4'"


@pytest.fixture(scope="module")
def model():
    return build_model()


def test_unknown_and_unregistered_methods(monkeypatch):
    with pytest.raises(CalibrationError, match="unknown method 'gptq'; use one of"):
        get_method("gptq")
    monkeypatch.setattr(pipeline, "METHOD_MODULES", {"fpcs": "calib._not_written_yet"})
    monkeypatch.delitem(pipeline.METHODS, "fpcs", raising=False)
    with pytest.raises(CalibrationError, match=r"method 'fpcs' is not available yet .*use --method repq"):
        get_method("fpcs")
    with pytest.raises(CalibrationError, match="must be an identifier"):
        register_method("my method", calibrate_repq)


def test_a_registered_method_gets_the_context(model, monkeypatch):
    seen = {}

    def method(context):
        seen.update(config=context.config, images=context.images.shape, seed_draw=torch.rand(1))
        assert context.net.structure.depth == 4 and context.model is model
        with context.stages.stage("custom stage"):
            return calibrate_repq(context)

    monkeypatch.setitem(pipeline.METHODS, "custom", method)
    config = make_config(
        DEFAULT_MODEL_NAME, model, wbits=3, abits=3, attn="uniform", gelu="uniform", method="custom"
    )
    result = calibrate(model, load_calibration_images(4), config)
    assert seen["images"] == (4, 1, 28, 28) and seen["config"] is config
    assert "custom stage" in result.seconds and "derive integer datapath" in result.seconds
    first_draw = seen["seed_draw"]
    calibrate(model, load_calibration_images(4), config)
    assert torch.equal(seen["seed_draw"], first_draw)  # the method's randomness follows config.seed


def test_evaluate_reports_every_mode(model):
    config = make_config(
        DEFAULT_MODEL_NAME, model, wbits=8, abits=8, attn="sqrt2_17", gelu="uniform", method="repq"
    )
    params = calibrate(model, load_calibration_images(8), config).params
    eval_set = load_eval_set(limit=30)
    top1 = evaluate(model, params, eval_set.images, eval_set.labels, batch_size=16)
    assert set(top1) == {"fp32", "fakequant", "integer", "agreement"}
    assert all(0.0 <= value <= 1.0 for value in top1.values())
    assert top1["integer"] > 0.5  # 8-bit: close to the float model, far above chance


# --------------------------------------------------------------------------- shipped default params


def test_default_params_load_and_fit_the_shipped_weights(model):
    params = load_default_params()
    assert params.config.weights_sha256 == state_dict_sha256(model), (
        f"the shipped weights changed; {REGENERATE}"
    )
    settings = {key: getattr(params.config, key) for key in DEFAULT_SETTINGS}
    assert settings == DEFAULT_SETTINGS
    size = sum((DEFAULT_PARAMS_DIR / name).stat().st_size for name in (JSON_NAME, TENSOR_NAME))
    assert size < 1_000_000


def test_recalibrating_reproduces_the_default_params_exactly(model, tmp_path):
    config = make_config(DEFAULT_MODEL_NAME, model, **DEFAULT_SETTINGS)
    params = calibrate(model, load_calibration_images(DEFAULT_SETTINGS["calib_images"]), config).params
    save_params(params, tmp_path)
    assert (tmp_path / TENSOR_NAME).read_bytes() == (DEFAULT_PARAMS_DIR / TENSOR_NAME).read_bytes(), (
        REGENERATE
    )
    fresh = json.loads((tmp_path / JSON_NAME).read_text())
    shipped = json.loads((DEFAULT_PARAMS_DIR / JSON_NAME).read_text())
    # Software versions may move on without changing a number; everything else must be equal.
    fresh["config"].pop("versions")
    shipped["config"].pop("versions")
    assert fresh == shipped, REGENERATE


def test_default_params_reach_the_measured_accuracy():
    params = load_default_params()
    eval_set = load_eval_set()
    assert len(eval_set.labels) == 1000
    for mode, expected in DEFAULT_CORRECT.items():
        correct = int((forward(params, eval_set.images, mode).argmax(dim=1) == eval_set.labels).sum())
        assert correct == expected, mode
