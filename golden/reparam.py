"""Reparameterizations that move quantizer parameters into neighbouring layers.

* :func:`repq_layernorm_reparam`: RepQ-ViT's post-LayerNorm scale reparameterization, which turns
  a per-channel input quantizer of ``qkv``/``fc1`` into a per-tensor one by folding the channel
  scales into LayerNorm's affine and the next Linear's weights. **Our deviation:** the per-tensor
  zero point is ``round(mean z_c)`` (half to even), not RepQ's fractional ``mean z_c``, because
  hardware needs an integer zero point. With an integer target zero point the reparameterized
  per-tensor quantizer reproduces the original per-channel codes exactly in real arithmetic
  (``round(y'/Δ̄) + z̄ = round(y/Δ_c) + z_c`` for every channel), whereas RepQ's fractional ``z̄``
  shifts every channel's rounding by ``z̄ - round(z̄)``; set ``integer_zero_point=False`` for RepQ's
  exact behaviour.
* :func:`adalog_gelu_bias_reparam`: AdaLog's fc2 bias update that absorbs the post-GELU shift, so
  the quantizer returns ``x_hat`` of ``x + shift`` without subtracting the shift.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["LayerNormReparam", "repq_layernorm_reparam", "adalog_gelu_bias_reparam"]


class LayerNormReparam(NamedTuple):
    """Result of :func:`repq_layernorm_reparam` (new tensors; the inputs are not modified)."""

    ln_weight: torch.Tensor
    ln_bias: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    delta: torch.Tensor  # 0-d: the per-tensor scale mean(delta_c)
    zero_point: torch.Tensor  # 0-d: round(mean(z_c)) (or the fractional mean)


def repq_layernorm_reparam(
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    act_delta: torch.Tensor,
    act_zero_point: torch.Tensor,
    integer_zero_point: bool = True,
) -> LayerNormReparam:
    """Fold per-channel input quantization ``(delta_c, z_c)`` into LayerNorm and the next Linear.

    RepQ-ViT's operations, in its order (dtype of the inputs, float32 in the reference)::

        act_min = -z_c * delta_c;  target_delta = mean(delta_c);  target_z = mean(z_c)
        target_z = round(target_z)                      # ours (integer_zero_point=True)
        target_min = -target_z * target_delta
        r = delta_c / target_delta;  b = act_min / r - target_min
        ln_weight / r, ln_bias / r - b;  weight * r (per input column);  bias + weight_new @ b

    Parameters
    ----------
    ln_weight, ln_bias : Tensor, shape (C,)
        LayerNorm affine ``gamma``, ``beta``.
    weight : Tensor, shape (out, C)
        The following Linear's weight; ``bias`` its bias (shape (out,)) or ``None``.
    act_delta, act_zero_point : Tensor
        Per-channel scale and zero point of the Linear's input quantizer (C elements each).
    integer_zero_point : bool
        Round the per-tensor zero point (ours, default) or keep RepQ's fractional mean.
    """
    act_delta = act_delta.reshape(-1)
    act_zero_point = act_zero_point.reshape(-1)
    act_min = -act_zero_point * act_delta
    target_delta = torch.mean(act_delta)
    target_zero_point = torch.mean(act_zero_point)
    if integer_zero_point:
        target_zero_point = torch.round(target_zero_point)
    target_min = -target_zero_point * target_delta
    r = act_delta / target_delta
    b = act_min / r - target_min
    new_weight = weight * r
    folded = torch.mm(new_weight, b.reshape(-1, 1)).reshape(-1)
    new_bias = folded if bias is None else bias + folded
    return LayerNormReparam(
        ln_weight=ln_weight / r,
        ln_bias=ln_bias / r - b,
        weight=new_weight,
        bias=new_bias,
        delta=target_delta,
        zero_point=target_zero_point,
    )


def adalog_gelu_bias_reparam(bias: torch.Tensor, weight_q: torch.Tensor, shift: float) -> torch.Tensor:
    """AdaLog's ``reparam_bias``: ``bias + (-shift) * sum_in weight_q`` as the reference computes it,
    ``bias + full((1, in), -shift) @ weight_q.T`` (float32 matmul; the summation order of a float
    matmul is the BLAS library's, so only this expression, not its last bit, is the reference).

    ``weight_q`` is fc2's fake-quantized weight (out, in); ``shift`` the quantizer's float32 shift.
    """
    x = torch.full((1, weight_q.shape[1]), -shift, dtype=weight_q.dtype)
    return bias + (x @ weight_q.transpose(0, 1)).reshape(-1)
