"""Calibration time per method.

Timed today: the BitLog2 δ search, both the vectorized :func:`golden.bitlog2.search_delta` and
the seed's loop :func:`golden.bitlog2.search_delta_reference`, on the same attention tensor (they
must choose the same δ; a difference is reported in the figure's note).

The RepQ-ViT and AdaLog FPCS calibrations of the shipped model (:data:`METHODS`: W4A4, their
own quantizers, 32 calibration images, 8 when ``quick``) through :func:`calib.pipeline.calibrate`,
the same call ``python -m calib`` makes. The DeiT-Tiny FPCS figure is ``python -m bench.calib_fpcs``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from golden.bitlog2 import search_delta, search_delta_reference
from golden.params import BitLog2Params

from .figures import Figure

__all__ = ["METHODS", "bitlog2_delta_search", "method_calibrations"]

SECTION = "calibration"
#: figure name -> (key, settings of :func:`calib.pipeline.make_config`).
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "RepQ-ViT": (
        "calib.repq",
        {"wbits": 4, "abits": 4, "attn": "bitlog2_half_17", "gelu": "uniform", "method": "repq"},
    ),
    "AdaLog FPCS": (
        "calib.fpcs",
        {
            "wbits": 4,
            "abits": 4,
            "attn": "adalog",
            "gelu": "adalog",
            "method": "fpcs",
            "qkv_granularity": "head",
        },
    ),
}


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


def method_calibrations(
    quick: bool, methods: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> list[Figure]:
    """Seconds of one calibration of the shipped model per entry of ``methods`` (default
    :data:`METHODS`), on 32 shipped calibration images (8 when ``quick``)."""
    from calib.data import load_calibration_images
    from calib.models import DEFAULT_MODEL_NAME, build_model
    from calib.pipeline import calibrate, make_config

    torch.set_num_threads(1)
    model = build_model(DEFAULT_MODEL_NAME)
    images = load_calibration_images(8 if quick else 32, model=model)
    figures = []
    for method, (key, settings) in (METHODS if methods is None else methods).items():
        config = make_config(DEFAULT_MODEL_NAME, model, **settings, calib_images=len(images))
        started = time.perf_counter()
        calibrate(model, images, config)
        seconds = time.perf_counter() - started
        details = {"quick": quick, "images": len(images), **settings}
        figures.append(Figure(SECTION, key, f"{method} calibration (shipped model)", seconds, "s", details))
    return figures
