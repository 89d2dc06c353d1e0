"""AdaLog dequantization table: a code becomes the shift ``E[k]`` and the mantissa ``M[k]``.

AdaLog's level of code ``k`` is ``2**(-E[k]) * M[k] / Dn * scale`` (:class:`golden.params.AdaLogParams`,
``lut_e`` and ``lut_m``). This block looks both up and emits them as the shared decoded form
:func:`hw.logcode.mant_exp_layout` ``{mant, exp, zero}`` (``mant = M[k]``, ``exp = E[k]``), which
is what the shift-accumulate consumes: it multiplies the operand by ``mant`` and shifts by
``F - exp`` (:func:`golden.intops.log_matmul`). The zero code gives ``zero = 1`` with
``mant = exp = 0``, so that the output is fully defined.

**Design choices.** The ``2**bits`` entries are loaded at run time through the ``cfg`` stream
(:class:`hw.config.ConfigMap`; :meth:`AdaLogLut.config_image`), so one circuit serves every
``q`` (the widths cover the whole searched range 10..137); they live in a memory (LUT RAM or a
block RAM), which keeps its contents through reset. The block does not multiply: the product
``M[k] * (v - z_v)`` needs the operand lanes and the accumulator's fractional format, which the
shift-accumulate owns; a separate multiplier here would only duplicate them. Writing ``cfg``
while codes are in flight is not supported.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.params import ADALOG_Q_RANGE, ADALOG_R, AdaLogParams

from .config import ConfigField, ConfigMap
from .logcode import mant_exp_layout
from .pipeline import reject, stall_pipeline
from .threshold_quant import log_code_shape

__all__ = ["AdaLogLut", "lut_config_map", "lut_entry_layout", "max_shift"]


def max_shift(bits: int) -> int:
    """The largest ``E[k] = floor(k * q / 37)`` over every code and every searchable ``q``."""
    return ((1 << bits) - 1) * ADALOG_Q_RANGE[1] // ADALOG_R


def lut_entry_layout(bits: int) -> data.StructLayout:
    """One table entry: ``mant`` (``bits + 1``, holds ``M[k] <= Dn``) and ``shift`` (``E[k]``)."""
    return data.StructLayout({"mant": unsigned(bits + 1), "shift": unsigned(max_shift(bits).bit_length())})


def lut_config_map(bits: int) -> ConfigMap:
    """``entry[0 .. 2**bits - 1]``: the packed :func:`lut_entry_layout` of code ``k``."""
    return ConfigMap([ConfigField("entry", unsigned(lut_entry_layout(bits).size), depth=1 << bits)])


class AdaLogLut(wiring.Component):
    """AdaLog code to ``{mant, exp, zero}``, one code per cycle.

    Parameters
    ----------
    params : AdaLogParams
        Only ``bits`` is built in (the table has ``2**bits`` entries; ``mant`` has ``bits + 1``
        bits and ``exp`` holds the largest ``E[k]`` of any ``q`` in 10..137). The table contents
        come from :meth:`config_image`, for this or any other parameter object with the same
        ``bits``.
    exp_bits : int or None
        Width of the signed ``exp`` output; at least (and by default) the width that holds every
        ``E[k]``, plus the sign bit. A wider one matches a consumer's format.

    Members
    -------
    cfg : In(stream.Signature({addr, data}))
        Table entries (always ready): ``entry[k] = {mant: M[k], shift: E[k]}``
        (:func:`lut_entry_layout`). They survive reset.
    i : In(stream.Signature(log_code_shape(bits)))
        The code, ``unsigned(bits + 1)`` (the golden integer code, as the threshold quantizer
        emits it): ``k`` in the low ``bits`` bits, the zero flag on top.
    o : Out(stream.Signature(mant_exp_layout(bits + 1, exp_bits)))
        ``{mant: M[k], exp: E[k], zero: 0}``, or ``{0, 0, 1}`` for the zero code (top bit set;
        the low bits are then ignored). The layout equals ``hw.logdecode.decoded_layout`` of an
        AdaLog ``LogCodeParams`` with the default ``exp_bits``.

    Latency is 1 cycle (:attr:`latency`, the registered memory read); throughput one code per
    cycle, sustained.

    Raises
    ------
    TypeError
        If ``params`` is not an :class:`AdaLogParams`.
    ValueError
        If ``exp_bits`` cannot hold every shift.
    """

    def __init__(self, params: AdaLogParams, *, exp_bits: int | None = None):
        if not isinstance(params, AdaLogParams):
            reject(self, TypeError(f"AdaLogLut needs AdaLogParams, not {params!r}"))
        least = max_shift(params.bits).bit_length() + 1
        exp_bits = least if exp_bits is None else exp_bits
        if isinstance(exp_bits, bool) or not isinstance(exp_bits, int) or not least <= exp_bits <= 32:
            reject(
                self,
                ValueError(
                    f"AdaLogLut exp_bits must be an integer in [{least}, 32] for {params.bits} bits, "
                    f"not {exp_bits!r}"
                ),
            )
        self._params = params
        self._exp_bits = exp_bits
        self._config_map = lut_config_map(params.bits)
        super().__init__(
            {
                "cfg": In(self._config_map.signature()),
                "i": In(stream.Signature(log_code_shape(params.bits))),
                "o": Out(stream.Signature(mant_exp_layout(params.mantissa_bits, exp_bits))),
            }
        )

    @property
    def params(self) -> AdaLogParams:
        return self._params

    @property
    def bits(self) -> int:
        return self._params.bits

    @property
    def exp_bits(self) -> int:
        return self._exp_bits

    @property
    def config_map(self) -> ConfigMap:
        return self._config_map

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its entry on ``o`` (no back-pressure)."""
        return 1

    @staticmethod
    def config_image(params: AdaLogParams) -> list[tuple[int, int]]:
        """The ``cfg`` words that load ``params``' table (``lut_m``, ``lut_e``) into a LUT of the
        same ``bits``; pure Python."""
        if not isinstance(params, AdaLogParams):
            raise TypeError(f"AdaLogLut config needs AdaLogParams, not {params!r}")
        layout = lut_entry_layout(params.bits)
        shift_offset = layout["shift"].offset
        entries = [mant | (shift << shift_offset) for mant, shift in zip(params.lut_m, params.lut_e)]
        return lut_config_map(params.bits).image({"entry": entries})

    def fits(self, params: AdaLogParams) -> bool:
        """Whether ``params``' table fits this circuit (same ``bits``)."""
        return isinstance(params, AdaLogParams) and params.bits == self._params.bits

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.table = table = Memory(shape=lut_entry_layout(self.bits), depth=1 << self.bits, init=[])
        hit, index = self._config_map.write_target(self.cfg, "entry")
        m.d.comb += self.cfg.ready.eq(1)
        write = table.write_port()
        m.d.comb += [write.en.eq(hit), write.addr.eq(index), write.data.eq(self.cfg.payload.data)]

        enable = stall_pipeline(m, self.i, self.o, self.latency)
        read = table.read_port()
        bits = self.bits
        m.d.comb += [read.en.eq(enable), read.addr.eq(self.i.payload[:bits])]
        zero = Signal()
        with m.If(enable):
            m.d.sync += zero.eq(self.i.payload[bits])
        m.d.comb += [
            self.o.payload.zero.eq(zero),
            self.o.payload.mant.eq(Mux(zero, 0, read.data.mant)),
            self.o.payload.exp.eq(Mux(zero, 0, read.data.shift)),
        ]
        return m


def example_designs():
    """One 4-bit table (see :mod:`hw.registry`); every ``q`` runs on it through ``cfg``."""
    from .registry import Design

    params = AdaLogParams(bits=4, q=18)
    return [Design(name="adalog_lut_b4", block="adalog_lut", params=params, build=lambda: AdaLogLut(params))]
