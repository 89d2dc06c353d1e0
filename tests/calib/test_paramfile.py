"""The parameter file: round trip, one-line errors for every malformed field, atomic writes."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from calib import paramfile
from calib.data import load_calibration_images, load_eval_set
from calib.models import build_model
from calib.paramfile import JSON_NAME, TENSOR_NAME, ParamFileError, load_params, save_params
from calib.pipeline import calibrate, make_config
from golden.vit import forward

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def params():
    model = build_model()
    config = make_config(
        "quiver_tiny_fmnist", model, wbits=4, abits=4, attn="sqrt2_17", gelu="adalog", method="repq"
    )
    return calibrate(model, load_calibration_images(8), config).params


@pytest.fixture(scope="module")
def written(params, tmp_path_factory):
    directory = tmp_path_factory.mktemp("params") / "pair"
    save_params(params, directory)
    return directory


@pytest.fixture
def pair(written, tmp_path):
    """A private copy of a valid pair, to corrupt."""
    directory = tmp_path / "pair"
    shutil.copytree(written, directory)
    return directory


def rewrite(directory, edit_header=None, edit_tensors=None, rehash=True):
    """Change the header and/or the tensors; keep the hash consistent unless told otherwise."""
    header = json.loads((directory / JSON_NAME).read_text())
    tensors = dict(load_tensors((directory / TENSOR_NAME).read_bytes()))
    if edit_tensors:
        edit_tensors(tensors, header)
        blob = save_tensors(tensors)
        (directory / TENSOR_NAME).write_bytes(blob)
        if rehash:
            header["tensor_file"]["sha256"] = hashlib.sha256(blob).hexdigest()
    if edit_header:
        edit_header(header)
    (directory / JSON_NAME).write_text(json.dumps(header))


def test_round_trip_is_exact_and_deterministic(params, written, tmp_path):
    loaded = load_params(written)
    assert loaded.config == params.config and loaded.structure == params.structure
    assert loaded.activation_quantizers() == params.activation_quantizers()
    for (name, a), (_, b) in zip(loaded.linears(), params.linears()):
        assert a.weight == b.weight and torch.equal(a.weight_codes, b.weight_codes), name
        assert torch.equal(a.bias, b.bias), name
    images = load_eval_set(limit=8).images
    for mode in ("integer", "fakequant"):
        assert torch.equal(forward(loaded, images, mode), forward(params, images, mode))
    save_params(loaded, tmp_path / "again")
    for name in (JSON_NAME, TENSOR_NAME):
        assert (tmp_path / "again" / name).read_bytes() == (written / name).read_bytes()


def test_the_header_describes_every_tensor(written):
    header = json.loads((written / JSON_NAME).read_text())
    tensors = load_tensors((written / TENSOR_NAME).read_bytes())
    assert set(header["tensors"]) == set(tensors)
    assert tensors["blocks.0.attn.qkv.weight_codes"].dtype == torch.uint8
    assert header["tensors"]["blocks.0.attn.probs.thresholds"]["holds"].startswith("derived")
    assert header["tensors"]["blocks.0.mlp.fc2.input.lut_m"]["holds"].startswith("derived: AdaLog LUT M")
    assert header["quantizers"]["blocks.0.attn.probs"]["kind"] == "Sqrt2Params"
    assert header["tensor_file"]["sha256"] == hashlib.sha256((written / TENSOR_NAME).read_bytes()).hexdigest()
    assert (written / JSON_NAME).stat().st_size + (written / TENSOR_NAME).stat().st_size < 1_000_000


def set_path(data, path, value):
    *keys, last = path
    for key in keys:
        data = data[key]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


HEADER_CASES = [
    (("format",), "other-format", r"field format must be 'quiver-quant-params'"),
    (("format_version",), 2, r"format_version 2 is not supported"),
    (("config",), KeyError, r"missing field config$"),
    (("config", "wbits"), "4", r"config.wbits must be an integer, not '4'"),
    (("config", "abits"), 5, r"config.abits must be one of 3, 4, 6, 8, not 5"),
    (("config", "attn"), "log2", r"config.attn must be one of .*not 'log2'"),
    (("config", "gelu"), "relu", r"config.gelu must be one of 'uniform', 'adalog', not 'relu'"),
    (("structure", "depth"), KeyError, r"structure.depth is missing"),
    (("quantizers", "blocks.0.attn.v"), KeyError, r"missing field quantizers.blocks.0.attn.v"),
    (
        ("quantizers", "blocks.1.attn.probs", "kind"),
        "Log2Params",
        r"quantizers.blocks.1.attn.probs: unknown scheme",
    ),
    (
        ("quantizers", "blocks.0.attn.q", "bits"),
        17,
        r"quantizers.blocks.0.attn.q: uniform bits must be at most 16",
    ),
    (("quantizers", "head", "bits"), 8, r"head.input.bits is 8, expected 4"),
    (
        ("weights", "blocks.2.mlp.fc1"),
        {"kind": "UniformParams", "bits": 4, "scale": [1.0], "zero_point": [8]},
        r"blocks.2.mlp.fc1.weight must be per channel with 256 entries \(axis 0\), not per tensor",
    ),
    (
        ("weights", "blocks.2.mlp.fc1", "scale"),
        [1.0],
        r"weights.blocks.2.mlp.fc1: uniform zero_point must have one",
    ),
    (("tensor_file", "sha256"), "0" * 64, r"tensor_file.sha256 mismatch"),
    (("tensor_file",), KeyError, r"missing field tensor_file"),
    (
        ("derived", "blocks.0.attn", "score_frac_bits"),
        3,
        r"derived.blocks.0.attn.score_frac_bits does not equal",
    ),
    (
        ("tensors", "pos_embed", "shape"),
        [1, 49, 64],
        r"tensor 'pos_embed' has shape \[1, 50, 64\], the index says",
    ),
    (("tensors", "cls_token"), KeyError, r"tensor 'cls_token' in quant_params.safetensors is not listed"),
]


@pytest.mark.parametrize("path, value, message", HEADER_CASES, ids=lambda v: str(v)[:40])
def test_malformed_header_fields_give_one_line_errors(pair, path, value, message):
    rewrite(pair, edit_header=lambda header: set_path(header, path, value))
    with pytest.raises(ParamFileError, match=message) as error:
        load_params(pair)
    text = str(error.value)
    assert "\n" not in text and text.startswith(str(pair / JSON_NAME)) and len(text) < 500


def corrupt_table(tensors, header):
    table = tensors["blocks.0.attn.probs.thresholds"].clone()
    table[3] += 1
    tensors["blocks.0.attn.probs.thresholds"] = table


def wrong_shape(tensors, header):
    tensors["pos_embed"] = tensors["pos_embed"][:, :49].contiguous()
    header["tensors"]["pos_embed"]["shape"] = [1, 49, 64]


def drop_tensor(tensors, header):
    del tensors["blocks.3.mlp.fc2.bias"]


def codes_out_of_range(tensors, header):
    codes = tensors["head.weight_codes"].clone()
    codes[0, 0] = 200
    tensors["head.weight_codes"] = codes


def float_bias_as_double(tensors, header):
    tensors["head.bias"] = tensors["head.bias"].double()
    header["tensors"]["head.bias"]["dtype"] = "float64"


TENSOR_CASES = [
    (
        corrupt_table,
        r"derived tensor 'blocks.0.attn.probs.thresholds' does not equal what the parameters derive",
    ),
    (wrong_shape, r"pos_embed has shape \(1, 49, 64\), expected \(1, 50, 64\)"),
    (drop_tensor, r"tensor 'blocks.3.mlp.fc2.bias' is listed in tensors but missing"),
    (codes_out_of_range, r"head.weight_codes must lie in \[0, 15\]"),
    (float_bias_as_double, r"tensor 'head.bias' has dtype torch.float64, the index says float64"),
]


@pytest.mark.parametrize("edit, message", TENSOR_CASES, ids=lambda v: getattr(v, "__name__", "")[:30])
def test_malformed_tensors_give_one_line_errors(pair, edit, message):
    rewrite(pair, edit_tensors=edit)
    with pytest.raises(ParamFileError, match=message) as error:
        load_params(pair)
    assert "\n" not in str(error.value)


def test_changed_tensor_bytes_fail_the_hash(pair):
    rewrite(pair, edit_tensors=corrupt_table, rehash=False)
    with pytest.raises(ParamFileError, match="tensor_file.sha256 mismatch"):
        load_params(pair)


def test_missing_and_unreadable_files(pair, tmp_path):
    with pytest.raises(ParamFileError, match="no such parameter directory"):
        load_params(tmp_path / "nothing")
    (pair / TENSOR_NAME).unlink()
    with pytest.raises(ParamFileError, match="tensor file .* is missing"):
        load_params(pair)
    (pair / JSON_NAME).write_text("{ not json")
    with pytest.raises(ParamFileError, match=r"not valid JSON \(line 1"):
        load_params(pair)
    (pair / JSON_NAME).unlink()
    with pytest.raises(ParamFileError, match="quant_params.json: missing"):
        load_params(pair)


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", ["tensor temp", "header temp", "first rename", "second rename"])
def test_a_crash_while_writing_leaves_the_previous_pair(params, pair, monkeypatch, crash_at):
    before = {name: (pair / name).read_bytes() for name in (JSON_NAME, TENSOR_NAME)}
    other = load_params(pair)
    other.blocks[0].qkv.bias[0] += 1.0  # a different container to write over the pair
    other.__dict__.pop("_plan", None)
    calls = {"write": 0, "replace": 0}
    real_write, real_replace = paramfile._write_temporary, paramfile.os.replace

    def write(directory, name, data):
        calls["write"] += 1
        if (crash_at, calls["write"]) in (("tensor temp", 1), ("header temp", 2)):
            raise Crash
        return real_write(directory, name, data)

    def replace(source, target):
        calls["replace"] += 1
        if (crash_at, calls["replace"]) == ("first rename", 1):
            raise Crash
        real_replace(source, target)
        if (crash_at, calls["replace"]) == ("second rename", 1):
            raise Crash  # after the tensor file moved, before the header did

    monkeypatch.setattr(paramfile, "_write_temporary", write)
    monkeypatch.setattr(paramfile.os, "replace", replace)
    with pytest.raises(Crash):
        save_params(other, pair)
    monkeypatch.undo()
    assert sorted(path.name for path in pair.iterdir()) == [JSON_NAME, TENSOR_NAME]  # no temporaries left
    if crash_at == "second rename":
        # The new tensor file sits beside the old header: rejected, never mixed.
        with pytest.raises(ParamFileError, match="sha256 mismatch"):
            load_params(pair)
    else:
        assert {name: (pair / name).read_bytes() for name in before} == before
        load_params(pair)
