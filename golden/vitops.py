"""The operators of the integer ViT datapath as replayable records (what co-simulation checks).

The integer forward (:func:`golden.vit.integer_forward`) is a chain of calls to :func:`run_op`;
with ``capture=True`` it keeps each call as an :class:`OpRecord` (name, kind, inputs, params,
output). :func:`replay` reruns one record from its own inputs, so a co-simulation can check any
operator alone (RTL fed with ``record.inputs`` and configured from ``record.params`` must give
``record.output``) or chain them (one record's output, through the documented wiring below, is the
next record's input).

Kinds and their fields
----------------------
``quantizer``
    ``params["quantizer"]``: UniformParams (``inputs["x"]``, float32) or a log quantizer
    (BitLog2Params / Sqrt2Params / AdaLogParams: ``inputs["xi"]``, its int64 input grid).
    Output: int64 codes, or a :class:`golden.bitlog2.BitLog2Code` for BitLog2.
``matmul``
    ``inputs["a"], ["b"]`` int64 codes ``(..., M, K)`` and ``(..., K, N)``, ``["a_zero_point"]``,
    ``["b_zero_point"]`` int64 tensors that broadcast (0-d per tensor, ``[1, H, 1, 1]`` per head,
    ``[N]`` per output channel); ``params["acc_bits"]``. Output: the int64 accumulator.
``requant``
    ``inputs["acc"]``; ``params["groups"]`` (tuple of :class:`golden.vitplan.RequantGroup`) along
    ``params["axis"]``. Output: int64 codes.
``softmax`` (float, golden only at this stage)
    ``inputs["scores"]`` signed score codes; ``params["frac_bits"]``, ``params["quantizer"]``:
    ``softmax(scores * 2**-frac_bits)`` in float32, then the quantizer's input grid (int64 ``xi``)
    for log quantizers, or the float32 probabilities for a uniform one.
``log_av``
    ``inputs["codes"]`` (log codes or BitLog2Code), ``["v"]`` int64 codes ``(..., K, N)``,
    ``["v_zero_point"]``; ``params["quantizer"]``, ``params["log_av"]`` (LogAVParams). Output: the
    int64 accumulator of :func:`golden.intops.bitlog2_matmul` / ``sqrt2_matmul`` / ``adalog_matmul``.
``gelu`` (float)
    ``inputs["x"]`` float32; ``params["quantizer"]``: exact GELU, then AdaLog's signed input grid
    (int64) or, for a uniform quantizer, the float32 GELU output.
``dequant`` (float)
    ``inputs["acc"]``, ``["bias"]`` int64 ``[out]``, ``["scale"]`` float64 ``[out]``;
    ``params["acc_bits"]``: ``float32(float64(acc + bias) * scale)``, ``acc + bias`` checked
    against ``acc_bits``.

Wiring between records: :func:`patchify` (patch-embed input codes to matmul rows),
:func:`split_qkv` (qkv codes to Q, K, V per head), ``k.transpose(-2, -1)`` (the Q·Kᵀ operand) and
:func:`merge_heads` (A·V codes per head to the proj input).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from golden import adalog, bitlog2, sqrt2, uniform
from golden.bitlog2 import BitLog2Code
from golden.fixedpoint import from_fixed_point
from golden.intops import (
    adalog_matmul,
    bitlog2_matmul,
    check_accumulator,
    int_matmul,
    requantize,
    sqrt2_matmul,
)
from golden.params import AdaLogParams, BitLog2Params, ParamError, Sqrt2Params, UniformParams

__all__ = [
    "OP_KINDS",
    "OpRecord",
    "run_op",
    "replay",
    "outputs_equal",
    "quantizer_grid",
    "patchify",
    "split_qkv",
    "merge_heads",
]

OP_KINDS = ("quantizer", "matmul", "requant", "softmax", "log_av", "gelu", "dequant")


@dataclasses.dataclass(frozen=True, eq=False)
class OpRecord:
    """One captured operator: enough to rerun it alone (:func:`replay`) and compare its output."""

    name: str
    kind: str
    inputs: dict[str, Any]
    params: dict[str, Any]
    output: Any


def quantizer_grid(x: torch.Tensor, quantizer: Any) -> torch.Tensor:
    """The integer input grid of a log quantizer (BitLog2 ``floor(x*M)``, log-√2 / AdaLog
    ``floor(x * 2**f)``, clamped); a uniform quantizer takes ``x`` itself (returned unchanged)."""
    if isinstance(quantizer, BitLog2Params):
        return bitlog2.float_to_xi(x, quantizer)
    if isinstance(quantizer, Sqrt2Params):
        return sqrt2.float_to_xi(x, quantizer)
    if isinstance(quantizer, AdaLogParams):
        return adalog.float_to_xi(x, quantizer)
    if isinstance(quantizer, UniformParams):
        return x
    raise ParamError(f"not a quantizer: {quantizer!r}")


def _quantize(inputs: dict[str, Any], quantizer: Any) -> Any:
    if isinstance(quantizer, UniformParams):
        return uniform.quantize(inputs["x"], quantizer)
    if isinstance(quantizer, BitLog2Params):
        return bitlog2.quantize_int(inputs["xi"], quantizer)
    if isinstance(quantizer, Sqrt2Params):
        return sqrt2.quantize_int(inputs["xi"], quantizer)
    if isinstance(quantizer, AdaLogParams):
        return adalog.quantize_int(inputs["xi"], quantizer)
    raise ParamError(f"not a quantizer: {quantizer!r}")


def _requant(acc: torch.Tensor, groups: Any, axis: int) -> torch.Tensor:
    parts = [
        requantize(acc.narrow(axis, group.start, group.stop - group.start), group.params, axis)
        for group in groups
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=axis)


def _log_av(inputs: dict[str, Any], quantizer: Any, log_av: Any) -> torch.Tensor:
    codes, v, zero = inputs["codes"], inputs["v"], inputs["v_zero_point"]
    if isinstance(quantizer, BitLog2Params):
        return bitlog2_matmul(codes, v, zero, log_av)
    if isinstance(quantizer, Sqrt2Params):
        return sqrt2_matmul(codes, v, zero, quantizer, log_av)
    return adalog_matmul(codes, v, zero, quantizer, log_av)


def _dequant(inputs: dict[str, Any], acc_bits: int) -> torch.Tensor:
    total = check_accumulator(inputs["acc"] + inputs["bias"], acc_bits, "dequant acc + bias")
    return total.to(torch.float64).mul_(inputs["scale"]).to(torch.float32)


def run_op(kind: str, inputs: dict[str, Any], params: dict[str, Any]) -> Any:
    """Compute one operator of the integer datapath (see the module docstring for the fields)."""
    if kind == "quantizer":
        return _quantize(inputs, params["quantizer"])
    if kind == "matmul":
        return int_matmul(
            inputs["a"],
            inputs["b"],
            inputs["a_zero_point"],
            inputs["b_zero_point"],
            acc_bits=params["acc_bits"],
        )
    if kind == "requant":
        return _requant(inputs["acc"], params["groups"], params["axis"])
    if kind == "softmax":
        probs = torch.softmax(from_fixed_point(inputs["scores"], params["frac_bits"]), dim=-1)
        return quantizer_grid(probs, params["quantizer"])
    if kind == "log_av":
        return _log_av(inputs, params["quantizer"], params["log_av"])
    if kind == "gelu":
        return quantizer_grid(F.gelu(inputs["x"]), params["quantizer"])
    if kind == "dequant":
        return _dequant(inputs, params["acc_bits"])
    raise ParamError(f"operator kind must be one of {', '.join(OP_KINDS)}, not {kind!r}")


def replay(record: OpRecord) -> Any:
    """Rerun a captured operator from its captured inputs and params."""
    return run_op(record.kind, record.inputs, record.params)


def outputs_equal(a: Any, b: Any) -> bool:
    """Exact equality of two operator outputs (tensors, or BitLog2Codes field by field)."""
    if isinstance(a, BitLog2Code) or isinstance(b, BitLog2Code):
        if not (isinstance(a, BitLog2Code) and isinstance(b, BitLog2Code)):
            return False
        return all(torch.equal(x, y) for x, y in zip(a, b))
    return (
        isinstance(a, torch.Tensor)
        and isinstance(b, torch.Tensor)
        and a.dtype == b.dtype
        and torch.equal(a, b)
    )


def patchify(codes: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` to ``[B, L, C*p*p]``: one row per patch in raster order, features in the
    ``(c, ky, kx)`` order of a Conv2d weight flattened to ``[out, C*p*p]``."""
    b, c, h, w = codes.shape
    p = patch_size
    patches = codes.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // p) * (w // p), c * p * p)


def split_qkv(codes: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv output ``[B, N, 3C]`` to ``(q, k, v)``, each ``[B, H, N, C/H]`` (timm's layout)."""
    b, n, c3 = codes.shape
    heads = codes.reshape(b, n, 3, num_heads, c3 // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return heads[0], heads[1], heads[2]


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, N, d]`` to ``[B, N, H*d]`` (``transpose(1, 2).reshape``)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
