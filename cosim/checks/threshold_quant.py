"""Threshold quantizer verification plan: many calibrated parameter sets through one circuit.

Each design's circuit depends only on (bits, input format); the plan loads every parameter set
of that format through ``cfg`` and sends, per set,

* 16-bit grids: every input value (2**16), in random order;
* wider grids (the 24-bit attention grid has 2**24 inputs): every threshold and its two
  neighbours, both ends of the range, and 100,000 random values;

then a reset in the middle of a stream (configuration reloaded, as the job machinery replays
the whole job) and a job that sends data only, across resets, which proves that the
configuration survives reset. ``quick`` replaces the exhaustive sweeps by the threshold
neighbourhoods plus 2,000 random values.
"""

from __future__ import annotations

import numpy as np
import torch

from golden import adalog, sqrt2
from golden.params import ADALOG_GELU_SHIFT, AdaLogParams, Sqrt2Params
from hw.registry import Design
from hw.threshold_quant import ThresholdQuantizer

from ..jobs import InStream, Job, OutStream, config_stream

EXHAUSTIVE_INPUT_BITS = 16
RANDOM_INPUTS = 100_000
QUICK_RANDOM_INPUTS = 2_000


def expected_codes(xi: np.ndarray, params: Sqrt2Params | AdaLogParams) -> np.ndarray:
    """The golden integer code of every input (int64), which is the output word as it is."""
    module = sqrt2 if isinstance(params, Sqrt2Params) else adalog
    return module.quantize_int(torch.from_numpy(np.asarray(xi, dtype=np.int64)), params).numpy()


def input_range(params: Sqrt2Params | AdaLogParams) -> tuple[int, int]:
    if isinstance(params, AdaLogParams):
        return params.input_min, params.input_max
    return 0, params.input_max


def parameter_sets(structure: Sqrt2Params | AdaLogParams) -> dict[str, Sqrt2Params | AdaLogParams]:
    """Calibrated-looking parameter sets of the same structure as ``structure``, by label.

    Unsigned grids get log-√2 (both variants, several Δ) and AdaLog post-softmax (q from 18 to
    137, including 74, whose thresholds are exact ties, and 119 and 137, where ``clamp_code``
    is not the zero); signed grids get AdaLog post-GELU (the GELU shift, several q and scales).
    """
    bits = structure.bits
    grid = {"input_bits": structure.input_bits, "input_frac_bits": structure.input_frac_bits}
    if isinstance(structure, AdaLogParams) and structure.input_signed:
        return {
            f"adalog-gelu-q{q}-s{scale}": AdaLogParams(
                bits=bits, q=q, scale=scale, shift=ADALOG_GELU_SHIFT, input_signed=True, **grid
            )
            for q, scale in ((20, 1.5), (37, 4.0), (74, 0.75), (119, 2.0), (137, 8.0))
        }
    sets: dict[str, Sqrt2Params | AdaLogParams] = {}
    for variant, delta in (
        ("sqrt2_17", 1.0),
        ("sqrt2_17", 0.3137),
        ("sqrt2_16", 0.8713),
        ("sqrt2_16", 0.0421),
    ):
        sets[f"{variant}-d{delta}"] = Sqrt2Params(variant, bits=bits, delta=delta, **grid)
    for q in (18, 25, 37, 74, 119, 137):
        sets[f"adalog-softmax-q{q}"] = AdaLogParams(bits=bits, q=q, **grid)
    return sets


def edge_inputs(params: Sqrt2Params | AdaLogParams) -> np.ndarray:
    """Every threshold and its neighbours (±1 LSB), and both ends of the range, clipped to it."""
    lo, hi = input_range(params)
    values = [lo, lo + 1, hi - 1, hi, 0, -1, 1]
    for threshold in params.thresholds:
        values += [threshold - 1, threshold, threshold + 1]
    return np.unique(np.clip(np.array(values, dtype=np.int64), lo, hi))


def stimulus(
    params: Sqrt2Params | AdaLogParams, rng: np.random.Generator, quick: bool
) -> tuple[str, np.ndarray]:
    """``(label, inputs)``: every input for small grids, else edges + random; shuffled."""
    lo, hi = input_range(params)
    if params.input_bits <= EXHAUSTIVE_INPUT_BITS and not quick:
        return "exhaustive", rng.permutation(np.arange(lo, hi + 1, dtype=np.int64))
    count = QUICK_RANDOM_INPUTS if quick else RANDOM_INPUTS
    values = np.concatenate([edge_inputs(params), rng.integers(lo, hi, size=count, endpoint=True)])
    return f"edges+{count}random", rng.permutation(values)


def data_job(
    name: str,
    params: Sqrt2Params | AdaLogParams,
    xi: np.ndarray,
    seed: int,
    image: list[tuple[int, int]] | None = None,
    **options,
) -> Job:
    """A job sending ``xi`` (after loading ``image`` through ``cfg``, if given)."""
    inputs = [] if image is None else [config_stream(image)]
    inputs.append(InStream("i", xi, idle_probability=0.25))
    outputs = [OutStream("o", expected_codes(xi, params), stall_probability=0.25)]
    return Job(name=name, inputs=inputs, outputs=outputs, seed=seed, **options)


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    """Every parameter set of the design's structure, then the two reset jobs (in this order:
    the data-only job relies on the configuration the job before it loaded)."""
    rng = np.random.default_rng(seed)
    plan = []
    sets = parameter_sets(design.params)
    for number, (label, params) in enumerate(sets.items()):
        kind, xi = stimulus(params, rng, quick)
        image = ThresholdQuantizer.config_image(params)
        plan.append(data_job(f"{design.name}/{label}/{kind}", params, xi, seed + number, image))
    # The last set stays loaded; the next two jobs exercise reset with and without a reload.
    label, params = list(sets.items())[-1]
    lo, hi = input_range(params)
    short = rng.permutation(np.concatenate([edge_inputs(params), rng.integers(lo, hi, 250, endpoint=True)]))
    image = ThresholdQuantizer.config_image(params)
    plan.append(
        data_job(
            f"{design.name}/{label}/reset-midstream", params, short, seed + 100, image, reset_after_outputs=57
        )
    )
    plan.append(
        data_job(
            f"{design.name}/{label}/config-survives-reset", params, short, seed + 101, reset_after_outputs=91
        )
    )
    return plan
