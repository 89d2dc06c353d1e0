"""Requantizer verification plan: per-channel and per-tensor tables through one circuit.

For each design (a circuit: widths, lanes, table size) the plan loads several parameter
objects through ``cfg`` and sends rows of accumulators, comparing every code with
:func:`golden.intops.requantize`:

* every shift 0..62 (spread over the channels, or one job per shift for a per-tensor circuit),
  multipliers from 0 and 1 to ``2**mult_bits - 1``, biases including both extremes, zero points
  at both ends of the code range and in between, with and without bias;
* per-tensor parameters (``broadcast``) on per-channel circuits, and a table smaller than the
  circuit's;
* accumulators: both extremes of ``acc_bits`` (after the bias, which must keep ``acc + bias`` in
  range), exact rounding ties ``t * m = (2k + 1) * 2**(s-1)`` and their neighbours, negative
  values, values that land inside the code range, and uniform random ones;

then a reset in the middle of a stream (configuration reloaded by the replay) and a data-only job
across resets (the configuration survives).
"""

from __future__ import annotations

import numpy as np
import torch

from golden.intops import requantize
from golden.params import RequantParams
from golden.params.requant import REQUANT_MAX_SHIFT
from hw.registry import Design
from hw.requant import Requantizer

from ..jobs import InStream, Job, OutStream, config_stream

ROWS, QUICK_ROWS = 1500, 120


def structure(design: Design) -> Requantizer:
    """The design's circuit, built to read its structure (lanes, table size), never elaborated."""
    requantizer = design.build()
    # Introspection, not a forgotten design (the same silence as hw.pipeline.reject).
    requantizer._MustUse__silence = True
    return requantizer


def expected_codes(acc: np.ndarray, channel: np.ndarray, params: RequantParams) -> dict[str, np.ndarray]:
    """The golden codes of rows ``acc[n, lanes]`` whose lane 0 is ``channel[n]``."""
    acc = torch.from_numpy(np.asarray(acc, dtype=np.int64))
    if params.channels == 1:
        codes = requantize(acc, params)
    else:
        # Scatter each row into its channels of a full-width matrix (zeros elsewhere are valid
        # accumulators), requantize per channel along the last axis, gather the rows back.
        rows, lanes = acc.shape
        columns = torch.from_numpy(np.asarray(channel, dtype=np.int64))[:, None] + torch.arange(lanes)
        full = torch.zeros(rows, params.channels, dtype=torch.int64)
        full.scatter_(1, columns, acc)
        codes = requantize(full, params).gather(1, columns)
    return {"code": codes.numpy(), "channel": np.asarray(channel, dtype=np.int64)}


def random_params(
    rng: np.random.Generator,
    like: RequantParams,
    shifts: list[int],
    out_zero_point: int,
    with_bias: bool = True,
) -> RequantParams:
    """A table with the widths of ``like``, one channel per shift, multipliers and biases drawn
    from the edges (0, 1, the largest, both bias extremes) and at random."""
    top = (1 << like.mult_bits) - 1
    edges = [0, 1, top, 1 << (like.mult_bits - 1), top - 1, 3]
    multipliers = [
        edges[c]
        if c < len(edges) and len(shifts) > 8
        else int(rng.integers(1 << (like.mult_bits - 1), top + 1))
        for c in range(len(shifts))
    ]
    for c in range(len(shifts)):
        if c >= len(edges) and rng.random() < 0.3:
            multipliers[c] = int(rng.integers(0, top + 1))  # not normalised
    lo, hi = -(1 << (like.acc_bits - 1)), (1 << (like.acc_bits - 1)) - 1
    bias = [int(rng.integers(lo // 64, hi // 64)) for _ in shifts]
    if len(bias) > 2:
        bias[1], bias[2] = lo, hi
    return RequantParams(
        multiplier=tuple(multipliers),
        shift=tuple(shifts),
        bias=tuple(bias) if with_bias else (),
        out_bits=like.out_bits,
        out_signed=like.out_signed,
        out_zero_point=out_zero_point,
        acc_bits=like.acc_bits,
        mult_bits=like.mult_bits,
    )


def parameter_sets(requantizer: Requantizer, rng: np.random.Generator) -> dict[str, RequantParams]:
    """Parameter objects that fit ``requantizer``, by label (see the module docstring)."""
    like, lanes = requantizer.params, requantizer.lanes
    size = requantizer.rows * lanes
    zero_points = [like.qmin, like.qmax, (like.qmin + like.qmax) // 2]
    sets = {"design-params": like}
    every_shift = list(range(REQUANT_MAX_SHIFT + 1))
    if size > 1:
        # Spread every shift over whole rows of the table, as many tables as that takes.
        for part in range(-(-len(every_shift) // size)):
            shifts = every_shift[part * size : (part + 1) * size]
            shifts += [int(s) for s in rng.integers(0, REQUANT_MAX_SHIFT + 1, size - len(shifts))]
            zero_point = zero_points[part % len(zero_points)]
            sets[f"every-shift{part}-zp{zero_point}"] = random_params(rng, like, shifts, zero_point)
        shifts = [int(s) for s in rng.integers(0, 40, size)]
        sets["no-bias"] = random_params(rng, like, shifts, zero_points[1], with_bias=False)
        if size // lanes >= 2:
            half = (size // lanes // 2) * lanes
            sets[f"{half}-of-{size}-channels"] = random_params(rng, like, shifts[:half], zero_points[2])
        per_tensor_shifts = (0, 1, 17, 31, 46, REQUANT_MAX_SHIFT)
    else:
        per_tensor_shifts = every_shift
    for shift in per_tensor_shifts:
        zero_point = zero_points[shift % len(zero_points)]
        sets[f"per-tensor-s{shift}-zp{zero_point}"] = random_params(rng, like, [shift], zero_point)
    return sets


def _tie_residues(multiplier: int, shift: int) -> tuple[int, int] | None:
    """``(r, M)`` such that ``t * multiplier`` is an exact tie ``(2k+1) * 2**(shift-1)`` exactly
    when ``t = r (mod M)``; None when no tie exists (shift 0, multiplier 0, or too many twos)."""
    if shift == 0 or multiplier == 0:
        return None
    twos = (multiplier & -multiplier).bit_length() - 1
    if twos > shift - 1:
        return None
    modulus = 1 << (shift - twos)
    odd = multiplier >> twos
    return (1 << (shift - 1 - twos)) * pow(odd, -1, modulus) % modulus, modulus


def row_stimulus(
    rng: np.random.Generator, params: RequantParams, lanes: int, rows: int, channel_limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(acc[rows, lanes], channel[rows])`` for ``params`` (see the module docstring)."""
    per_tensor = params.channels == 1
    if per_tensor:
        # The channel index is ignored when broadcasting: send any, aligned or not.
        channel = rng.integers(0, channel_limit, rows)
    else:
        channel = rng.integers(0, params.channels // lanes, rows) * lanes
    lo, hi = -(1 << (params.acc_bits - 1)), (1 << (params.acc_bits - 1)) - 1
    acc = np.zeros((rows, lanes), dtype=np.int64)
    kinds = rng.choice(
        ["extreme", "tie", "in-range", "random", "small"], size=(rows, lanes), p=[0.1, 0.25, 0.35, 0.2, 0.1]
    )
    bias = params.bias or (0,) * params.channels
    for row in range(rows):
        for lane in range(lanes):
            c = 0 if per_tensor else int(channel[row]) + lane
            b, m, s = bias[c], params.multiplier[c], params.shift[c]
            t_lo, t_hi = max(lo, lo + b), min(hi, hi + b)
            kind = kinds[row, lane]
            t = int(rng.integers(t_lo, t_hi, endpoint=True))
            if kind == "extreme":
                t = int(rng.choice([t_lo, t_lo + 1, t_hi - 1, t_hi, 0, -1, 1]))
            elif kind == "tie" and (tie := _tie_residues(m, s)) is not None:
                residue, modulus = tie
                first, last = -((residue - t_lo) // modulus), (t_hi - residue) // modulus
                if first <= last:
                    t = (
                        residue
                        + int(rng.integers(first, last, endpoint=True)) * modulus
                        + int(rng.integers(-1, 2))
                    )
            elif kind == "in-range" and m:
                # Aim at a code inside (or just outside) the output range.
                target = int(rng.integers(params.qmin - 3, params.qmax + 4)) - params.out_zero_point
                t = round(target * 2.0**s / m) + int(rng.integers(-2, 3))
            elif kind == "small":
                t = int(rng.integers(-(1 << 12), 1 << 12))
            acc[row, lane] = min(max(t, t_lo), t_hi) - b
    return acc, channel.astype(np.int64)


def rows_job(
    name: str,
    requantizer: Requantizer,
    params: RequantParams,
    acc: np.ndarray,
    channel: np.ndarray,
    seed: int,
    load: bool = True,
    **options,
) -> Job:
    """Send the rows (after loading ``params`` through ``cfg`` if ``load``)."""
    inputs = [config_stream(requantizer.config_image(params))] if load else []
    inputs.append(InStream("i", {"acc": acc, "channel": channel}))
    outputs = [OutStream("o", expected_codes(acc, channel, params))]
    return Job(name, inputs, outputs, seed=seed, **options)


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    """Every parameter set that fits the circuit, then the two reset jobs (the data-only one
    relies on the configuration loaded before it)."""
    requantizer = structure(design)
    rng = np.random.default_rng(seed)
    sets = parameter_sets(requantizer, rng)
    channel_limit = 1 << requantizer.channel_bits
    plan = []
    for number, (label, params) in enumerate(sets.items()):
        rows = (QUICK_ROWS if quick else ROWS) // (
            8 if label.startswith("per-tensor") and len(sets) > 20 else 1
        )
        acc, channel = row_stimulus(rng, params, requantizer.lanes, rows, channel_limit)
        plan.append(rows_job(f"{design.name}/{label}", requantizer, params, acc, channel, seed + number))
    # The last set stays loaded: reset with a reload (the replay), then data only across resets.
    acc, channel = row_stimulus(rng, params, requantizer.lanes, 200, channel_limit)
    plan.append(
        rows_job(
            f"{design.name}/{label}/reset-midstream",
            requantizer,
            params,
            acc,
            channel,
            seed,
            reset_after_outputs=57,
        )
    )
    plan.append(
        rows_job(
            f"{design.name}/{label}/config-survives-reset",
            requantizer,
            params,
            acc,
            channel,
            seed,
            load=False,
            reset_after_outputs=91,
        )
    )
    return plan
