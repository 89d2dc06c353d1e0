"""Golden-model throughput: BitLog2 elements per second and the integer ViT forward.

BitLog2 is timed in both forms on the same tensor: the integer form the hardware computes
(:func:`golden.bitlog2.quantize_int`) and the seed's reference form
(:func:`golden.bitlog2.reference_quantize`), each the median of a few calls after a warm-up.

The integer ViT forward (:func:`golden.vit.forward`, mode ``integer``) runs the shipped model with
its shipped parameters over ``images`` shipped evaluation images, timed as the median of three
calls after an untimed one.
"""

from __future__ import annotations

import torch

from golden.bitlog2 import float_to_xi, quantize_int, reference_quantize
from golden.params import BitLog2Params

from .figures import Figure, median_seconds

__all__ = ["bitlog2_throughput", "vit_forward"]

SECTION = "golden model"


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
    """Images per second of the integer ViT forward of the shipped model."""
    from calib.data import load_eval_set
    from calib.paramfile import load_default_params
    from golden.vit import forward

    params = load_default_params()
    pool = load_eval_set().images
    batch = pool.repeat((images + len(pool) - 1) // len(pool), 1, 1, 1)[:images]
    seconds = median_seconds(lambda: forward(params, batch, "integer"), repeats=3)
    details = {"images": images, "seconds": round(seconds, 3), "repeats": 3}
    return Figure(
        SECTION, "golden.vit", "integer ViT forward (shipped model)", images / seconds, "images/s", details
    )
