"""Attention head core verification plan, and the host side of one head (reused by the model run).

:func:`head_job` turns one head's operands (Q, K, V codes, zero points, the two requantizations,
the post-softmax quantizer) into a job for :class:`hw.attention_core.AttentionCore`: the ``cfg``
image, the Q·Kᵀ k-steps (zero points left to the core), the probabilities on the quantizer's grid
with the V rows that join them, and the golden score codes and proj-input codes.

The softmax is the golden model's: the probabilities sent in are the golden softmax of the golden
score codes, preloaded with everything else, and the score codes the core sends out are compared
with exactly those codes, so the loop is closed whenever the scores match.

Padding: Q·Kᵀ tiles past ``N`` carry Q's and K's zero points (centred 0, so those scores are the
requantization of 0); A·V row blocks past ``N`` carry probability 0, whose codes, sums and
requantized codes the golden functions give like any other row.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from golden.intops import int_matmul, requantize
from golden.params import AdaLogParams, BitLog2Params, LogAVParams, RequantParams, Sqrt2Params, dyadic
from golden.vitops import run_op
from hw.attention_core import AttentionCore, AttentionCoreParams
from hw.registry import Design

from ..jobs import InStream, Job, OutStream, config_stream
from .mac_array import as_tensor, last_flags, tile_cols, tile_result, tile_rows

__all__ = ["HeadOperands", "HeadGolden", "head_golden", "head_job", "random_head", "jobs"]

LogQuantizer = BitLog2Params | Sqrt2Params | AdaLogParams


@dataclasses.dataclass
class HeadOperands:
    """One head: codes ``q``, ``k``, ``v`` ``[N, d]``, their zero points, the per-head (one-channel)
    requantizations, the score format and the calibrated quantizer with its A·V structure."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    q_zero_point: int
    k_zero_point: int
    v_zero_point: int
    score_requant: RequantParams
    av_requant: RequantParams
    frac_bits: int
    probs: LogQuantizer
    log_av: LogAVParams


@dataclasses.dataclass
class HeadGolden:
    """The golden values of one head (``[N, ...]``, int64) and the padded rows the core computes."""

    scores: np.ndarray
    xi: np.ndarray
    av: np.ndarray
    out: np.ndarray
    padded_xi: np.ndarray
    padded_out: np.ndarray


def _codes_matrix(value: Any) -> np.ndarray:
    return np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value, dtype=np.int64)


def head_golden(head: HeadOperands, rows: int) -> HeadGolden:
    """Every golden value of ``head`` (:mod:`golden.intops`, :func:`golden.vitops.run_op`), with the
    A·V rows padded to whole row blocks of ``rows``."""
    q, k, v = (as_tensor(_codes_matrix(x)) for x in (head.q, head.k, head.v))
    n = q.shape[0]
    acc = int_matmul(q, k.T, head.q_zero_point, head.k_zero_point, acc_bits=head.score_requant.acc_bits)
    scores = requantize(acc, head.score_requant)
    xi = run_op("softmax", {"scores": scores}, {"frac_bits": head.frac_bits, "quantizer": head.probs})
    padded_xi = torch.zeros((math.ceil(n / rows) * rows, n), dtype=torch.int64)
    padded_xi[:n] = xi
    codes = run_op("quantizer", {"xi": padded_xi}, {"quantizer": head.probs})
    inputs = {"codes": codes, "v": v, "v_zero_point": torch.tensor(head.v_zero_point)}
    padded_av = run_op("log_av", inputs, {"quantizer": head.probs, "log_av": head.log_av})
    padded_out = requantize(padded_av, head.av_requant)
    return HeadGolden(
        scores=scores.numpy(),
        xi=xi.numpy(),
        av=padded_av[:n].numpy(),
        out=padded_out[:n].numpy(),
        padded_xi=padded_xi.numpy(),
        padded_out=padded_out.numpy(),
    )


def _score_rows(golden: HeadGolden, head: HeadOperands, params: AttentionCoreParams) -> np.ndarray:
    """The core's ``scores`` transfers: tiles of the padded score matrix, padding = requant(0)."""
    n, rows, cols = len(golden.scores), params.rows, params.cols
    padded = np.zeros((math.ceil(n / rows) * rows, math.ceil(n / cols) * cols), dtype=np.int64)
    padded[:] = requantize(torch.zeros(1, dtype=torch.int64), head.score_requant).item()
    padded[:n, :n] = golden.scores
    return tile_result(padded[None], rows, cols)


def head_streams(head: HeadOperands, golden: HeadGolden, params: AttentionCoreParams) -> dict[str, Any]:
    """The input streams' values: ``qk`` k-steps, ``probs`` and the ``v`` rows."""
    q, k, v = (_codes_matrix(x) for x in (head.q, head.k, head.v))
    n, rows, cols = len(q), params.rows, params.cols
    row_blocks, key_blocks = math.ceil(n / rows), math.ceil(n / cols)
    qk = {
        "a": tile_rows(q[None], rows, key_blocks, pad=head.q_zero_point),
        "b": tile_cols(k.T[None], cols, row_blocks, pad=head.k_zero_point),
        "last": last_flags(row_blocks * key_blocks, params.head_dim),
    }
    # Row block, key j, row r: the R probabilities of key j leave the quantizer before V's row j.
    # L lanes per transfer: rows g*L .. g*L + L - 1 of key j.
    probs = (
        golden.padded_xi.reshape(row_blocks, rows, n).transpose(0, 2, 1).reshape(-1, params.quantizer_lanes)
    )
    v_rows = {
        "v": np.tile(v, (row_blocks, 1)),
        "last": np.tile(np.arange(n) == n - 1, row_blocks).astype(np.int64),
    }
    return {"qk": qk, "probs": probs, "v": v_rows}


def head_config(core: AttentionCore, head: HeadOperands) -> list[tuple[int, int]]:
    """The head's ``cfg`` words (zero points, both requantizations, thresholds and LUT)."""
    return core.config_image(
        q_zero_point=head.q_zero_point,
        k_zero_point=head.k_zero_point,
        v_zero_point=head.v_zero_point,
        score_requant=head.score_requant,
        av_requant=head.av_requant,
        probs=head.probs,
    )


def inspected_core(params: AttentionCoreParams) -> AttentionCore:
    """A core built to compute configuration images, never elaborated."""
    core = AttentionCore(params)
    core._MustUse__silence = True
    return core


def head_job(
    name: str,
    params: AttentionCoreParams,
    head: HeadOperands,
    *,
    seed: int,
    idle: float = 0.25,
    stall: float = 0.25,
    reset_after_outputs: int | None = None,
    timed: bool = False,
    golden: HeadGolden | None = None,
    image: list[tuple[int, int]] | None = None,
) -> Job:
    """A job playing one head through the core (``timed``: no idle cycles or back-pressure, and
    the measured cycles must equal ``len(cfg) + params.cycles(N)``).

    ``golden`` (default: :func:`head_golden`) and ``image`` (default: :func:`head_config`) may be
    given, e.g. golden values checked against captured records, or a deliberately wrong image.
    """
    golden = head_golden(head, params.rows) if golden is None else golden
    image = head_config(inspected_core(params), head) if image is None else image
    streams = head_streams(head, golden, params)
    if timed:
        idle = stall = 0.0
    n = len(golden.scores)
    return Job(
        name=name,
        inputs=[
            config_stream(image, idle_probability=idle),
            InStream("qk", streams["qk"], idle_probability=idle),
            InStream("probs", streams["probs"], idle_probability=idle),
            InStream("v", streams["v"], idle_probability=idle),
        ],
        outputs=[
            OutStream("scores", _score_rows(golden, head, params), stall_probability=stall),
            OutStream("o", golden.padded_out, stall_probability=stall),
        ],
        seed=seed,
        reset_after_outputs=reset_after_outputs,
        expected_cycles=len(image) + params.cycles(n) if timed else None,
        outputs_follow_inputs=False,
        timeout_cycles=20_000,
    )


def random_head(
    rng: np.random.Generator,
    params: AttentionCoreParams,
    tokens: int,
    probs: LogQuantizer | None = None,
    *,
    extreme: bool = False,
) -> HeadOperands:
    """A head with random codes and zero points (``extreme``: codes and zero points at the ends of
    their ranges), a score multiplier that keeps every score in range, an output multiplier fitted
    to the head's A·V, and the core's quantizer (or ``probs``, of the same structure)."""
    d = params.head_dim
    qk_lo, qk_hi = params.mac.a_range
    v_lo, v_hi = params.shift_acc.v_range
    if extreme:
        q = rng.choice([qk_lo, qk_hi], (tokens, d))
        k = rng.choice([qk_lo, qk_hi], (tokens, d))
        v = rng.choice([v_lo, v_hi], (tokens, d))
        zq, zk, zv = qk_hi, qk_lo, v_lo
    else:
        q, k = rng.integers(qk_lo, qk_hi + 1, (2, tokens, d))
        v = rng.integers(v_lo, v_hi + 1, (tokens, d))
        zq, zk, zv = (int(z) for z in rng.integers([qk_lo, qk_lo, v_lo], [qk_hi + 1, qk_hi + 1, v_hi + 1]))
    bound = d * (qk_hi - qk_lo) ** 2
    # The largest score stays inside the signed score codes (as vitplan.score_frac_bits ensures).
    score_real = float(rng.uniform(0.25, 0.95)) * ((1 << (params.score_bits - 1)) - 1) / bound
    multiplier, shift = dyadic(score_real)
    score_requant = dataclasses.replace(params.score_requant, multiplier=(multiplier,), shift=(shift,))
    probs = params.probs if probs is None else probs
    head = HeadOperands(q, k, v, zq, zk, zv, score_requant, params.av_requant, 10, probs, params.log_av)
    # Calibrate the output multiplier on the head itself: the largest |A·V| maps to half the codes.
    largest = max(1, int(np.abs(head_golden(head, 1).av).max()))
    out = params.av_requant
    multiplier, shift = dyadic((out.qmax - out.qmin) / 2 / largest)
    out_zero_point = int(rng.integers(out.qmin, out.qmax + 1))
    head.av_requant = dataclasses.replace(
        out, multiplier=(multiplier,), shift=(shift,), out_zero_point=out_zero_point
    )
    return head


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    """Random heads with idle cycles and back-pressure (the registered ``N``, a short sequence with
    padding in both engines, extremes), one timed head (cycles equal to the formula), and a reset
    in the middle of a head."""
    params: AttentionCoreParams = design.params
    rng = np.random.default_rng(seed)
    n = params.tokens
    short = max(1, params.rows - 1) if quick else params.rows + params.cols + 1
    plan = [
        head_job(f"{design.name}/random-head-n{n}", params, random_head(rng, params, n), seed=seed),
        head_job(f"{design.name}/padding-n{short}", params, random_head(rng, params, short), seed=seed + 1),
        head_job(
            f"{design.name}/extremes-n{short}",
            params,
            random_head(rng, params, short, extreme=True),
            seed=seed + 2,
        ),
        head_job(
            f"{design.name}/throughput-n{n}", params, random_head(rng, params, n), seed=seed + 3, timed=True
        ),
    ]
    plan.append(
        head_job(
            f"{design.name}/reset-midstream",
            params,
            random_head(rng, params, short),
            seed=seed + 4,
            reset_after_outputs=params.rows + 1,
        )
    )
    return plan
