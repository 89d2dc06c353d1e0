"""Log code decoders: a BitLog2 or log-√2 code to the ``{mant, exp, zero}`` form of :mod:`hw.logcode`.

* BitLog2 ``{k, h, zero}``: ``mant = 2 + h``, ``exp = 1 - k``, so ``mant * 2**(-exp)`` is the level
  ``D = 2**k + h * 2**(k - 1)`` exactly (:func:`golden.params.bitlog2_mant_exp`).
* log-√2 code ``c`` (``bits + 1`` wide, top bit = zero flag): the golden table
  ``LogAVParams.table`` as a constant ROM, ``mant = 2**P`` (even c) or ``round(√2 * 2**P)`` (odd c),
  ``exp = ceil(c / 2)``.
* AdaLog codes are decoded by their run-time LUT (``hw.adalog_lut``), which already outputs this
  form; :func:`decode` passes such codes through.

Zero codes decode to ``{mant: 0, exp: 0, zero: 1}``. :func:`decode` is the combinational logic
(the shift-accumulate instantiates ``R`` of them at its edge); :class:`LogDecoder` wraps it as a
one-code-per-transfer stream block.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.params import BitLog2Params, LogCodeParams

from .bitlog2 import bitlog2_code_layout
from .logcode import mant_exp_layout
from .pipeline import reject, stall_pipeline

__all__ = ["code_shape", "decoded_layout", "decode", "LogDecoder"]


def code_shape(code: LogCodeParams) -> ShapeLike:
    """What a code looks like on a stream: BitLog2 ``{k, h, zero}``, a ``bits + 1`` bit log-√2
    code, or (AdaLog, after its LUT) the decoded layout."""
    if code.family == "bitlog2":
        return bitlog2_code_layout(BitLog2Params(code.scheme))
    if code.family == "sqrt2":
        return unsigned(code.bits + 1)
    return decoded_layout(code)


def decoded_layout(code: LogCodeParams) -> data.StructLayout:
    """``{mant, exp, zero}`` wide enough for every code of the family (:class:`LogCodeParams`)."""
    return mant_exp_layout(code.mant_width, code.exp_width)


def decode(m: Module, code, params: LogCodeParams, *, name: str = "code") -> data.View:
    """Combinational decode of ``code`` (a value of :func:`code_shape`) into a view of
    :func:`decoded_layout`, driven in ``m.d.comb``."""
    out = Signal(decoded_layout(params), name=f"{name}_decoded")
    if params.family == "bitlog2":
        level_mant = 2 + code.h if BitLog2Params(params.scheme).half else 2
        m.d.comb += [
            out.zero.eq(code.zero),
            out.mant.eq(Mux(code.zero, 0, level_mant)),
            out.exp.eq(Mux(code.zero, 0, 1 - code.k)),
        ]
    elif params.family == "sqrt2":
        mant_table, exp_table = params.sqrt2_table()
        zero = code[params.bits]
        m.d.comb += out.zero.eq(zero)
        with m.If(~zero):
            with m.Switch(code[: params.bits]):
                for value, (mant, exp) in enumerate(zip(mant_table, exp_table)):
                    with m.Case(value):
                        m.d.comb += [out.mant.eq(mant), out.exp.eq(exp)]
    else:
        m.d.comb += out.eq(code)
    return out


class LogDecoder(wiring.Component):
    """Decode one BitLog2 or log-√2 code per transfer into ``{mant, exp, zero}``.

    Parameters
    ----------
    params : LogCodeParams
        Family ``bitlog2`` (a scheme) or ``sqrt2`` (bits and P). AdaLog needs its LUT instead.

    Members
    -------
    i : In(stream.Signature(code_shape(params)))
        The code. For log-√2 the top bit is the zero flag: every code ``>= 2**bits`` is zero.
    o : Out(stream.Signature(decoded_layout(params)))
        ``mant`` (unsigned), ``exp`` (signed), ``zero``.

    Latency is 1 cycle (:attr:`latency`); throughput one code per cycle.
    """

    def __init__(self, params: LogCodeParams):
        if not isinstance(params, LogCodeParams):
            reject(self, TypeError(f"LogDecoder needs LogCodeParams, not {params!r}"))
        if params.family == "adalog":
            reject(self, ValueError("LogDecoder cannot decode AdaLog codes: their LUT is loaded at run time"))
        self._params = params
        super().__init__(
            {
                "i": In(stream.Signature(code_shape(params))),
                "o": Out(stream.Signature(decoded_layout(params))),
            }
        )

    @property
    def params(self) -> LogCodeParams:
        return self._params

    @property
    def latency(self) -> int:
        return 1

    def elaborate(self, platform) -> Module:
        m = Module()
        decoded = decode(m, self.i.payload, self._params)
        enable = stall_pipeline(m, self.i, self.o, self.latency)
        with m.If(enable):
            m.d.sync += self.o.payload.eq(decoded)
        return m


def example_designs():
    """The decoders in front of the registered shift-accumulates: BitLog2 Half_17 and 4-bit log-√2."""
    from .registry import Design

    configurations = {
        "logdecode_bitlog2_half_17": LogCodeParams("bitlog2", scheme="half_17"),
        "logdecode_sqrt2_4b": LogCodeParams("sqrt2", bits=4, mant_bits=8),
    }
    return [
        Design(name=name, block="logdecode", params=params, build=lambda p=params: LogDecoder(p))
        for name, params in configurations.items()
    ]
