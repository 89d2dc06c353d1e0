"""Log decoder verification plan: every code, against :meth:`golden.params.LogCodeParams.decode`."""

from __future__ import annotations

import itertools

import numpy as np

from golden.params import BitLog2Params, LogCodeParams
from hw.registry import Design

from ..jobs import InStream, Job, OutStream

__all__ = ["every_code", "expected_decoded", "jobs"]


def every_code(params: LogCodeParams) -> dict[str, np.ndarray] | np.ndarray:
    """Every code the decoder can receive from its quantizer: BitLog2 ``{k, h, zero}`` with a
    half bit only where ``k >= 1``, up to the scheme's largest ``k``; every ``bits + 1`` bit
    log-√2 code (those above ``2**bits`` carry the zero flag too)."""
    if params.family == "bitlog2":
        scheme = BitLog2Params(params.scheme)
        halves = (0, 1) if scheme.half else (0,)
        codes = [(k, h, 0) for k, h in itertools.product(range(scheme.max_k + 1), halves) if k or not h]
        codes.append((0, 0, 1))
        k, h, zero = (np.array(column, dtype=np.int64) for column in zip(*codes))
        fields = {"k": k, "h": h, "zero": zero}
        if not scheme.half:
            del fields["h"]
        return fields
    return np.arange(1 << (params.bits + 1))


def expected_decoded(
    codes: dict[str, np.ndarray] | np.ndarray, params: LogCodeParams
) -> dict[str, np.ndarray]:
    if params.family == "bitlog2":
        h = codes.get("h", np.zeros_like(codes["k"]))
        rows = [params.decode((int(k), int(b), int(z))) for k, b, z in zip(codes["k"], h, codes["zero"])]
    else:
        rows = [params.decode(min(int(code), params.zero_code)) for code in codes]
    mant, exp, zero = (np.array(column, dtype=np.int64) for column in zip(*rows))
    return {"mant": mant, "exp": exp, "zero": zero}


def _take(codes, order):
    return {key: value[order] for key, value in codes.items()} if isinstance(codes, dict) else codes[order]


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    params: LogCodeParams = design.params
    codes = every_code(params)
    count = len(codes["k"]) if isinstance(codes, dict) else len(codes)
    rng = np.random.default_rng(seed)
    # Every code several times in random order, so each meets idle cycles and back-pressure.
    order = np.concatenate([rng.permutation(count) for _ in range(2 if quick else 8)])
    stream = _take(codes, order)
    short = _take(codes, order[:40])
    return [
        Job(
            name=f"{design.name}/every-code",
            inputs=[InStream("i", stream)],
            outputs=[OutStream("o", expected_decoded(stream, params))],
            seed=seed,
        ),
        Job(
            name=f"{design.name}/reset-midstream",
            inputs=[InStream("i", short)],
            outputs=[OutStream("o", expected_decoded(short, params))],
            seed=seed + 1,
            reset_after_outputs=13,
        ),
    ]
