"""AdaLog's FPCS (fast progressive combining search) as layer-level searches on tensors.

Every search takes the full-precision input(s) and output of one module, as AdaLog's calibrator
caches them, and returns the chosen quantizer parameters. Two implementations run behind the same
functions, selected by :attr:`SearchContext.fast <calib.fpcs_core.SearchContext>`:

* straightforward: every candidate scored on its own with the objective's plain expression;
* fast: all candidates at once from exact integer Grams, sorted prefix sums and cached products,
  near-ties re-scored with the straightforward expression. Both choose the same parameters
  (``tests/calib/test_fpcs_equality.py``, ``tests/calib/test_fpcs_model.py``).

Searches (AdaLog ``quant_layers``, ``configs/4bit.py``: ``eq_n = 128``, ``search_round = 3``,
``steps = 6``, ``fpcs = True``):

* :func:`search_linear` — ``AsymmetricallyBatchingQuantLinear``: weight FPCS on the weight MSE,
  input FPCS on the input MSE, then 3 rounds of (weight, input) FPCS on the output MSE.
* :func:`search_post_layernorm_linear` — ``AsymmetricallyChannelWiseBatchingQuantLinear``: input
  FPCS per channel, the LayerNorm reparameterization with the rounded mean zero point, then
  :func:`search_linear` on the reparameterized layer.
* :func:`search_gelu_fc2` — ``PostGeluLogBasedBatchingQuantLinear``: weight FPCS on the weight MSE,
  then 3 rounds of (AdaLog base and scale search, weight FPCS on the output MSE); finally the fc2
  bias absorbs the shift (:func:`golden.reparam.adalog_gelu_bias_reparam`).
* :func:`search_query_key` — ``AsymmetricallyBatchingQuantMatMul``: per-head ``q``, ``k``; both
  start at grid candidate ``-2``; 3 rounds of (``q`` FPCS, ``k`` FPCS) on the ``q @ k^T`` MSE.
* :func:`search_attention_value` — ``PostSoftmaxAsymmetricallyBatchingQuantMatMul``: ``V`` starts
  at candidate ``-2``; 3 rounds of (every base q on the ``A @ V`` MSE, ``V`` FPCS).
* :func:`search_patch_embedding` — ``AsymmetricallyBatchingQuantConv2d`` with an 8-bit input (left
  unquantized, as the reference does): one weight FPCS on the output MSE from candidate ``-2``.

What is scored (ours, see ``calib/fpcs_exact.py``). Codes come from the golden quantizers' float32
arithmetic; the objective is evaluated on their exact dequantized values ((c - z) * s, or the AdaLog
LUT level times the scale) in float64, reduced as the reference reduces it (mean over outputs and
tokens, sum over images). The reference scores in float32 on a GPU: in its last refinement steps the
candidates' objectives differ by 1e-8..1e-6 relative, the size of float32 rounding noise, so its
choices there are platform noise that no CPU run reproduces; reproducing even our own float32
noise would force the straightforward expression on nearly every late candidate. In float64 both
implementations resolve those differences, and candidates within ``FpcsConfig.band`` (1e-9) of a
neighbour are re-scored with the straightforward expression. Ties of equal scores go to the lower
candidate index (``torch.topk``'s tie order is unspecified).

Fast-path shortcut: a round whose searched inputs equal the previous round's reproduces the
previous round exactly (the searches are deterministic), so the fast implementation stops there.
Both implementations keep the post-GELU objective of a round whose weight choice is unchanged (the
fast one then reuses its scored candidates).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from calib.adalog_calib import (
    AttentionBaseProblem,
    GeluQuantizerProblem,
    gelu_initial_scale,
    gelu_scale_range,
    search_attention_base,
    search_gelu_quantizer,
)
from calib.fpcs_core import FpcsConfig, SearchContext
from calib.fpcs_exact import adalog_exact, uniform_exact, uniform_integers
from calib.fpcs_grid import (
    activation_grid,
    channel_activation_grid,
    conv_weight_grid,
    operand_grid,
    weight_grid,
)
from calib.fpcs_operands import OperandProblem
from calib.fpcs_search import search_uniform
from calib.fpcs_sorted import SortedColumns
from calib.fpcs_uniform import (
    ActivationOutputProblem,
    ActivationSelfProblem,
    ChannelActivationSelfProblem,
    WeightOutputProblem,
    WeightSelfProblem,
)
from calib.pipeline import register_method
from golden.params import ADALOG_GELU_SHIFT, ADALOG_R
from golden.reparam import LayerNormReparam, adalog_gelu_bias_reparam, repq_layernorm_reparam
from golden.uniform import adalog_reference

__all__ = [
    "FpcsConfig",
    "SearchContext",
    "UniformChoice",
    "LinearChoice",
    "PostLayerNormChoice",
    "GeluFc2Choice",
    "QueryKeyChoice",
    "AttentionValueChoice",
    "search_linear",
    "search_post_layernorm_linear",
    "search_gelu_fc2",
    "search_query_key",
    "search_attention_value",
    "search_patch_embedding",
    "calibrate_fpcs",
]


@dataclasses.dataclass(frozen=True)
class UniformChoice:
    """A chosen asymmetric uniform quantizer: float32 scales and integer-valued float32 zero
    points, one per group (output channel, head, input channel) or one per tensor."""

    scale: torch.Tensor
    zero_point: torch.Tensor

    def same_as(self, other: UniformChoice | None) -> bool:
        return (
            other is not None
            and torch.equal(self.scale, other.scale)
            and torch.equal(self.zero_point, other.zero_point)
        )

    def _views(self, ndim: int, axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = [1] * ndim
        if axis is not None:
            shape[axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def fake_quant(self, x: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
        """The golden float32 ``x_hat`` of ``x`` (AdaLog's asymmetric form), groups along ``axis``
        (None: per tensor)."""
        return adalog_reference(x, *self._views(x.ndim, axis), bits)

    def codes(self, x: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
        """``k = code - z`` (float32 small integers) of ``x``: ``x_hat = k * s`` exactly."""
        return uniform_integers(x.to(torch.float32), *self._views(x.ndim, axis), bits)

    def exact(self, x: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
        """The exact dequantized value ``k * s`` (float64)."""
        return uniform_exact(x, *self._views(x.ndim, axis), bits)


@dataclasses.dataclass(frozen=True)
class LinearChoice:
    """Per-output-channel weight quantizer and per-tensor input quantizer of a Linear layer."""

    weight: UniformChoice
    input: UniformChoice


@dataclasses.dataclass(frozen=True)
class PostLayerNormChoice:
    """The per-channel input quantizer, the reparameterized LayerNorm and Linear (new tensors),
    and the searches of the reparameterized Linear."""

    channel_input: UniformChoice
    reparam: LayerNormReparam
    linear: LinearChoice


@dataclasses.dataclass(frozen=True)
class GeluFc2Choice:
    """fc2 after GELU: weight quantizer, AdaLog base ``q`` and scale of its input, and the bias
    with the shift folded in (the quantizer then returns ``x_hat`` without subtracting it)."""

    weight: UniformChoice
    q: int
    scale: float
    bias: torch.Tensor


@dataclasses.dataclass(frozen=True)
class QueryKeyChoice:
    """Per-head quantizers of ``q`` and ``k`` (the ``k^T`` operand, same values)."""

    query: UniformChoice
    key: UniformChoice


@dataclasses.dataclass(frozen=True)
class AttentionValueChoice:
    """AdaLog base ``q`` of the attention probabilities (scale 1) and per-head ``V`` quantizer."""

    q: int
    value: UniformChoice


def _uniform(pair: tuple[torch.Tensor, torch.Tensor]) -> UniformChoice:
    return UniformChoice(pair[0].clone(), pair[1].clone())


def search_linear(
    x: torch.Tensor,
    raw_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    weight_bits: int,
    input_bits: int,
    context: SearchContext,
    stage: str = "linear",
) -> LinearChoice:
    """FPCS of a Linear layer: ``x`` (images, tokens..., in) and ``raw_out`` full precision."""
    config, band = context.config, context.config.band
    w_grid, a_grid = (
        weight_grid(weight, weight_bits, config.eq_n),
        activation_grid(x, input_bits, config.eq_n),
    )
    with context.stage(f"{stage}.weight"):
        w = _uniform(search_uniform(WeightSelfProblem(weight, weight_bits, band), w_grid, context))
    # One sorted copy of the input serves the input searches of every round (fast path only).
    sorted_x = SortedColumns(x.detach().to(torch.float32).reshape(1, -1)) if context.fast else None
    with context.stage(f"{stage}.input"):
        problem = ActivationSelfProblem(x, input_bits, band, sorted_x)
        a = _uniform(search_uniform(problem, a_grid, context))
    previous_weight: UniformChoice | None = None
    for _ in range(config.rounds):
        previous = a
        with context.stage(f"{stage}.weight"):
            codes = a.codes(x, input_bits, None)
            x_hat = codes.double() * float(a.scale[0])
            problem = WeightOutputProblem(
                x_hat,
                raw_out,
                weight,
                bias,
                weight_bits,
                band,
                input_codes=codes,
                input_scale=float(a.scale[0]),
            )
            w = _uniform(search_uniform(problem, w_grid, context))
        if context.fast and w.same_as(previous_weight):
            break  # the input search would repeat the previous round's: a fixed point
        previous_weight = w
        with context.stage(f"{stage}.input"):
            w_hat = w.exact(weight, weight_bits, 0)
            problem = ActivationOutputProblem(x, raw_out, w_hat, bias, input_bits, band, sorted_x)
            a = _uniform(search_uniform(problem, a_grid, context))
        if context.fast and a.same_as(previous):
            break
    return LinearChoice(w, a)


def _reparam_input(x: torch.Tensor, channel: UniformChoice, reparam: LayerNormReparam) -> torch.Tensor:
    """The LayerNorm output after the reparameterization, ``x / r - b``, from the cached input, with
    ``r`` and ``b`` computed by the same operations as :func:`golden.reparam.repq_layernorm_reparam`."""
    act_min = -channel.zero_point * channel.scale
    r = channel.scale / reparam.delta
    b = act_min / r - (-reparam.zero_point * reparam.delta)
    return x / r - b


def search_post_layernorm_linear(
    x: torch.Tensor,
    raw_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    weight_bits: int,
    input_bits: int,
    context: SearchContext,
    stage: str = "post_ln_linear",
) -> PostLayerNormChoice:
    """FPCS of ``qkv`` / ``fc1``: per-channel input search, reparameterization, Linear search."""
    config = context.config
    with context.stage(f"{stage}.channel_input"):
        grid = channel_activation_grid(x, input_bits, config.eq_n)
        problem = ChannelActivationSelfProblem(x, input_bits, config.band)
        channel = _uniform(search_uniform(problem, grid, context))
    reparam = repq_layernorm_reparam(
        ln_weight, ln_bias, weight, bias, channel.scale, channel.zero_point, integer_zero_point=True
    )
    x_reparam = _reparam_input(x, channel, reparam)
    linear = search_linear(
        x_reparam, raw_out, reparam.weight, reparam.bias, weight_bits, input_bits, context, stage
    )
    return PostLayerNormChoice(channel, reparam, linear)


def search_gelu_fc2(
    x: torch.Tensor,
    raw_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    weight_bits: int,
    input_bits: int,
    context: SearchContext,
    stage: str = "gelu_fc2",
) -> GeluFc2Choice:
    """FPCS of fc2 with AdaLog's post-GELU quantizer (shift 0.16997...)."""
    config, band = context.config, context.config.band
    w_grid = weight_grid(weight, weight_bits, config.eq_n)
    with context.stage(f"{stage}.weight"):
        w = _uniform(search_uniform(WeightSelfProblem(weight, weight_bits, band), w_grid, context))
    scale_range = gelu_scale_range(x)
    scale = gelu_initial_scale(scale_range, config.eq_n)
    shift = torch.tensor([ADALOG_GELU_SHIFT], dtype=torch.float32)
    q, previous_input = ADALOG_R, None
    input_problem, problem_weight = None, None
    for _ in range(config.rounds):
        previous = (w, scale)
        with context.stage(f"{stage}.input"):
            if input_problem is None or not w.same_as(problem_weight):
                # A new weight choice, a new objective (an unchanged one keeps its scored candidates).
                w_hat, w_codes = w.exact(weight, weight_bits, 0), w.codes(weight, weight_bits, 0)
                input_problem = GeluQuantizerProblem(
                    x, raw_out, w_hat, bias, input_bits, band, config.band_float32, w_codes, w.scale
                )
                problem_weight = w
            q, scale = search_gelu_quantizer(input_problem, scale_range, scale, context)
        if context.fast and previous_input is not None and previous_input == (q, float(scale[0])):
            break  # the weight search would repeat the previous round's: a fixed point
        previous_input = (q, float(scale[0]))
        with context.stage(f"{stage}.weight"):
            x_hat = adalog_exact(x, q, scale, shift, input_bits, reparameterized=False)
            problem = WeightOutputProblem(x_hat, raw_out, weight, bias, weight_bits, band)
            w = _uniform(search_uniform(problem, w_grid, context))
        if context.fast and w.same_as(previous[0]) and torch.equal(scale, previous[1]):
            break
    new_bias = adalog_gelu_bias_reparam(bias, w.fake_quant(weight, weight_bits, 0), ADALOG_GELU_SHIFT)
    return GeluFc2Choice(w, q, float(scale[0]), new_bias)


def _operand(choice: UniformChoice, x: torch.Tensor, bits: int) -> dict[str, torch.Tensor]:
    """The quantized fixed operand of a per-head search: exact values, codes and head scales."""
    codes = choice.codes(x, bits, 1)
    return {"other_hat": choice.exact(x, bits, 1), "other_codes": codes, "other_scale": choice.scale}


def _fold_heads(x: torch.Tensor, per_head: bool) -> torch.Tensor:
    """(B, H, ...) as is (one group per head) or as (B*H, 1, ...) (one group: a per-tensor quantizer,
    the reference's ``head_channel_wise=False``; its score differs from the reference's only by the
    constant factor H)."""
    return x if per_head else x.reshape(-1, 1, *x.shape[2:])


def search_query_key(
    query: torch.Tensor,
    key: torch.Tensor,
    raw_out: torch.Tensor,
    bits: int,
    context: SearchContext,
    per_head: bool = True,
    stage: str = "query_key",
) -> QueryKeyChoice:
    """FPCS of ``q @ k^T`` (before the softmax scale): ``query``, ``key`` (B, H, T, d)."""
    config = context.config
    query, raw_out = _fold_heads(query, per_head), _fold_heads(raw_out, per_head)
    key_t = _fold_heads(key, per_head).transpose(-1, -2)
    q_grid, k_grid = operand_grid(query, bits, config.eq_n), operand_grid(key_t, bits, config.eq_n)
    q_choice, k_choice = _uniform(q_grid.pick(-2)), _uniform(k_grid.pick(-2))
    previous_query: UniformChoice | None = None
    for _ in range(config.rounds):
        previous = k_choice
        with context.stage(stage):
            fixed = _operand(k_choice, key_t, bits)
            problem = OperandProblem(
                query, raw_out=raw_out, side="left", bits=bits, band=config.band, **fixed
            )
            q_choice = _uniform(search_uniform(problem, q_grid, context))
            if context.fast and q_choice.same_as(previous_query):
                break  # the key search would repeat the previous round's: a fixed point
            previous_query = q_choice
            fixed = _operand(q_choice, query, bits)
            problem = OperandProblem(
                key_t, raw_out=raw_out, side="right", bits=bits, band=config.band, **fixed
            )
            k_choice = _uniform(search_uniform(problem, k_grid, context))
        if context.fast and k_choice.same_as(previous):
            break
    return QueryKeyChoice(q_choice, k_choice)


def search_attention_value(
    attention: torch.Tensor,
    value: torch.Tensor,
    raw_out: torch.Tensor,
    attention_bits: int,
    value_bits: int,
    context: SearchContext,
    per_head: bool = True,
    stage: str = "attention_value",
) -> AttentionValueChoice:
    """FPCS of ``A @ V`` with AdaLog's post-Softmax quantizer: ``attention`` (B, H, T, T)."""
    config = context.config
    attention, value, raw_out = (_fold_heads(t, per_head) for t in (attention, value, raw_out))
    v_grid = operand_grid(value, value_bits, config.eq_n)
    v_choice = _uniform(v_grid.pick(-2))
    q, previous_base = ADALOG_R, None
    for _ in range(config.rounds):
        previous = v_choice
        with context.stage(f"{stage}.base"):
            v_hat = v_choice.exact(value, value_bits, 1)
            problem = AttentionBaseProblem(
                attention, v_hat, raw_out, attention_bits, config.band, config.band_float32
            )
            q = search_attention_base(problem, context)
        if context.fast and q == previous_base:
            break  # the V search would repeat the previous round's: a fixed point
        previous_base = q
        with context.stage(f"{stage}.value"):
            a_hat = adalog_exact(attention, q, torch.ones(1), torch.zeros(1), attention_bits)
            problem = OperandProblem(
                value, a_hat, raw_out, "right", value_bits, config.band, config.band_float32
            )
            v_choice = _uniform(search_uniform(problem, v_grid, context))
        if context.fast and v_choice.same_as(previous):
            break
    return AttentionValueChoice(q, v_choice)


def search_patch_embedding(
    patches: torch.Tensor,
    raw_out: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    weight_bits: int,
    context: SearchContext,
    stage: str = "patch_embed",
) -> UniformChoice:
    """Weight FPCS of the patch-embedding convolution on unfolded ``patches`` (images, positions,
    in*kh*kw) with full-precision input, ``raw_out`` (images, positions, out)."""
    flat = weight.reshape(weight.shape[0], -1)
    with context.stage(stage):
        grid = conv_weight_grid(flat, weight_bits, context.config.eq_n)
        problem = WeightOutputProblem(patches.double(), raw_out, flat, bias, weight_bits, context.config.band)
        return _uniform(search_uniform(problem, grid, context))


def calibrate_fpcs(context: Any) -> Any:
    """The ``fpcs`` method of :mod:`calib.pipeline` (:func:`calib.fpcs_model.calibrate_model`, fast
    implementation)."""
    from calib.fpcs_model import calibrate_model

    return calibrate_model(context)


register_method("fpcs", calibrate_fpcs)
