"""AdaLog LUT verification plan: every code for every q (10..137) through one circuit.

Per ``q``, one job loads the table through ``cfg`` and sends every code (the ``2**bits`` log
codes and the zero) several times in random order; the golden decode is the shift-accumulate's
own table, :meth:`golden.params.LogAVParams.table`. Then a reset in the middle of a stream
(configuration reloaded by the replay) and a data-only job across resets (the table survives).
"""

from __future__ import annotations

import numpy as np

from golden.params import ADALOG_Q_RANGE, AdaLogParams, LogAVParams
from hw.adalog_lut import AdaLogLut
from hw.registry import Design

from ..jobs import InStream, Job, OutStream, config_stream

REPEATS, QUICK_REPEATS = 8, 2


def expected_entries(codes: np.ndarray, params: AdaLogParams) -> dict[str, np.ndarray]:
    """``{mant, exp, zero}`` of every golden integer code; the zero code decodes to ``{0, 0, 1}``."""
    mant, exp = LogAVParams.default("adalog").table(params)
    codes = np.asarray(codes, dtype=np.int64)
    zero = codes == params.zero_code
    index = np.where(zero, 0, codes)
    return {
        "mant": np.where(zero, 0, np.array(mant, dtype=np.int64)[index]),
        "exp": np.where(zero, 0, np.array(exp, dtype=np.int64)[index]),
        "zero": zero.astype(np.int64),
    }


def code_job(name: str, params: AdaLogParams, codes: np.ndarray, seed: int, load: bool, **options) -> Job:
    """Send ``codes`` (golden integer codes), after loading ``params``' table if ``load``."""
    inputs = [config_stream(AdaLogLut.config_image(params))] if load else []
    inputs.append(InStream("i", codes))
    return Job(name, inputs, [OutStream("o", expected_entries(codes, params))], seed=seed, **options)


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    """Every q, then the two reset jobs (the data-only one relies on the table loaded before it)."""
    rng = np.random.default_rng(seed)
    every_code = np.arange(design.params.zero_code + 1, dtype=np.int64)
    repeats = QUICK_REPEATS if quick else REPEATS
    plan = []
    for q in range(ADALOG_Q_RANGE[0], ADALOG_Q_RANGE[1] + 1):
        params = AdaLogParams(bits=design.params.bits, q=q)
        codes = rng.permutation(np.tile(every_code, repeats))
        plan.append(code_job(f"{design.name}/q{q}/every-code", params, codes, seed + q, load=True))
    # The last q stays loaded: reset with a reload (the replay), then data only across resets.
    codes = rng.permutation(np.tile(every_code, 12))
    plan.append(
        code_job(f"{design.name}/q{q}/reset-midstream", params, codes, seed, True, reset_after_outputs=57)
    )
    plan.append(
        code_job(
            f"{design.name}/q{q}/config-survives-reset", params, codes, seed, False, reset_after_outputs=91
        )
    )
    return plan
