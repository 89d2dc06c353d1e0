"""Derived parameters of the integer ViT datapath: requantization, log-domain A·V, folded biases.

Everything here follows from a :class:`~golden.quantmodel.QuantizedViTParams` by fixed rules
(golden/README.md, "Model datapath"); nothing is calibrated. :func:`derive_plan` computes it once
(:attr:`QuantizedViTParams.plan` caches it) and :meth:`IntegerPlan.tables` lists the integer
tables that the parameter file stores and checks on load, so the golden model and the hardware
provably use the same numbers.

Widths are worst cases, never data-dependent: a ``b``-bit code minus its zero point (both in the
code range) lies in ``[-(2**b - 1), 2**b - 1]``, so a ``K``-term zero-point matmul needs
``signed_bits(K * (2**ba - 1) * (2**bw - 1))`` bits, plus the folded bias where one is added.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch

from golden.intops import fold_bias
from golden.params import (
    AdaLogParams,
    BitLog2Params,
    LogAVParams,
    ParamError,
    RequantParams,
    Sqrt2Params,
    UniformParams,
    dyadic,
)

if TYPE_CHECKING:
    from golden.quantmodel import QuantizedViTParams, QuantLinear

__all__ = [
    "SCORE_BITS",
    "RequantGroup",
    "LinearPlan",
    "AttentionPlan",
    "BlockPlan",
    "IntegerPlan",
    "derive_plan",
    "signed_bits",
    "score_frac_bits",
]

#: Width of the signed attention-score codes between Q·Kᵀ and the softmax (ours).
SCORE_BITS = 16
_MIN_ACC_BITS = 8  # RequantParams' and LogAVParams' smallest accumulator
_LOG_FAMILIES = {BitLog2Params: "bitlog2", Sqrt2Params: "sqrt2", AdaLogParams: "adalog"}


def signed_bits(bound: int) -> int:
    """Bits of a two's complement integer holding every value in ``[-bound, bound]``."""
    return max(int(bound).bit_length() + 1, _MIN_ACC_BITS)


def _centered_max(bits: int) -> int:
    return (1 << bits) - 1


@dataclasses.dataclass(frozen=True)
class RequantGroup:
    """Channels ``[start, stop)`` of the requantized axis share one :class:`RequantParams` (and so
    one output zero point); its per-channel lists have ``stop - start`` entries, or 1."""

    start: int
    stop: int
    params: RequantParams

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop, "params": self.params.to_dict()}


@dataclasses.dataclass(frozen=True, eq=False)
class LinearPlan:
    """The integer form of one quantized Linear/Conv layer.

    ``acc = matmul(x codes, weight_t)`` (a zero-point matmul, or :func:`golden.intops.adalog_matmul`
    when ``log_av`` is set: fc2 after an AdaLog GELU quantizer); then either ``requant`` (qkv:
    straight to the Q, K, V codes, bias included) or ``(acc + bias_int) * scale`` in float (every
    other layer, whose output goes to float code: residual, GELU, logits).

    Attributes
    ----------
    weight_t : Tensor
        int64 ``[in, out]``: the weight codes transposed (the patch Conv2d flattened to
        ``[C*p*p, out]`` in ``(c, ky, kx)`` order).
    weight_zero_point : Tensor
        int64 ``[out]``.
    input_zero_point : int or None
        The uniform input's zero point (None for an AdaLog input).
    matmul_acc_bits : int
        Worst-case signed width of ``acc``.
    log_av : LogAVParams or None
        Structure of the log-input product (AdaLog fc2), else None.
    bias_int : Tensor
        int64 ``[out]``: :func:`golden.intops.fold_bias` of the float bias.
    acc_bits : int
        Worst-case signed width of ``acc + bias_int``.
    scale : Tensor
        float64 ``[out]``: the real value of one unit of ``acc + bias_int`` (``s_in * s_w[c]``, or
        ``acc_scale * s_w[c]`` for the log input).
    requant : tuple of RequantGroup
        Only for qkv: the groups along the output axis (q, k, v; per head if those are per head).
    """

    weight_t: torch.Tensor
    weight_zero_point: torch.Tensor
    input_zero_point: int | None
    matmul_acc_bits: int
    log_av: LogAVParams | None
    bias_int: torch.Tensor
    acc_bits: int
    scale: torch.Tensor
    requant: tuple[RequantGroup, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "matmul_acc_bits": self.matmul_acc_bits,
            "acc_bits": self.acc_bits,
            "log_av": None if self.log_av is None else self.log_av.to_dict(),
            "requant": [group.to_dict() for group in self.requant],
        }


@dataclasses.dataclass(frozen=True, eq=False)
class AttentionPlan:
    """The integer form of one attention: Q·Kᵀ, score requantization, A·V and its requantization.

    Attributes
    ----------
    qk_acc_bits : int
        Worst-case width of the Q·Kᵀ accumulator.
    score_frac_bits : int
        ``f``: score codes are signed :data:`SCORE_BITS`-bit with real value ``code * 2**-f``.
    score_requant : RequantParams
        Q·Kᵀ accumulator (``[B, H, N, N]``) to score codes, per head along axis 1 (one entry when
        Q and K are per tensor); ``head_dim**-0.5`` is folded into the multiplier.
    log_av : LogAVParams or None
        The log-domain A·V structure (None for uniform attention: a zero-point matmul).
    av_acc_bits : int
        Worst-case width of the A·V accumulator.
    av_requant : RequantParams
        A·V accumulator (``[B, H, N, d]``) straight to proj-input codes, per head along axis 1.
    """

    qk_acc_bits: int
    score_frac_bits: int
    score_requant: RequantParams
    log_av: LogAVParams | None
    av_acc_bits: int
    av_requant: RequantParams

    def to_dict(self) -> dict[str, Any]:
        return {
            "qk_acc_bits": self.qk_acc_bits,
            "score_bits": SCORE_BITS,
            "score_frac_bits": self.score_frac_bits,
            "score_requant": self.score_requant.to_dict(),
            "log_av": None if self.log_av is None else self.log_av.to_dict(),
            "av_acc_bits": self.av_acc_bits,
            "av_requant": self.av_requant.to_dict(),
        }


@dataclasses.dataclass(frozen=True, eq=False)
class BlockPlan:
    qkv: LinearPlan
    attn: AttentionPlan
    proj: LinearPlan
    fc1: LinearPlan
    fc2: LinearPlan


@dataclasses.dataclass(frozen=True, eq=False)
class IntegerPlan:
    """Derived parameters of the whole model; see :func:`derive_plan`."""

    patch_embed: LinearPlan
    blocks: tuple[BlockPlan, ...]
    head: LinearPlan

    def linears(self) -> list[tuple[str, LinearPlan]]:
        layers = [("patch_embed", self.patch_embed)]
        for i, b in enumerate(self.blocks):
            prefix = f"blocks.{i}"
            layers += [(f"{prefix}.attn.qkv", b.qkv), (f"{prefix}.attn.proj", b.proj)]
            layers += [(f"{prefix}.mlp.fc1", b.fc1), (f"{prefix}.mlp.fc2", b.fc2)]
        return [*layers, ("head", self.head)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready derived scalars and parameter objects (the parameter file's ``derived``)."""
        data: dict[str, Any] = {name: plan.to_dict() for name, plan in self.linears()}
        for i, block in enumerate(self.blocks):
            data[f"blocks.{i}.attn"] = block.attn.to_dict()
        return data

    def tables(self, params: QuantizedViTParams) -> dict[str, torch.Tensor]:
        """The integer tables hardware loads (and the parameter file stores and checks).

        Per layer: ``weight_zero_point``, ``bias_int``, qkv's ``requant.multiplier``/``shift``;
        per attention: the score and A·V requantization multipliers/shifts, the quantizer's
        comparator thresholds, AdaLog LUTs and the log A·V ``mant``/``exp`` table; AdaLog fc2
        inputs: thresholds and LUTs.
        """
        tables: dict[str, torch.Tensor] = {}
        int32 = torch.int32
        quant_layers = dict(params.linears())
        for name, plan in self.linears():
            tables[f"{name}.weight_zero_point"] = plan.weight_zero_point.to(int32)
            tables[f"{name}.bias_int"] = plan.bias_int.clone()
            if plan.requant:
                tables[f"{name}.requant.multiplier"] = _concat(plan.requant, "multiplier")
                tables[f"{name}.requant.shift"] = _concat(plan.requant, "shift")
            quantizer = quant_layers[name].input
            if isinstance(quantizer, AdaLogParams):
                tables.update(_quantizer_tables(f"{name}.input", quantizer))
                tables.update(_log_av_tables(f"{name}.log_av", plan.log_av, quantizer))
        for i, (block, quant) in enumerate(zip(self.blocks, params.blocks)):
            prefix = f"blocks.{i}.attn"
            for what, requant in (("qk", block.attn.score_requant), ("av", block.attn.av_requant)):
                tables[f"{prefix}.{what}.requant.multiplier"] = torch.tensor(requant.multiplier, dtype=int32)
                tables[f"{prefix}.{what}.requant.shift"] = torch.tensor(requant.shift, dtype=int32)
            tables.update(_quantizer_tables(f"{prefix}.probs", quant.attn.probs))
            if block.attn.log_av is not None and block.attn.log_av.family != "bitlog2":
                tables.update(_log_av_tables(f"{prefix}.av", block.attn.log_av, quant.attn.probs))
        return tables


def _concat(groups: tuple[RequantGroup, ...], field: str) -> torch.Tensor:
    values: list[int] = []
    for group in groups:
        entries = getattr(group.params, field)
        values += list(entries) * (group.stop - group.start if len(entries) == 1 else 1)
    return torch.tensor(values, dtype=torch.int32)


def _quantizer_tables(prefix: str, quantizer: Any) -> dict[str, torch.Tensor]:
    if isinstance(quantizer, Sqrt2Params):
        return {f"{prefix}.thresholds": torch.tensor(quantizer.thresholds, dtype=torch.int32)}
    if isinstance(quantizer, AdaLogParams):
        return {
            f"{prefix}.thresholds": torch.tensor(quantizer.thresholds, dtype=torch.int32),
            f"{prefix}.lut_e": torch.tensor(quantizer.lut_e, dtype=torch.int32),
            f"{prefix}.lut_m": torch.tensor(quantizer.lut_m, dtype=torch.int32),
        }
    return {}


def _log_av_tables(prefix: str, log_av: LogAVParams, quantizer: Any) -> dict[str, torch.Tensor]:
    mant, exp = log_av.table(quantizer)
    return {
        f"{prefix}.mant": torch.tensor(mant, dtype=torch.int32),
        f"{prefix}.exp": torch.tensor(exp, dtype=torch.int32),
    }


def _weight_scale(layer: QuantLinear) -> torch.Tensor:
    return torch.tensor(layer.weight.scale, dtype=torch.float64)


def _linear_plan(layer: QuantLinear, requant_groups: Any = None) -> LinearPlan:
    codes = layer.weight_codes.to(torch.int64)
    out_features = codes.shape[0]
    weight_t = codes.reshape(out_features, -1).t().contiguous()
    fan_in = weight_t.shape[0]
    weight_bound = _centered_max(layer.weight.bits)
    w_scale = _weight_scale(layer)
    quantizer = layer.input
    if isinstance(quantizer, AdaLogParams):
        probe = LogAVParams.default("adalog")
        matmul_acc_bits = max(probe.required_acc_bits(quantizer, fan_in, weight_bound), _MIN_ACC_BITS)
        log_av = LogAVParams.default("adalog", acc_bits=matmul_acc_bits)
        unit = log_av.acc_scale(quantizer)
        matmul_bound = fan_in * log_av.term_bound(quantizer, weight_bound)
        input_zero_point = None
    else:
        log_av = None
        unit = quantizer.scale[0]
        matmul_bound = fan_in * _centered_max(quantizer.bits) * weight_bound
        matmul_acc_bits = signed_bits(matmul_bound)
        input_zero_point = quantizer.zero_point[0]
    bias_int = fold_bias(layer.bias, unit, w_scale)
    # The same float64 product fold_bias divides by: one unit of acc + bias_int.
    scale = torch.as_tensor(unit, dtype=torch.float64) * w_scale
    acc_bits = signed_bits(matmul_bound + int(bias_int.abs().max()))
    plan = LinearPlan(
        weight_t=weight_t,
        weight_zero_point=torch.tensor(layer.weight.zero_point, dtype=torch.int64),
        input_zero_point=input_zero_point,
        matmul_acc_bits=matmul_acc_bits,
        log_av=log_av,
        bias_int=bias_int,
        acc_bits=acc_bits,
        scale=scale,
    )
    if requant_groups is None:
        return plan
    groups = tuple(
        RequantGroup(
            start,
            stop,
            RequantParams.from_real(
                [float(scale[c]) / out_scale for c in range(start, stop)],
                bias=[int(b) for b in bias_int[start:stop]],
                out_bits=out_bits,
                out_zero_point=out_zero_point,
                acc_bits=_requant_acc_bits(acc_bits, "qkv"),
            ),
        )
        for start, stop, out_scale, out_zero_point, out_bits in requant_groups
    )
    return dataclasses.replace(plan, requant=groups)


def _requant_acc_bits(bits: int, what: str) -> int:
    if bits > 47:
        raise ParamError(f"{what} accumulator needs {bits} bits; requantization supports at most 47")
    return bits


def _per_head(params: UniformParams, heads: int) -> list[tuple[float, int]]:
    """(scale, zero point) of each head (the same for every head when per tensor)."""
    if params.channels == 1:
        return [(params.scale[0], params.zero_point[0])] * heads
    return list(zip(params.scale, params.zero_point))


def _qkv_groups(block: Any, embed_dim: int, heads: int) -> list[tuple[int, int, float, int, int]]:
    groups = []
    head_dim = embed_dim // heads
    for which, params in enumerate((block.attn.q, block.attn.k, block.attn.v)):
        base = which * embed_dim
        if params.channels == 1:
            groups.append((base, base + embed_dim, params.scale[0], params.zero_point[0], params.bits))
            continue
        for h, (scale, zero) in enumerate(_per_head(params, heads)):
            groups.append((base + h * head_dim, base + (h + 1) * head_dim, scale, zero, params.bits))
    return groups


def _max_centered(params: UniformParams) -> list[int]:
    """Per head: the largest ``|code - z|`` a code in range can give (``max(z, qmax - z)``)."""
    return [max(z - params.qmin, params.qmax - z) for z in params.zero_point]


def score_frac_bits(q: UniformParams, k: UniformParams, head_dim: int, attn_scale: float, heads: int) -> int:
    """The largest ``f`` for which no score can saturate :data:`SCORE_BITS` signed bits.

    For each head the largest ``|acc|`` is ``T = head_dim * max|q - z_q| * max|k - z_k|``; with the
    dyadic multiplier ``m * 2**-s`` of ``s_q * s_k * attn_scale * 2**f`` the requantized extremes
    ``(+-T * m + 2**(s-1)) >> s`` must fit. Checked exactly in integers, so the score
    requantization never clamps.
    """
    lo, hi = -(1 << (SCORE_BITS - 1)), (1 << (SCORE_BITS - 1)) - 1
    reals, bounds = [], []
    cq, ck = _max_centered(q), _max_centered(k)
    for h in range(heads):
        (sq, _), (sk, _) = _per_head(q, heads)[h], _per_head(k, heads)[h]
        reals.append(sq * sk * attn_scale)
        bounds.append(head_dim * cq[h if len(cq) > 1 else 0] * ck[h if len(ck) > 1 else 0])
    frac = min(math.floor(math.log2(hi / (b * r))) for b, r in zip(bounds, reals))

    def fits(f: int) -> bool:
        for bound, real in zip(bounds, reals):
            m, s = dyadic(math.ldexp(real, f))
            half = (1 << s) >> 1
            if ((bound * m + half) >> s) > hi or ((-bound * m + half) >> s) < lo:
                return False
        return True

    while not fits(frac):
        frac -= 1
    return frac


def _attention_plan(params: QuantizedViTParams, block: Any) -> AttentionPlan:
    s = params.structure
    heads, head_dim, tokens = s.num_heads, s.head_dim, s.num_tokens
    q, k, v, probs = block.attn.q, block.attn.k, block.attn.v, block.attn.probs
    qk_acc_bits = signed_bits(head_dim * _centered_max(q.bits) * _centered_max(k.bits))
    frac = score_frac_bits(q, k, head_dim, s.attn_scale, heads)
    per_head_qk = q.channels > 1 or k.channels > 1
    score_reals = [
        math.ldexp(sq * sk * s.attn_scale, frac)
        for (sq, _), (sk, _) in zip(_per_head(q, heads), _per_head(k, heads))
    ]
    score_requant = RequantParams.from_real(
        score_reals if per_head_qk else score_reals[:1],
        out_bits=SCORE_BITS,
        out_signed=True,
        acc_bits=_requant_acc_bits(qk_acc_bits, "Q·Kᵀ"),
    )
    v_bound = _centered_max(v.bits)
    if isinstance(probs, UniformParams):
        log_av = None
        unit = probs.scale[0]
        av_acc_bits = signed_bits(tokens * _centered_max(probs.bits) * v_bound)
    else:
        family = _LOG_FAMILIES[type(probs)]
        probe = LogAVParams.default(family)
        av_acc_bits = max(probe.required_acc_bits(probs, tokens, v_bound), _MIN_ACC_BITS)
        log_av = LogAVParams.default(family, acc_bits=av_acc_bits)
        unit = log_av.acc_scale(probs)
    proj_in = block.proj.input
    av_reals = [unit * sv / proj_in.scale[0] for sv, _ in _per_head(v, heads)]
    av_requant = RequantParams.from_real(
        av_reals if v.channels > 1 else av_reals[:1],
        out_bits=proj_in.bits,
        out_zero_point=proj_in.zero_point[0],
        acc_bits=_requant_acc_bits(av_acc_bits, "A·V"),
    )
    return AttentionPlan(qk_acc_bits, frac, score_requant, log_av, av_acc_bits, av_requant)


def derive_plan(params: QuantizedViTParams) -> IntegerPlan:
    """Derive every integer-datapath parameter of ``params`` (see golden/README.md)."""
    s = params.structure
    blocks = []
    for block in params.blocks:
        blocks.append(
            BlockPlan(
                qkv=_linear_plan(block.qkv, _qkv_groups(block, s.embed_dim, s.num_heads)),
                attn=_attention_plan(params, block),
                proj=_linear_plan(block.proj),
                fc1=_linear_plan(block.fc1),
                fc2=_linear_plan(block.fc2),
            )
        )
    return IntegerPlan(
        patch_embed=_linear_plan(params.patch_embed), blocks=tuple(blocks), head=_linear_plan(params.head)
    )
