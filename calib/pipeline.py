"""The calibration pipeline: a registry of methods, stage timing, configuration and evaluation.

A calibration *method* is a function ``method(context: CalibrationContext) -> QuantizedViTParams``
registered under a name with :func:`register_method`. ``repq`` (:func:`calib.repq.calibrate_repq`)
is built in. Other methods live in their own module and register themselves when imported; the
modules in :data:`METHOD_MODULES` are imported on first use, so ``calib/fpcs.py`` only has to end
with ``register_method("fpcs", calibrate_fpcs)``.

A method receives the float model twice: as the timm module (``context.model``, e.g. for float
reference activations) and as a private copy of its tensors (``context.net``, a
:class:`golden.floatvit.FloatViT` it may reparameterize in place), plus the calibration images, the
:class:`golden.quantmodel.QuantConfig` (bits, schemes, seed...) and a :class:`StageTimer` for
progress bars and per-stage wall times. It returns a container, usually through
:func:`golden.quantmodel.build_params` (activation quantizers by site, weight quantizers by layer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from golden.floatvit import FloatViT
from golden.quantmodel import QuantConfig, QuantizedViTParams
from golden.vit import forward

__all__ = [
    "FORMAT_VERSION",
    "DEFAULT_SETTINGS",
    "METHODS",
    "METHOD_MODULES",
    "CalibrationError",
    "CalibrationContext",
    "CalibrationResult",
    "StageTimer",
    "register_method",
    "get_method",
    "make_config",
    "state_dict_sha256",
    "software_versions",
    "calibrate",
    "evaluate",
]

#: Version of the parameter file format (recorded in ``config.versions``).
FORMAT_VERSION = 1
#: Settings of the shipped default parameters (calib/assets/quiver_tiny_fmnist_w4a4) and of the CLI.
DEFAULT_SETTINGS: dict[str, Any] = {
    "wbits": 4,
    "abits": 4,
    "attn": "bitlog2_half_17",
    "gelu": "uniform",
    "method": "repq",
    "seed": 0,
    "calib_images": 32,
}
CalibrationMethod = Callable[["CalibrationContext"], QuantizedViTParams]
#: Registered methods by name.
METHODS: dict[str, CalibrationMethod] = {}
#: Modules imported on first use of a method name not registered yet; they call register_method.
METHOD_MODULES = {"fpcs": "calib.fpcs"}


class CalibrationError(ValueError):
    """Calibration cannot run as asked; the message names the problem and the fix."""


def register_method(name: str, method: CalibrationMethod) -> None:
    """Make ``method`` available as ``--method name`` (replacing an earlier registration)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise CalibrationError(f"method name must be an identifier, not {name!r}")
    METHODS[name] = method


def get_method(name: str) -> CalibrationMethod:
    """The method registered as ``name``, importing its module from :data:`METHOD_MODULES` first.

    Raises
    ------
    CalibrationError
        Unknown name, or a module that does not exist or does not register the method (yet).
    """
    if name not in METHODS and name in METHOD_MODULES:
        module = METHOD_MODULES[name]
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
        if name not in METHODS:
            raise CalibrationError(
                f"method {name!r} is not available yet ({module} does not register it); use --method repq"
            )
    if name not in METHODS:
        known = sorted({*METHODS, *METHOD_MODULES})
        raise CalibrationError(f"unknown method {name!r}; use one of {', '.join(known)}")
    return METHODS[name]


class StageTimer:
    """Times named stages (printed as they finish) and makes progress bars.

    Parameters
    ----------
    log : callable or None
        Receives one line per finished stage (``print`` in the CLI); None is silent.
    progress : bool
        Show tqdm progress bars (on stderr).
    """

    def __init__(self, log: Callable[[str], None] | None = None, progress: bool = False):
        self.seconds: dict[str, float] = {}
        self._log = log
        self._progress = progress

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        if self._log is not None:
            self._log(f"  {name}: {elapsed:.2f} s")

    def bar(self, total: int, desc: str) -> Any:
        """A tqdm bar (disabled unless ``progress``); call ``update(n)`` and ``close()``."""
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, disable=not self._progress, leave=False, dynamic_ncols=True)


@dataclasses.dataclass
class CalibrationContext:
    """What a calibration method receives (see the module docstring)."""

    model: torch.nn.Module
    net: FloatViT
    images: torch.Tensor
    config: QuantConfig
    stages: StageTimer


@dataclasses.dataclass
class CalibrationResult:
    params: QuantizedViTParams
    seconds: dict[str, float]


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a state dict (names, dtypes, shapes and bytes in sorted-name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(
            tensor.numpy().tobytes()
            if tensor.dtype != torch.bfloat16
            else tensor.view(torch.int16).numpy().tobytes()
        )
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions recorded with the parameters: quiver (pyproject.toml), torch, timm, file format."""
    import timm

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        quiver = tomllib.loads(pyproject.read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        quiver = "unknown"
    return {
        "quiver": quiver,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "format": str(FORMAT_VERSION),
    }


def make_config(model_name: str, model: torch.nn.Module, **settings: Any) -> QuantConfig:
    """A :class:`QuantConfig` for ``model`` with its weights hash and the software versions.

    ``settings``: ``wbits, abits, attn, gelu, method`` and optionally ``seed, calib_images,
    qkv_granularity``.
    """
    return QuantConfig(
        model=model_name,
        weights_sha256=state_dict_sha256(model),
        versions=software_versions(),
        **settings,
    )


def calibrate(
    model: torch.nn.Module,
    images: torch.Tensor,
    config: QuantConfig,
    *,
    stages: StageTimer | None = None,
) -> CalibrationResult:
    """Calibrate ``model`` on ``images`` with ``config.method``; time every stage in ``stages``.

    Deterministic: one seed (``config.seed``) for any randomness, restored afterwards.
    """
    method = get_method(config.method)
    stages = stages if stages is not None else StageTimer()
    with stages.stage("read model tensors"):
        net = FloatViT.from_timm(model)
    context = CalibrationContext(model, net, images.to(torch.float32), config, stages)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(config.seed)
        params = method(context)
    with stages.stage("derive integer datapath"):
        _ = params.plan
    return CalibrationResult(params, stages.seconds)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    params: QuantizedViTParams,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 250,
    stages: StageTimer | None = None,
) -> dict[str, float]:
    """Top-1 accuracy of the float model (``fp32``) and of ``params`` in ``fakequant`` and
    ``integer`` modes, plus the fakequant/integer top-1 agreement (``agreement``)."""
    stages = stages or StageTimer()
    predictions: dict[str, torch.Tensor] = {}
    with stages.stage("evaluate fp32"):
        predictions["fp32"] = torch.cat([model(chunk).argmax(dim=1) for chunk in images.split(batch_size)])
    for mode in ("fakequant", "integer"):
        with stages.stage(f"evaluate {mode}"):
            bar = stages.bar(len(images), mode)
            parts = []
            for chunk in images.split(batch_size):
                parts.append(forward(params, chunk, mode).argmax(dim=1))
                bar.update(len(chunk))
            bar.close()
            predictions[mode] = torch.cat(parts)
    result = {mode: float((p == labels).float().mean()) for mode, p in predictions.items()}
    result["agreement"] = float((predictions["fakequant"] == predictions["integer"]).float().mean())
    return result


def _register_builtin() -> None:
    from calib.repq import calibrate_repq

    register_method("repq", calibrate_repq)


_register_builtin()
