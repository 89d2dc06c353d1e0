"""The FPCS loop of a uniform (scale, zero point) search: a grid step, then refinement steps.

Reference: AdaLog ``weight_fpcs`` / ``activation_fpcs`` (``quant_layers/linear.py``) and
``_fpcs`` (``quant_layers/matmul.py``). Step 1 keeps the best ``width`` of the grid's candidates;
each refinement step tries ``eq_n / width`` scales around every survivor (same zero point) at
offsets ``(linspace(0, 1, n) - 0.5) * delta``, divides ``delta`` by ``n - 0.5`` and keeps the best
``width`` again (1 at the last step).
"""

from __future__ import annotations

import torch

from calib.fpcs_core import Problem, SearchContext, choose
from calib.fpcs_grid import UniformGrid, refine

__all__ = ["search_uniform"]


def search_uniform(
    problem: Problem, grid: UniformGrid, context: SearchContext, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one FPCS search; returns the chosen ``(scale, zero_point)``, float32, shape (G,)."""
    config = context.config
    width = config.width if width is None else width
    new_per_survivor = config.eq_n // width
    scale, zero_point, delta = grid.scale, grid.zero_point, grid.delta
    best = choose(problem, {"scale": scale, "zero_point": zero_point}, width, context)
    survivor_scale, survivor_zero = scale.gather(0, best), zero_point.gather(0, best)
    for remaining in range(config.steps - 1, 0, -1):
        scale, delta = refine(survivor_scale, delta, new_per_survivor, grid.scale_floor)
        zero_point = survivor_zero.repeat_interleave(new_per_survivor, dim=0)
        keep = 1 if remaining == 1 else width
        best = choose(problem, {"scale": scale, "zero_point": zero_point}, keep, context)
        survivor_scale, survivor_zero = scale.gather(0, best), zero_point.gather(0, best)
    return survivor_scale[0], survivor_zero[0]
