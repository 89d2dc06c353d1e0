"""The parameter file: one directory holding ``quant_params.json`` and ``quant_params.safetensors``.

``quant_params.safetensors`` holds the tensors: weight codes (uint8, or int8 for signed codes),
the float32 tensors that stay float (reparameterized LayerNorm affine, biases, class token,
position embedding) and the derived integer tables hardware loads (weight zero points and scales,
folded integer biases, requantization multipliers and shifts, comparator thresholds, AdaLog LUTs
``E``/``M``, log A·V mantissa/exponent tables).

``quant_params.json`` is the header: format and version, ``config`` (model, bits, schemes, method,
seed, weights hash, software versions), ``structure``, ``tensor_file`` (name and SHA-256 of the
safetensors file), ``quantizers`` (every activation quantizer's parameter object by site: scales,
zero points, BitLog2 δ, log-√2 Δ, AdaLog q...), ``weights`` (per-channel weight quantizers by
layer), ``derived`` (the integer datapath's widths, requantization and log A·V parameter objects)
and ``tensors`` (every tensor's dtype, shape and what it holds).

Loading validates everything and fails with one line naming the field: wrong type, missing field,
out-of-range bits, unknown scheme, tensor shape or dtype mismatch, hash mismatch. Every derived
value stored (JSON ``derived`` and the derived tensors) must equal what the parameter objects
derive (:mod:`golden.vitplan`), so the golden model and the hardware provably use the same numbers.

Writing is atomic per file: both files are written to temporary names in the target directory and
synced, then renamed over the old ones (tensors first, then the header). A crash while writing
leaves the previous pair intact; a crash between the two renames (microseconds) leaves a new
tensor file beside the old header, which the hash check rejects instead of loading a mixed pair.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from calib.data import ASSETS_DIR
from golden.floatvit import ViTStructure
from golden.params import AdaLogParams, BitLog2Params, ParamError, Sqrt2Params, UniformParams
from golden.quantmodel import (
    AttentionQuantizers,
    BlockQuant,
    QuantConfig,
    QuantizedViTParams,
    QuantLinear,
    site_names,
)

__all__ = [
    "JSON_NAME",
    "TENSOR_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "DEFAULT_PARAMS_DIR",
    "ParamFileError",
    "save_params",
    "load_params",
    "load_default_params",
    "params_file_sha256",
]

JSON_NAME = "quant_params.json"
TENSOR_NAME = "quant_params.safetensors"
FORMAT = "quiver-quant-params"
FORMAT_VERSION = 1
#: The shipped default: the tiny Fashion-MNIST model at W4A4, BitLog2 Half_17, uniform GELU, repq.
DEFAULT_PARAMS_DIR = ASSETS_DIR / "quiver_tiny_fmnist_w4a4"

_PARAM_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (UniformParams, Sqrt2Params, BitLog2Params, AdaLogParams)
}
_DTYPES = {
    torch.uint8: "uint8",
    torch.int8: "int8",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.float32: "float32",
}


class ParamFileError(ValueError):
    """A parameter file is missing or malformed; the one-line message names the file and field."""


# ------------------------------------------------------------------------------------------ writing


def _code_tensor(codes: torch.Tensor, params: UniformParams) -> torch.Tensor:
    dtype = torch.int8 if params.signed else torch.uint8
    if params.bits > 8:
        dtype = torch.int32
    return codes.to(dtype).contiguous()


def _primary_tensors(params: QuantizedViTParams) -> dict[str, torch.Tensor]:
    tensors = {
        "cls_token": params.cls_token,
        "pos_embed": params.pos_embed,
        "norm.weight": params.norm_weight,
        "norm.bias": params.norm_bias,
    }
    for i, block in enumerate(params.blocks):
        for norm in ("norm1", "norm2"):
            tensors[f"blocks.{i}.{norm}.weight"] = getattr(block, f"{norm}_weight")
            tensors[f"blocks.{i}.{norm}.bias"] = getattr(block, f"{norm}_bias")
    for name, layer in params.linears():
        tensors[f"{name}.weight_codes"] = _code_tensor(layer.weight_codes, layer.weight)
        tensors[f"{name}.bias"] = layer.bias
    return {name: tensor.contiguous() for name, tensor in tensors.items()}


def _derived_tensors(params: QuantizedViTParams) -> dict[str, torch.Tensor]:
    tensors = dict(params.plan.tables(params))
    for name, layer in params.linears():
        tensors[f"{name}.weight_scale"] = torch.tensor(layer.weight.scale, dtype=torch.float32)
    return {name: tensor.contiguous() for name, tensor in tensors.items()}


_HOLDS = [
    ("weight_codes", "primary: weight codes, quantized per output channel with weights[layer]"),
    ("weight_scale", "derived: weights[layer].scale as float32"),
    ("weight_zero_point", "derived: weights[layer].zero_point"),
    ("bias_int", "derived: fold_bias(bias, input unit, weight scale), added to the accumulator"),
    ("requant.multiplier", "derived: dyadic requantization multipliers, per channel of the requantized axis"),
    ("requant.shift", "derived: requantization right shifts, per channel"),
    ("thresholds", "derived: the quantizer's integer comparator thresholds theta_j"),
    ("lut_e", "derived: AdaLog LUT E[k] (right shifts)"),
    ("lut_m", "derived: AdaLog LUT M[k] (mantissas)"),
    (".mant", "derived: log A·V mantissa per code"),
    (".exp", "derived: log A·V exponent per code"),
    ("norm1.weight", "primary: LayerNorm gamma, reparameterized (RepQ-ViT)"),
    ("norm1.bias", "primary: LayerNorm beta, reparameterized (RepQ-ViT)"),
    ("norm2.weight", "primary: LayerNorm gamma, reparameterized (RepQ-ViT)"),
    ("norm2.bias", "primary: LayerNorm beta, reparameterized (RepQ-ViT)"),
    ("norm.weight", "primary: final LayerNorm gamma"),
    ("norm.bias", "primary: final LayerNorm beta"),
    ("bias", "primary: float32 bias (reparameterized where a quantizer was folded into it)"),
    ("cls_token", "primary: class token"),
    ("pos_embed", "primary: position embedding"),
]


def _holds(name: str) -> str:
    for key, text in _HOLDS:
        if name.endswith(key):
            return text
    return "derived"  # pragma: no cover - every name written matches a key


def _inline_json(value: Any, indent: int = 0) -> str:
    """JSON with one key per line but lists of numbers on one line (readable and compact)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_inline_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        items = [f"{inner}{_inline_json(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value)


def _header(params: QuantizedViTParams, tensors: dict[str, torch.Tensor], digest: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": params.config.to_dict(),
        "structure": params.structure.to_dict(),
        "tensor_file": {"name": TENSOR_NAME, "sha256": digest},
        "quantizers": {site: q.to_dict() for site, q in params.activation_quantizers().items()},
        "weights": {name: layer.weight.to_dict() for name, layer in params.linears()},
        "derived": params.plan.to_dict(),
        "tensors": {
            name: {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "holds": _holds(name)}
            for name, t in tensors.items()
        },
    }


def _write_temporary(directory: Path, name: str, data: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{name}.", suffix=".tmp", delete=False)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(handle.name, 0o666 & ~umask)  # mkstemp's 0600 would surprise users of a shared folder
    with handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(handle.name)


def save_params(params: QuantizedViTParams, directory: str | os.PathLike) -> Path:
    """Write ``params`` to ``directory`` (created if needed) atomically; return the JSON path."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {**_primary_tensors(params), **_derived_tensors(params)}
    # One metadata entry: safetensors writes several in hash-map order, which varies between runs.
    blob = save(tensors, metadata={"format": f"{FORMAT}/{FORMAT_VERSION}"})
    header = _header(params, tensors, hashlib.sha256(blob).hexdigest())
    text = (_inline_json(header) + "\n").encode()
    temporaries = []
    try:
        temporaries.append(_write_temporary(directory, TENSOR_NAME, blob))
        temporaries.append(_write_temporary(directory, JSON_NAME, text))
        os.replace(temporaries[0], directory / TENSOR_NAME)
        os.replace(temporaries[1], directory / JSON_NAME)
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # make the renames themselves durable
        finally:
            os.close(descriptor)
    finally:
        for path in temporaries:
            path.unlink(missing_ok=True)
    return directory / JSON_NAME


def params_file_sha256(directory: str | os.PathLike) -> str:
    """SHA-256 of the header (which itself holds the tensor file's hash): identifies the pair."""
    return hashlib.sha256((Path(directory) / JSON_NAME).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ reading


class _Reader:
    """Loads one directory, turning every problem into a one-line ParamFileError."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.json_path = directory / JSON_NAME

    def fail(self, message: str) -> ParamFileError:
        if len(message) > 300:  # parameter errors repeat the bad value, which can be a long list
            message = message[:280] + " ... " + message[-15:]
        return ParamFileError(f"{self.json_path}: {message}")

    def field(self, data: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
        if not isinstance(data, dict):
            raise self.fail(f"{where or 'the header'} must be a JSON object")
        if key not in data:
            raise self.fail(f"missing field {where + '.' if where else ''}{key}")
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            names = " or ".join(k.__name__ for k in _as_tuple(kind))
            raise self.fail(f"field {where + '.' if where else ''}{key} must be {names}, not {value!r:.80}")
        return value

    def header(self) -> dict[str, Any]:
        if not self.directory.is_dir():
            raise ParamFileError(
                f"{self.directory}: no such parameter directory (write one with python -m calib --out DIR)"
            )
        try:
            text = self.json_path.read_text()
        except FileNotFoundError:
            raise self.fail("missing (write the pair with python -m calib --out DIR)") from None
        try:
            header = json.loads(text)
        except json.JSONDecodeError as error:
            raise self.fail(f"not valid JSON (line {error.lineno}: {error.msg})") from None
        fmt = self.field(header, "format", str, "")
        if fmt != FORMAT:
            raise self.fail(f"field format must be {FORMAT!r}, not {fmt!r}")
        version = self.field(header, "format_version", int, "")
        if version != FORMAT_VERSION:
            raise self.fail(f"format_version {version} is not supported (this Quiver reads {FORMAT_VERSION})")
        return header

    def tensors(self, header: dict[str, Any]) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load

        tensor_file = self.field(header, "tensor_file", dict, "")
        name = self.field(tensor_file, "name", str, "tensor_file")
        if name != TENSOR_NAME:
            raise self.fail(f"field tensor_file.name must be {TENSOR_NAME!r}, not {name!r}")
        expected = self.field(tensor_file, "sha256", str, "tensor_file")
        try:
            blob = (self.directory / TENSOR_NAME).read_bytes()
        except FileNotFoundError:
            raise self.fail(f"its tensor file {self.directory / TENSOR_NAME} is missing") from None
        actual = hashlib.sha256(blob).hexdigest()
        if actual != expected:
            raise self.fail(
                f"tensor_file.sha256 mismatch: the header says {expected[:16]}..., {TENSOR_NAME} has "
                f"{actual[:16]}... (the pair is inconsistent; restore both files or recalibrate)"
            )
        try:
            tensors = load(blob)
        except (SafetensorError, ValueError) as error:
            raise self.fail(f"{TENSOR_NAME} is not a valid safetensors file ({error})") from None
        index = self.field(header, "tensors", dict, "")
        for tensor_name in sorted(set(index) | set(tensors)):
            if tensor_name not in tensors:
                raise self.fail(f"tensor {tensor_name!r} is listed in tensors but missing from {TENSOR_NAME}")
            if tensor_name not in index:
                raise self.fail(f"tensor {tensor_name!r} in {TENSOR_NAME} is not listed in tensors")
            entry, tensor = index[tensor_name], tensors[tensor_name]
            where = f"tensors.{tensor_name}"
            dtype = self.field(entry, "dtype", str, where)
            shape = self.field(entry, "shape", list, where)
            if _DTYPES.get(tensor.dtype) != dtype:
                raise self.fail(f"tensor {tensor_name!r} has dtype {tensor.dtype}, the index says {dtype}")
            if list(tensor.shape) != shape:
                raise self.fail(
                    f"tensor {tensor_name!r} has shape {list(tensor.shape)}, the index says {shape}"
                )
        return tensors

    def tensor(self, tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        if name not in tensors:
            raise self.fail(f"tensor {name!r} is missing")
        return tensors[name]

    def params_object(self, data: Any, where: str) -> Any:
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in _PARAM_CLASSES:
            raise self.fail(f"{where}: unknown scheme {kind!r} (kinds: {', '.join(_PARAM_CLASSES)})")
        try:
            return _PARAM_CLASSES[kind].from_dict(data)
        except ParamError as error:
            raise self.fail(f"{where}: {error}") from None

    def container(self, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> QuantizedViTParams:
        try:
            config = QuantConfig.from_dict(self.field(header, "config", dict, ""))
            structure = ViTStructure.from_dict(self.field(header, "structure", dict, ""))
        except (ParamError, TypeError) as error:
            raise self.fail(str(error)) from None
        quantizers = self.field(header, "quantizers", dict, "")
        weights = self.field(header, "weights", dict, "")

        def site(name: str) -> Any:
            if name not in quantizers:
                raise self.fail(f"missing field quantizers.{name}")
            return self.params_object(quantizers[name], f"quantizers.{name}")

        def linear(name: str) -> QuantLinear:
            if name not in weights:
                raise self.fail(f"missing field weights.{name}")
            weight = self.params_object(weights[name], f"weights.{name}")
            codes = self.tensor(tensors, f"{name}.weight_codes").to(torch.int64)
            return QuantLinear(site(name), weight, codes, self.tensor(tensors, f"{name}.bias"))

        blocks = []
        for i in range(structure.depth):
            p = f"blocks.{i}"
            attn = AttentionQuantizers(*(site(f"{p}.attn.{n}") for n in ("q", "k", "v", "probs")))
            blocks.append(
                BlockQuant(
                    norm1_weight=self.tensor(tensors, f"{p}.norm1.weight"),
                    norm1_bias=self.tensor(tensors, f"{p}.norm1.bias"),
                    qkv=linear(f"{p}.attn.qkv"),
                    attn=attn,
                    proj=linear(f"{p}.attn.proj"),
                    norm2_weight=self.tensor(tensors, f"{p}.norm2.weight"),
                    norm2_bias=self.tensor(tensors, f"{p}.norm2.bias"),
                    fc1=linear(f"{p}.mlp.fc1"),
                    fc2=linear(f"{p}.mlp.fc2"),
                )
            )
        known_sites = set(site_names(structure.depth))
        for name in quantizers:
            if name not in known_sites:
                raise self.fail(f"quantizers.{name} is not a quantization site of this model")
        try:
            return QuantizedViTParams(
                config=config,
                structure=structure,
                patch_embed=linear("patch_embed"),
                cls_token=self.tensor(tensors, "cls_token"),
                pos_embed=self.tensor(tensors, "pos_embed"),
                blocks=blocks,
                norm_weight=self.tensor(tensors, "norm.weight"),
                norm_bias=self.tensor(tensors, "norm.bias"),
                head=linear("head"),
            )
        except ParamError as error:
            raise self.fail(str(error)) from None

    def check_derived(
        self, header: dict[str, Any], tensors: dict[str, torch.Tensor], params: QuantizedViTParams
    ) -> None:
        try:
            derived = json.loads(json.dumps(params.plan.to_dict()))
            expected_tensors = _derived_tensors(params)
        except (ParamError, ArithmeticError) as error:
            raise self.fail(f"the integer datapath cannot be derived: {error}") from None
        stored = self.field(header, "derived", dict, "")
        difference = _first_difference(stored, derived, "derived")
        if difference is not None:
            raise self.fail(f"{difference} does not equal what the parameters derive")
        for name, expected in expected_tensors.items():
            got = self.tensor(tensors, name)
            if got.dtype != expected.dtype or not torch.equal(got, expected):
                raise self.fail(f"derived tensor {name!r} does not equal what the parameters derive")
        expected_names = set(_primary_tensors(params)) | set(expected_tensors)
        for name in tensors:
            if name not in expected_names:
                raise self.fail(f"tensor {name!r} is not part of this model's parameters")
        for name, expected in _primary_tensors(params).items():
            if tensors[name].dtype != expected.dtype:
                raise self.fail(f"tensor {name!r} has dtype {tensors[name].dtype}, expected {expected.dtype}")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _first_difference(stored: Any, derived: Any, path: str) -> str | None:
    if isinstance(derived, dict):
        if not isinstance(stored, dict):
            return path
        for key in sorted(set(stored) | set(derived)):
            if key not in stored or key not in derived:
                return f"{path}.{key}"
            found = _first_difference(stored[key], derived[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(derived, list):
        if not isinstance(stored, list) or len(stored) != len(derived):
            return path
        for i, (a, b) in enumerate(zip(stored, derived)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    same = type(stored) is type(derived) and stored == derived
    return None if same else path


def load_params(directory: str | os.PathLike) -> QuantizedViTParams:
    """Read and validate a parameter directory written by :func:`save_params`.

    Raises
    ------
    ParamFileError
        One line naming the file and the field (see the module docstring).
    """
    reader = _Reader(Path(directory))
    header = reader.header()
    tensors = reader.tensors(header)
    params = reader.container(header, tensors)
    reader.check_derived(header, tensors, params)
    return params


def load_default_params() -> QuantizedViTParams:
    """The shipped default parameters (:data:`DEFAULT_PARAMS_DIR`)."""
    return load_params(DEFAULT_PARAMS_DIR)
