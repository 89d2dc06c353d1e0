"""Exact (integer/rational) arithmetic for comparator thresholds of the log-domain quantizers.

The log quantizers round ``u = -(d/e') * log2(y / s)`` to the nearest integer. Code ``j`` and
``j + 1`` meet where ``y`` equals ``T_j = s * 2**(-e_j / d)``, a real number that is irrational
for almost every parameter set. Float64 estimates of ``T_j`` are therefore not good enough to
place an integer threshold: instead we decide ``y < T_j`` exactly by raising both sides to the
``d``-th power, ``y**d * 2**e_j < s**d``, in Python integers, and binary-search the largest input
that satisfies it. Everything here is standard library only and deterministic.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction

__all__ = [
    "below_threshold",
    "largest_integer_satisfying",
    "largest_float32_satisfying",
    "float32_key",
    "float32_from_key",
    "FLOAT32_MAX_KEY",
]

#: Ordering key of the largest finite float32 (bit pattern 0x7f7fffff).
FLOAT32_MAX_KEY = 0x7F7FFFFF


def below_threshold(y: Fraction, scale: Fraction, e: int, d: int, inclusive: bool) -> bool:
    """Decide ``y < scale * 2**(-e/d)`` (``<=`` if ``inclusive``) exactly.

    ``y`` may be any rational (a non-positive ``y`` is below every positive threshold);
    ``scale`` must be positive, ``d`` positive, ``e`` any integer.
    """
    if y <= 0:
        return True
    # y**d * 2**e  vs  scale**d, cross-multiplied so that only integers remain.
    left = y.numerator**d * scale.denominator**d
    right = scale.numerator**d * y.denominator**d
    if e >= 0:
        left <<= e
    else:
        right <<= -e
    return left <= right if inclusive else left < right


def largest_integer_satisfying(predicate: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest ``n`` in ``[lo, hi]`` with ``predicate(n)``, for a predicate that is true up to
    some point and false after it; ``lo - 1`` if it is false everywhere."""
    if not predicate(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if predicate(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def float32_key(value: float) -> int:
    """A signed integer that orders float32 values like the reals (``-0.0`` and ``0.0`` both 0)."""
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    return bits if bits < 0x80000000 else -(bits & 0x7FFFFFFF)


def float32_from_key(key: int) -> float:
    """Inverse of :func:`float32_key` (key 0 gives ``+0.0``)."""
    bits = key if key >= 0 else (-key) | 0x80000000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def largest_float32_satisfying(predicate: Callable[[Fraction], bool], lo: float, hi: float) -> float:
    """The largest float32 ``x`` in ``[lo, hi]`` with ``predicate(x)`` (``x`` passed exactly as a
    Fraction), for a predicate that is true up to some point and false after it. Returns the
    float32 just below ``lo`` if the predicate is false everywhere."""
    found = largest_integer_satisfying(
        lambda key: predicate(Fraction(float32_from_key(key))), float32_key(lo), float32_key(hi)
    )
    return float32_from_key(found)
