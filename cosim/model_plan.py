"""From captured operator records to RTL jobs: every integer operator of a model, per image.

:func:`plan_model` walks the records of :func:`golden.vit.forward` (``capture=True``) in network
order and turns each operator with integer inputs into :class:`OpRun` s (jobs of at most
:data:`cosim.model_jobs.MAX_JOB_WORDS` words on one of the circuits of
:class:`cosim.model_hw.ModelHardware`), with the captured output as the expected value, the
analytical cycle count and the useful multiply-accumulates. Operators with float inputs or outputs
are listed as :class:`GoldenOnly` with the reason.

* ``matmul``: the MAC array, tiled by :func:`cosim.checks.mac_array.tile_matmul` (zero points per
  row of ``a`` and per column of ``b``, per head where they are);
* ``requant``: the requantizer of the output format: per-channel groups (qkv) as rows of
  ``lanes`` channels with their table loaded through ``cfg``, per-tensor ones broadcast, per-head
  ones one job per head;
* ``quantizer`` with a log quantizer: the BitLog2 quantizer, or the comparator bank loaded with
  the layer's thresholds;
* ``log_av``: for AdaLog codes first the LUT (codes to ``{mant, exp, zero}``), then the
  shift-accumulate (A·V, or fc2 as a log-input linear layer with ``v = Wᵀ``);
* every head of every block also through the attention head core (:mod:`cosim.model_heads`).

Each job runs without idle cycles or back-pressure, so its measured cycles must equal the
analytical count (a different count fails the check); the unit plans (``make sim --blocks``)
exercise every block under random idle cycles and back-pressure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from golden.bitlog2 import BitLog2Code
from golden.intops import requantize
from golden.params import AdaLogParams, BitLog2Params, RequantParams, UniformParams
from golden.vitops import OpRecord
from hw.adalog_lut import AdaLogLut
from hw.attention_core import REQUANT_LATENCY
from hw.threshold_quant import ThresholdQuantizer

from .checks.adalog_lut import expected_entries
from .checks.mac_array import TiledProduct, as_array, tile_matmul, tile_result
from .checks.shift_acc import tile_log_matmul
from .jobs import Job
from .model_heads import plan_heads
from .model_hw import ModelHardware, RequantUnit, one_channel, widened
from .model_jobs import HostMismatch, Piece, stream_pieces, tiled_pieces
from .payload import count

__all__ = ["OpRun", "GoldenOnly", "ModelPlan", "plan_model", "layer_of", "GOLDEN_ONLY_REASONS"]

#: Why an operator stays in the golden model at this stage (kind, or quantizer on a float input).
GOLDEN_ONLY_REASONS = {
    "softmax": "float softmax (exp, sum, division) of the score codes; its integer input (the "
    "score codes) and output grid (the quantizer's input) are checked by the neighbouring operators",
    "gelu": "float GELU of the dequantized fc1 output",
    "dequant": "float scaling of the accumulator (acc + bias) * s_in * s_w to the residual stream; "
    "the accumulator itself is checked by the matmul",
    "quantizer": "uniform quantizer of a float input (LayerNorm, GELU or image output)",
}


@dataclasses.dataclass
class OpRun:
    """One operator (or one part of it) of one image as one job on one circuit.

    ``order`` is the network position (record index, then part); ``useful_macs`` and ``cells``
    give the engine utilization ``useful_macs / (cells * cycles)`` (0 cells: not an engine).
    ``values`` counts the integers compared, padding excluded.
    """

    order: tuple
    op: str
    layer: str
    kind: str
    image: int
    part: str
    unit: str
    job: Job
    analytical_cycles: int
    useful_macs: int = 0
    cells: int = 0
    values: int = 0
    engines: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GoldenOnly:
    """An operator that stays in the golden model at this stage, and why."""

    op: str
    layer: str
    kind: str
    reason: str


@dataclasses.dataclass
class ModelPlan:
    """Every run (network order, then image), the golden-only operators, the operators left out
    by a selection, the circuits by design name, and notes for the report."""

    runs: list[OpRun]
    golden_only: list[GoldenOnly]
    filtered_out: list[str]
    hardware: ModelHardware
    designs: dict[str, Any]
    notes: list[str] = dataclasses.field(default_factory=list)


_SUFFIXES = (
    ".matmul",
    ".requant",
    ".dequant",
    ".input_quant",
    ".head_core",
    ".softmax_quant",
    ".softmax",
    ".gelu_quant",
    ".gelu",
    ".norm1_quant",
    ".norm2_quant",
)


def layer_of(op: str) -> str:
    """The layer an operator belongs to: its name without a trailing operator suffix
    (``blocks.0.attn.qkv.requant`` -> ``blocks.0.attn.qkv``, ``blocks.0.attn.softmax`` ->
    ``blocks.0.attn``)."""
    for suffix in _SUFFIXES:
        if op.endswith(suffix):
            return op[: -len(suffix)]
    return op


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def _image(value: Any, image: int, batched_ndim: int) -> Any:
    """Image ``image`` of a batched tensor (or a BitLog2Code); unbatched values pass through."""
    if isinstance(value, BitLog2Code):
        return BitLog2Code(*(_image(part, image, batched_ndim) for part in value))
    value = _tensor(value)
    return value[image] if value.dim() == batched_ndim else value


def _row_zero_points(zero_point: Any, operand_shape: Sequence[int], image: int) -> np.ndarray:
    """Per-row zero points ``(..., M)`` of a left operand ``(B, ..., M, K)``."""
    full = torch.broadcast_to(_tensor(zero_point), tuple(operand_shape))
    return full[image][..., :, 0].numpy()


def _column_zero_points(zero_point: Any, operand_shape: Sequence[int], image: int | None) -> np.ndarray:
    """Per-column zero points ``(..., N)`` of a right operand ``(B, ..., K, N)`` (or ``(K, N)``)."""
    full = torch.broadcast_to(_tensor(zero_point), tuple(operand_shape))
    if image is not None:
        full = full[image]
    return full[..., 0, :].numpy()


class _Planner:
    """Collects the runs, golden-only operators and circuits of :func:`plan_model`."""

    def __init__(self, hardware: ModelHardware, records: dict[str, OpRecord], images: int):
        self.hw, self.records, self.images = hardware, records, images
        self.runs: list[OpRun] = []
        self.golden_only: list[GoldenOnly] = []
        self.designs: dict[str, Any] = {}

    def add(
        self,
        design,
        order: tuple,
        op: str,
        kind: str,
        image: int,
        part: str,
        piece: Piece,
        engines: dict[str, tuple[int, int]] | None = None,
    ):
        """The run of one job; ``engines`` (head core) gives useful MACs and cells per engine."""
        self.designs.setdefault(design.name, design)
        label = " ".join(filter(None, (part, piece.label)))
        self.runs.append(
            OpRun(
                order,
                op,
                layer_of(op),
                kind,
                image,
                label,
                design.name,
                piece.job,
                analytical_cycles=piece.analytical_cycles,
                useful_macs=piece.useful_macs,
                cells=piece.cells,
                values=piece.values,
                engines=engines or {},
            )
        )

    def add_all(
        self, design, order: tuple, record: OpRecord, kind: str, image: int, part: str, pieces
    ) -> None:
        for number, piece in enumerate(pieces):
            self.add(design, (*order, number), record.name, kind, image, part, piece)

    # Matmuls and log-domain products (the engines) ----------------------------------------------

    def matmul(self, index: int, record: OpRecord, image: int) -> None:
        mac = self.hw.mac
        a_full, b_full, output = record.inputs["a"], record.inputs["b"], record.output
        a_zero = torch.broadcast_to(_tensor(record.inputs["a_zero_point"]), a_full.shape)
        if a_full.dim() == 2:  # the classifier: one row (the class token) per image
            a_full, a_zero, output = a_full[:, None], a_zero[:, None], output[:, None]
        batched = a_full.dim()
        za = _row_zero_points(a_zero, a_full.shape, image)
        b_image = image if b_full.dim() == batched else None
        zb = _column_zero_points(record.inputs["b_zero_point"], b_full.shape, b_image)
        product = tile_matmul(_image(a_full, image, batched), _image(b_full, image, batched), za, zb, mac)
        _same_as_record(record, product, _image(output, image, batched), mac.rows, mac.cols)
        pieces = tiled_pieces(f"{record.name}#{image}", product, mac.rows, mac.cols, mac.latency)
        self.add_all(self.hw.mac_design(), (index, 0), record, "matmul", image, "", pieces)

    def log_av(self, index: int, record: OpRecord, image: int) -> None:
        quantizer, av = record.params["quantizer"], record.params["log_av"]
        codes_full, v_full = record.inputs["codes"], record.inputs["v"]
        batched = (codes_full.k if isinstance(codes_full, BitLog2Code) else codes_full).dim()
        codes = _image(codes_full, image, batched)
        v_image = image if v_full.dim() == batched else None
        zv = _column_zero_points(record.inputs["v_zero_point"], v_full.shape, v_image)
        if isinstance(quantizer, AdaLogParams):
            # AdaLog codes pass the LUT first; the engine below takes what the LUT gives.
            flat = as_array(codes).reshape(-1)
            pieces = stream_pieces(
                f"{record.name}#{image}/lut",
                flat,
                expected_entries(flat, quantizer),
                latency=1,
                image=AdaLogLut.config_image(quantizer),
            )
            self.add_all(
                self.hw.lut_design(quantizer), (index, 0), record, "lut", image, "AdaLog LUT", pieces
            )
        params = self.hw.shift_acc(quantizer, av)
        product = tile_log_matmul(codes, _image(v_full, image, batched), zv, params, quantizer)
        _same_as_record(record, product, _image(record.output, image, batched), params.rows, params.cols)
        pieces = tiled_pieces(f"{record.name}#{image}", product, params.rows, params.cols, params.latency)
        design = self.hw.shift_acc_design(params)
        self.add_all(design, (index, 1), record, "log_av", image, "shift-accumulate", pieces)

    # Requantizations -------------------------------------------------------------------------------

    def requant(self, index: int, record: OpRecord, image: int) -> None:
        acc_full = record.inputs["acc"]
        acc = _image(acc_full, image, acc_full.dim())
        out = _image(record.output, image, acc_full.dim())
        axis = record.params["axis"] % acc_full.dim() - 1  # the axis within one image
        groups = record.params["groups"]
        number = 0
        for group in groups:
            unit = self.hw.requant_unit(group.params)
            params = widened(group.params, unit.structure.acc_bits)
            channels = acc.narrow(axis, group.start, group.stop - group.start)
            codes = out.narrow(axis, group.start, group.stop - group.start)
            if axis == acc.dim() - 1 and params.channels > 1:
                pieces = [("", params, channels, codes, True)]
            elif params.channels == 1:
                pieces = [("", params, channels, codes, False)]
            else:  # one entry per head, along a leading axis: one job per head
                pieces = [
                    (
                        f"head {h}",
                        one_channel(params, h),
                        channels.select(axis, h),
                        codes.select(axis, h),
                        False,
                    )
                    for h in range(params.channels)
                ]
            label = _group_label(record, group) if len(groups) > 1 else ""
            for name, piece_params, piece_acc, piece_codes, per_channel in pieces:
                part = " ".join(filter(None, (label, name)))
                jobs = _requant_pieces(
                    f"{record.name}#{image}/{part or 'all'}",
                    unit,
                    piece_params,
                    piece_acc,
                    piece_codes,
                    per_channel,
                )
                self.add_all(
                    self.hw.requant_design(unit), (index, number), record, "requant", image, part, jobs
                )
                number += 1

    # Log quantizers -----------------------------------------------------------------------------

    def quantizer(self, index: int, record: OpRecord, image: int) -> None:
        quantizer = record.params["quantizer"]
        batched = record.inputs["xi"].dim()
        xi = _image(record.inputs["xi"], image, batched).reshape(-1).numpy()
        output = _image(record.output, image, batched)
        if isinstance(quantizer, BitLog2Params):
            fields = {"k": output.k, **({"h": output.h} if quantizer.half else {}), "zero": output.zero}
            expected = {name: value.reshape(-1).numpy() for name, value in fields.items()}
            pieces = stream_pieces(f"{record.name}#{image}", xi, expected, latency=1)
        else:
            image_words = ThresholdQuantizer.config_image(quantizer)
            expected = output.reshape(-1).numpy()
            pieces = stream_pieces(f"{record.name}#{image}", xi, expected, latency=2, image=image_words)
        design = self.hw.quantizer_design(quantizer)
        self.add_all(design, (index, 0), record, "quantizer", image, "", pieces)

    # Dispatch --------------------------------------------------------------------------------------

    def record(self, index: int, record: OpRecord) -> None:
        kind = record.kind
        if kind in ("softmax", "gelu", "dequant") or (
            kind == "quantizer" and isinstance(record.params["quantizer"], UniformParams)
        ):
            reason = GOLDEN_ONLY_REASONS[kind]
            self.golden_only.append(GoldenOnly(record.name, layer_of(record.name), kind, reason))
            return
        handler = {
            "matmul": self.matmul,
            "requant": self.requant,
            "quantizer": self.quantizer,
            "log_av": self.log_av,
        }
        for image in range(self.images):
            handler[kind](index, record, image)


def _group_label(record: OpRecord, group: Any) -> str:
    """``q``, ``k``, ``v`` (with the head when per head) for qkv's groups, else the channel range."""
    if record.name.endswith("attn.qkv.requant"):
        total = record.inputs["acc"].shape[-1]
        which = "qkv"[group.start * 3 // total]
        if len(record.params["groups"]) > 3:  # per head: several groups per q, k or v
            return f"{which} head {(group.start % (total // 3)) // (group.stop - group.start)}"
        return which
    return f"channels {group.start}..{group.stop - 1}"


def _requant_pieces(
    name: str,
    unit: RequantUnit,
    params: RequantParams,
    acc: torch.Tensor,
    codes: torch.Tensor,
    per_channel: bool,
) -> list[Piece]:
    """Rows of ``lanes`` accumulators: channels across a row (per channel), or the values in order
    (broadcast; the last row padded with 0, whose code the golden requantization gives)."""
    lanes = unit.lanes
    if per_channel:
        flat_acc = acc.reshape(-1, params.channels)
        rows_acc = flat_acc.reshape(-1, lanes)
        rows_code = codes.reshape(-1, lanes)
        channel = np.tile(np.arange(0, params.channels, lanes), len(flat_acc))
    else:
        values = acc.reshape(-1)
        pad = (-len(values)) % lanes
        rows_acc = torch.cat([values, torch.zeros(pad, dtype=torch.int64)]).reshape(-1, lanes)
        padding = requantize(torch.zeros(pad, dtype=torch.int64), params)
        rows_code = torch.cat([codes.reshape(-1), padding]).reshape(-1, lanes)
        channel = np.zeros(len(rows_acc), dtype=np.int64)
    return stream_pieces(
        name,
        {"acc": rows_acc.numpy(), "channel": channel},
        {"code": rows_code.numpy(), "channel": channel},
        latency=REQUANT_LATENCY,
        image=unit.inspected().config_image(params),
        per_transfer=lanes,
        real=int(codes.numel()),
    )


def _same_as_record(
    record: OpRecord, product: TiledProduct, output: torch.Tensor, rows: int, cols: int
) -> None:
    expected = output.numpy()
    if not np.array_equal(product.rows, tile_result(expected.reshape(-1, *expected.shape[-2:]), rows, cols)):
        raise HostMismatch(f"{record.name}: the host's golden product differs from the captured record")


def plan_model(
    hardware: ModelHardware,
    records: dict[str, OpRecord],
    images: int,
    *,
    only: Sequence[str] | None = None,
    heads: bool = True,
) -> ModelPlan:
    """Every integer operator of ``records`` (``images`` images) as jobs (see the module docstring).

    ``only`` keeps operators whose name starts with one of the prefixes (the others are listed in
    ``filtered_out``); ``heads`` adds the attention head core runs.
    """
    planner = _Planner(hardware, records, images)
    filtered = []
    for index, record in enumerate(records.values()):
        if only and not any(record.name.startswith(prefix) for prefix in only):
            filtered.append(record.name)
            continue
        planner.record(index, record)
    notes = []
    if heads and hardware.core is not None:
        plan_heads(planner, records, images, only)
    elif heads:
        notes.append(f"attention head core not run: {hardware.core_skip_reason()}")
    planner.runs.sort(key=lambda run: (run.order, run.image))
    return ModelPlan(planner.runs, planner.golden_only, filtered, hardware, planner.designs, notes)


def words_per_port(runs: Sequence[OpRun]) -> dict[str, dict[str, int]]:
    """The largest job's word count per port, per circuit: the harness memory depths."""
    depths: dict[str, dict[str, int]] = {}
    for run in runs:
        ports = depths.setdefault(run.unit, {})
        for stream in run.job.inputs:
            ports[stream.port] = max(ports.get(stream.port, 0), count(stream.values))
        for stream in run.job.outputs:
            ports[stream.port] = max(ports.get(stream.port, 0), count(stream.expected))
    return depths
