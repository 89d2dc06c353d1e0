"""A deliberately wrong hardware memory image, to prove the model run catches it and names the layer.

:func:`corrupt` flips one bit of one ``cfg`` word of an operator's jobs (a requantizer's
multiplier, a threshold, an AdaLog LUT entry) or, for a matmul, whose memory image is its weights,
one weight code; where the attention head core loads the same parameters, its image for that
block gets the same flip.
"""

from __future__ import annotations

import numpy as np

from golden.vitops import OpRecord
from hw.adalog_lut import lut_entry_layout
from hw.requant import requant_entry_layout
from hw.threshold_quant import ThresholdQuantizer

from .jobs import Job
from .model_hw import ModelHardware
from .model_plan import ModelPlan, OpRun

__all__ = ["corrupt", "flip_config_bit"]


def flip_config_bit(job: Job, bit: int, word: int = 0) -> None:
    """Flip ``bit`` of ``cfg`` word ``word`` of ``job`` (a deliberately wrong memory image)."""
    stream = next(s for s in job.inputs if s.port == "cfg")
    data = np.array(stream.values["data"], dtype=object)
    data[word] = int(data[word]) ^ (1 << bit)
    stream.values = {"addr": stream.values["addr"], "data": data}


def corrupt_bit(run: OpRun, hardware: ModelHardware, record: OpRecord) -> int:
    """The bit :func:`corrupt` flips in the first ``cfg`` word of ``run``'s job: a requantizer's
    multiplier MSB, a threshold's MSB, an AdaLog LUT entry's shift MSB."""
    if run.kind == "requant":
        unit = hardware.requant_unit(record.params["groups"][0].params)
        field = requant_entry_layout(unit.structure)["multiplier"]
        return field.offset + field.width - 1
    if run.kind == "quantizer":
        return ThresholdQuantizer.structure_of(record.params["quantizer"])[1].width - 1
    layout = lut_entry_layout(record.params["quantizer"].bits)
    return layout["shift"].offset + layout["shift"].width - 1


#: Operators whose parameters the head core also loads, and the core's configuration region.
_CORE_REGIONS = {
    "qk.requant": "score_requant",
    "av.requant": "av_requant",
    "softmax_quant": "quantizer",
    "av": "lut",
}


def _corrupt_core(plan: ModelPlan, records: dict[str, OpRecord], op: str) -> list[OpRun]:
    """The same deliberate error in the head core's image of that block (first head per image)."""
    prefix, _, operator = op.partition(".attn.")
    region = _CORE_REGIONS.get(operator)
    core_runs = [run for run in plan.runs if run.op == f"{prefix}.attn.head_core"]
    if region is None or not core_runs:
        return []
    from .checks.attention_core import inspected_core

    core = inspected_core(plan.hardware.core)
    record = records[op]
    if region.endswith("requant"):
        structure = (
            plan.hardware.core.score_requant if region == "score_requant" else plan.hardware.core.av_requant
        )
        field = requant_entry_layout(structure)["multiplier"]
        bit = field.offset + field.width - 1
    elif region == "quantizer":
        bit = ThresholdQuantizer.structure_of(record.params["quantizer"])[1].width - 1
    else:
        layout = lut_entry_layout(record.params["quantizer"].bits)
        bit = layout["shift"].offset + layout["shift"].width - 1
    changed, seen = [], set()
    for run in core_runs:
        if run.image in seen:
            continue
        addresses = list(next(s for s in run.job.inputs if s.port == "cfg").values["addr"])
        flip_config_bit(run.job, bit, addresses.index(core.region_base(region)))
        seen.add(run.image)
        changed.append(run)
    return changed


def corrupt(plan: ModelPlan, records: dict[str, OpRecord], op: str) -> list[OpRun]:
    """Deliberately wrong hardware memory image for operator ``op``: in the first job of each
    image, flip one bit of one ``cfg`` word (requant multiplier, threshold, LUT entry) or, for a
    matmul (whose memory image is its weights), the top bit of the first weight code. Where the
    head core loads the same parameters (score and A·V requantization, thresholds, LUT), its
    image for that block gets the same flip.

    Returns the runs changed; raises ``ValueError`` for an operator without a memory image.
    """
    runs = [run for run in plan.runs if run.op == op and run.kind != "head_core"]
    if not runs:
        known = sorted({run.op for run in plan.runs if run.kind != "head_core"})
        raise ValueError(
            f"--corrupt {op!r}: no simulated operator of that name; choose one of {', '.join(known)}"
        )
    changed, seen = [], set()
    for run in runs:
        if run.image in seen:
            continue
        has_config = any(stream.port == "cfg" for stream in run.job.inputs)
        if run.kind == "matmul":
            steps = run.job.inputs[0].values
            top = 1 << (plan.hardware.mac.b_bits - 1)
            lo, hi = plan.hardware.mac.b_range
            flipped = int(steps["b"][0, 0]) ^ top
            steps["b"] = steps["b"].copy()
            steps["b"][0, 0] = flipped if lo <= flipped <= hi else int(steps["b"][0, 0]) ^ (top >> 1)
        elif has_config:
            flip_config_bit(run.job, corrupt_bit(run, plan.hardware, records[op]))
        else:
            continue
        seen.add(run.image)
        changed.append(run)
    if not changed:
        raise ValueError(f"--corrupt {op!r}: its circuit has no run-time memory image (nothing to corrupt)")
    return changed + _corrupt_core(plan, records, op)
