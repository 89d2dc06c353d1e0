"""Golden-model throughput: BitLog2 elements per second, and the integer ViT forward once it exists.

BitLog2 is timed in both forms on the same tensor: the integer form the hardware computes
(:func:`golden.bitlog2.quantize_int`) and the seed's reference form
(:func:`golden.bitlog2.reference_quantize`), each the median of a few calls after a warm-up.

The integer ViT forward is measured when ``golden.vit`` exists and provides the hook
``bench_forward(images: int) -> None`` (one integer forward pass of the shipped model over
``images`` images), timed as the median of three calls after an untimed one; until then it is
listed as skipped with the reason.
"""

from __future__ import annotations

import importlib

import torch

from golden.bitlog2 import float_to_xi, quantize_int, reference_quantize
from golden.params import BitLog2Params

from .figures import Figure, median_seconds, skipped

__all__ = ["bitlog2_throughput", "vit_forward"]

SECTION = "golden model"
VIT_MODULE = "golden.vit"
VIT_HOOK = "bench_forward"


def bitlog2_throughput(scheme: str, elements: int, repeats: int = 3) -> list[Figure]:
    """Elements per second of BitLog2's integer and reference forms on ``elements`` probabilities."""
    params = BitLog2Params(scheme)
    generator = torch.Generator().manual_seed(0)
    # Softmax rows of 197 tokens, like ViT attention: realistic magnitudes for the quantizer.
    rows = max(1, elements // 197)
    probabilities = torch.softmax(torch.randn(rows, 197, generator=generator) * 4, dim=-1)
    xi = float_to_xi(probabilities, params)
    size = probabilities.numel()
    integer_seconds = median_seconds(lambda: quantize_int(xi, params), repeats)
    reference_seconds = median_seconds(lambda: reference_quantize(probabilities, params), repeats)
    details = {"elements": size, "repeats": repeats, "scheme": scheme}
    return [
        Figure(
            SECTION,
            "golden.bitlog2_integer",
            f"BitLog2 {scheme} quantize_int (integer form)",
            size / integer_seconds,
            "elements/s",
            {**details, "seconds": round(integer_seconds, 5)},
        ),
        Figure(
            SECTION,
            "golden.bitlog2_reference",
            f"BitLog2 {scheme} reference_quantize (seed's form)",
            size / reference_seconds,
            "elements/s",
            {**details, "seconds": round(reference_seconds, 5)},
        ),
    ]


def vit_forward(images: int) -> Figure:
    """Images per second of the integer ViT forward, or skipped until ``golden.vit`` has the hook."""
    name = "integer ViT forward (shipped model)"
    try:
        module = importlib.import_module(VIT_MODULE)
    except ImportError as error:
        reason = "does not exist yet" if error.name == VIT_MODULE else f"failed to import ({error})"
        return skipped(SECTION, "golden.vit", name, "images/s", f"{VIT_MODULE} {reason}")
    hook = getattr(module, VIT_HOOK, None)
    if hook is None:
        return skipped(
            SECTION, "golden.vit", name, "images/s", f"{VIT_MODULE} has no {VIT_HOOK}(images) hook yet"
        )
    # One untimed call first: the hook loads the model, parameters and images on its first call.
    seconds = median_seconds(lambda: hook(images), repeats=3)
    details = {"images": images, "seconds": round(seconds, 3), "repeats": 3}
    return Figure(SECTION, "golden.vit", name, images / seconds, "images/s", details)
