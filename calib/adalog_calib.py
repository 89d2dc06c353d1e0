"""AdaLog-specific FPCS searches: the post-Softmax base and the post-GELU base and scale.

Reference: AdaLog ``quant_layers/matmul.py`` (``PostSoftmaxAsymmetricallyBatchingQuantMatMul``:
``_search_best_A_log_base``) and ``quant_layers/linear.py`` (``PostGeluLogBasedBatchingQuantLinear``:
``positive_percentile``, ``_search_best_log_base``, ``_search_best_scale_logbase``,
``activation_fpcs``). Codes are the golden model's (:func:`golden.adalog.reference_forward`), i.e.
the deployed quantizer's, not the search-time copy in the reference (see ``calib/fpcs.py``).

Fast scores: a float32 product screens every candidate (the float32 band), a float64 product of
the exact values re-scores the close ones, the straightforward expression settles exact ties.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from calib.fpcs_core import Candidates, FastScores, Problem, SearchContext, choose, relative_radius
from calib.fpcs_exact import adalog_exact, adalog_exact_table, log_units
from calib.fpcs_gelu import GeluQuantizerProblem
from calib.fpcs_select import Tier
from golden.params import ADALOG_GELU_SHIFT, ADALOG_Q_RANGE

__all__ = [
    "Q_CANDIDATES",
    "AttentionBaseProblem",
    "GeluQuantizerProblem",
    "search_attention_base",
    "gelu_scale_range",
    "gelu_initial_scale",
    "search_gelu_quantizer",
]

#: The searched numerators q of the base 2**(q/37): the reference's first ``eq_n = 128`` of
#: ``range(10, 11 + eq_n)``.
Q_CANDIDATES = torch.arange(ADALOG_Q_RANGE[0], ADALOG_Q_RANGE[1] + 1, dtype=torch.int64)
_ZERO = torch.tensor([0.0], dtype=torch.float32)
_ONE = torch.tensor([1.0], dtype=torch.float32)


#: Rows per chunk of the fast evaluations: a chunk's temporaries stay in the cache.
_CHUNK_ELEMENTS = 1 << 18


def _dequantize_into(
    buffer: torch.Tensor, units: torch.Tensor, q: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """``table[code]`` for the codes ``min(round(units / q), 2**bits)`` of a chunk: the golden
    zero test and clamp (``units >= 0``, so the lower clamp never acts), in place in ``buffer``."""
    torch.div(units, q, out=buffer)
    buffer.round_().clamp_(max=table.shape[0] - 1)
    return table[buffer.to(torch.int64)]


def _row_chunks(rows: int, width: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(width, 1))
    return [slice(start, start + step) for start in range(0, rows, step)]


def _per_image_sum(d2: torch.Tensor) -> float:
    """Mean over every axis but the first (images), then the sum over images."""
    return float(d2.mean(dim=tuple(range(1, d2.ndim))).sum()) if d2.ndim > 1 else float(d2.sum())


class AttentionBaseProblem(Problem):
    """The post-Softmax base search: every q on the ``A @ V`` output MSE, V quantized (one group).

    Parameters
    ----------
    attention : Tensor (B, H, T, T)
        Full-precision softmax output.
    value_hat : Tensor (B, H, T, d), float64
        The exact dequantized ``V``.
    raw_out : Tensor (B, H, T, d)
        Full-precision ``A @ V``.
    """

    groups = 1

    def __init__(
        self,
        attention: torch.Tensor,
        value_hat: torch.Tensor,
        raw_out: torch.Tensor,
        bits: int,
        band: float = 1e-9,
        band_float32: float = 1e-4,
    ) -> None:
        self.attention = attention.detach().to(torch.float32).contiguous()
        self.value = value_hat.detach().to(torch.float64).contiguous()
        self.raw = raw_out.detach().to(torch.float32).contiguous()
        self.bits, self.band, self.band_float32 = bits, band, band_float32
        self.per_image = self.raw.numel() // self.raw.shape[0]
        self._units: torch.Tensor | None = None

    def reference_score(self, candidate: Mapping[str, torch.Tensor], group: int) -> float:
        a_hat = adalog_exact(self.attention, int(candidate["q"]), _ONE, _ZERO, self.bits)
        return _per_image_sum((self.raw.double() - a_hat @ self.value) ** 2)

    def _score(self, q: int, dtype: torch.dtype) -> float:
        """``sum (a_hat @ v_hat - raw)^2`` per image, in chunks of (image, head) maps; ``dtype`` is the
        product's precision (the level values are exact in float32: scale 1)."""
        if self._units is None:
            self._units = log_units(self.attention, _ONE, _ZERO).reshape(-1, *self.attention.shape[2:])
            self._value_flat = self.value.reshape(-1, *self.value.shape[2:])
            self._raw_flat = self.raw.reshape(-1, *self.raw.shape[2:]).double()
        table = adalog_exact_table(self.bits, q, _ONE).to(dtype)
        q_tensor = torch.tensor([q], dtype=torch.int64)
        maps = self._units.shape[0]
        total = 0.0
        buffer = torch.empty(0)
        for part in _row_chunks(maps, self._units[0].numel()):
            units = self._units[part]
            buffer = buffer.new_empty(units.shape) if buffer.shape != units.shape else buffer
            a_hat = _dequantize_into(buffer, units, q_tensor, table)
            out = (a_hat @ self._value_flat[part].to(dtype)).double()
            total += float(((out - self._raw_flat[part]) ** 2).sum())
        return total / self.per_image

    def fast_scores(self, candidates: Candidates) -> FastScores:
        qs = candidates["q"][:, 0].tolist()
        values = torch.tensor([[self._score(q, torch.float32)] for q in qs], dtype=torch.float64)

        def exact(p: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scores = torch.tensor(
                [self._score(qs[i], torch.float64) for i in p.tolist()], dtype=torch.float64
            )
            return scores, relative_radius(scores, self.band)

        return FastScores(values, relative_radius(values, self.band_float32), None, [Tier("float64", exact)])


def search_attention_base(problem: AttentionBaseProblem, context: SearchContext) -> int:
    """The q of smallest ``A @ V`` output MSE over :data:`Q_CANDIDATES` (ties: the smaller q)."""
    best = choose(problem, {"q": Q_CANDIDATES[: context.config.eq_n, None]}, 1, context)
    return int(Q_CANDIDATES[best[0, 0]])


def gelu_scale_range(x: torch.Tensor) -> torch.Tensor:
    """``(lo, hi)`` (float32, shape (2,)): the 0.9 quantile and the maximum of the positive inputs,
    plus the shift: AdaLog's ``positive_percentile`` (rank ``ceil(count * q) - 1`` in float32) of the
    flattened fc2 input."""
    flat = x.detach().reshape(-1).to(torch.float32)
    positive = torch.sort(flat[flat > 0]).values
    count = torch.tensor([float(positive.numel())], dtype=torch.float32)
    ranks = (torch.ceil(count * torch.tensor([0.9, 1.0])).to(torch.int64) - 1).clamp(min=0)
    picked = positive[ranks] if positive.numel() else torch.zeros(2)
    return picked + ADALOG_GELU_SHIFT


def gelu_initial_scale(scale_range: torch.Tensor, eq_n: int = 128) -> torch.Tensor:
    """The scale the reference starts from: entry ``eq_n - 2`` of ``eq_n`` even splits of the range
    (shape (1,))."""
    fractions = torch.tensor([i / (eq_n - 1) for i in range(eq_n)])
    return (scale_range[0:1] + (scale_range[1:2] - scale_range[0:1]) * fractions)[-2:-1]


def search_gelu_quantizer(
    problem: GeluQuantizerProblem,
    scale_range: torch.Tensor,
    scale: torch.Tensor,
    context: SearchContext,
    bases: int = 8,
    scales: int = 16,
    width: int = 32,
) -> tuple[int, torch.Tensor]:
    """One ``activation_fpcs`` of the post-GELU quantizer: the best ``bases`` q at the current
    ``scale``, crossed with ``scales`` even splits of ``scale_range``; keep ``width``; then
    ``steps - 1`` refinements of ``eq_n / width`` scales each. Returns ``(q, scale (1,))``."""
    config = context.config
    new_per_survivor = config.eq_n // width
    q_all = Q_CANDIDATES[: config.eq_n, None]
    top_q = choose(problem, {"q": q_all, "scale": scale.expand(q_all.shape[0])[:, None]}, bases, context)
    fractions = torch.tensor([i / (scales - 1) for i in range(scales)])
    grid = scale_range[0:1] + (scale_range[1:2] - scale_range[0:1]) * fractions
    delta = grid[1:2] - grid[0:1]
    candidate_scale = grid.repeat(bases)[:, None]
    candidate_q = q_all[top_q[:, 0]].repeat_interleave(scales, dim=0)
    best = choose(problem, {"q": candidate_q, "scale": candidate_scale}, width, context)
    survivor_q, survivor_scale = candidate_q.gather(0, best), candidate_scale.gather(0, best)
    for remaining in range(config.steps - 1, 0, -1):
        offsets = (torch.linspace(0, 1, steps=new_per_survivor) - 0.5) * delta
        delta = delta / (new_per_survivor - 0.5)
        candidate_scale = (survivor_scale + offsets[None, :]).reshape(-1, 1)
        candidate_q = survivor_q.repeat_interleave(new_per_survivor, dim=0)
        keep = 1 if remaining == 1 else width
        best = choose(problem, {"q": candidate_q, "scale": candidate_scale}, keep, context)
        survivor_q, survivor_scale = candidate_q.gather(0, best), candidate_scale.gather(0, best)
    return int(survivor_q[0, 0]), survivor_scale[0]
