"""MAC array verification plan, and the host side of a tiled product (reused for whole layers).

:func:`tile_matmul` turns a (batched) ``A . B`` with zero points into the array's input stream
(one k-step per transfer) and the golden result rows (:func:`golden.intops.int_matmul`), tiled
``ceil(M/R) * ceil(N/C)`` ways: tiles in row-major order (batch, tile row, tile column), ``K``
steps each, the ``R`` result rows of each tile in order. Edge tiles are padded with code 0 and
zero point 0, whose centred value is 0, so padded rows and columns hold 0.
:func:`untile` assembles result rows back into ``(..., M, N)``. Everything is vectorized.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from golden.intops import int_matmul
from golden.params import MacArrayParams
from hw.registry import Design

from ..jobs import InStream, Job, OutStream

__all__ = [
    "TiledProduct",
    "as_array",
    "as_tensor",
    "check_codes",
    "flatten_batch",
    "zero_points",
    "tile_grid",
    "last_flags",
    "tile_rows",
    "tile_cols",
    "tile_result",
    "untile",
    "concat",
    "LIMIT",
    "limit_operands",
    "tile_matmul",
    "matmul_job",
    "jobs",
]


@dataclasses.dataclass
class TiledProduct:
    """An engine's input steps and expected output rows for one (batched) product.

    ``steps`` holds the input payload fields, one entry per k-step; ``rows`` the expected output
    transfers ``[tiles * R, C]``; ``shape`` is ``(batch, M, K, N)`` (``batch`` a tuple).
    """

    steps: dict[str, Any]
    rows: np.ndarray
    tiles: int
    shape: tuple


def as_array(value: Any) -> np.ndarray:
    """Codes given as a tensor, array or nested list, as an int64 array."""
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    return np.asarray(value, dtype=np.int64)


def as_tensor(values: np.ndarray) -> torch.Tensor:
    """An int64 tensor of its own (numpy views from broadcasting are read-only)."""
    return torch.from_numpy(np.array(values, dtype=np.int64))


def check_codes(what: str, values: np.ndarray, lo: int, hi: int) -> None:
    """Raise ``ValueError`` unless every value lies in ``[lo, hi]`` (the stream field's range)."""
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"{what} must lie in [{lo}, {hi}], got [{values.min()}, {values.max()}]")


def tile_grid(m: int, n: int, rows: int, cols: int) -> tuple[int, int]:
    return math.ceil(m / rows), math.ceil(n / cols)


def tile_rows(left: np.ndarray, rows: int, tile_cols_count: int, pad: int = 0) -> np.ndarray:
    """``left`` ``[B, M, K]`` -> per-step row operands ``[B * TM * TN * K, rows]`` (tile order of
    :func:`tile_matmul`; rows past ``M`` hold ``pad``)."""
    batch, m, k = left.shape
    tm = math.ceil(m / rows)
    padded = np.full((batch, tm * rows, k), pad, dtype=left.dtype)
    padded[:, :m] = left
    per_tile = padded.reshape(batch, tm, rows, k).transpose(0, 1, 3, 2)  # [B, TM, K, R]
    steps = np.broadcast_to(per_tile[:, :, None], (batch, tm, tile_cols_count, k, rows))
    return steps.reshape(-1, rows)


def tile_cols(right: np.ndarray, cols: int, tile_rows_count: int, pad: int = 0) -> np.ndarray:
    """``right`` ``[B, K, N]`` -> per-step column operands ``[B * TM * TN * K, cols]``."""
    batch, k, n = right.shape
    tn = math.ceil(n / cols)
    padded = np.full((batch, k, tn * cols), pad, dtype=right.dtype)
    padded[:, :, :n] = right
    per_tile = padded.reshape(batch, k, tn, cols).transpose(0, 2, 1, 3)  # [B, TN, K, C]
    steps = np.broadcast_to(per_tile[:, None], (batch, tile_rows_count, tn, k, cols))
    return steps.reshape(-1, cols)


def last_flags(tiles: int, k: int) -> np.ndarray:
    """``last`` of every step: set on the ``K``-th step of each tile."""
    return np.tile(np.arange(k) == k - 1, tiles).astype(np.int64)


def tile_result(result: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A result ``[B, M, N]`` -> the engine's output rows ``[B * TM * TN * rows, cols]``."""
    batch, m, n = result.shape
    tm, tn = tile_grid(m, n, rows, cols)
    padded = np.zeros((batch, tm * rows, tn * cols), dtype=result.dtype)
    padded[:, :m, :n] = result
    return padded.reshape(batch, tm, rows, tn, cols).transpose(0, 1, 3, 2, 4).reshape(-1, cols)


def untile(rows_out: np.ndarray, shape: tuple, rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`tile_result`: output rows back to ``(*batch, M, N)``."""
    batch, m, _, n = shape
    tm, tn = tile_grid(m, n, rows, cols)
    count = int(np.prod(batch, dtype=np.int64))
    tiles = np.asarray(rows_out).reshape(count, tm, tn, rows, cols).transpose(0, 1, 3, 2, 4)
    return tiles.reshape(count, tm * rows, tn * cols)[:, :m, :n].reshape(*batch, m, n)


def flatten_batch(left: np.ndarray, right: np.ndarray) -> tuple[tuple, np.ndarray, np.ndarray]:
    """Broadcast the batch dimensions of ``(..., M, K)`` and ``(..., K, N)`` and flatten them."""
    batch = np.broadcast_shapes(left.shape[:-2], right.shape[:-2])
    left = np.broadcast_to(left, (*batch, *left.shape[-2:])).reshape(-1, *left.shape[-2:])
    right = np.broadcast_to(right, (*batch, *right.shape[-2:])).reshape(-1, *right.shape[-2:])
    return tuple(batch), left, right


def zero_points(value: Any, batch: tuple, length: int) -> np.ndarray:
    """A zero point given per tensor (int), per index of the last axis, or per batch too."""
    return np.broadcast_to(as_array(value), (*batch, length)).reshape(-1, length)


def tile_matmul(a: Any, b: Any, za: Any, zb: Any, params: MacArrayParams) -> TiledProduct:
    """The MAC array's steps and golden rows for ``sum_k (a - za)(b - zb)``.

    Parameters
    ----------
    a, b : array or Tensor
        Integer codes ``(..., M, K)`` and ``(..., K, N)``; batch dimensions broadcast (heads,
        images). Codes must lie in the operand's range.
    za, zb : int or array
        Zero points per tensor, per row of ``a`` (``(..., M)``) and per column of ``b``
        (``(..., N)``, e.g. a weight's output channels when ``b = W.T``).
    params : MacArrayParams
        The array: its shape fixes the tiling, its ``acc_bits`` the golden overflow check.
    """
    a, b = as_array(a), as_array(b)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"tile_matmul: inner dimensions differ, {a.shape} . {b.shape}")
    batch, a, b = flatten_batch(a, b)
    _, m, k = a.shape
    n = b.shape[-1]
    za, zb = zero_points(za, batch, m), zero_points(zb, batch, n)
    for name, codes, code_range in (("a", a, params.a_range), ("b", b, params.b_range)):
        check_codes(f"tile_matmul {name}", codes, *code_range)
    check_codes("tile_matmul za", za, *params.a_range)
    check_codes("tile_matmul zb", zb, *params.b_range)
    result = int_matmul(
        as_tensor(a),
        as_tensor(b),
        as_tensor(za)[..., None],
        as_tensor(zb)[:, None, :],
        acc_bits=params.acc_bits,
    ).numpy()
    tm, tn = tile_grid(m, n, params.rows, params.cols)
    steps = {
        "a": tile_rows(a, params.rows, tn),
        "b": tile_cols(b, params.cols, tm),
        "za": tile_rows(np.broadcast_to(za[..., None], (len(za), m, k)), params.rows, tn),
        "zb": tile_cols(np.broadcast_to(zb[:, None, :], (len(zb), k, n)), params.cols, tm),
        "last": last_flags(len(a) * tm * tn, k),
    }
    rows = tile_result(result, params.rows, params.cols)
    return TiledProduct(steps, rows, len(a) * tm * tn, (batch, m, k, n))


def concat(products: list[TiledProduct]) -> tuple[dict[str, Any], np.ndarray]:
    """One stream of several products' steps and their expected rows, in order."""
    fields = products[0].steps.keys()
    steps = {name: _concat_field([p.steps[name] for p in products]) for name in fields}
    return steps, np.concatenate([p.rows for p in products])


def _concat_field(parts: list[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {key: _concat_field([part[key] for part in parts]) for key in parts[0]}
    return np.concatenate(parts)


def matmul_job(
    name: str,
    products: list[TiledProduct],
    *,
    seed: int,
    idle: float = 0.25,
    stall: float = 0.25,
    reset_after_outputs: int | None = None,
    expected_cycles: int | None = None,
) -> Job:
    """A job streaming ``products`` back to back (any engine whose step payload is ``steps``)."""
    steps, rows = concat(products)
    return Job(
        name=name,
        inputs=[InStream("i", steps, idle_probability=idle)],
        outputs=[OutStream("o", rows, stall_probability=stall)],
        seed=seed,
        reset_after_outputs=reset_after_outputs,
        expected_cycles=expected_cycles,
        outputs_follow_inputs=False,
    )


def random_operands(rng: np.random.Generator, params: MacArrayParams, m: int, k: int, n: int) -> tuple:
    """Random codes, per-row ``za`` and per-column ``zb`` anywhere in the operand ranges."""
    (alo, ahi), (blo, bhi) = params.a_range, params.b_range
    return (
        rng.integers(alo, ahi + 1, (m, k)),
        rng.integers(blo, bhi + 1, (k, n)),
        rng.integers(alo, ahi + 1, m),
        rng.integers(blo, bhi + 1, n),
    )


def edge_products(params: MacArrayParams, k: int = 17) -> list[TiledProduct]:
    """Extreme operands against extreme zero points (the largest positive and negative products),
    zero points of 0, centred values of zero, and zero points different in every column."""
    (alo, ahi), (blo, bhi) = params.a_range, params.b_range
    m, n = params.rows + 1, params.cols + 2
    a_max, a_min = np.full((m, k), ahi), np.full((m, k), alo)
    b_max, b_min = np.full((k, n), bhi), np.full((k, n), blo)
    b_ramp = np.tile(np.linspace(blo, bhi, n).astype(np.int64), (k, 1))
    cases = [
        (a_max, b_max, alo, blo),
        (a_min, b_max, ahi, blo),
        (a_max, b_min, alo, bhi),
        (a_min, b_min, ahi, bhi),
        (a_max, b_max, 0, 0),
        (a_min, b_min, 0, 0),
        (a_max, b_max, ahi, bhi),
        (a_max, b_ramp, alo, np.linspace(bhi, blo, n).astype(np.int64)),
    ]
    return [tile_matmul(a, b, za, zb, params) for a, b, za, zb in cases]


def random_shapes(rows: int, cols: int) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` with K = 1, 3, 17, 64, 65 and M, N on and off the ``rows x cols`` tile grid."""
    return [
        (1, 1, 1),
        (rows, 3, cols),
        (2 * rows + 1, 17, cols + 1),
        (max(rows - 1, 1), 64, 2 * cols + 3),
        (rows + 2, 65, max(cols - 1, 1)),
    ]


def throughput_shapes(rows: int, cols: int) -> list[tuple[int, int, int]]:
    """Shapes whose measured cycles must equal the formula: drain bound (K = 1 and K = R - 1 < R),
    balanced (K = R) and compute bound (K > R)."""
    return [
        (2 * rows, 1, 2 * cols),
        (rows + 1, max(rows - 1, 1), cols + 1),
        (2 * rows, rows, cols),
        (rows, 3 * rows + 1, 2 * cols),
    ]


#: The narrowest accumulator for 6-bit x 6-bit operands (one product), for :func:`limit_operands`.
LIMIT = MacArrayParams(rows=3, cols=2, a_bits=6, a_signed=False, b_bits=6, b_signed=True, acc_bits=13)


def limit_operands() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Operands for :data:`LIMIT` whose sums reach both ends of the 13-bit accumulator exactly,
    one of them after partial sums wrap: ``(a, b, za, zb)``, result ``[[4095, 0], [-4096, 0],
    [0, -4095]]``.

    Each row is nonzero on its own steps (its zero point centres the other steps to 0):
    row 0 (za = 0): 63*63 + 63*2 = 4095; row 1 (za = 63): -63*63 - 63*2 - 1*1 = -4096;
    row 2 (za = 31) with column 1 (zb = 31): 3 * 32*(-63) = -6048 wraps, then -31*(-63) -> -4095.
    """
    za, zb = np.array([0, 63, 31]), np.array([-32, 31])
    a_centred = np.array(
        [
            [63, 63, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, -63, -63, -1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 32, 32, 32, -31],
        ]
    )
    b_centred = np.array([[63, 2, 63, 2, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, -63, -63, -63, -63]]).T
    return a_centred + za[:, None], b_centred + zb[None, :], za, zb


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    params: MacArrayParams = design.params
    rows, cols = params.rows, params.cols
    rng = np.random.default_rng(seed)
    shapes = random_shapes(rows, cols)[: 4 if quick else None]
    products = [tile_matmul(*random_operands(rng, params, *shape), params) for shape in shapes]
    # Batched, as attention heads: per-head za (one per head for all rows), per-head-and-column zb.
    heads, (m, k, n) = 3, (rows + 1, 9, cols + 1)
    a, b, _, _ = random_operands(rng, params, heads * m, k, n)
    za = rng.integers(*params.a_range, endpoint=True, size=(heads, 1))
    zb = rng.integers(*params.b_range, endpoint=True, size=(heads, n))
    products.append(tile_matmul(a.reshape(heads, m, k), np.stack([b] * heads), za, zb, params))
    plan = [matmul_job(f"{design.name}/random-shapes", products, seed=seed)]
    if not quick:
        many = [
            tuple(int(x) for x in rng.integers(1, (3 * rows, 70, 3 * cols), endpoint=True)) for _ in range(40)
        ]
        products = [tile_matmul(*random_operands(rng, params, *shape), params) for shape in many]
        plan.append(matmul_job(f"{design.name}/random-40-products", products, seed=seed + 1))
    edges = edge_products(params, k=5) if quick else edge_products(params, 17) + edge_products(params, 65)
    plan.append(matmul_job(f"{design.name}/extremes+zero-points", edges, seed=seed + 2))
    for index, (m, k, n) in enumerate(throughput_shapes(rows, cols)[: 2 if quick else None]):
        product = tile_matmul(*random_operands(rng, params, m, k, n), params)
        plan.append(
            matmul_job(
                f"{design.name}/throughput-{m}x{k}x{n}",
                [product],
                seed=seed + 3 + index,
                idle=0.0,
                stall=0.0,
                expected_cycles=params.cycles(m, k, n),
            )
        )
    short = tile_matmul(*random_operands(rng, params, 2 * rows, 7, cols + 1), params)
    reset = matmul_job(f"{design.name}/reset-midstream", [short], seed=seed + 9, reset_after_outputs=rows + 1)
    return plan + [reset]
