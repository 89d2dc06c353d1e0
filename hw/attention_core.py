"""Attention head core: Q·Kᵀ → score requant, and log quantizer → shift-accumulate A·V → requant.

One head of attention as one design, so the stream connections between Quiver's blocks are
exercised in RTL (the softmax stays in the golden model at this stage)::

    qk ─► ZeroPointBroadcast(za, zb) ─► MacArray (R x C) ─► Requantizer (C lanes) ─► scores
                                                                   (softmax outside: testbench)
    probs ─► L quantizers [─► L AdaLogLuts] ─► CodeGather (R codes + V row) ─► ZeroPointBroadcast(zv)
          ─► ShiftAccumulate (R x head_dim) ─► Requantizer (head_dim lanes) ─► o
    cfg ─► ConfigSplitter ─► every block's run-time parameters

* ``qk``: one Q·Kᵀ k-step per transfer: ``R`` Q codes (rows ``i0 .. i0+R-1``, element ``k``) and
  ``C`` K codes (keys ``j0 .. j0+C-1``), ``last`` on the tile's ``head_dim``-th step, tiles in the
  order of :func:`cosim.checks.mac_array.tile_matmul`; the zero points come from ``cfg``.
* ``scores``: the signed score codes of each tile row (``C`` keys), the softmax's input.
* ``probs``: the probabilities on the quantizer's input grid, ``L`` per transfer (``L`` lanes of
  quantizers, :attr:`AttentionCoreParams.lanes`), the ``R`` rows of one key after the other (row
  block, key ``j``, row ``r``), in step with ``v``.
* ``v``: V's row ``j`` (``head_dim`` codes) and ``last`` on the final key of a row block.
* ``o``: the proj-input codes of each output row (``head_dim`` values).

The two chains share nothing but ``cfg`` and the clock, so the core cannot deadlock whatever the
order in which an outside softmax returns probabilities. Every parameter (zero points, both
requantizations, the quantizer's thresholds, the AdaLog LUT) is loaded through ``cfg``
(:meth:`AttentionCore.config_image`), so one build serves every head of every layer of a model.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from amaranth import Module, Shape, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import (
    MAC_LATENCY,
    SHIFT_ACC_LATENCY,
    AdaLogParams,
    BitLog2Params,
    LogAVParams,
    MacArrayParams,
    ParamError,
    RequantParams,
    ShiftAccParams,
    Sqrt2Params,
)

from .adalog_lut import AdaLogLut
from .bitlog2 import BitLog2Quantizer
from .config import ConfigMap
from .logdecode import code_shape
from .mac_array import MacArray, mac_step_layout
from .pipeline import reject
from .requant import Requantizer
from .shift_acc import ShiftAccumulate, shift_acc_step_layout
from .stream_adapters import CodeGather, ConfigSplitter, Lanes, ZeroPointBroadcast, without_fields
from .threshold_quant import ThresholdQuantizer

__all__ = ["AttentionCoreParams", "AttentionCore", "REQUANT_LATENCY"]

LogQuantizer = BitLog2Params | Sqrt2Params | AdaLogParams
#: Latency of :class:`hw.requant.Requantizer` (table read, bias, multiply, round-shift-clamp).
REQUANT_LATENCY = 4
_GATHER_LATENCY = 2


def _is_power_of_two(value: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1 and not value & (value - 1)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ParamError(message)


def _structure(out_bits: int, out_signed: bool, acc_bits: int) -> RequantParams:
    """A one-channel requantization of the given widths: what a :class:`Requantizer` is built from."""
    return RequantParams(
        multiplier=(1 << 15,), shift=(16,), out_bits=out_bits, out_signed=out_signed, acc_bits=acc_bits
    )


@dataclasses.dataclass(frozen=True)
class AttentionCoreParams:
    """The structure of one attention head core (every value that differs per head is run time).

    Parameters
    ----------
    head_dim : int
        ``d``: the k-steps of a Q·Kᵀ tile and the V lanes of A·V; a power of two up to 64.
    tokens : int
        ``N``, the sequence length the example and :meth:`cycles` assume. The circuit itself
        follows the streams' ``last`` flags, so it serves any ``N``.
    rows, cols : int
        ``R`` query rows per tile (both engines) and ``C`` keys per Q·Kᵀ tile (a power of two:
        the score requantizer's lanes).
    qk_bits, qk_signed, v_bits, v_signed :
        Code formats of Q and K, and of V.
    qk_acc_bits : int
        The Q·Kᵀ accumulator (and score requantizer) width.
    score_bits : int
        Signed score code width.
    probs : BitLog2Params, Sqrt2Params or AdaLogParams
        The post-softmax quantizer's structure (BitLog2 scheme; or bits and input grid).
    log_av : LogAVParams
        The A·V accumulator (family matching ``probs``).
    out_bits, out_signed :
        The proj-input code format after the A·V requantization.
    lanes : int or None
        ``L`` log quantizers side by side (``R`` divisible by ``L``); ``None``: ``R``, so the A·V
        engine gets a whole step per cycle. ``L = 1`` is the smallest circuit, one code per cycle.
    """

    head_dim: int = 16
    tokens: int = 50
    rows: int = 4
    cols: int = 4
    qk_bits: int = 4
    qk_signed: bool = False
    v_bits: int = 4
    v_signed: bool = False
    qk_acc_bits: int = 13
    score_bits: int = 16
    probs: LogQuantizer = dataclasses.field(default_factory=lambda: BitLog2Params("half_17"))
    log_av: LogAVParams = dataclasses.field(
        default_factory=lambda: LogAVParams.default("bitlog2", acc_bits=19)
    )
    out_bits: int = 4
    out_signed: bool = False
    lanes: int | None = None

    def __post_init__(self) -> None:
        _check(
            _is_power_of_two(self.head_dim) and self.head_dim <= 64,
            f"attention core head_dim must be a power of two up to 64, not {self.head_dim!r}",
        )
        _check(
            _is_power_of_two(self.cols) and self.cols <= 64,
            f"attention core cols must be a power of two up to 64, not {self.cols!r}",
        )
        _check(
            isinstance(self.tokens, int) and self.tokens >= 1,
            f"attention core tokens must be a positive integer, not {self.tokens!r}",
        )
        _check(
            isinstance(self.probs, (BitLog2Params, Sqrt2Params, AdaLogParams)),
            f"attention core probs must be a BitLog2, log-√2 or AdaLog quantizer, not {self.probs!r}",
        )
        _check(
            not isinstance(self.probs, AdaLogParams) or not self.probs.input_signed,
            "attention core probs take unsigned probabilities, not a signed AdaLog grid",
        )
        _check(
            self.lanes is None
            or (isinstance(self.lanes, int) and self.lanes >= 1 and self.rows % self.lanes == 0),
            f"attention core lanes must divide rows = {self.rows!r}, not {self.lanes!r}",
        )
        # Building the parts checks rows, widths, the family of log_av and the requant widths.
        self.mac, self.shift_acc, self.score_requant, self.av_requant  # noqa: B018

    @property
    def mac(self) -> MacArrayParams:
        """The Q·Kᵀ engine: ``R x C``, Q on ``a``, K on ``b``."""
        return MacArrayParams(
            rows=self.rows,
            cols=self.cols,
            a_bits=self.qk_bits,
            a_signed=self.qk_signed,
            b_bits=self.qk_bits,
            b_signed=self.qk_signed,
            acc_bits=self.qk_acc_bits,
        )

    @property
    def shift_acc(self) -> ShiftAccParams:
        """The A·V engine: ``R`` attention rows x ``head_dim`` V lanes."""
        return ShiftAccParams.for_quantizer(
            self.probs,
            self.log_av,
            rows=self.rows,
            cols=self.head_dim,
            v_bits=self.v_bits,
            v_signed=self.v_signed,
        )

    @property
    def score_requant(self) -> RequantParams:
        """Widths of the score requantization (Q·Kᵀ accumulator to signed score codes)."""
        return _structure(self.score_bits, True, self.qk_acc_bits)

    @property
    def av_requant(self) -> RequantParams:
        """Widths of the A·V requantization (accumulator to proj-input codes)."""
        return _structure(self.out_bits, self.out_signed, self.log_av.acc_bits)

    @property
    def probs_shape(self) -> Shape:
        """One probability on the quantizer's input grid."""
        if isinstance(self.probs, BitLog2Params):
            return unsigned(self.probs.input_width)
        return ThresholdQuantizer.structure_of(self.probs)[1]

    @property
    def quantizer_lanes(self) -> int:
        """``L``: :attr:`lanes`, or ``R`` when it is ``None``."""
        return self.rows if self.lanes is None else self.lanes

    @property
    def quantizer_latency(self) -> int:
        """Probability in to code out: BitLog2 1, comparator bank 2, plus 1 for the AdaLog LUT."""
        if isinstance(self.probs, BitLog2Params):
            return 1
        return 2 + isinstance(self.probs, AdaLogParams)

    def qk_cycles(self, tokens: int | None = None) -> int:
        """Cycles of the Q·Kᵀ chain for one head: the MAC array's tiled product, plus the score
        requantizer's latency (first ``qk`` transfer to the last score row, inclusive)."""
        n = self.tokens if tokens is None else tokens
        return self.mac.cycles(n, self.head_dim, n) + REQUANT_LATENCY

    def av_cycles(self, tokens: int | None = None) -> int:
        """Cycles of the A·V chain for one head. The probabilities of a row block take
        ``N * R / L`` transfers, and the engine needs at least ``R`` cycles per row block to drain
        its rows, so row blocks follow each other every ``max(N * R / L, R)`` cycles; after the last
        one's final transfer come the quantizer, the gather, the engine's latency, its ``R`` rows
        and the requantizer."""
        n = self.tokens if tokens is None else tokens
        transfers = n * self.rows // self.quantizer_lanes
        blocks = math.ceil(n / self.rows)
        return (
            (blocks - 1) * max(transfers, self.rows)
            + transfers
            + self.quantizer_latency
            + _GATHER_LATENCY
            + SHIFT_ACC_LATENCY
            + self.rows
            + REQUANT_LATENCY
            - 1
        )

    def cycles(self, tokens: int | None = None) -> int:
        """Cycles of one head with both chains streaming at once (no idle inputs, no back-pressure)."""
        return max(self.qk_cycles(tokens), self.av_cycles(tokens))

    def to_dict(self) -> dict[str, Any]:
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        fields["probs"], fields["log_av"] = self.probs.to_dict(), self.log_av.to_dict()
        fields["lanes"] = self.quantizer_lanes
        return {"kind": type(self).__name__, **fields}


def _inspected(component: wiring.Component) -> wiring.Component:
    """A block built to read its configuration map, never elaborated (not a forgotten design)."""
    component._MustUse__silence = True
    return component


class AttentionCore(wiring.Component):
    """One attention head: Q·Kᵀ to score codes, and probabilities to proj-input codes.

    Parameters
    ----------
    params : AttentionCoreParams
        The structure; every per-head value arrives through ``cfg``.

    Members
    -------
    cfg : In(stream.Signature({addr, data}))
        Run-time parameters (always ready), see :meth:`config_image`: regions ``qk_zero_points``
        (``za`` = Q's, ``zb`` = K's zero point), ``score_requant``, ``v_zero_point`` (``zv``),
        ``quantizer`` (log-√2 / AdaLog thresholds), ``lut`` (AdaLog), ``av_requant``. They survive
        reset.
    qk : In(stream.Signature({a: R codes, b: C codes, last}))
        Q·Kᵀ k-steps without zero points (see the module docstring).
    scores : Out(stream.Signature(ArrayLayout(signed(score_bits), C)))
        Score codes, one tile row per transfer: tiles by (row block, key block), R rows each.
    probs : In(stream.Signature(ArrayLayout(probs_shape, L)))
        ``L`` probability grid values per transfer (BitLog2 ``floor(x*M)``, else the unsigned grid).
    v : In(stream.Signature({v: ArrayLayout(v shape, head_dim), last}))
        One V row per ``R`` probabilities.
    o : Out(stream.Signature(ArrayLayout(out shape, head_dim)))
        Proj-input codes, ``R`` rows per row block (rows past ``N`` carry the padding's codes).

    Timing: the Q·Kᵀ chain has the MAC array's throughput (a tile per ``max(head_dim, R)``
    cycles) and latency :attr:`qk_latency` = 7 from a tile's last k-step to its first score
    row; the A·V chain takes ``L`` probabilities per cycle (a shift-accumulate step per ``R / L``
    cycles: with the default ``L = R`` one step per cycle) with latency :attr:`av_latency` from a
    row block's last probabilities to its first output row. :meth:`AttentionCoreParams.cycles` gives
    a whole head.
    """

    def __init__(self, params: AttentionCoreParams):
        if not isinstance(params, AttentionCoreParams):
            reject(self, TypeError(f"AttentionCore needs AttentionCoreParams, not {params!r}"))
        self._params = params
        self._splitter = _inspected(ConfigSplitter(self._config_maps()))
        p = params
        qk_steps = without_fields(mac_step_layout(p.mac), ["za", "zb"])
        row = data.StructLayout(
            {
                "v": data.ArrayLayout(signed(p.v_bits) if p.v_signed else unsigned(p.v_bits), p.head_dim),
                "last": unsigned(1),
            }
        )
        out_shape = signed(p.out_bits) if p.out_signed else unsigned(p.out_bits)
        super().__init__(
            {
                "cfg": In(stream.Signature(self._splitter.layout)),
                "qk": In(stream.Signature(qk_steps)),
                "scores": Out(stream.Signature(data.ArrayLayout(signed(p.score_bits), p.cols))),
                "probs": In(stream.Signature(data.ArrayLayout(p.probs_shape, p.quantizer_lanes))),
                "v": In(stream.Signature(row)),
                "o": Out(stream.Signature(data.ArrayLayout(out_shape, p.head_dim))),
            }
        )

    @property
    def params(self) -> AttentionCoreParams:
        return self._params

    @property
    def qk_latency(self) -> int:
        """Cycles from a Q·Kᵀ tile's last k-step to its first score row (no back-pressure)."""
        return MAC_LATENCY + REQUANT_LATENCY

    @property
    def av_latency(self) -> int:
        """Cycles from a row block's last probability to its first output row (no back-pressure)."""
        return self._params.quantizer_latency + _GATHER_LATENCY + SHIFT_ACC_LATENCY + REQUANT_LATENCY

    @property
    def latency(self) -> int:
        """The longer of :attr:`qk_latency` and :attr:`av_latency`."""
        return max(self.qk_latency, self.av_latency)

    def _score_requantizer(self) -> Requantizer:
        return Requantizer(self._params.score_requant, lanes=self._params.cols, channels=1)

    def _av_requantizer(self) -> Requantizer:
        return Requantizer(self._params.av_requant, lanes=self._params.head_dim, channels=1)

    def _config_maps(self) -> dict[str, ConfigMap]:
        p = self._params
        maps = {
            "qk_zero_points": _inspected(ZeroPointBroadcast(mac_step_layout(p.mac), ["za", "zb"])).config_map,
            "score_requant": _inspected(self._score_requantizer()).config_map,
            "v_zero_point": _inspected(
                ZeroPointBroadcast(shift_acc_step_layout(p.shift_acc), ["zv"])
            ).config_map,
        }
        if not isinstance(p.probs, BitLog2Params):
            maps["quantizer"] = _inspected(ThresholdQuantizer(p.probs)).config_map
        if isinstance(p.probs, AdaLogParams):
            maps["lut"] = _inspected(AdaLogLut(p.probs)).config_map
        maps["av_requant"] = _inspected(self._av_requantizer()).config_map
        return maps

    def config_image(
        self,
        *,
        q_zero_point: int,
        k_zero_point: int,
        v_zero_point: int,
        score_requant: RequantParams,
        av_requant: RequantParams,
        probs: LogQuantizer | None = None,
    ) -> list[tuple[int, int]]:
        """The ``cfg`` words for one head; pure Python.

        ``score_requant`` and ``av_requant`` have one channel (per tensor, or the head's entry of
        a per-head object) and this core's widths; ``probs`` (log-√2 and AdaLog) gives the
        thresholds and the LUT, with this core's structure.
        """
        p = self._params
        images = {
            "qk_zero_points": self._splitter_map("qk_zero_points").image(
                {"za": q_zero_point, "zb": k_zero_point}
            ),
            "score_requant": _inspected(self._score_requantizer()).config_image(score_requant),
            "v_zero_point": self._splitter_map("v_zero_point").image({"zv": v_zero_point}),
            "av_requant": _inspected(self._av_requantizer()).config_image(av_requant),
        }
        if not isinstance(p.probs, BitLog2Params):
            if probs is None or ThresholdQuantizer.structure_of(probs) != ThresholdQuantizer.structure_of(
                p.probs
            ):
                raise ValueError(
                    f"the core's {type(p.probs).__name__} structure needs matching probs, not {probs!r}"
                )
            images["quantizer"] = ThresholdQuantizer.config_image(probs)
            if isinstance(p.probs, AdaLogParams):
                images["lut"] = AdaLogLut.config_image(probs)
        return self._splitter.image(images)

    def region_base(self, region: str) -> int:
        """The first ``cfg`` address of a region (``score_requant``, ``quantizer``, ...)."""
        return self._splitter.base(region)

    def _splitter_map(self, region: str) -> ConfigMap:
        return self._config_maps()[region]

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._params
        m.submodules.cfg_split = split = ConfigSplitter(self._config_maps())
        wiring.connect(m, wiring.flipped(self.cfg), split.i)

        # Q·Kᵀ chain.
        m.submodules.qk_zero_points = qk_zero = ZeroPointBroadcast(mac_step_layout(p.mac), ["za", "zb"])
        m.submodules.qk_array = array = MacArray(p.mac)
        m.submodules.score_requant = scores = self._score_requantizer()
        wiring.connect(m, split.qk_zero_points, qk_zero.cfg)
        wiring.connect(m, split.score_requant, scores.cfg)
        wiring.connect(m, wiring.flipped(self.qk), qk_zero.i)
        wiring.connect(m, qk_zero.o, array.i)
        self._rows_into_requant(m, array.o, scores.i)
        m.d.comb += [
            self.scores.valid.eq(scores.o.valid),
            scores.o.ready.eq(self.scores.ready),
            self.scores.payload.eq(scores.o.payload.code),
        ]

        # A·V chain: L quantizers (and AdaLog LUTs) side by side, R / L transfers per engine step.
        lanes = p.quantizer_lanes
        if isinstance(p.probs, BitLog2Params):
            m.submodules.quantizer = quantizer = Lanes(lambda: BitLog2Quantizer(p.probs), lanes)
        else:
            m.submodules.quantizer = quantizer = Lanes(lambda: ThresholdQuantizer(p.probs), lanes)
            wiring.connect(m, split.quantizer, quantizer.cfg)
        wiring.connect(m, wiring.flipped(self.probs), quantizer.i)
        codes = quantizer.o
        if isinstance(p.probs, AdaLogParams):
            m.submodules.lut = lut = Lanes(lambda: AdaLogLut(p.probs), lanes)
            wiring.connect(m, split.lut, lut.cfg)
            wiring.connect(m, codes, lut.i)
            codes = lut.o
        code = code_shape(p.shift_acc.code)
        m.submodules.gather = gather = CodeGather(
            data.ArrayLayout(code, lanes), p.rows // lanes, self.v.payload.shape()
        )
        m.submodules.v_zero_point = v_zero = ZeroPointBroadcast(shift_acc_step_layout(p.shift_acc), ["zv"])
        m.submodules.av_engine = engine = ShiftAccumulate(p.shift_acc)
        m.submodules.av_requant = out = self._av_requantizer()
        wiring.connect(m, codes, gather.i)
        wiring.connect(m, wiring.flipped(self.v), gather.row)
        wiring.connect(m, split.v_zero_point, v_zero.cfg)
        wiring.connect(m, gather.o, v_zero.i)  # (R / L) transfers of L codes: row g * L + lane
        wiring.connect(m, v_zero.o, engine.i)
        wiring.connect(m, split.av_requant, out.cfg)
        self._rows_into_requant(m, engine.o, out.i)
        m.d.comb += [
            self.o.valid.eq(out.o.valid),
            out.o.ready.eq(self.o.ready),
            self.o.payload.eq(out.o.payload.code),
        ]
        return m

    @staticmethod
    def _rows_into_requant(m: Module, rows, requant_in) -> None:
        """An engine's result rows into a per-tensor requantizer (``channel`` 0: broadcast)."""
        m.d.comb += [
            requant_in.valid.eq(rows.valid),
            rows.ready.eq(requant_in.ready),
            requant_in.payload.acc.eq(rows.payload),
            requant_in.payload.channel.eq(0),
        ]


def example_designs():
    """The shipped model's head: head_dim 16, 50 tokens, 4-bit codes, BitLog2 Half_17, R x C = 4 x 4."""
    from .registry import Design

    params = AttentionCoreParams()
    return [
        Design(
            name="attention_core_bitlog2_half_17",
            block="attention_core",
            params=params,
            build=lambda: AttentionCore(params),
        )
    ]
