"""Requantizer: rows of integer accumulators become the next layer's codes, ``lanes`` per cycle.

Per lane, exactly :func:`golden.intops.requantize` with :class:`golden.params.RequantParams`::

    t = acc + bias[c]                                  (acc_bits, wraps like the MAC's adders)
    y = t * m[c]                                       if s[c] == 0
    y = ((t * m[c] >> (s[c] - 1)) + 1) >> 1            otherwise: (p + 2**(s-1)) >> s, half up
    q = clamp(y + out_zero_point, qmin, qmax)

The rounding form ``((p >> (s - 1)) + 1) >> 1`` equals the golden ``(p + ((1 << s) >> 1)) >> s``
for ``s >= 1`` (``floor((x + 1) / 2) = floor((floor(x) + 1) / 2)`` with ``x = p / 2**(s-1)``)
and needs no adder as wide as ``2**61``.

**Rows and banks.** It follows a MAC array whose output rows carry ``lanes`` consecutive
channels: a transfer is ``{acc[0 .. lanes-1], channel}`` with ``channel`` the index of lane 0.
The per-channel entries ``{bias, multiplier, shift}`` live in ``lanes`` memories: bank ``l``
holds the channels ``c = l (mod lanes)`` at row ``c // lanes``, so every lane reads its own bank
in the same cycle. ``lanes`` is a power of two, so bank and row are bit fields of ``c``;
``channel`` must be a multiple of ``lanes`` and below the table size. A transfer that breaks
this raises the sticky ``channel_error`` output (cleared by reset) and reads row
``channel // lanes``; its codes are then meaningless.

**Per tensor.** A run-time ``broadcast`` flag makes every lane read row 0, which the image of a
one-channel parameter object fills in every bank: per-tensor requantization on any circuit,
with ``channel`` ignored (and not checked). The table holds whole rows, so ``channels=1``
builds the smallest circuit: one entry per bank, kept in registers (a per-tensor layer, or one
row of ``lanes`` channels at ``channel = 0``).

**Run-time configuration** (:meth:`Requantizer.config_image`, :class:`hw.config.ConfigMap`):
the table entries, ``out_zero_point`` and ``broadcast``. The circuit is built from the widths
only (``acc_bits``, ``mult_bits``, ``out_bits``, ``out_signed``), ``lanes`` and the table size,
so one build serves every layer that fits. The configuration survives reset. Writing ``cfg``
while rows are in flight is not supported.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.params import RequantParams
from golden.params.requant import REQUANT_MAX_SHIFT

from .config import ConfigField, ConfigMap
from .pipeline import reject, stall_pipeline

__all__ = ["Requantizer", "requant_entry_layout"]

#: Width of a shift entry (0 .. REQUANT_MAX_SHIFT).
SHIFT_BITS = REQUANT_MAX_SHIFT.bit_length()
#: Largest supported lane count (a row of a MAC array).
MAX_LANES = 64


def requant_entry_layout(params: RequantParams) -> data.StructLayout:
    """One channel's table entry: ``bias`` (signed ``acc_bits``), ``multiplier``, ``shift``."""
    return data.StructLayout(
        {
            "bias": signed(params.acc_bits),
            "multiplier": unsigned(params.mult_bits),
            "shift": unsigned(SHIFT_BITS),
        }
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class Requantizer(wiring.Component):
    """Dyadic requantization of ``lanes`` accumulators per cycle with banked per-channel tables.

    Parameters
    ----------
    params : RequantParams
        Built in: ``acc_bits``, ``mult_bits``, ``out_bits``, ``out_signed``. The tables and the
        zero point come from :meth:`config_image` (this or any parameter object with the same
        widths and at most ``channels`` channels).
    lanes : int
        Accumulators per transfer, a power of two up to 64 (1 works).
    channels : int or None
        Table size: the most channels a loaded parameter object may have (default
        ``params.channels``), rounded up to whole rows of ``lanes``. 1 gives the smallest
        circuit (one register entry per bank), for per-tensor layers.
    channel_bits : int or None
        Width of the ``channel`` field (default: enough for the table). Wider fields let a
        per-tensor circuit pass a MAC array's full channel index through.

    Members
    -------
    cfg : In(stream.Signature({addr, data}))
        Configuration words (always ready), see :attr:`config_map`: ``entry[c]``
        (:func:`requant_entry_layout`, channel ``c`` in natural order), ``out_zero_point``,
        ``broadcast``. They survive reset.
    i : In(stream.Signature({acc: ArrayLayout(signed(acc_bits), lanes), channel: unsigned(channel_bits)}))
        A row of accumulators; ``channel`` (of lane 0) a multiple of ``lanes``.
    o : Out(stream.Signature({code: ArrayLayout(out shape, lanes), channel: unsigned(channel_bits)}))
        The codes (``signed(out_bits)`` or ``unsigned(out_bits)``) and the row's channel index.
    channel_error : Out(1)
        Sticky: a row arrived (not broadcasting) with a misaligned or out-of-table ``channel``.

    Latency is 4 cycles (:attr:`latency`): table read, bias add, multiply, round-shift-clamp
    (each registered, so the multiplier maps to a pipelined DSP). Throughput one row per cycle,
    sustained.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`RequantParams`.
    ValueError
        If ``lanes``, ``channels`` or ``channel_bits`` is out of range, or ``params`` has more
        channels than the table.
    """

    def __init__(
        self,
        params: RequantParams,
        *,
        lanes: int = 1,
        channels: int | None = None,
        channel_bits: int | None = None,
    ):
        if not isinstance(params, RequantParams):
            reject(self, TypeError(f"Requantizer needs RequantParams, not {params!r}"))
        if not _is_count(lanes) or lanes > MAX_LANES or lanes & (lanes - 1):
            reject(
                self, ValueError(f"Requantizer lanes must be a power of two up to {MAX_LANES}, not {lanes!r}")
            )
        channels = params.channels if channels is None else channels
        if not _is_count(channels):
            reject(self, ValueError(f"Requantizer channels must be a positive integer, not {channels!r}"))
        if params.channels > channels:
            reject(
                self,
                ValueError(f"Requantizer params have {params.channels} channels, the table only {channels}"),
            )
        self._params, self._lanes, self._channels = params, lanes, channels
        self._rows = -(-channels // lanes)
        least = max(1, (self._rows * lanes - 1).bit_length())
        channel_bits = least if channel_bits is None else channel_bits
        if not _is_count(channel_bits) or not least <= channel_bits <= 32:
            reject(
                self,
                ValueError(
                    f"Requantizer channel_bits must be an integer in [{least}, 32], not {channel_bits!r}"
                ),
            )
        self._channel_bits = channel_bits
        self._config_map = ConfigMap(
            [
                ConfigField("entry", unsigned(requant_entry_layout(params).size), depth=self._rows * lanes),
                ConfigField("out_zero_point", self.out_shape),
                ConfigField("broadcast", unsigned(1)),
            ]
        )
        accs = data.StructLayout(
            {"acc": data.ArrayLayout(signed(params.acc_bits), lanes), "channel": unsigned(channel_bits)}
        )
        codes = data.StructLayout(
            {"code": data.ArrayLayout(self.out_shape, lanes), "channel": unsigned(channel_bits)}
        )
        super().__init__(
            {
                "cfg": In(self._config_map.signature()),
                "i": In(stream.Signature(accs)),
                "o": Out(stream.Signature(codes)),
                "channel_error": Out(1),
            }
        )

    @property
    def params(self) -> RequantParams:
        return self._params

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def channels(self) -> int:
        """The table size: the most channels a loaded parameter object may have."""
        return self._channels

    @property
    def rows(self) -> int:
        """Entries per bank: ``ceil(channels / lanes)``."""
        return self._rows

    @property
    def channel_bits(self) -> int:
        return self._channel_bits

    @property
    def out_shape(self) -> Shape:
        return (signed if self._params.out_signed else unsigned)(self._params.out_bits)

    @property
    def config_map(self) -> ConfigMap:
        return self._config_map

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its codes on ``o`` (no back-pressure)."""
        return 4

    def fits(self, params: RequantParams) -> bool:
        """Whether ``params`` can be loaded: same widths, and one channel or a whole number of
        rows that fits the table."""
        mine = self._params
        same = isinstance(params, RequantParams) and all(
            getattr(params, name) == getattr(mine, name)
            for name in ("acc_bits", "mult_bits", "out_bits", "out_signed")
        )
        return same and (
            params.channels == 1
            or (params.channels % self._lanes == 0 and params.channels <= self._rows * self._lanes)
        )

    def config_image(self, params: RequantParams | None = None) -> list[tuple[int, int]]:
        """The ``cfg`` words that load ``params`` (default: the block's own); pure Python.

        Per channel: entry ``c`` for every channel, unused entries cleared to zero. One channel:
        the entry in row 0 of every bank and ``broadcast = 1``.

        Raises
        ------
        ValueError
            If ``params`` does not :meth:`fit <fits>` this circuit.
        """
        params = self._params if params is None else params
        if not self.fits(params):
            raise ValueError(
                f"requant parameters with {getattr(params, 'channels', '?')} channels and widths "
                f"{getattr(params, 'acc_bits', '?')}/{getattr(params, 'mult_bits', '?')} -> "
                f"{getattr(params, 'out_bits', '?')} bits do not fit this circuit: {self.lanes} lanes, "
                f"{self.rows * self.lanes} table entries, widths {self._params.acc_bits}/"
                f"{self._params.mult_bits} -> {self._params.out_bits}, out_signed={self._params.out_signed}"
            )
        layout = requant_entry_layout(params)
        bias = params.bias or (0,) * params.channels

        def pack(c: int) -> int:
            fields = {"bias": bias[c], "multiplier": params.multiplier[c], "shift": params.shift[c]}
            word = 0
            for name, value in fields.items():
                field = layout[name]
                word |= (value % (1 << field.width)) << field.offset
            return word

        broadcast = params.channels == 1
        used = self._lanes if broadcast else params.channels
        entries = [pack(0 if broadcast else c) for c in range(used)]
        entries += [0] * (self._rows * self._lanes - used)
        return self._config_map.image(
            {"entry": entries, "out_zero_point": params.out_zero_point, "broadcast": int(broadcast)}
        )

    def _bank(self, m: Module, lane: int, write_enable, write_row, read_row, enable) -> data.View:
        """Bank ``lane``: written by ``cfg``, read (registered, under ``enable``) at ``read_row``."""
        layout = requant_entry_layout(self._params)
        if self._rows == 1:
            # A one-entry memory would have a zero-width address; a register is the same thing.
            stored = Signal(layout, name=f"bank{lane}_entry", reset_less=True)
            with m.If(write_enable):
                m.d.sync += stored.eq(self.cfg.payload.data)
            read_data = Signal(layout, name=f"bank{lane}_read")
            with m.If(enable):
                m.d.sync += read_data.eq(stored)
            return read_data
        bank = Memory(shape=layout, depth=self._rows, init=[])
        m.submodules[f"bank{lane}"] = bank
        write = bank.write_port()
        m.d.comb += [
            write.en.eq(write_enable),
            write.addr.eq(write_row),
            write.data.eq(self.cfg.payload.data),
        ]
        read = bank.read_port()
        m.d.comb += [read.en.eq(enable), read.addr.eq(read_row)]
        return read.data

    def elaborate(self, platform) -> Module:
        m = Module()
        params, lanes = self._params, self._lanes
        config = self._config_map.elaborate(
            m, self.cfg, fields=["out_zero_point", "broadcast"], reset_less=True
        )
        bank_bits = (lanes - 1).bit_length()
        hit, index = self._config_map.write_target(self.cfg, "entry")
        enable = stall_pipeline(m, self.i, self.o, self.latency)

        # Stage 1: each lane reads its own bank; the row is the channel index above the bank bits.
        row = self.i.payload.channel[bank_bits:]
        misaligned = self.i.payload.channel[:bank_bits] != 0 if bank_bits else False
        beyond = self.i.payload.channel >= self._rows * lanes
        with m.If(self.i.valid & self.i.ready & ~config["broadcast"] & (misaligned | beyond)):
            m.d.sync += self.channel_error.eq(1)
        read_row = Mux(config["broadcast"], 0, row)
        entries = []
        for lane in range(lanes):
            lane_hit = hit & (index[:bank_bits] == lane) if bank_bits else hit
            entries.append(self._bank(m, lane, lane_hit, index[bank_bits:], read_row, enable))
        acc1 = Signal(data.ArrayLayout(signed(params.acc_bits), lanes))
        channel1 = Signal(self._channel_bits)
        with m.If(enable):
            m.d.sync += [acc1.eq(self.i.payload.acc), channel1.eq(self.i.payload.channel)]

        # Stage 2: add the bias (acc_bits wide: t must fit, the golden checks it).
        t2 = [Signal(signed(params.acc_bits), name=f"t{lane}") for lane in range(lanes)]
        mult2 = [Signal(unsigned(params.mult_bits), name=f"mult{lane}") for lane in range(lanes)]
        shift2 = [Signal(unsigned(SHIFT_BITS), name=f"shift2_{lane}") for lane in range(lanes)]
        channel2 = Signal.like(channel1)
        with m.If(enable):
            m.d.sync += channel2.eq(channel1)
            for lane, entry in enumerate(entries):
                m.d.sync += [
                    t2[lane].eq(acc1[lane] + entry.bias),
                    mult2[lane].eq(entry.multiplier),
                    shift2[lane].eq(entry.shift),
                ]

        # Stage 3: the product; |t * m| < 2**(acc_bits - 1 + mult_bits), so acc_bits + mult_bits bits.
        p3 = [Signal(signed(params.product_bits), name=f"product{lane}") for lane in range(lanes)]
        shift3 = [Signal(unsigned(SHIFT_BITS), name=f"shift3_{lane}") for lane in range(lanes)]
        channel3 = Signal.like(channel1)
        with m.If(enable):
            m.d.sync += channel3.eq(channel2)
            for lane in range(lanes):
                m.d.sync += [p3[lane].eq(t2[lane] * mult2[lane]), shift3[lane].eq(shift2[lane])]

        # Stage 4: round half up, shift, add the zero point, clamp.
        with m.If(enable):
            m.d.sync += self.o.payload.channel.eq(channel3)
            for lane in range(lanes):
                code = self._round_and_clamp(m, lane, p3[lane], shift3[lane], config["out_zero_point"])
                m.d.sync += self.o.payload.code[lane].eq(code)
        return m

    def _round_and_clamp(self, m: Module, lane: int, product, shift, zero_point):
        """``clamp(round_half_up(product / 2**shift) + zero_point, qmin, qmax)``, combinational."""
        width = self._params.product_bits
        halved = Signal(signed(width), name=f"halved{lane}")
        scaled = Signal(signed(width + 1), name=f"scaled{lane}")
        shifted = Signal(signed(width + 2), name=f"shifted{lane}")
        m.d.comb += [
            # shift - 1 wraps to 63 for shift 0, whose result the Mux below discards.
            halved.eq(product >> (shift - 1)[:SHIFT_BITS]),
            scaled.eq(Mux(shift == 0, product, (halved + 1) >> 1)),
            shifted.eq(scaled + zero_point),
        ]
        qmin, qmax = self._params.qmin, self._params.qmax
        return Mux(shifted < qmin, qmin, Mux(shifted > qmax, qmax, shifted))


def example_designs():
    """Three circuits (see :mod:`hw.registry`), each serving per-channel and per-tensor layers:

    * ``requant_c64_l8_u8``: 8 lanes, a 64-channel table, unsigned 8-bit codes;
    * ``requant_c32_l1_s8``: 1 lane, a 32-channel table, signed 8-bit codes;
    * ``requant_c1_l8_s4``: 8 lanes, the one-row table (per tensor), signed 4-bit codes.
    """
    from golden.params import dyadic

    from .registry import Design

    def example(channels: int, out_bits: int, out_signed: bool) -> RequantParams:
        # Real multipliers from 0.7 down to ~2**-45: shifts from 16 to 61.
        reals = [0.7 * 2.0 ** -(c % 46) * (1 + c / 100) for c in range(channels)]
        pairs = [dyadic(real) for real in reals]
        return RequantParams(
            multiplier=tuple(mult for mult, _ in pairs),
            shift=tuple(shift for _, shift in pairs),
            bias=tuple((-1) ** c * 97 * c for c in range(channels)),
            out_bits=out_bits,
            out_signed=out_signed,
            out_zero_point=3 if not out_signed else -1,
        )

    examples = {
        "requant_c64_l8_u8": (example(64, 8, False), 8),
        "requant_c32_l1_s8": (example(32, 8, True), 1),
        "requant_c1_l8_s4": (example(1, 4, True), 8),
    }
    return [
        Design(
            name=name, block="requant", params=params, build=lambda p=params, n=lanes: Requantizer(p, lanes=n)
        )
        for name, (params, lanes) in examples.items()
    ]
