"""Every head of every block through the attention head core (:mod:`hw.attention_core`).

For block ``i``, head ``h`` and each image, the operands come from the captured records: Q, K and
V from ``attn.qkv.requant`` (split as :func:`golden.vitops.split_qkv`), the zero points from
``attn.qk.matmul`` and ``attn.av``, the requantizations from ``attn.qk.requant`` and
``attn.av.requant`` (the head's entry when per head), the quantizer and its A·V structure from
``attn.softmax_quant`` and ``attn.av``. The host recomputes the head with the golden functions
(:func:`cosim.checks.attention_core.head_golden`) and requires every intermediate (scores,
probability grid, A·V accumulator, output codes) to equal the records before it becomes the
job's expectation, so the core is checked against the captured tensors themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from golden.vitops import OpRecord, split_qkv
from hw.attention_core import AttentionCore, AttentionCoreParams

from .checks.attention_core import (
    HeadGolden,
    HeadOperands,
    head_config,
    head_golden,
    head_job,
    inspected_core,
)
from .model_hw import one_channel, widened
from .model_jobs import HostMismatch, Piece

__all__ = ["plan_heads", "head_operands"]


def _zero_point(value: Any, shape: Sequence[int], image: int, head: int) -> int:
    return int(torch.broadcast_to(torch.as_tensor(value), tuple(shape))[image, head].reshape(-1)[0])


def head_operands(
    records: dict[str, OpRecord], prefix: str, image: int, head: int, core: AttentionCoreParams
) -> HeadOperands:
    """Head ``head`` of image ``image`` of the attention ``prefix`` (``blocks.{i}.attn``)."""
    qk = records[f"{prefix}.qk.matmul"]
    av = records[f"{prefix}.av"]
    heads = qk.inputs["a"].shape[1]
    q, k, v = split_qkv(records[f"{prefix}.qkv.requant"].output[image : image + 1], heads)
    score_params = records[f"{prefix}.qk.requant"].params["groups"][0].params
    av_params = records[f"{prefix}.av.requant"].params["groups"][0].params
    return HeadOperands(
        q=q[0, head].numpy(),
        k=k[0, head].numpy(),
        v=v[0, head].numpy(),
        q_zero_point=_zero_point(qk.inputs["a_zero_point"], qk.inputs["a"].shape, image, head),
        k_zero_point=_zero_point(qk.inputs["b_zero_point"], qk.inputs["b"].shape, image, head),
        v_zero_point=_zero_point(av.inputs["v_zero_point"], av.inputs["v"].shape, image, head),
        score_requant=widened(one_channel(score_params, head), core.qk_acc_bits),
        av_requant=widened(one_channel(av_params, head), core.log_av.acc_bits),
        frac_bits=records[f"{prefix}.softmax"].params["frac_bits"],
        probs=records[f"{prefix}.softmax_quant"].params["quantizer"],
        log_av=av.params["log_av"],
    )


def _check_against_records(
    golden: HeadGolden, records: dict[str, OpRecord], prefix: str, image: int, head: int
) -> None:
    """Every intermediate of the host's head equals the captured one (else a testbench bug)."""
    pairs = {
        "qk.requant": golden.scores,
        "softmax": golden.xi,
        "av": golden.av,
        "av.requant": golden.out,
    }
    for name, value in pairs.items():
        captured = records[f"{prefix}.{name}"].output[image, head].numpy()
        if not np.array_equal(value, captured):
            raise HostMismatch(f"{prefix}.{name} head {head}: the host's golden head differs from the record")


def plan_heads(planner, records: dict[str, OpRecord], images: int, only: Sequence[str] | None) -> None:
    """Add one head-core run per block, head and image to ``planner`` (a ``model_plan._Planner``)."""
    core_params = planner.hw.core
    design = planner.hw.core_design()
    core: AttentionCore = inspected_core(core_params)
    names = list(records)
    blocks = sorted({name.split(".")[1] for name in names if name.startswith("blocks.")}, key=int)
    for block in blocks:
        prefix = f"blocks.{block}.attn"
        op = f"{prefix}.head_core"
        if only and not any(op.startswith(p) for p in only):
            continue
        anchor = records[f"{prefix}.av.requant"]
        index = names.index(anchor.name)
        heads = records[f"{prefix}.qk.matmul"].inputs["a"].shape[1]
        for image in range(images):
            for head in range(heads):
                operands = head_operands(records, prefix, image, head, core_params)
                golden = head_golden(operands, core_params.rows)
                _check_against_records(golden, records, prefix, image, head)
                job = head_job(
                    f"{op}#{image}/head{head}",
                    core_params,
                    operands,
                    seed=0,
                    timed=True,
                    golden=golden,
                    image=head_config(core, operands),
                )
                n, d = golden.out.shape
                macs = n * n * d  # Q·Kᵀ, and A·V, each
                piece = Piece(job, job.expected_cycles, values=n * n + n * d, useful_macs=2 * macs)
                engines = {
                    "Q·Kᵀ MAC array": (macs, core_params.rows * core_params.cols),
                    "A·V shift-accumulate": (macs, core_params.rows * core_params.head_dim),
                }
                planner.add(
                    design,
                    (index, 1 + head, 0),
                    op,
                    "head_core",
                    image,
                    f"head {head}",
                    piece,
                    engines=engines,
                )
