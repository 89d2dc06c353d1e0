"""Calibration time per method: what exists is timed, what does not is listed as skipped.

Timed today: the BitLog2 δ search, both the vectorized :func:`golden.bitlog2.search_delta` and
the seed's loop :func:`golden.bitlog2.search_delta_reference`, on the same attention tensor (they
must choose the same δ; a difference is reported in the figure's note).

The RepQ-ViT and FPCS calibrations are timed when their modules exist and provide the hook
``bench_calibrate(quick: bool) -> None`` (one calibration of the shipped model, a smaller one
when ``quick``); module names are in :data:`CALIBRATION_HOOKS`.
"""

from __future__ import annotations

import importlib
import time

import torch

from golden.bitlog2 import search_delta, search_delta_reference
from golden.params import BitLog2Params

from .figures import Figure, skipped

__all__ = ["CALIBRATION_HOOKS", "bitlog2_delta_search", "hooked_methods"]

SECTION = "calibration"
#: method -> module expected to provide ``bench_calibrate(quick)``.
CALIBRATION_HOOKS: dict[str, str] = {"RepQ-ViT": "calib.repq", "AdaLog FPCS": "calib.fpcs"}
HOOK = "bench_calibrate"


def bitlog2_delta_search(scheme: str, heads: int, tokens: int) -> list[Figure]:
    """Seconds per δ search, both implementations, on ``heads`` softmax maps of ``tokens`` tokens."""
    params = BitLog2Params(scheme)
    generator = torch.Generator().manual_seed(0)
    attention = torch.softmax(torch.randn(heads, tokens, tokens, generator=generator) * 4, dim=-1)
    started = time.perf_counter()
    fast_delta = search_delta(attention, params)
    fast_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reference_delta = search_delta_reference(attention, params)
    reference_seconds = time.perf_counter() - started
    details = {"scheme": scheme, "elements": attention.numel(), "delta": fast_delta}
    disagree = "" if fast_delta == reference_delta else f"DELTA DIFFERS: {fast_delta} vs {reference_delta}"
    return [
        Figure(
            SECTION,
            "calib.bitlog2_delta_vectorized",
            f"BitLog2 {scheme} delta search (vectorized)",
            fast_seconds,
            "s",
            details,
            disagree,
        ),
        Figure(
            SECTION,
            "calib.bitlog2_delta_seed_loop",
            f"BitLog2 {scheme} delta search (seed's loop)",
            reference_seconds,
            "s",
            {**details, "delta": reference_delta},
            disagree,
        ),
    ]


def hooked_methods(quick: bool) -> list[Figure]:
    """One figure per entry of :data:`CALIBRATION_HOOKS`: timed if the hook exists, else skipped."""
    figures = []
    for method, module_name in CALIBRATION_HOOKS.items():
        name = f"{method} calibration (shipped model)"
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            reason = "does not exist yet" if error.name == module_name else f"failed to import ({error})"
            figures.append(skipped(SECTION, f"calib.{module_name}", name, "s", f"{module_name} {reason}"))
            continue
        hook = getattr(module, HOOK, None)
        if hook is None:
            figures.append(
                skipped(
                    SECTION, f"calib.{module_name}", name, "s", f"{module_name} has no {HOOK}(quick) hook yet"
                )
            )
            continue
        started = time.perf_counter()
        hook(quick)
        seconds = time.perf_counter() - started
        figures.append(Figure(SECTION, f"calib.{module_name}", name, seconds, "s", {"quick": quick}))
    return figures
