"""Fixed-point input grids and the comparator (threshold-count) primitive shared by the log quantizers.

A quantizer in hardware sees integers, not floats. Our input grid for a real ``x`` is::

    xi = clamp(floor(x * 2**frac_bits), lo, hi)     # lo, hi: the bits-wide (un)signed range

``floor`` (not round) because it is what truncating a wider fixed-point value (an arithmetic right
shift) gives, and it matches BitLog2's ``floor(x * M)``. Scaling by a power of two is exact in
floating point, so this grid is exact for float32 and float64 inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from golden.params import ParamError

__all__ = [
    "CodeDisagreement",
    "check_integer_tensor",
    "comparator_count",
    "from_fixed_point",
    "grid_range",
    "to_fixed_point",
]


def grid_range(bits: int, signed: bool) -> tuple[int, int]:
    """``(lo, hi)`` of a ``bits``-wide two's complement (``signed``) or unsigned integer."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def to_fixed_point(x: torch.Tensor, bits: int, frac_bits: int, signed: bool) -> torch.Tensor:
    """``clamp(floor(x * 2**frac_bits), lo, hi)`` as int64, exact for float32/float64 ``x``.

    Raises
    ------
    ParamError
        If ``x`` is not floating point or contains NaN.
    """
    if not x.is_floating_point():
        raise ParamError(f"fixed-point conversion needs a floating-point tensor, not {x.dtype}")
    if bool(torch.isnan(x).any()):
        raise ParamError("fixed-point conversion input contains NaN")
    lo, hi = grid_range(bits, signed)
    scaled = torch.floor(x * float(1 << frac_bits))  # a power of two: exact
    # Clamp in floating point first: out-of-range values (and +-inf) must not wrap in the cast.
    return scaled.clamp(lo, hi).to(torch.int64)


def from_fixed_point(xi: torch.Tensor, frac_bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The real value ``xi * 2**-frac_bits`` (exact in float32 while ``|xi| < 2**24``)."""
    return xi.to(dtype) * 2.0**-frac_bits


def check_integer_tensor(name: str, value: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Check an integer tensor with every element in ``[lo, hi]``; return it as int64."""
    integer = isinstance(value, torch.Tensor) and not (value.is_floating_point() or value.is_complex())
    if not integer or value.dtype == torch.bool:
        raise ParamError(f"{name} must be an integer tensor, not {getattr(value, 'dtype', type(value))}")
    if value.numel():
        found_lo, found_hi = (int(v) for v in torch.aminmax(value))  # one pass over the data
        if found_lo < lo or found_hi > hi:
            raise ParamError(f"{name} must lie in [{lo}, {hi}], got values in [{found_lo}, {found_hi}]")
    return value.to(torch.int64)


def comparator_count(x: torch.Tensor, thresholds: Sequence[int] | Sequence[float]) -> torch.Tensor:
    """``#{j : x <= thresholds[j]}`` per element (int64), the thermometer count a bank of
    comparators produces. ``x`` and ``thresholds`` must have the same kind (integer or float32)."""
    ascending = torch.tensor(sorted(thresholds), dtype=x.dtype)
    # searchsorted(right=False) counts thresholds strictly below x.
    below = torch.searchsorted(ascending, x.contiguous(), right=False)
    return len(thresholds) - below


class CodeDisagreement(NamedTuple):
    """How often a log quantizer's forms give different codes on one tensor.

    ``float_vs_integer``: reference float32 form on ``x`` vs the hardware comparator on the grid
    ``xi(x)`` (grid truncation + float32 rounding). ``float_vs_exact``: float32 form vs the exact
    real comparator, both on ``x`` (float32 ``log2`` rounding alone). ``grid_float_vs_integer``:
    float32 form on the grid value ``xi * 2**-f`` vs the comparator on ``xi`` (float32 rounding
    on grid points).
    """

    elements: int
    float_vs_integer: int
    float_vs_exact: int
    grid_float_vs_integer: int

    def rates(self) -> dict[str, float]:
        """Each count divided by ``elements`` (0 for an empty tensor)."""
        n = max(self.elements, 1)
        return {name: getattr(self, name) / n for name in self._fields[1:]}
