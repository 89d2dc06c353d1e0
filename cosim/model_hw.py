"""The hardware a model run simulates: one Verilator build per block shape, sized for every layer.

:class:`ModelHardware` reads a :class:`golden.quantmodel.QuantizedViTParams` and chooses, for
each kind of operator, one circuit that every layer of the model fits, so that run-time
configuration (``cfg``) and the operand streams carry the per-layer values:

* one MAC array (``R x C``) for every zero-point matmul: operand widths and signedness merged
  over all layers (the 8-bit patch-embedding input included), the widest accumulator;
* one requantizer per output format (unsigned activation codes; signed score codes): the widest
  accumulator, a table for the largest per-channel group, ``lanes`` dividing every group;
* one quantizer per log-quantizer structure (BitLog2 scheme; comparator bank of ``bits`` and
  input grid), one AdaLog LUT per width;
* one shift-accumulate (``R x C``) per log code family, V widths and accumulators merged over
  attention and (AdaLog GELU) fc2;
* one attention head core for the log families.

Design names spell out the structure (``model_mac_4x4_u8u4_acc17``), so the Verilator cache keeps
one build per shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from golden.params import (
    AdaLogParams,
    BitLog2Params,
    LogAVParams,
    MacArrayParams,
    ParamError,
    RequantParams,
    ShiftAccParams,
    Sqrt2Params,
    UniformParams,
)
from golden.quantmodel import QuantizedViTParams
from golden.vitplan import SCORE_BITS
from hw.adalog_lut import AdaLogLut
from hw.attention_core import AttentionCore, AttentionCoreParams
from hw.bitlog2 import BitLog2Quantizer
from hw.mac_array import MacArray
from hw.registry import Design
from hw.requant import MAX_LANES, Requantizer
from hw.shift_acc import ShiftAccumulate
from hw.threshold_quant import ThresholdQuantizer

__all__ = ["ModelHardware", "merge_formats", "widened", "one_channel"]

LogQuantizer = BitLog2Params | Sqrt2Params | AdaLogParams


def merge_formats(formats: Iterable[tuple[int, bool]]) -> tuple[int, bool]:
    """One operand field that holds every ``(bits, signed)`` code format given.

    Raises
    ------
    ParamError
        If the merged field would exceed the MAC array's 8 bits.
    """
    formats = list(formats)
    signed = any(is_signed for _, is_signed in formats)
    # An unsigned b-bit code needs b + 1 bits in a signed field.
    bits = max(bits + (signed and not is_signed) for bits, is_signed in formats)
    if bits > 8:
        raise ParamError(
            f"operand formats {sorted(set(formats))} need a {bits}-bit field; the MAC array has 8"
        )
    return bits, signed


def widened(params: RequantParams, acc_bits: int) -> RequantParams:
    """``params`` on a circuit with a wider accumulator (the same arithmetic while sums fit)."""
    return dataclasses.replace(params, acc_bits=acc_bits)


def one_channel(params: RequantParams, channel: int) -> RequantParams:
    """The one-channel (per-tensor) object of ``params``' entry ``channel`` (or ``params`` itself)."""
    if params.channels == 1:
        return params
    return dataclasses.replace(
        params,
        multiplier=(params.multiplier[channel],),
        shift=(params.shift[channel],),
        bias=(params.bias[channel],) if params.bias else (),
    )


def _format(params: UniformParams) -> tuple[int, bool]:
    return params.bits, params.signed


def _largest_power_of_two_dividing(limit: int, sizes: Iterable[int]) -> int:
    lanes = 1
    while lanes * 2 <= limit and all(size % (lanes * 2) == 0 for size in sizes):
        lanes *= 2
    return lanes


@dataclasses.dataclass(frozen=True)
class RequantUnit:
    """One requantizer build: its widths, lanes and table size."""

    structure: RequantParams
    lanes: int
    channels: int

    @property
    def name(self) -> str:
        p = self.structure
        out = f"{'s' if p.out_signed else 'u'}{p.out_bits}"
        return f"model_requant_{out}_acc{p.acc_bits}_l{self.lanes}_c{self.channels}"

    def requantizer(self) -> Requantizer:
        return Requantizer(self.structure, lanes=self.lanes, channels=self.channels)

    def inspected(self) -> Requantizer:
        """The circuit, built to compute memory images (never elaborated)."""
        requantizer = self.requantizer()
        requantizer._MustUse__silence = True
        return requantizer


class ModelHardware:
    """The circuits of a model run (see the module docstring).

    Parameters
    ----------
    model : QuantizedViTParams
        The quantized model; its plan gives every width.
    rows, cols : int
        ``R x C`` of the MAC array and the shift-accumulate (``C`` a power of two: requantizer
        lanes follow it), and of the head core's engines.
    """

    def __init__(self, model: QuantizedViTParams, rows: int, cols: int):
        if cols & (cols - 1) or not 1 <= cols <= MAX_LANES:
            raise ParamError(f"array columns must be a power of two up to {MAX_LANES}, not {cols!r}")
        self.model, self.rows, self.cols = model, rows, cols
        plan = model.plan
        linears = dict(model.linears())
        a_formats, b_formats, acc = [], [], []
        for name, layer_plan in plan.linears():
            layer = linears[name]
            b_formats.append(_format(layer.weight))
            if layer_plan.log_av is None:
                a_formats.append(_format(layer.input))
                acc.append(layer_plan.matmul_acc_bits)
        for block, block_plan in zip(model.blocks, plan.blocks):
            a_formats += [_format(block.attn.q)]
            b_formats += [_format(block.attn.k)]
            acc.append(block_plan.attn.qk_acc_bits)
            if isinstance(block.attn.probs, UniformParams):
                a_formats.append(_format(block.attn.probs))
                b_formats.append(_format(block.attn.v))
                acc.append(block_plan.attn.av_acc_bits)
        (a_bits, a_signed), (b_bits, b_signed) = merge_formats(a_formats), merge_formats(b_formats)
        product_bits = a_bits + b_bits + 1
        self.mac = MacArrayParams(rows, cols, a_bits, a_signed, b_bits, b_signed, max([*acc, product_bits]))
        self.requants = self._requant_units()
        self.shift_accs = self._shift_acc_units()
        self.core = self._core_params()

    # Requantizers ---------------------------------------------------------------------------

    def requant_groups(self) -> list[tuple[RequantParams, bool]]:
        """Every requantization of the model with whether its channels run along rows of lanes
        (qkv, per channel) or are heads (per tensor or per head)."""
        groups = []
        for block in self.model.plan.blocks:
            groups += [(group.params, True) for group in block.qkv.requant]
            groups += [(block.attn.score_requant, False), (block.attn.av_requant, False)]
        return groups

    def _requant_units(self) -> dict[tuple[int, bool], RequantUnit]:
        formats: dict[tuple[int, bool], list[tuple[RequantParams, bool]]] = {}
        for params, along_rows in self.requant_groups():
            formats.setdefault((params.out_bits, params.out_signed), []).append((params, along_rows))
        units = {}
        for key, members in formats.items():
            per_channel = [p.channels for p, along_rows in members if along_rows and p.channels > 1]
            lanes = _largest_power_of_two_dividing(self.cols, per_channel)
            channels = max([*per_channel, 1])
            channels = -(-channels // lanes) * lanes if channels > 1 else 1
            mult_bits = {p.mult_bits for p, _ in members}
            if len(mult_bits) != 1:
                raise ParamError(f"requantizations of format {key} mix multiplier widths {sorted(mult_bits)}")
            acc_bits = max(p.acc_bits for p, _ in members)
            structure = widened(members[0][0], acc_bits)
            units[key] = RequantUnit(one_channel(structure, 0), lanes, channels)
        return units

    def requant_unit(self, params: RequantParams) -> RequantUnit:
        return self.requants[(params.out_bits, params.out_signed)]

    # Log quantizers, LUTs, shift-accumulates ------------------------------------------------------

    def log_quantizers(self) -> list[LogQuantizer]:
        """Every log quantizer of the model (attention probabilities, AdaLog post-GELU)."""
        found = []
        for block in self.model.blocks:
            for quantizer in (block.attn.probs, block.fc2.input):
                if isinstance(quantizer, (BitLog2Params, Sqrt2Params, AdaLogParams)):
                    found.append(quantizer)
        return found

    def _shift_acc_units(self) -> dict[tuple, ShiftAccParams]:
        uses: dict[tuple, list[tuple[LogQuantizer, LogAVParams, tuple[int, bool]]]] = {}
        for block, block_plan in zip(self.model.blocks, self.model.plan.blocks):
            if block_plan.attn.log_av is not None:
                use = (block.attn.probs, block_plan.attn.log_av, _format(block.attn.v))
                uses.setdefault(self.family_key(block.attn.probs, block_plan.attn.log_av), []).append(use)
            if block_plan.fc2.log_av is not None:
                use = (block.fc2.input, block_plan.fc2.log_av, _format(block.fc2.weight))
                uses.setdefault(self.family_key(block.fc2.input, block_plan.fc2.log_av), []).append(use)
        units = {}
        for key, members in uses.items():
            quantizer, av, _ = members[0]
            v_bits, v_signed = merge_formats(fmt for _, _, fmt in members)
            widest = dataclasses.replace(av, acc_bits=max(a.acc_bits for _, a, _ in members))
            units[key] = ShiftAccParams.for_quantizer(
                quantizer, widest, rows=self.rows, cols=self.cols, v_bits=v_bits, v_signed=v_signed
            )
        return units

    @staticmethod
    def family_key(quantizer: LogQuantizer, av: LogAVParams) -> tuple:
        """What a shift-accumulate build depends on: family, scheme or bits, ``F`` and ``P``."""
        detail = quantizer.scheme if isinstance(quantizer, BitLog2Params) else quantizer.bits
        return (av.family, detail, av.frac_bits, av.mant_bits)

    def shift_acc(self, quantizer: LogQuantizer, av: LogAVParams) -> ShiftAccParams:
        return self.shift_accs[self.family_key(quantizer, av)]

    # The head core ----------------------------------------------------------------------------------

    def _core_params(self) -> AttentionCoreParams | None:
        model, plan = self.model, self.model.plan
        probs = [block.attn.probs for block in model.blocks]
        if not all(isinstance(p, (BitLog2Params, Sqrt2Params, AdaLogParams)) for p in probs):
            return None
        s = model.structure
        attn_plans = [block.attn for block in plan.blocks]
        qk_bits, qk_signed = merge_formats(_format(q) for b in model.blocks for q in (b.attn.q, b.attn.k))
        v_bits, v_signed = merge_formats(_format(b.attn.v) for b in model.blocks)
        proj = model.blocks[0].proj.input
        av = dataclasses.replace(attn_plans[0].log_av, acc_bits=max(a.log_av.acc_bits for a in attn_plans))
        return AttentionCoreParams(
            head_dim=s.head_dim,
            tokens=s.num_tokens,
            rows=self.rows,
            cols=self.cols,
            qk_bits=qk_bits,
            qk_signed=qk_signed,
            v_bits=v_bits,
            v_signed=v_signed,
            qk_acc_bits=max(a.qk_acc_bits for a in attn_plans),
            score_bits=SCORE_BITS,
            probs=probs[0],
            log_av=av,
            out_bits=proj.bits,
            out_signed=proj.signed,
        )

    def core_skip_reason(self) -> str | None:
        """Why the model has no head core run, or None."""
        if self.core is not None:
            return None
        return "uniform attention: the probabilities are quantized from floats (golden-only at this stage)"

    # Designs ----------------------------------------------------------------------------------------

    def mac_design(self) -> Design:
        p = self.mac
        kind = "".join(
            f"{'s' if signed else 'u'}{bits}"
            for bits, signed in ((p.a_bits, p.a_signed), (p.b_bits, p.b_signed))
        )
        name = f"model_mac_{p.rows}x{p.cols}_{kind}_acc{p.acc_bits}"
        return Design(name, "mac_array", p, lambda: MacArray(p))

    def requant_design(self, unit: RequantUnit) -> Design:
        return Design(unit.name, "requant", unit.structure, unit.requantizer)

    @staticmethod
    def quantizer_design(quantizer: LogQuantizer) -> Design:
        if isinstance(quantizer, BitLog2Params):
            params = BitLog2Params(quantizer.scheme)
            return Design(
                f"model_bitlog2_{quantizer.scheme}", "bitlog2", params, lambda: BitLog2Quantizer(params)
            )
        bits, shape = ThresholdQuantizer.structure_of(quantizer)
        name = f"model_thresholdq_{'s' if shape.signed else 'u'}{shape.width}_b{bits}"
        return Design(name, "threshold_quant", quantizer, lambda: ThresholdQuantizer(quantizer))

    @staticmethod
    def lut_design(quantizer: AdaLogParams) -> Design:
        return Design(
            f"model_adalog_lut_b{quantizer.bits}", "adalog_lut", quantizer, lambda: AdaLogLut(quantizer)
        )

    @staticmethod
    def shift_acc_design(params: ShiftAccParams) -> Design:
        code = params.scheme if params.family == "bitlog2" else f"{params.family}_b{params.bits}"
        v = f"{'s' if params.v_signed else 'u'}{params.v_bits}"
        name = f"model_shiftacc_{code}_{params.rows}x{params.cols}_{v}_acc{params.acc_bits}"
        return Design(name, "shift_acc", params, lambda: ShiftAccumulate(params))

    def core_design(self) -> Design:
        p = self.core
        family = (
            p.probs.scheme if isinstance(p.probs, BitLog2Params) else f"{p.log_av.family}_b{p.probs.bits}"
        )
        name = f"model_attention_core_{family}_d{p.head_dim}_{p.rows}x{p.cols}"
        return Design(name, "attention_core", p, lambda: AttentionCore(p))
