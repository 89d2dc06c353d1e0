"""The models Quiver calibrates: the shipped tiny Fashion-MNIST ViT, or any timm architecture.

``build_model()`` (or ``build_model("quiver_tiny_fmnist")``) is the shipped default: a timm
``VisionTransformer`` with a 28x28 single-channel input, 4x4 patches, width 64, 4 blocks of 4 heads
and timm's defaults otherwise (class token, pre-norm, qkv bias, GELU MLP of ratio 4, 205,066
parameters), loaded from ``calib/assets/quiver_tiny_fmnist.safetensors`` (trained by
``calib/train_default.py``). Any other timm model name (``deit_tiny_patch16_224``,
``vit_small_patch16_224``, ...) is built with ``pretrained=False``, because nothing can be
downloaded here, and loaded from ``checkpoint`` when one is given.
"""

from __future__ import annotations

import difflib
import logging
import os
import pickle
from pathlib import Path

import torch

from calib.data import ASSETS_DIR, FASHION_MNIST_CLASSES, FASHION_MNIST_PREPROCESSING

DEFAULT_MODEL_NAME = "quiver_tiny_fmnist"
DEFAULT_WEIGHTS_PATH = ASSETS_DIR / "quiver_tiny_fmnist.safetensors"
TINY_FMNIST_ARGS = {
    "img_size": 28,
    "patch_size": 4,
    "in_chans": 1,
    "num_classes": len(FASHION_MNIST_CLASSES),
    "embed_dim": 64,
    "depth": 4,
    "num_heads": 4,
}
# Seed of the random initialisation of a timm model given without a checkpoint, so that two runs
# (and the golden model and the RTL benches) see the same weights.
RANDOM_INIT_SEED = 0

_log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A model name or checkpoint is unknown, missing or does not fit; the message names the fix."""


def build_tiny_fmnist() -> torch.nn.Module:
    """The shipped default architecture, randomly initialised (``build_model`` loads its weights).

    Its ``pretrained_cfg`` describes the Fashion-MNIST input (1x28x28, mean 0.2860, std 0.3530), so
    ``calib.data``'s loaders prepare images for it when given ``model=``.
    """
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(**TINY_FMNIST_ARGS)
    prep = FASHION_MNIST_PREPROCESSING
    model.pretrained_cfg = {
        "architecture": DEFAULT_MODEL_NAME,
        "input_size": (prep.channels, prep.height, prep.width),
        "mean": prep.mean,
        "std": prep.std,
        "crop_pct": prep.crop_pct,
        "crop_mode": "center",
        "interpolation": prep.interpolation,
        "num_classes": TINY_FMNIST_ARGS["num_classes"],
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
    }
    return model


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (``.pth``/``.pt``/``.bin``).

    ``torch.save`` files are read with ``weights_only=True`` (no arbitrary code); a dict wrapping
    the weights under ``"model"`` or ``"state_dict"`` (as DeiT's and many training scripts'
    checkpoints do) is unwrapped.

    Raises
    ------
    ModelError
        Missing file, unknown extension, or a file that holds no tensor dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path, device="cpu")
        except (SafetensorError, OSError) as error:
            raise ModelError(f"checkpoint {path}: cannot read it as safetensors ({error})") from None
    elif suffix in (".pth", ".pt", ".bin"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # torch's message is a multi-line essay; the fix is what matters.
            raise ModelError(
                f"checkpoint {path}: cannot read it with torch.load(weights_only=True); "
                "re-save a plain state dict (or .safetensors)"
            ) from None
        except (OSError, RuntimeError, EOFError, ValueError) as error:
            raise ModelError(f"checkpoint {path}: cannot read it ({_first_line(error)})") from None
    else:
        raise ModelError(
            f"checkpoint {path}: unknown format {suffix!r} (use .safetensors, .pth, .pt or .bin)"
        )
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(
            f"checkpoint {path}: expected a dict of tensors (a state dict), got {type(state).__name__}"
        )
    return state


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _short_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_checkpoint_strictly(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load ``path`` into ``model``; every key must match in name and shape.

    Raises
    ------
    ModelError
        One line naming the missing, unexpected and mis-shaped keys.
    """
    state = load_state_dict_file(path)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    misshaped = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or misshaped:
        problems = []
        if missing:
            problems.append(f"missing keys: {_short_list(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_short_list(unexpected)}")
        if misshaped:
            problems.append(f"shape mismatch (checkpoint vs model): {_short_list(misshaped)}")
        raise ModelError(f"checkpoint {path} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def _check_timm_name(name: str) -> None:
    import timm

    if timm.is_model(name):
        return
    candidates = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    suggestion = f"did you mean {', '.join(candidates)}? " if candidates else ""
    pattern = f"*{name.split('_')[0]}*" if name else "*vit*"
    raise ModelError(
        f"unknown model {name!r}: neither {DEFAULT_MODEL_NAME!r} nor a timm model name; "
        f"{suggestion}list them with timm.list_models({pattern!r})"
    )


def build_model(name: str | None = None, checkpoint: str | os.PathLike | None = None) -> torch.nn.Module:
    """A model in eval mode, on the CPU.

    Parameters
    ----------
    name : str, optional
        ``None`` or ``"quiver_tiny_fmnist"`` for the shipped default, or a timm model name
        (built with ``pretrained=False``).
    checkpoint : path-like, optional
        Weights to load strictly (``.safetensors``, or a ``torch.save`` state dict in ``.pth``,
        ``.pt``, ``.bin``). Default for the shipped model: its shipped weights. A timm model with no
        checkpoint keeps a random initialisation (seed :data:`RANDOM_INIT_SEED`) and a warning is
        logged, since its accuracy means nothing.

    Returns
    -------
    torch.nn.Module
        The model, ``eval()`` mode.

    Raises
    ------
    ModelError
        Unknown model name, missing or unreadable checkpoint, or keys that do not match.
    """
    if name is not None and not isinstance(name, str):
        raise ModelError(f"model name must be a string or None, not {name!r}")
    if name is None or name == DEFAULT_MODEL_NAME:
        model = build_tiny_fmnist()
        load_checkpoint_strictly(model, DEFAULT_WEIGHTS_PATH if checkpoint is None else checkpoint)
        return model.eval()
    _check_timm_name(name)
    import timm

    # fork_rng: seed the initialisation without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = timm.create_model(name, pretrained=False)
    if checkpoint is None:
        _log.warning(
            "model %s has random weights (seed %d, no checkpoint given): its accuracy is meaningless; "
            "pass a checkpoint for real results",
            name,
            RANDOM_INIT_SEED,
        )
    else:
        load_checkpoint_strictly(model, checkpoint)
    return model.eval()
