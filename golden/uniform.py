"""Uniform affine quantization: RepQ-ViT and AdaLog reference forms and the integer-code form.

Reference forms (float32, the seeds' operation order; scale and zero point may be any
broadcastable tensors, so calibration can score many candidates at once):

* RepQ-ViT (:func:`repq_reference`): ``q = clamp(round(x / delta) + z, 0, 2**b - 1)``,
  ``x_hat = (q - z) * delta``; ``z`` is added after rounding and may be fractional (after RepQ's
  LayerNorm reparameterization), which puts the clamps off the integer grid.
* AdaLog (:func:`adalog_reference`): ``q = clamp(round(x / s) + round(z), 0, 2**b - 1)``,
  ``x_hat = (q - round(z)) * s``; symmetric: ``clamp(round(x / s), -2**(b-1), 2**(b-1) - 1) * s``.

Integer form (:func:`quantize`, :func:`dequantize`, :func:`fake_quant`) with a
:class:`~golden.params.UniformParams` (integer zero points): int64 codes, then ``(q - z) * scale`` in
float32. For integer zero points both reference forms produce exactly these codes and values; in
the integer datapath codes come out of :func:`golden.intops.requantize` instead.
"""

from __future__ import annotations

import torch

from golden.params import ParamError, UniformParams

__all__ = [
    "quantize",
    "dequantize",
    "fake_quant",
    "scale_view",
    "zero_point_view",
    "repq_reference",
    "adalog_reference",
]


def _view(
    values: tuple[float, ...] | tuple[int, ...],
    params: UniformParams,
    ndim: int,
    dtype: torch.dtype,
    shape: torch.Size | None = None,
) -> torch.Tensor:
    tensor = torch.tensor(values, dtype=dtype)
    if params.granularity == "tensor":
        return tensor.reshape(())
    axis = params.axis if params.axis >= 0 else params.axis + ndim
    if not 0 <= axis < ndim:
        raise ParamError(f"uniform axis {params.axis} is out of range for a {ndim}-d tensor")
    if shape is not None and shape[axis] != len(values):
        raise ParamError(
            f"uniform parameters have {len(values)} {params.granularity}s but axis {params.axis} "
            f"of the tensor has size {shape[axis]}"
        )
    view = [1] * ndim
    view[axis] = len(values)
    return tensor.reshape(view)


def scale_view(params: UniformParams, ndim: int, shape: torch.Size | None = None) -> torch.Tensor:
    """The float32 scale(s) shaped to broadcast against an ``ndim``-d tensor (0-d per tensor)."""
    return _view(params.scale, params, ndim, torch.float32, shape)


def zero_point_view(params: UniformParams, ndim: int, shape: torch.Size | None = None) -> torch.Tensor:
    """The int64 zero point(s) shaped to broadcast against an ``ndim``-d tensor (0-d per tensor)."""
    return _view(params.zero_point, params, ndim, torch.int64, shape)


def quantize(x: torch.Tensor, params: UniformParams) -> torch.Tensor:
    """Codes ``clamp(round(x / scale) + z, qmin, qmax)`` (float32 arithmetic, round half to even)
    as int64. ``x`` is converted to float32 first, as the references run in float32."""
    x = x.to(torch.float32)
    scale = scale_view(params, x.ndim, x.shape)
    zero = zero_point_view(params, x.ndim, x.shape).to(torch.float32)
    codes = torch.clamp(torch.round(x / scale) + zero, params.qmin, params.qmax)
    return codes.to(torch.int64)


def dequantize(codes: torch.Tensor, params: UniformParams) -> torch.Tensor:
    """``(q - z) * scale`` in float32 (the subtraction is exact: small integers)."""
    scale = scale_view(params, codes.ndim, codes.shape)
    zero = zero_point_view(params, codes.ndim, codes.shape).to(torch.float32)
    return (codes.to(torch.float32) - zero) * scale


def fake_quant(x: torch.Tensor, params: UniformParams) -> torch.Tensor:
    """``dequantize(quantize(x))``: the value the references pass on (float32)."""
    return dequantize(quantize(x, params), params)


def repq_reference(
    x: torch.Tensor, delta: torch.Tensor | float, zero_point: torch.Tensor | float, bits: int
) -> torch.Tensor:
    """RepQ-ViT's ``UniformQuantizer.forward`` after calibration, operation by operation (float32).

    ``delta`` and ``zero_point`` broadcast against ``x`` (per channel: shape them accordingly).
    """
    x = x.to(torch.float32)
    delta = torch.as_tensor(delta, dtype=torch.float32)
    zero_point = torch.as_tensor(zero_point, dtype=torch.float32)
    x_int = torch.round(x / delta) + zero_point
    x_quant = torch.clamp(x_int, 0, 2**bits - 1)
    return (x_quant - zero_point) * delta


def adalog_reference(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | float = 0.0,
    bits: int = 8,
    symmetric: bool = False,
) -> torch.Tensor:
    """AdaLog's ``UniformQuantizer.forward`` (inference mode), operation by operation (float32).

    Asymmetric: ``clamp(round(x / s) + round(z), 0, 2**b - 1)``, ``x_hat = (q - round(z)) * s``.
    Symmetric: ``clamp(round(x / s), -2**(b-1), 2**(b-1) - 1) * s`` (``zero_point`` ignored).
    """
    x = x.to(torch.float32)
    scale = torch.as_tensor(scale, dtype=torch.float32)
    half = 2 ** (bits - 1)
    x_int = torch.round(x / scale)
    if symmetric:
        return x_int.clamp(-half, half - 1) * scale
    zero_point = torch.round(torch.as_tensor(zero_point, dtype=torch.float32))
    x_quant = (x_int + zero_point).clamp(0, 2 * half - 1)
    return (x_quant - zero_point) * scale
