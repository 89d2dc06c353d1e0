"""Shift-accumulate (log-domain A·V) verification plan and the host side of a tiled log product.

:func:`tile_log_matmul` turns attention codes ``(..., M, K)`` and V ``(..., K, N)`` with per-lane
zero points into the engine's input stream (one key per transfer, the ``R`` codes of a tile's rows
and ``C`` values of V) and the golden rows (:func:`golden.intops.bitlog2_matmul`,
:func:`~golden.intops.sqrt2_matmul`, :func:`~golden.intops.adalog_matmul`), tiled exactly like
:func:`cosim.checks.mac_array.tile_matmul`. Padded rows carry zero codes, padded lanes ``v = zv = 0``.
AdaLog codes are sent decoded (``M[k]``, ``E[k]`` of the quantizer's LUT), as the LUT block in
front of the engine would deliver them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from golden.bitlog2 import BitLog2Code, quantize_int
from golden.intops import adalog_matmul, bitlog2_matmul, sqrt2_matmul
from golden.params import AdaLogParams, BitLog2Params, LogAVParams, ShiftAccParams, Sqrt2Params
from hw.registry import Design

from ..jobs import Job
from .mac_array import (
    TiledProduct,
    as_array,
    as_tensor,
    check_codes,
    last_flags,
    matmul_job,
    random_shapes,
    throughput_shapes,
    tile_cols,
    tile_grid,
    tile_result,
    tile_rows,
    zero_points,
)

__all__ = ["tile_log_matmul", "random_codes", "extreme_products", "LIMIT", "limit_codes_and_v", "jobs"]

Quantizer = BitLog2Params | Sqrt2Params | AdaLogParams


def _check_quantizer(params: ShiftAccParams, quantizer: Quantizer) -> None:
    expected = {"bitlog2": BitLog2Params, "sqrt2": Sqrt2Params, "adalog": AdaLogParams}[params.family]
    if not isinstance(quantizer, expected):
        raise TypeError(f"a {params.family} shift-accumulate needs {expected.__name__}, not {quantizer!r}")
    if params.family == "bitlog2" and quantizer.scheme != params.scheme:
        raise ValueError(f"BitLog2 scheme {quantizer.scheme!r} does not match the engine's {params.scheme!r}")
    if params.family != "bitlog2" and quantizer.bits != params.bits:
        raise ValueError(f"{quantizer.bits}-bit codes do not match the engine's {params.bits} bits")


def _code_arrays(codes: Any, family: str) -> dict[str, np.ndarray]:
    """BitLog2 ``{k, h, zero}`` (a :class:`BitLog2Code` or a dict), else ``{code}``."""
    if family == "bitlog2":
        get = codes.get if isinstance(codes, dict) else lambda name: getattr(codes, name)
        return {name: as_array(get(name)) for name in ("k", "h", "zero")}
    return {"code": as_array(codes)}


def _payload_codes(codes: dict[str, np.ndarray], params: ShiftAccParams, quantizer: Quantizer) -> tuple:
    """The engine's ``codes`` field (before tiling) and the padding of each of its parts."""
    if params.family == "bitlog2":
        fields = dict(codes) if quantizer.half else {"k": codes["k"], "zero": codes["zero"]}
        return fields, {"k": 0, "h": 0, "zero": 1}
    if params.family == "sqrt2":
        return codes["code"], quantizer.zero_code
    code = codes["code"]
    zero = code == quantizer.zero_code
    safe = np.where(zero, 0, code)
    # A zero code's mant/exp are whatever the LUT holds there; send the largest level so that
    # ignoring the zero flag could not go unnoticed.
    fields = {
        "mant": np.where(zero, quantizer.dn, np.asarray(quantizer.lut_m)[safe]),
        "exp": np.where(zero, 0, np.asarray(quantizer.lut_e)[safe]),
        "zero": zero.astype(np.int64),
    }
    return fields, {"mant": 0, "exp": 0, "zero": 1}


def _golden(codes: dict[str, np.ndarray], v: np.ndarray, zv: np.ndarray, params, quantizer) -> np.ndarray:
    zero_point = as_tensor(zv)[:, None, :]
    if params.family == "bitlog2":
        code = BitLog2Code(*(as_tensor(codes[name]) for name in ("k", "h", "zero")))
        return bitlog2_matmul(code, as_tensor(v), zero_point, params.av).numpy()
    matmul = sqrt2_matmul if params.family == "sqrt2" else adalog_matmul
    return matmul(as_tensor(codes["code"]), as_tensor(v), zero_point, quantizer, params.av).numpy()


def tile_log_matmul(
    codes: Any, v: Any, zv: Any, params: ShiftAccParams, quantizer: Quantizer
) -> TiledProduct:
    """The shift-accumulate's steps and golden rows for ``codes . (v - zv)``.

    Parameters
    ----------
    codes : BitLog2Code, dict or array
        ``(..., M, K)``: BitLog2 ``(k, h, zero)`` fields, or log-√2 / AdaLog codes in
        ``[0, 2**bits]`` (``2**bits`` = zero).
    v, zv :
        V's codes ``(..., K, N)`` and zero points per tensor or per lane ``(..., N)``; batch
        dimensions broadcast.
    params : ShiftAccParams
        The engine: tiling, ``F``, ``P`` and ``acc_bits`` of the golden product.
    quantizer :
        The codes' parameters (AdaLog: the LUT of its ``q``).
    """
    _check_quantizer(params, quantizer)
    codes = _code_arrays(codes, params.family)
    v = as_array(v)
    first = next(iter(codes.values()))
    if first.shape[-1] != v.shape[-2]:
        raise ValueError(f"tile_log_matmul: inner dimensions differ, {first.shape} . {v.shape}")
    batch = tuple(np.broadcast_shapes(first.shape[:-2], v.shape[:-2]))
    codes = {
        key: np.broadcast_to(part, (*batch, *first.shape[-2:])).reshape(-1, *first.shape[-2:])
        for key, part in codes.items()
    }
    v = np.broadcast_to(v, (*batch, *v.shape[-2:])).reshape(-1, *v.shape[-2:])
    count, m, k = next(iter(codes.values())).shape
    n = v.shape[-1]
    zv = zero_points(zv, batch, n)
    check_codes("tile_log_matmul v", v, *params.v_range)
    check_codes("tile_log_matmul zv", zv, *params.v_range)
    result = _golden(codes, v, zv, params, quantizer)
    tm, tn = tile_grid(m, n, params.rows, params.cols)
    fields, pad = _payload_codes(codes, params, quantizer)
    if isinstance(fields, dict):
        code_steps = {key: tile_rows(part, params.rows, tn, pad[key]) for key, part in fields.items()}
    else:
        code_steps = tile_rows(fields, params.rows, tn, pad)
    steps = {
        "codes": code_steps,
        "v": tile_cols(v, params.cols, tm),
        "zv": tile_cols(np.broadcast_to(zv[:, None, :], (count, k, n)), params.cols, tm),
        "last": last_flags(count * tm * tn, k),
    }
    tiles = count * tm * tn
    return TiledProduct(steps, tile_result(result, params.rows, params.cols), tiles, (batch, m, k, n))


def random_codes(
    rng: np.random.Generator, quantizer: Quantizer, shape: tuple, zero_fraction: float = 0.15
) -> Any:
    """Random codes of every value the quantizer can produce (BitLog2: from random inputs over
    its whole grid, saturation included), with about ``zero_fraction`` zero codes."""
    if isinstance(quantizer, BitLog2Params):
        xi = rng.integers(0, 1 << quantizer.input_width, shape)
        xi = np.where(rng.random(shape) < zero_fraction, 0, xi)
        return quantize_int(torch.from_numpy(xi), quantizer)
    top = quantizer.max_code if isinstance(quantizer, Sqrt2Params) else quantizer.n_codes - 1
    codes = rng.integers(0, top + 1, shape)
    return np.where(rng.random(shape) < zero_fraction, quantizer.zero_code, codes)


def _constant_codes(quantizer: Quantizer, shape: tuple, which: str) -> Any:
    """Every code the largest level (``code 0``-like) or the smallest nonzero level."""
    if isinstance(quantizer, BitLog2Params):
        xi = np.full(shape, quantizer.m - 1 if which == "largest" else 1)
        return quantize_int(torch.from_numpy(xi), quantizer)
    top = quantizer.max_code if isinstance(quantizer, Sqrt2Params) else quantizer.n_codes - 1
    return np.full(shape, 0 if which == "largest" else top)


def _random_product(
    rng, params: ShiftAccParams, quantizer: Quantizer, m: int, k: int, n: int
) -> TiledProduct:
    lo, hi = params.v_range
    v = rng.integers(lo, hi + 1, (k, n))
    zv = rng.integers(lo, hi + 1, n)
    return tile_log_matmul(random_codes(rng, quantizer, (m, k)), v, zv, params, quantizer)


def extreme_products(params: ShiftAccParams, quantizer: Quantizer, k: int) -> list[TiledProduct]:
    """V at its extremes against extreme zero points (largest positive and negative ``v - zv``),
    with the largest and the smallest levels (the latter floored for large AdaLog shifts)."""
    lo, hi = params.v_range
    m, n = params.rows + 1, params.cols + 1
    products = []
    for which in ("largest", "smallest"):
        codes = _constant_codes(quantizer, (m, k), which)
        for v, zv in ((hi, lo), (lo, hi), (hi, hi)):
            products.append(tile_log_matmul(codes, np.full((k, n), v), zv, params, quantizer))
    return products


def _quantizers(params: ShiftAccParams, quick: bool) -> list[Quantizer]:
    """The code sources a design is checked with: its BitLog2 scheme, both log-√2 variants, or
    AdaLog LUTs over the q range (q = 119 and 137 have shifts beyond F, so floored terms)."""
    if params.family == "bitlog2":
        return [BitLog2Params(params.scheme)]
    if params.family == "sqrt2":
        return [Sqrt2Params(variant, bits=params.bits) for variant in ("sqrt2_17", "sqrt2_16")]
    qs = (18, 137) if quick else (10, 18, 37, 50, 74, 119, 137)
    return [AdaLogParams(bits=params.bits, q=q) for q in qs]


def _label(quantizer: Quantizer) -> str:
    if isinstance(quantizer, BitLog2Params):
        return quantizer.scheme
    if isinstance(quantizer, Sqrt2Params):
        return quantizer.variant
    return f"q{quantizer.q}"


#: BitLog2 Single_17 with 5-bit signed V and a 16-bit accumulator, for :func:`limit_codes_and_v`.
LIMIT = ShiftAccParams.for_quantizer(
    BitLog2Params("single_17"),
    LogAVParams.default("bitlog2", acc_bits=16),
    rows=3,
    cols=5,
    v_bits=5,
    v_signed=True,
)


def limit_codes_and_v() -> tuple[BitLog2Code, np.ndarray, np.ndarray]:
    """BitLog2 Single_17 A·V reaching both ends of a 16-bit accumulator, one after a wrap.

    Lane 0 (v - zv = 1 for keys 0..14, -1 for key 15): row 0 sums 2**0 + ... + 2**14 = 32767,
    row 1 (only key 15, k = 15) gives -32768, row 2 (k = 14, 15, 15 on keys 0, 14, 15) passes
    49152 (wraps) and ends at 16384. Lanes 2..4 centre to zero with extreme zero points.
    """
    keys = 16
    k = np.zeros((3, keys), dtype=np.int64)
    zero = np.ones((3, keys), dtype=np.int64)
    k[0, :15], zero[0, :15] = np.arange(15), 0
    k[1, 15], zero[1, 15] = 15, 0
    for key, position in ((0, 14), (14, 15), (15, 15)):
        k[2, key], zero[2, key] = position, 0
    d = np.zeros((keys, 5), dtype=np.int64)
    d[:15, 0], d[15, 0] = 1, -1
    d[[0, 14], 1], d[15, 1] = 1, -1
    zv = np.array([0, 0, -16, 15, 3])
    return BitLog2Code(torch.tensor(k), torch.zeros_like(torch.tensor(k)), torch.tensor(zero)), d + zv, zv


def jobs(design: Design, *, seed: int, quick: bool = False) -> list[Job]:
    params: ShiftAccParams = design.params
    rng = np.random.default_rng(seed)
    rows, cols = params.rows, params.cols
    shapes = random_shapes(rows, cols)[: 4 if quick else None]
    if not quick:
        shapes += [
            tuple(int(x) for x in rng.integers(1, (3 * rows, 70, 3 * cols), endpoint=True)) for _ in range(12)
        ]
    plan = []
    for number, quantizer in enumerate(_quantizers(params, quick)):
        products = [_random_product(rng, params, quantizer, *shape) for shape in shapes]
        # Batched, as attention heads: one zero point per head and lane.
        heads, m, k, n = 2, rows + 1, 11, cols + 2
        lo, hi = params.v_range
        codes = random_codes(rng, quantizer, (heads, m, k))
        v, zv = rng.integers(lo, hi + 1, (heads, k, n)), rng.integers(lo, hi + 1, (heads, n))
        products.append(tile_log_matmul(codes, v, zv, params, quantizer))
        products += extreme_products(params, quantizer, k=5 if quick else 65)
        name = f"{design.name}/{_label(quantizer)}/random+extremes"
        plan.append(matmul_job(name, products, seed=seed + number))
    quantizer = _quantizers(params, quick)[-1]
    for index, (m, k, n) in enumerate(throughput_shapes(rows, cols)[: 2 if quick else None]):
        plan.append(
            matmul_job(
                f"{design.name}/throughput-{m}x{k}x{n}",
                [_random_product(rng, params, quantizer, m, k, n)],
                seed=seed + 20 + index,
                idle=0.0,
                stall=0.0,
                expected_cycles=params.cycles(m, k, n),
            )
        )
    short = _random_product(rng, params, quantizer, 2 * rows, 7, cols + 1)
    reset = matmul_job(
        f"{design.name}/reset-midstream", [short], seed=seed + 30, reset_after_outputs=rows + 1
    )
    return plan + [reset]
