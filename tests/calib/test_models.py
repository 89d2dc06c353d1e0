"""Tests of calib/models.py: the shipped model, timm names, checkpoints and their errors."""

import logging

import pytest
import torch

from calib.data import FASHION_MNIST_PREPROCESSING, Preprocessing, load_eval_set
from calib.models import (
    DEFAULT_WEIGHTS_PATH,
    RANDOM_INIT_SEED,
    ModelError,
    build_model,
    build_tiny_fmnist,
)

SHIPPED_MIN_ACCURACY = 0.80  # on the shipped 1000-image subset; training reached more (see train_default.py)


@pytest.fixture(scope="module")
def shipped_model():
    return build_model()


@torch.no_grad()
def accuracy(model, images, labels):
    return float((model(images).argmax(dim=1) == labels).float().mean())


def test_shipped_model_is_small_and_in_eval_mode(shipped_model):
    assert not shipped_model.training and all(not m.training for m in shipped_model.modules())
    assert sum(p.numel() for p in shipped_model.parameters()) == 205_066
    assert DEFAULT_WEIGHTS_PATH.stat().st_size < 1_000_000
    assert Preprocessing.for_model(shipped_model) == FASHION_MNIST_PREPROCESSING
    assert torch.equal(build_model("quiver_tiny_fmnist").pos_embed, shipped_model.pos_embed)


def test_shipped_model_accuracy_on_the_shipped_subset(shipped_model):
    images, labels = load_eval_set()
    first = accuracy(shipped_model, images, labels)
    assert first >= SHIPPED_MIN_ACCURACY
    assert accuracy(shipped_model, images, labels) == first  # deterministic


def test_checkpoint_round_trip_in_both_formats(tmp_path, shipped_model):
    from safetensors.torch import save_file

    state = shipped_model.state_dict()
    images = load_eval_set(limit=10).images
    with torch.no_grad():
        expected = shipped_model(images)
    save_file(state, tmp_path / "copy.safetensors")
    torch.save({"model": state, "epoch": 3}, tmp_path / "wrapped.pth")  # DeiT-style wrapper
    for name in ("copy.safetensors", "wrapped.pth"):
        model = build_model(None, tmp_path / name)
        with torch.no_grad():
            assert torch.equal(model(images), expected)


def test_checkpoint_that_does_not_fit_names_the_keys(tmp_path, shipped_model):
    state = dict(shipped_model.state_dict())
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["cls_token"] = torch.zeros(1, 1, 32)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ModelError) as error:
        build_model(checkpoint=tmp_path / "bad.pt")
    message = str(error.value)
    assert "\n" not in message
    assert "missing keys: head.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "cls_token (1, 1, 32) vs (1, 1, 64)" in message


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ModelError, match=r"checkpoint .*absent\.safetensors does not exist"):
        build_model(checkpoint=tmp_path / "absent.safetensors")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(ModelError, match="unknown format '.npz'"):
        build_model(checkpoint=tmp_path / "weights.npz")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ModelError, match="cannot read it"):
        build_model(checkpoint=tmp_path / "broken.safetensors")
    (tmp_path / "garbage.pth").write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"cannot read it with torch.load\(weights_only=True\)"):
        build_model(checkpoint=tmp_path / "garbage.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ModelError, match="expected a dict of tensors"):
        build_model(checkpoint=tmp_path / "list.pth")


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ModelError, match="unknown model 'deit_tiny_patch16_2244'") as error:
        build_model("deit_tiny_patch16_2244")
    message = str(error.value)
    assert "deit_tiny_patch16_224" in message and "timm.list_models('*deit*')" in message
    with pytest.raises(ModelError, match="must be a string"):
        build_model(3)


def test_timm_name_without_checkpoint_builds_seeded_with_a_warning(caplog):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    with caplog.at_level(logging.WARNING, logger="calib.models"):
        model = build_model("test_vit")
    assert torch.rand(1) == before  # the caller's random state is left alone
    assert not model.training
    assert any("accuracy is meaningless" in record.getMessage() for record in caplog.records)
    assert torch.equal(build_model("test_vit").patch_embed.proj.weight, model.patch_embed.proj.weight)
    assert RANDOM_INIT_SEED == 0


def test_timm_name_with_checkpoint(tmp_path):
    import timm

    source = timm.create_model("test_vit", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "test_vit.pth")
    model = build_model("test_vit", tmp_path / "test_vit.pth")
    assert torch.equal(model.head.weight, source.head.weight)
    with pytest.raises(ModelError, match="does not fit the model"):
        build_model("test_vit2", tmp_path / "test_vit.pth")


def test_deit_tiny_builds_without_checkpoint():
    model = build_model("deit_tiny_patch16_224")
    assert not model.training
    assert Preprocessing.for_model(model).height == 224


def test_tiny_architecture_is_timms_default_vit():
    model = build_tiny_fmnist()
    assert model.cls_token is not None and model.global_pool == "token"
    assert model.blocks[0].attn.qkv.bias is not None
    assert isinstance(model.blocks[0].mlp.act, torch.nn.GELU)
    assert model.patch_embed.proj.kernel_size == (4, 4) and model.patch_embed.proj.in_channels == 1
