"""BitLog2 verification plan: every input value, plus a reset in the middle of a stream."""

from __future__ import annotations

import numpy as np
import torch

from golden.bitlog2 import quantize_int
from golden.params import BitLog2Params
from hw.registry import Design

from ..jobs import InStream, Job, OutStream


def expected_codes(xi: np.ndarray, params: BitLog2Params) -> dict[str, np.ndarray]:
    """The golden code of each input, as the fields of the hardware's code layout."""
    code = quantize_int(torch.from_numpy(xi.astype(np.int64)), params)
    fields = {"k": code.k.numpy()}
    if params.half:
        fields["h"] = code.h.numpy()
    fields["zero"] = code.zero.numpy()
    return fields


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    params: BitLog2Params = design.params
    rng = np.random.default_rng(seed)
    every_input = rng.permutation(1 << params.input_width)
    if quick:
        # The extremes and every power-of-two neighbourhood, plus random fill.
        edges = [0, 1, 2, 3, params.m - 2, params.m - 1, params.m, (1 << params.input_width) - 1]
        for k in range(params.input_width):
            edges += [(1 << k) - 1, 1 << k, (1 << k) + 1, 3 << max(k - 1, 0)]
        edges = [e for e in edges if 0 <= e < 1 << params.input_width]
        every_input = np.concatenate([np.array(edges), every_input[:1500]])
    stream = every_input.astype(np.int64)
    short = stream[:200]
    return [
        Job(
            name=f"{design.name}/{'edges+random' if quick else 'exhaustive'}",
            inputs=[InStream("i", stream, idle_probability=0.25)],
            outputs=[OutStream("o", expected_codes(stream, params), stall_probability=0.25)],
            seed=seed,
        ),
        Job(
            name=f"{design.name}/reset-midstream",
            inputs=[InStream("i", short, idle_probability=0.25)],
            outputs=[OutStream("o", expected_codes(short, params), stall_probability=0.25)],
            seed=seed + 1,
            reset_after_outputs=57,
        ),
    ]
