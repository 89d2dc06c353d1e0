"""Exact building blocks of the fast FPCS scores: row deduplication, equality classes, Grams.

With the objective evaluated on exact dequantized values ``k * s`` (:mod:`calib.fpcs_exact`), the
expensive part of a layer's output error is a quadratic form in small integer codes: an int8
matrix product with int32 accumulation (or a float64 product of integers below 2**53) computes it
exactly.
"""

from __future__ import annotations

import torch

__all__ = ["dedupe_rows", "row_classes", "scale_key", "int8_gram", "quadratic_rows"]

_HASH_SEED = 20240611


def dedupe_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unique, inverse)`` of the rows of an integer tensor (R, n) with ``|entries| < 2**28`` and
    ``n < 2**11``: ``unique[inverse] == rows``. Two exact float64 random projections key the rows;
    every row found equal to an earlier one is then compared element by element, and the rows are
    recomputed with :func:`torch.unique` on a collision."""
    generator = torch.Generator().manual_seed(_HASH_SEED)
    # Weights below 2**14: |entry| * 2**14 * n stays below 2**53, so the keys are exact.
    weights = torch.randint(0, 1 << 14, (rows.shape[1], 2), generator=generator).to(torch.float64)
    keys = rows.to(torch.float64) @ weights
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)
    count = int(inverse.max()) + 1 if inverse.numel() else 0
    first = torch.full((count,), rows.shape[0], dtype=torch.int64)
    first = first.scatter_reduce(0, inverse, torch.arange(rows.shape[0]), reduce="amin")
    representative = first[inverse]
    duplicate = representative != torch.arange(rows.shape[0])
    if bool(duplicate.any()) and not torch.equal(rows[duplicate], rows[representative[duplicate]]):
        unique, inverse = torch.unique(rows, dim=0, return_inverse=True)  # pragma: no cover
        return unique, inverse  # pragma: no cover
    return rows[first], inverse


def row_classes(keys: torch.Tensor) -> torch.Tensor:
    """For integer keys (P, G, n): the lowest candidate index ``p'`` with ``keys[p'] == keys[p]`` in
    the same group, shape (P, G)."""
    count, groups, _ = keys.shape
    group = torch.arange(groups)[None, :, None].expand(count, groups, 1)
    flat = torch.cat([group, keys], dim=2).reshape(count * groups, -1)
    _, inverse = dedupe_rows(flat)
    candidate = torch.arange(count)[:, None].expand(count, groups).reshape(-1)
    lowest = torch.full((int(inverse.max()) + 1,), count, dtype=torch.int64)
    lowest = lowest.scatter_reduce(0, inverse, candidate, reduce="amin")
    return lowest[inverse].reshape(count, groups)


def scale_key(scale: torch.Tensor) -> torch.Tensor:
    """Two 16-bit integer halves of a float32 scale's bit pattern (a small-integer key)."""
    bits = scale.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    return torch.stack([bits >> 16, bits & 0xFFFF], dim=-1)


def int8_gram(codes: torch.Tensor, bound: int | None = None) -> torch.Tensor:
    """``codes' codes`` (n, n), exact, as float64, for an integer matrix (rows, n) with ``|codes| <=
    bound``: int8 products with int32 accumulation when the entries and sums fit, else a float64
    product of the integers."""
    if bound is None:
        bound = int(codes.abs().max()) if codes.numel() else 0
    if bound <= 127 and codes.shape[0] * bound * bound < (1 << 31):
        small = codes.to(torch.int8)
        try:
            return torch._int_mm(small.t(), small).to(torch.float64)
        except RuntimeError:  # pragma: no cover - a platform without int8 matmul
            pass
    wide = codes.to(torch.float64)
    return wide.t() @ wide


def quadratic_rows(rows: torch.Tensor, gram: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """``r' G r`` for every row ``r`` of ``rows`` (R, n), float64, in chunks of rows."""
    result = torch.empty(rows.shape[0], dtype=torch.float64)
    for start in range(0, rows.shape[0], chunk):
        block = rows[start : start + chunk].to(torch.float64)
        result[start : start + chunk] = ((block @ gram) * block).sum(dim=1)
    return result
