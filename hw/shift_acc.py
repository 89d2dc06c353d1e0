"""Log-domain shift-accumulate for A·V: ``acc[i, d] = sum_j floor((v[j,d] - zv[d]) * mant * 2**(F - exp))``.

The attention probabilities arrive as log codes; each cell multiplies its lane's centred V value
by the code's small mantissa and shifts it, exactly as :func:`golden.intops.log_matmul` defines
(``F`` fractional bits, floor for right shifts, zero codes add nothing). The engine is the MAC
array's output-stationary tile machinery (:class:`hw.mac_array.TileAccumulator`) with a different
cell: ``R`` query rows x ``C`` value lanes, one key ``j`` per input transfer.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

import dataclasses

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import LogAVParams, ShiftAccParams, signed_width

from .logdecode import code_shape, decode
from .mac_array import TileAccumulator, tile_row_layout
from .pipeline import reject

__all__ = ["ShiftAccumulate", "shift_acc_step_layout"]


def shift_acc_step_layout(params: ShiftAccParams) -> data.StructLayout:
    """One key: ``codes`` (R codes, :func:`hw.logdecode.code_shape`), ``v`` (C values), ``zv``
    (C zero points), ``last``."""
    v_shape = signed(params.v_bits) if params.v_signed else unsigned(params.v_bits)
    return data.StructLayout(
        {
            "codes": data.ArrayLayout(code_shape(params.code), params.rows),
            "v": data.ArrayLayout(v_shape, params.cols),
            "zv": data.ArrayLayout(v_shape, params.cols),
            "last": unsigned(1),
        }
    )


@dataclasses.dataclass
class _Row:
    """A row's decoded code, registered per pipeline stage (``[stage]``, as far as it is needed)."""

    zero: list[Signal]
    mant: list[Signal]
    amount: list[Signal]


class ShiftAccumulate(wiring.Component):
    """An ``R x C`` log-domain shift-accumulate (A·V, or a linear layer with log-coded inputs).

    Parameters
    ----------
    params : ShiftAccParams
        Shape, V format, the code family and :class:`LogAVParams` (``F``, ``P``, ``acc_bits``).

    Members
    -------
    i : In(stream.Signature(shift_acc_step_layout(params)))
        One key ``j`` per transfer: ``codes`` (the codes of ``R`` attention rows: BitLog2
        ``{k, h, zero}``, log-√2 ``bits + 1`` bit codes, or AdaLog's LUT output ``{mant, exp,
        zero}`` with ``mant`` of ``bits + 1`` and ``exp`` of :attr:`LogCodeParams.exp_width`
        bits), ``v`` (``C`` values of V's row ``j``), ``zv`` (``C`` zero points: per head, or per
        output channel for ``v = W.T``) and ``last`` on the tile's final key.
    o : Out(stream.Signature(tile_row_layout(C, acc_bits)))
        After ``last``: the tile's ``R`` rows, row 0 first, ``C`` signed accumulators each.

    Pipeline: the edge decodes the ``R`` codes (:func:`hw.logdecode.decode`), subtracts ``zv``
    (``C`` subtractors) and turns ``exp`` into one right-shift amount per row; then come the
    mantissa products and the shifted terms; the tile machinery accumulates and drains.
    :attr:`latency` = 4 cycles from the last key to row 0; a tile takes ``max(K, R)`` cycles,
    :meth:`cycles` gives a whole product (as :class:`hw.mac_array.MacArray`).

    Hardware: every cell has one arithmetic barrel shifter (right only: the product is
    pre-shifted by ``F - exp_min``, so ``floor(x * 2**s)`` for either sign of ``s`` is one right
    shift, of at most ``max_right_shift`` places) and its accumulator. The mantissa product
    depends on the family:

    * BitLog2: ``mant`` is 2 or 3 (Single: 2). Each lane forms ``2(v - zv)`` (a wire shift) and
      ``3(v - zv)`` (one adder) once, at the edge of the array; a cell only selects one by the
      code's half bit. No multiplier anywhere: shift-only, as BitLog2 promises.
    * log-√2: ``mant`` is ``2**P`` (a wire shift) or ``round(√2 * 2**P)`` (362 for P = 8: five
      set bits, four adders), formed once per lane; a cell selects by the code's parity.
    * AdaLog: ``mant`` comes from the run-time LUT, so every cell has a
      ``(v_bits + 1) x (bits + 1)`` multiplier (9 x 5 bits for 8-bit V and 4-bit codes).

    The plain-multiply baseline of A·V is :class:`hw.mac_array.MacArray` with uniform attention
    codes on ``a`` and V on ``b``.
    """

    def __init__(self, params: ShiftAccParams):
        if not isinstance(params, ShiftAccParams):
            reject(self, TypeError(f"ShiftAccumulate needs ShiftAccParams, not {params!r}"))
        self._params = params
        super().__init__(
            {
                "i": In(stream.Signature(shift_acc_step_layout(params))),
                "o": Out(stream.Signature(tile_row_layout(params.cols, params.acc_bits))),
            }
        )

    @property
    def params(self) -> ShiftAccParams:
        return self._params

    @property
    def av(self) -> LogAVParams:
        return self._params.av

    @property
    def latency(self) -> int:
        """Cycles from a tile's last key transfer to its first row on ``o`` (no back-pressure)."""
        return self._params.latency

    def cycles(self, m: int, k: int, n: int, *, batch: int = 1) -> int:
        """Cycles of an ``(M x K)`` code matrix times a ``(K x N)`` V (:func:`golden.params.tiled_cycles`)."""
        return self._params.cycles(m, k, n, batch=batch)

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._params
        tiles = TileAccumulator(p.rows, p.cols, p.acc_bits, stages=3)
        enable = tiles.enable
        # Stage 0, the edge: C zero-point subtractors, R decoders with their shift amounts.
        centred = [Signal(signed(p.v_bits + 1), name=f"v_centred{c}", reset_less=True) for c in range(p.cols)]
        with m.If(enable):
            m.d.sync += [centred[c].eq(self.i.payload.v[c] - self.i.payload.zv[c]) for c in range(p.cols)]
        rows = [self._decode_row(m, enable, r) for r in range(p.rows)]
        # Stage 1, the mantissa products; stage 2, the terms (products shifted per row).
        mantissas = p.code.mantissas
        if mantissas is None:
            products = [
                [self._cell_product(m, enable, row, d, f"{r}_{c}") for c, d in enumerate(centred)]
                for r, row in enumerate(rows)
            ]
        else:
            # Constant mantissas: each lane forms its few products once; the cells only select.
            lanes = [self._lane_products(m, enable, d, c) for c, d in enumerate(centred)]
            products = [[self._select_product(lane, row) for lane in lanes] for row in rows]
        terms = [
            [self._term(m, enable, row, product, f"{r}_{c}") for c, product in enumerate(line)]
            for r, (row, line) in enumerate(zip(rows, products))
        ]
        tiles.elaborate(m, self.i, self.o, terms)
        return m

    def _decode_row(self, m: Module, enable, r: int) -> _Row:
        """Row ``r``'s code, registered in stage 0 (and again in stage 1): zero flag, mantissa (or
        its index into the constant set) and right-shift amount."""
        p, code = self._params, self._params.code
        decoded = decode(m, self.i.payload.codes[r], code, name=f"code{r}")
        # floor(x * 2**(F - exp)) == (x << max_left_shift) >> (exp + max_left_shift - F), arithmetic;
        # the amount is clamped to what the family needs (and to the product width).
        offset = p.max_left_shift - p.frac_bits
        exp_lo, exp_hi = -(1 << (code.exp_width - 1)), (1 << (code.exp_width - 1)) - 1
        shift = Signal(signed(signed_width(exp_lo + offset, exp_hi + offset)), name=f"code{r}_right_shift")
        m.d.comb += shift.eq(decoded.exp + offset)
        clamped = Mux(shift < 0, 0, Mux(shift > p.max_right_shift, p.max_right_shift, shift))
        mantissas = code.mantissas
        # A run-time mantissa is multiplied in stage 1; an index into a constant set selects a
        # lane product in stage 2 (a set of one needs no index at all).
        if mantissas is None:
            mant_shape, mant, stages, mant_stages = unsigned(code.mant_width), decoded.mant, 1, 1
        else:
            mant_shape, mant, stages = range(max(len(mantissas), 2)), 0, 2
            mant_stages = 2 if len(mantissas) > 1 else 0
            for index, value in enumerate(mantissas[1:], start=1):
                mant = Mux(decoded.mant == value, index, mant)
        amount_shape = range(p.max_right_shift + 1)
        row = _Row(
            zero=[Signal(name=f"zero{r}_stage{n}", reset_less=True) for n in range(stages)],
            mant=[Signal(mant_shape, name=f"mant{r}_stage{n}", reset_less=True) for n in range(mant_stages)],
            amount=[Signal(amount_shape, name=f"shift{r}_stage{n}", reset_less=True) for n in range(2)],
        )
        with m.If(enable):
            m.d.sync += [
                row.zero[0].eq(decoded.zero),
                row.amount[0].eq(clamped),
                row.amount[1].eq(row.amount[0]),
            ]
            m.d.sync += [later.eq(earlier) for earlier, later in zip(row.zero, row.zero[1:])]
            if row.mant:
                m.d.sync += row.mant[0].eq(mant)
                m.d.sync += [later.eq(earlier) for earlier, later in zip(row.mant, row.mant[1:])]
        return row

    def _cell_product(self, m: Module, enable, row: _Row, centred: Signal, name: str) -> Signal:
        """Stage 1 of a cell with a run-time mantissa (AdaLog): ``(v - zv) * mant``, 0 for zero codes."""
        product = Signal(signed(self._params.product_bits), name=f"product{name}", reset_less=True)
        with m.If(enable):
            m.d.sync += product.eq(Mux(row.zero[0], 0, centred * row.mant[0]))
        return product

    def _lane_products(self, m: Module, enable, centred: Signal, c: int) -> list[Signal]:
        """Stage 1 of lane ``c`` with constant mantissas: ``(v - zv) * m`` for each (shifts and adds)."""
        shape = signed(self._params.product_bits)
        products = [
            Signal(shape, name=f"lane{c}_times_{value}", reset_less=True)
            for value in self._params.code.mantissas
        ]
        with m.If(enable):
            m.d.sync += [
                product.eq(centred * value) for product, value in zip(products, self._params.code.mantissas)
            ]
        return products

    def _select_product(self, lane: list[Signal], row: _Row):
        """A cell's product from its lane's constant products (stage 2 input), 0 for zero codes."""
        selected = lane[0]
        for index, product in enumerate(lane[1:], start=1):
            selected = Mux(row.mant[1] == index, product, selected)
        return Mux(row.zero[1], 0, selected)

    def _term(self, m: Module, enable, row: _Row, product, name: str) -> Signal:
        """Stage 2 of a cell: the product shifted by the row's amount, registered."""
        p = self._params
        # A term wider than the accumulator wraps like the sum does (exact modulo 2**acc_bits).
        width = min(p.product_bits + p.max_left_shift, p.acc_bits)
        term = Signal(signed(width), name=f"term{name}", reset_less=True)
        pre_shifted = Signal(signed(p.product_bits + p.max_left_shift), name=f"pre_shifted{name}")
        m.d.comb += pre_shifted.eq(product << p.max_left_shift)
        with m.If(enable):
            m.d.sync += term.eq(pre_shifted >> row.amount[1])
        return term


def example_designs():
    """A·V shift-accumulates for BitLog2 Half_17, 4-bit log-√2 and 4-bit AdaLog (run-time LUT)."""
    from golden.params import AdaLogParams, BitLog2Params, Sqrt2Params

    from .registry import Design

    configurations = {
        "shiftacc_bitlog2_half_17": ShiftAccParams.for_quantizer(
            BitLog2Params("half_17"), LogAVParams.default("bitlog2"), v_bits=8
        ),
        "shiftacc_sqrt2_4b": ShiftAccParams.for_quantizer(
            Sqrt2Params(bits=4), LogAVParams.default("sqrt2"), v_bits=8, v_signed=True
        ),
        "shiftacc_adalog_4b": ShiftAccParams.for_quantizer(
            AdaLogParams(bits=4), LogAVParams.default("adalog"), v_bits=4
        ),
    }
    return [
        Design(name=name, block="shift_acc", params=params, build=lambda p=params: ShiftAccumulate(p))
        for name, params in configurations.items()
    ]
