"""FPCS objective of AdaLog's post-GELU quantizer (fc2's input), and its fast evaluation.

Objective (``_search_best_log_base`` / ``_search_best_scale_logbase`` of AdaLog's
``PostGeluLogBasedBatchingQuantLinear``): for a base ``q`` and scale ``s``, the fc2 output MSE with
the quantized weight, ``Sum_b mean_t mean_o (x_hat W' + b - raw)^2``, where ``x_hat = s * lambda[c] -
shift`` (the shift subtracted again: fc2's bias is not yet reparameterized during calibration) and
``c`` the golden AdaLog code.

Fast evaluation. With ``P = Lambda W'`` (``Lambda`` the levels ``lambda[c]`` of every element) and
``Y = raw - b + shift * (W 1)`` the error is ``||s P - Y||^2 = s^2 A - 2 s B + C`` with ``A = ||P||^2``
and ``B = <P, Y>``. A candidate is scored

* from a pooled *base* of the same ``q`` (its ``P`` and row sums, float64) when few elements change
  code between the two: the changed rows of ``P`` are updated by a sparse product over the changed
  elements; candidates are visited in (q, scale) order, so the nearest base is usually the previous
  candidate's, and late FPCS steps change a handful of codes;
* otherwise by an exact product (int8 planes of the LUT levels times the weight codes, or float64),
  which joins the pool.

Every distinct (q, scale) is scored once per problem. A code is a non-increasing function of the
input, so the elements of each code are a run of the sorted inputs, found by binary search with the
golden float32 expression; a product's operand is gathered from the runs bucket by bucket
(:meth:`GeluQuantizerProblem._gather_runs`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch

from calib.fpcs_core import Candidates, FastScores, Problem, relative_radius
from calib.fpcs_exact import adalog_exact, adalog_exact_table, adalog_lut, log_units
from calib.fpcs_grams import row_classes, scale_key
from golden.params import ADALOG_GELU_SHIFT

__all__ = ["SHIFT", "GeluQuantizerProblem"]

SHIFT = torch.tensor([ADALOG_GELU_SHIFT], dtype=torch.float32)
#: A base serves a candidate when at most this fraction of the elements change code (the sparse
#: update then costs less than a new product).
_INCREMENTAL_FRACTION = 1 / 16
#: A candidate scored from a base becomes a base itself when more than this fraction of the elements
#: changed code (copying a product costs about as much as updating a few thousand elements).
_NEW_BASE_FRACTION = 1 / 512
#: Bases kept per problem (each a float64 copy of the layer output), of which the most recent few
#: are never dropped (the neighbours of the next candidates).
_POOL = 32
_RECENT = 4
#: Sorted positions per bucket of :meth:`GeluQuantizerProblem._gather_runs` (2**8: the per-bucket
#: table of a DeiT-Tiny fc2 input, ~19k entries, stays in the first-level caches).
_BUCKET_BITS = 8


@dataclasses.dataclass
class _Base:
    """Everything needed to score candidates of base ``q`` whose runs lie near ``starts``."""

    q: int
    starts: torch.Tensor  # (n_codes,) first sorted position with code <= c
    product: torch.Tensor  # (N, out): Lambda W'
    row_a: torch.Tensor  # (N,) float64 ||P_r||^2
    row_b: torch.Tensor  # (N,) float64 <P_r, Y_r>
    total_a: float
    total_b: float
    value: float  # the score of the candidate that made it


class GeluQuantizerProblem(Problem):
    """The post-GELU base and scale search on the fc2 output MSE, weights quantized (one group).

    Candidates carry ``q`` (int64) and ``scale`` (float32).

    Parameters
    ----------
    x : Tensor (B, T, in)
        Full-precision GELU output (fc2 input).
    raw_out : Tensor (B, T, out)
        Full-precision fc2 output.
    weight_hat : Tensor (out, in), float64
        The exact dequantized fc2 weight; ``bias`` the layer's.
    weight_codes, weight_scale : Tensor, optional
        Integer codes (out, in) and per-row scales (out,) with ``weight_hat = codes * scale``: dense
        scores then use exact int8 products (:meth:`_planes`).
    """

    groups = 1

    def __init__(
        self,
        x: torch.Tensor,
        raw_out: torch.Tensor,
        weight_hat: torch.Tensor,
        bias: torch.Tensor | None,
        bits: int,
        band: float = 1e-9,
        band_float32: float = 1e-4,
        weight_codes: torch.Tensor | None = None,
        weight_scale: torch.Tensor | None = None,
    ) -> None:
        self.x = x.detach().to(torch.float32).contiguous()
        self.raw = raw_out.detach().to(torch.float32).contiguous()
        self.weight = weight_hat.detach().to(torch.float64).contiguous()
        # Integer weight codes (weight_hat = codes * scale per row) allow exact int8 products.
        small = weight_codes is not None and float(weight_codes.abs().max()) <= 127
        self.weight_codes = weight_codes.to(torch.int8).contiguous() if small else None
        self.weight_scale = None if weight_scale is None else weight_scale.detach().to(torch.float64)
        self.bias = None if bias is None else bias.detach().to(torch.float64)
        self.bits, self.band, self.band_float32 = bits, band, band_float32
        self.per_image = self.raw.numel() // self.raw.shape[0]
        self._prepared = False

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        scale = candidate["scale"].reshape(1)
        x_hat = adalog_exact(self.x, int(candidate["q"]), scale, SHIFT, self.bits, reparameterized=False)
        out = torch.nn.functional.linear(x_hat, self.weight, self.bias)
        d2 = ((self.raw.double() - out) ** 2).mean(dim=-1)
        return float(d2.mean(dim=tuple(range(1, d2.ndim))).sum()) if d2.ndim > 1 else float(d2.sum())

    # -- preparation -------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.flat = self.x.reshape(-1, self.x.shape[-1])
        self.sorted, self.order = torch.sort(self.flat.reshape(-1), stable=True)
        self.size = self.sorted.numel()
        target = self.raw.reshape(-1, self.raw.shape[-1]).double()
        if self.bias is not None:
            target = target - self.bias
        self.target = target + ADALOG_GELU_SHIFT * self.weight.sum(dim=1)
        self.energy = float((self.target * self.target).sum())
        # The rank of every element in the sorted order (int32: index_select is fastest with it).
        index_type = torch.int32 if self.size < 2**31 else torch.int64
        self.rank = torch.empty(self.size, dtype=index_type)
        self.rank[self.order] = torch.arange(self.size, dtype=index_type)
        self.weight_t = self.weight.t().contiguous()
        if self.weight_codes is not None:
            self.weight_codes_t = self.weight_codes.t()
        self.bucket = self.rank >> _BUCKET_BITS
        self.bucket_starts = torch.arange(0, self.size, 1 << _BUCKET_BITS)
        self.pool: list[_Base] = []
        self.memo: dict[tuple[int, float], float] = {}
        self._prepared = True

    def _code(self, values: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Golden AdaLog codes (float32, ``min(round(units / q), 2**b)``) of ``values``."""
        units = log_units(values, scale, SHIFT)
        return torch.round(units / q).clamp(max=2**self.bits)

    def _starts(self, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """(P, 2**b) first sorted position whose code is at most ``c``, for ``c = 0 .. 2**b - 1``."""
        count, codes = q.shape[0], 2**self.bits
        shape = (count, codes)
        c = torch.arange(codes, dtype=torch.float32)[None].expand(shape)
        qq, ss = q[:, None].expand(shape), scale[:, None].expand(shape)
        lo = torch.zeros(shape, dtype=torch.int64)
        hi = torch.full(shape, self.size, dtype=torch.int64)
        for _ in range(max(1, math.ceil(math.log2(self.size + 1)))):
            mid = (lo + hi) // 2
            probe = self.sorted[mid.clamp(max=self.size - 1)]
            reached = (self._code(probe, qq, ss) <= c) | (mid >= self.size)
            hi = torch.where(reached, mid, hi)
            lo = torch.where(reached, lo, mid + 1)
        return lo

    def _levels(self, q: int) -> torch.Tensor:
        """``lambda[c]`` of every code ``0 .. 2**b`` (the zero code's is 0), float64."""
        return adalog_exact_table(self.bits, q, torch.ones(1), 0.0)

    # -- bases -------------------------------------------------------------------------------
    def _base(self, q: int, starts: torch.Tensor, product: torch.Tensor, value: float) -> _Base:
        row_a = torch.einsum("ij,ij->i", product, product)
        row_b = torch.einsum("ij,ij->i", product, self.target)
        return _Base(q, starts.clone(), product, row_a, row_b, float(row_a.sum()), float(row_b.sum()), value)

    def _value(self, scale: float, total_a: float, total_b: float) -> float:
        return (scale * scale * total_a - 2 * scale * total_b + self.energy) / self.per_image

    def _remember(self, base: _Base) -> None:
        """Add ``base`` to the pool; beyond its size drop the worst-scoring base, sparing the most
        recent ones (the neighbours of the next candidates in sorted order)."""
        self.pool.append(base)
        if len(self.pool) > _POOL:
            older = self.pool[:-_RECENT]
            worst = max(range(len(older)), key=lambda i: older[i].value)
            self.pool.pop(worst)

    def _nearest(self, q: int, starts: torch.Tensor) -> tuple[_Base | None, int]:
        """The pooled base of ``q`` whose runs differ least from ``starts`` (an upper bound of the
        number of elements whose code differs)."""
        best, moved = None, self.size + 1
        for base in reversed(self.pool):
            if base.q == q:
                distance = int((base.starts - starts).abs().sum())
                if distance < moved:
                    best, moved = base, distance
        return best, moved

    def _changes(self, base: _Base, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows whose product changes from the base's runs to ``starts``, and their updates
        ``(Lambda_new - Lambda_base) W'`` (float64, a sparse product over the changed elements)."""
        empty = torch.zeros(0, dtype=torch.int64), torch.zeros((0, self.weight.shape[0]), dtype=torch.float64)
        lows, highs = torch.minimum(base.starts, starts).tolist(), torch.maximum(base.starts, starts).tolist()
        spans = sorted((lo, hi) for lo, hi in zip(lows, highs) if hi > lo)
        if not spans:
            return empty
        merged = [list(spans[0])]
        for lo, hi in spans[1:]:
            if lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        # Only positions between a run start of one and of the other can change code; a position's
        # code is the number of run starts above it.
        position = torch.cat([torch.arange(lo, hi) for lo, hi in merged])
        n_codes = 2**self.bits
        old = n_codes - torch.searchsorted(base.starts.flip(0).contiguous(), position, right=True)
        new = n_codes - torch.searchsorted(starts.flip(0).contiguous(), position, right=True)
        differs = old != new
        if not bool(differs.any()):
            return empty
        position, old, new = position[differs], old[differs], new[differs]
        levels = self._levels(base.q)
        delta = levels[new] - levels[old]
        element, permutation = torch.sort(self.order[position])
        width = self.flat.shape[1]
        changed, local = torch.unique_consecutive(element // width, return_inverse=True)
        indices = torch.stack([local, element % width])
        sparse = torch.sparse_coo_tensor(
            indices, delta[permutation], (changed.numel(), width), is_coalesced=True, check_invariants=False
        )
        return changed, torch.sparse.mm(sparse, self.weight_t)

    def _from_base(self, base: _Base, starts: torch.Tensor, scale: float, keep: bool) -> tuple[float, _Base]:
        """The score at ``scale`` of the candidate of the base's q with runs ``starts`` (the changed
        rows of the base's product updated), and its own base when ``keep`` (else the parent)."""
        changed, update = self._changes(base, starts)
        if not changed.numel():
            return self._value(scale, base.total_a, base.total_b), base
        new_rows = base.product[changed] + update
        new_a = torch.einsum("ij,ij->i", new_rows, new_rows)
        new_b = torch.einsum("ij,ij->i", new_rows, self.target[changed])
        total_a = base.total_a + float(new_a.sum() - base.row_a[changed].sum())
        total_b = base.total_b + float(new_b.sum() - base.row_b[changed].sum())
        value = self._value(scale, total_a, total_b)
        if not keep:
            return value, base
        product, row_a, row_b = base.product.clone(), base.row_a.clone(), base.row_b.clone()
        product[changed], row_a[changed], row_b[changed] = new_rows, new_a, new_b
        return value, _Base(base.q, starts.clone(), product, row_a, row_b, total_a, total_b, value)

    # -- dense products ----------------------------------------------------------------------
    def _planes(self, q: int) -> list[tuple[torch.Tensor, float]] | None:
        """The levels of base ``q`` as a few int8 tables: ``level[c] * Dn = sum_p table_p[c] * f_p``
        with ``|table_p| <= 127`` (codes whose exponents ``E`` lie within a few steps share a plane).
        ``None`` when more than three planes would be needed (then a float64 product is cheaper)."""
        if self.weight_codes is None:
            return None
        mantissa, exponent, dn = adalog_lut(self.bits, q)
        planes: list[tuple[torch.Tensor, float]] = []
        remaining = sorted(set(exponent))
        while remaining:
            top = remaining[0]
            span = 0
            while all(
                m << (span + 1) <= 127 for m, e in zip(mantissa, exponent) if top <= e <= top + span + 1
            ):
                span += 1
                if span > 8:
                    break
            base = top + span
            table = torch.zeros(2**self.bits + 1, dtype=torch.int8)
            for code, (m, e) in enumerate(zip(mantissa, exponent)):
                if top <= e <= base:
                    table[code] = m << (base - e)
            planes.append((table, math.ldexp(1.0 / dn, -base)))
            remaining = [e for e in remaining if e > base]
            if len(planes) > 3:
                return None
        return planes

    def _run_index(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where :meth:`_gather_runs` reads the codes of the runs ``starts``: the code of each bucket
        of ``2**_BUCKET_BITS`` consecutive sorted positions (that of its first position), and the
        elements of the few buckets a run boundary cuts with their own codes."""
        flipped, n_codes = starts.flip(0).contiguous(), 2**self.bits
        bucket_codes = n_codes - torch.searchsorted(flipped, self.bucket_starts, right=True)
        inside = starts[(starts % (1 << _BUCKET_BITS) != 0) & (starts < self.size)]
        cut = torch.unique(inside >> _BUCKET_BITS)
        positions = (cut[:, None] * (1 << _BUCKET_BITS) + torch.arange(1 << _BUCKET_BITS)).reshape(-1)
        positions = positions[positions < self.size]
        codes = n_codes - torch.searchsorted(flipped, positions, right=True)
        return bucket_codes, self.order[positions], codes

    def _gather_runs(self, values: torch.Tensor, index: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``values[code]`` of every element (flattened, element order) for a :meth:`_run_index`:
        a cache-resident gather from the per-bucket table instead of one through the whole sorted
        order, then the cut buckets' elements one by one."""
        bucket_codes, elements, codes = index
        out = torch.index_select(values[bucket_codes], 0, self.bucket)
        out[elements] = values[codes]
        return out

    def _dense(self, q: int, scale: torch.Tensor, starts: torch.Tensor) -> _Base:
        """A new base from the exact product ``Lambda W'`` (int8 planes, or float64)."""
        planes, index = self._planes(q), self._run_index(starts)
        if planes is None:
            levels = self._gather_runs(self._levels(q), index).reshape(self.flat.shape)
            product = levels @ self.weight_t
        else:
            product = torch.zeros((self.flat.shape[0], self.weight.shape[0]), dtype=torch.float64)
            for table, factor in planes:
                plane = self._gather_runs(table, index).reshape(self.flat.shape)
                exact = torch._int_mm(plane, self.weight_codes_t)  # int32, exact
                product += exact.to(torch.float64) * factor
            product *= self.weight_scale
        base = self._base(q, starts, product, 0.0)
        base.value = self._value(float(scale), base.total_a, base.total_b)
        return base

    def _evaluate(self, q: int, scale: torch.Tensor, starts: torch.Tensor) -> float:
        """The score of one candidate, from the nearest pooled base when few codes differ, else
        from a new product; the result joins the pool (the next candidates are its neighbours)."""
        base, moved = self._nearest(q, starts)
        if base is not None and moved <= self.size * _INCREMENTAL_FRACTION:
            # A candidate close to its base scores from it; a farther one becomes a base itself.
            keep = moved > self.size * _NEW_BASE_FRACTION
            value, own = self._from_base(base, starts, float(scale), keep=keep)
            if own is not base:
                self._remember(own)
            return value
        own = self._dense(q, scale, starts)
        self._remember(own)
        return own.value

    # -- the fast scores ---------------------------------------------------------------------
    def fast_scores(self, candidates: Candidates) -> FastScores:
        if not self._prepared:
            self._prepare()
        q_all, scale_all = candidates["q"][:, 0], candidates["scale"][:, 0]
        starts = self._starts(q_all, scale_all)
        qs, scales = q_all.tolist(), scale_all.tolist()
        values = torch.empty((len(qs), 1), dtype=torch.float64)
        # In (q, scale) order each candidate's nearest base is usually its predecessor's.
        for index in sorted(range(len(qs)), key=lambda i: (qs[i], scales[i], i)):
            key = (qs[index], scales[index])
            if key not in self.memo:
                self.memo[key] = self._evaluate(qs[index], scale_all[index], starts[index])
            values[index, 0] = self.memo[key]
        keys = torch.cat([candidates["q"][:, :, None], scale_key(candidates["scale"])], dim=2)
        return FastScores(values, relative_radius(values, self.band), row_classes(keys))
