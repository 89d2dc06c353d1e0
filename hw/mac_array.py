"""Integer MAC array: ``acc[r][c] = sum_k (a[r,k] - za[r]) * (b[k,c] - zb[c])``, output stationary.

One k-step per input transfer: ``R`` left codes (a column of ``A``'s tile) and ``C`` right codes
(a row of ``B``'s tile) with their zero points, and ``last`` on the tile's final step. The zero
points are subtracted at the array's edge (``R + C`` subtractors, not ``R x C``); every cell then
multiplies and accumulates. After ``last`` the tile's sums move to a drain buffer and leave as
``R`` row transfers (``C`` accumulators each) while the next tile's steps already accumulate
(:class:`TileAccumulator`, shared with :mod:`hw.shift_acc`).

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import MacArrayParams

from .pipeline import reject

__all__ = ["MacArray", "TileAccumulator", "mac_step_layout", "tile_row_layout"]


def mac_step_layout(params: MacArrayParams) -> data.StructLayout:
    """One k-step: ``a`` (R codes), ``b`` (C codes), their zero points ``za``/``zb``, ``last``."""
    a_shape = signed(params.a_bits) if params.a_signed else unsigned(params.a_bits)
    b_shape = signed(params.b_bits) if params.b_signed else unsigned(params.b_bits)
    return data.StructLayout(
        {
            "a": data.ArrayLayout(a_shape, params.rows),
            "b": data.ArrayLayout(b_shape, params.cols),
            "za": data.ArrayLayout(a_shape, params.rows),
            "zb": data.ArrayLayout(b_shape, params.cols),
            "last": unsigned(1),
        }
    )


def tile_row_layout(cols: int, acc_bits: int) -> data.ArrayLayout:
    """One result row of a tile: ``cols`` signed accumulators."""
    return data.ArrayLayout(signed(acc_bits), cols)


class TileAccumulator:
    """The control and storage of an output-stationary tile engine (MAC array, shift-accumulate).

    The engine's datapath is ``stages`` registers deep before the accumulators (stage 0 captures
    the input transfer). All stages advance together on :attr:`enable`; a step leaving the last
    stage is added to the accumulators. On a ``last`` step the complete sums go to a drain buffer
    (and the accumulators restart from zero), whose ``rows`` rows leave on ``o`` one per transfer
    by shifting the buffer up, so the output is a register and needs no row multiplexer.

    A ``last`` step may leave the final stage only when the drain buffer is empty or its final row
    is transferring in this cycle; every other step always advances. That is the double buffer:
    the next tile's steps overlap the drain, and a tile occupies ``max(K, rows)`` cycles.

    Usage: create it in ``elaborate``, register the datapath under ``with m.If(tiles.enable)``
    (capturing the input payload into stage 0), then call :meth:`elaborate` with the terms.
    """

    def __init__(self, rows: int, cols: int, acc_bits: int, stages: int):
        self.rows, self.cols, self.acc_bits, self.stages = rows, cols, acc_bits, stages
        self.enable = Signal(name="stage_enable")
        self.valid = [Signal(name=f"stage{n}_valid") for n in range(stages)]
        self.last = [Signal(name=f"stage{n}_last") for n in range(stages)]

    def elaborate(self, m: Module, i_stream, o_stream, terms: Sequence[Sequence]) -> None:
        """Wire the handshake and the accumulators; ``terms[r][c]`` is the final stage's term."""
        rows, cols = self.rows, self.cols
        row_layout = tile_row_layout(cols, self.acc_bits)
        acc = [Signal(row_layout, name=f"acc{r}") for r in range(rows)]
        # The drain buffer holds values only while `draining` counts them: no reset needed.
        drain = [Signal(row_layout, name=f"drain{r}", reset_less=True) for r in range(rows)]
        draining = Signal(range(rows + 1))

        finishing = self.valid[-1] & self.last[-1]
        drain_free = (draining == 0) | ((draining == 1) & o_stream.ready)
        m.d.comb += [
            self.enable.eq(~finishing | drain_free),
            i_stream.ready.eq(self.enable),
            o_stream.valid.eq(draining != 0),
            o_stream.payload.eq(drain[0]),
        ]
        with m.If(self.enable):
            m.d.sync += [self.valid[0].eq(i_stream.valid), self.last[0].eq(i_stream.payload.last)]
            for n in range(1, self.stages):
                m.d.sync += [self.valid[n].eq(self.valid[n - 1]), self.last[n].eq(self.last[n - 1])]

        with m.If(o_stream.valid & o_stream.ready):
            m.d.sync += draining.eq(draining - 1)
            for r in range(rows - 1):
                m.d.sync += drain[r].eq(drain[r + 1])
        with m.If(self.enable & self.valid[-1]):
            for r in range(rows):
                for c in range(cols):
                    # Two's complement wraps modulo 2**acc_bits: exact whenever the final sum fits.
                    total = acc[r][c] + terms[r][c]
                    m.d.sync += acc[r][c].eq(Mux(self.last[-1], 0, total))
                    with m.If(self.last[-1]):
                        m.d.sync += drain[r][c].eq(total)
            with m.If(self.last[-1]):
                # After the shift above: loading the new tile wins over the final row's shift.
                m.d.sync += draining.eq(rows)


class MacArray(wiring.Component):
    """An ``R x C`` output-stationary integer MAC array with exact zero-point handling.

    Parameters
    ----------
    params : MacArrayParams
        Rows ``R``, columns ``C``, operand widths and signedness, accumulator width.

    Members
    -------
    i : In(stream.Signature(mac_step_layout(params)))
        One k-step per transfer: ``a`` (``R`` codes, one per row of the tile), ``b`` (``C`` codes,
        one per column), ``za`` (``R`` zero points), ``zb`` (``C`` zero points) and ``last`` on the
        tile's ``K``-th step. The zero points travel with every step and are subtracted at the
        edge, so no latch or first-step flag is needed; the host repeats them over a tile (and a
        per-tensor zero point is the same value in every lane).
    o : Out(stream.Signature(tile_row_layout(C, acc_bits)))
        After ``last``: the tile's ``R`` rows, row 0 first, each ``C`` signed accumulators.

    Timing: :attr:`latency` = 3 cycles from the last step's transfer to row 0 being valid. The
    next tile's steps are accepted while the rows drain; a tile takes ``max(K, R)`` cycles, so the
    array sustains one MAC per cell per cycle for ``K >= R``. An ``(M x K) . (K x N)`` product
    tiled into ``ceil(M/R) * ceil(N/C)`` tiles takes :meth:`cycles` (``MacArrayParams.cycles``).

    The plain-multiply A·V baseline of the log-domain shift-accumulate (:mod:`hw.shift_acc`) is
    this array with uniform attention codes on ``a`` and V on ``b``.
    """

    def __init__(self, params: MacArrayParams):
        if not isinstance(params, MacArrayParams):
            reject(self, TypeError(f"MacArray needs MacArrayParams, not {params!r}"))
        self._params = params
        super().__init__(
            {
                "i": In(stream.Signature(mac_step_layout(params))),
                "o": Out(stream.Signature(tile_row_layout(params.cols, params.acc_bits))),
            }
        )

    @property
    def params(self) -> MacArrayParams:
        return self._params

    @property
    def latency(self) -> int:
        """Cycles from a tile's last k-step transfer to its first row on ``o`` (no back-pressure)."""
        return self._params.latency

    def cycles(self, m: int, k: int, n: int, *, batch: int = 1) -> int:
        """Cycles of an ``(M x K) . (K x N)`` product (see :func:`golden.params.tiled_cycles`)."""
        return self._params.cycles(m, k, n, batch=batch)

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._params
        tiles = TileAccumulator(p.rows, p.cols, p.acc_bits, stages=2)
        step = self.i.payload
        # Stage 0, the edge: R + C zero-point subtractors. Stage 1: R x C products.
        a_centred = [
            Signal(signed(p.a_bits + 1), name=f"a_centred{r}", reset_less=True) for r in range(p.rows)
        ]
        b_centred = [
            Signal(signed(p.b_bits + 1), name=f"b_centred{c}", reset_less=True) for c in range(p.cols)
        ]
        product_shape = Shape(p.product_bits, signed=True)
        products = [
            [Signal(product_shape, name=f"product{r}_{c}", reset_less=True) for c in range(p.cols)]
            for r in range(p.rows)
        ]
        with m.If(tiles.enable):
            m.d.sync += [a_centred[r].eq(step.a[r] - step.za[r]) for r in range(p.rows)]
            m.d.sync += [b_centred[c].eq(step.b[c] - step.zb[c]) for c in range(p.cols)]
            for r in range(p.rows):
                m.d.sync += [products[r][c].eq(a_centred[r] * b_centred[c]) for c in range(p.cols)]
        tiles.elaborate(m, self.i, self.o, products)
        return m


def example_designs():
    """A W4A4-style 4x4 array (unsigned codes with zero points) and an 8x8 signed int8 array."""
    from .registry import Design

    configurations = {
        "mac_4x4_uint4": MacArrayParams(rows=4, cols=4, a_bits=4, b_bits=4),
        "mac_8x8_int8": MacArrayParams(rows=8, cols=8, a_bits=8, a_signed=True, b_bits=8, b_signed=True),
    }
    return [
        Design(name=name, block="mac_array", params=params, build=lambda p=params: MacArray(p))
        for name, params in configurations.items()
    ]
