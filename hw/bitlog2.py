"""BitLog2 quantizer: a leading-one detector (plus the half bit) on unsigned probabilities.

The input is ``xi = clamp(floor(x * M), 0, M - 1)``, the attention probability on the scheme's
integer grid (see :mod:`golden.bitlog2`); the output code is the leading-one position ``k``, for
Half schemes the bit just below it ``h``, and a ``zero`` flag. No multiplier, no table: the
level ``D = 2**k + h * 2**(k - 1)`` is applied later as shifts.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import BitLog2Params

from .pipeline import reject, stall_pipeline

__all__ = ["BitLog2Quantizer", "bitlog2_code_layout"]


def bitlog2_code_layout(params: BitLog2Params) -> data.StructLayout:
    """``k`` (leading-one position), ``h`` (Half schemes only) and ``zero``."""
    fields = {"k": unsigned(params.k_width)}
    if params.half:
        fields["h"] = unsigned(1)
    fields["zero"] = unsigned(1)
    return data.StructLayout(fields)


class BitLog2Quantizer(wiring.Component):
    """BitLog2 quantizer of one probability per cycle.

    Parameters
    ----------
    params : BitLog2Params
        The scheme (Single_16/17, Half_16/17); ``delta`` is not used here (it folds into the
        requantization after A·V).

    Members
    -------
    i : In(stream.Signature(unsigned(params.input_width)))
        ``xi``; values at or above ``M`` saturate to ``M - 1`` (only Half_17 can receive them).
    o : Out(stream.Signature(bitlog2_code_layout(params)))
        The code ``{k, h, zero}``.

    Latency is 1 cycle (:attr:`latency`); throughput one value per cycle, sustained.
    """

    def __init__(self, params: BitLog2Params):
        if not isinstance(params, BitLog2Params):
            reject(self, TypeError(f"BitLog2Quantizer needs BitLog2Params, not {params!r}"))
        self._params = params
        super().__init__(
            {
                "i": In(stream.Signature(unsigned(params.input_width))),
                "o": Out(stream.Signature(bitlog2_code_layout(params))),
            }
        )

    @property
    def params(self) -> BitLog2Params:
        return self._params

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its code on ``o`` (no back-pressure)."""
        return 1

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self._params
        xi = Signal(params.input_width)
        if params.m < 1 << params.input_width:
            m.d.comb += xi.eq(Mux(self.i.payload >= params.m, params.m - 1, self.i.payload))
        else:
            m.d.comb += xi.eq(self.i.payload)

        k = Signal(params.k_width)
        below = Signal()
        # Later assignments win in Amaranth, so scanning upward leaves the highest set bit.
        for position in range(params.input_width):
            with m.If(xi[position]):
                m.d.comb += k.eq(position)
                if params.half and position >= 1:
                    m.d.comb += below.eq(xi[position - 1])
                elif params.half:
                    m.d.comb += below.eq(0)

        enable = stall_pipeline(m, self.i, self.o, self.latency)
        with m.If(enable):
            m.d.sync += [self.o.payload.k.eq(k), self.o.payload.zero.eq(xi == 0)]
            if params.half:
                m.d.sync += self.o.payload.h.eq(below)
        return m


def example_designs():
    """One design per scheme (see :mod:`hw.registry`)."""
    from golden.params import BITLOG2_SCHEMES

    from .registry import Design

    designs = []
    for scheme in BITLOG2_SCHEMES:
        params = BitLog2Params(scheme)
        designs.append(
            Design(
                name=f"bitlog2_{scheme}",
                block="bitlog2",
                params=params,
                build=lambda p=params: BitLog2Quantizer(p),
            )
        )
    return designs
