"""Small stream adapters that join Quiver's blocks into composed units (e.g. :mod:`hw.attention_core`).

* :class:`ZeroPointBroadcast` adds per-tensor (or per-head) zero points, loaded once through
  ``cfg``, to every step of an engine's input stream, so the producer sends codes only.
* :class:`CodeGather` collects ``rows`` consecutive codes of a one-code-per-cycle quantizer into
  one engine step, joined with the matching row of a second stream (a V row and its ``last``).
* :class:`ConfigSplitter` shares one ``cfg`` stream between the blocks of a composed unit.
* :class:`Lanes` runs several copies of a one-value block side by side (e.g. one log quantizer per
  engine row), their ``cfg`` loaded together.

Stream rules: see :mod:`hw.pipeline` (transfer on valid & ready; producers hold payload until the
transfer; valid never depends on ready; consumers may look at valid first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from amaranth import Module, Signal, unsigned
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ConfigField, ConfigMap
from .pipeline import reject

__all__ = ["ZeroPointBroadcast", "CodeGather", "ConfigSplitter", "Lanes", "gather_layout", "without_fields"]


def without_fields(layout: data.StructLayout, fields: Iterable[str]) -> data.StructLayout:
    """``layout`` without ``fields``, the other fields in their order."""
    dropped = set(fields)
    return data.StructLayout({name: shape for name, shape in layout.members.items() if name not in dropped})


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class ZeroPointBroadcast(wiring.Component):
    """Fill the zero-point fields of a step layout from run-time registers (combinational).

    Parameters
    ----------
    step_layout : data.StructLayout
        The consumer's step payload, e.g. :func:`hw.mac_array.mac_step_layout` or
        :func:`hw.shift_acc.shift_acc_step_layout`.
    fields : iterable of str
        The fields to fill: each an ``ArrayLayout(shape, n)`` of ``step_layout``; all ``n``
        elements get the one value of register ``<field>`` (a per-tensor or per-head zero point).

    Members
    -------
    cfg : In(stream.Signature({addr, data}))
        One register per field, of the field's element shape (always ready); see
        :attr:`config_map`. The registers survive reset (configuration, not state).
    i : In(stream.Signature(StructLayout(step_layout without fields)))
        The step without its zero points, fields in ``step_layout``'s order.
    o : Out(stream.Signature(step_layout))
        The same step with every element of ``fields`` set from its register.

    Latency is 0 cycles (:attr:`latency`): ``o.valid = i.valid``, ``i.ready = o.ready``, the
    payload is wiring. Throughput one step per cycle.

    Raises
    ------
    TypeError
        If ``step_layout`` is not a ``StructLayout``.
    ValueError
        If a field is missing, is not an array, or no field is named.
    """

    def __init__(self, step_layout: data.StructLayout, fields: Iterable[str]):
        if not isinstance(step_layout, data.StructLayout):
            reject(self, TypeError(f"ZeroPointBroadcast needs a StructLayout, not {step_layout!r}"))
        fields = tuple(fields)
        members = dict(step_layout.members)
        bad = [name for name in fields if not isinstance(members.get(name), data.ArrayLayout)]
        if not fields or bad:
            reject(
                self,
                ValueError(f"ZeroPointBroadcast fields must name array fields of the layout, not {fields!r}"),
            )
        self._step_layout = step_layout
        self._fields = fields
        self._config_map = ConfigMap([ConfigField(name, members[name].elem_shape) for name in fields])
        codes_only = without_fields(step_layout, fields)
        super().__init__(
            {
                "cfg": In(self._config_map.signature()),
                "i": In(stream.Signature(codes_only)),
                "o": Out(stream.Signature(step_layout)),
            }
        )

    @property
    def fields(self) -> tuple[str, ...]:
        return self._fields

    @property
    def config_map(self) -> ConfigMap:
        return self._config_map

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to its output (0: combinational)."""
        return 0

    def config_image(self, zero_points: dict[str, int]) -> list[tuple[int, int]]:
        """The ``cfg`` words that load one zero point per field; pure Python."""
        return self._config_map.image(zero_points)

    def elaborate(self, platform) -> Module:
        m = Module()
        registers = self._config_map.elaborate(m, self.cfg, reset_less=True)
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        for name in self._step_layout.members:
            if name in self._fields:
                m.d.comb += [element.eq(registers[name]) for element in self.o.payload[name]]
            else:
                m.d.comb += self.o.payload[name].eq(self.i.payload[name])
        return m


def gather_layout(code_shape: ShapeLike, rows: int, row_layout: data.StructLayout) -> data.StructLayout:
    """``{codes: ArrayLayout(code_shape, rows), <the fields of row_layout>}``: a gathered step.

    Transfers of several codes (``code_shape`` an ``ArrayLayout`` of ``L`` codes, e.g. from
    :class:`Lanes`) gather into one flat array of ``rows * L`` codes, element ``g * L + l`` being
    lane ``l`` of transfer ``g``: the same bits as the nested array, in an engine step's layout."""
    if isinstance(code_shape, data.ArrayLayout):
        code_shape, rows = code_shape.elem_shape, rows * code_shape.length
    return data.StructLayout({"codes": data.ArrayLayout(code_shape, rows), **dict(row_layout.members)})


class CodeGather(wiring.Component):
    """Gather ``rows`` consecutive codes into one step and join it with one row of a second stream.

    The codes of a quantizer (one per transfer) become the ``codes`` field of an engine step, code
    ``n`` of each group in element ``n``; each complete group leaves together with the next
    transfer of ``row`` (for A·V, V's row ``j`` and its ``last`` flag).

    Parameters
    ----------
    code_shape : ShapeLike
        One code (e.g. :func:`hw.logdecode.code_shape`).
    rows : int
        Codes per step, 1..64 (the engine's rows).
    row_layout : data.StructLayout
        The joined row's payload; its fields follow ``codes`` in the output.

    Members
    -------
    i : In(stream.Signature(code_shape))
        One code per transfer.
    row : In(stream.Signature(row_layout))
        One row per gathered step, consumed when the step leaves.
    o : Out(stream.Signature(gather_layout(code_shape, rows, row_layout)))
        The step.

    Latency is 2 cycles (:attr:`latency`) from the transfer of a group's last code to the step
    on ``o``, when ``row`` is valid and ``o`` is not stalled: the group moves into a holding
    register, then joins the row in the output register. Throughput one code per cycle,
    sustained (a step every ``rows`` cycles): the next group fills while one is held.

    Raises
    ------
    ValueError
        If ``rows`` is not an integer in 1..64 or ``row_layout`` is not a ``StructLayout``.
    """

    def __init__(self, code_shape: ShapeLike, rows: int, row_layout: data.StructLayout):
        if not _positive(rows) or rows > 64:
            reject(self, ValueError(f"CodeGather rows must be an integer in 1..64, not {rows!r}"))
        if not isinstance(row_layout, data.StructLayout) or "codes" in row_layout.members:
            reject(
                self,
                ValueError(f"CodeGather row_layout must be a StructLayout without 'codes': {row_layout!r}"),
            )
        self._code_shape = code_shape
        self._rows = rows
        self._row_layout = row_layout
        super().__init__(
            {
                "i": In(stream.Signature(code_shape)),
                "row": In(stream.Signature(row_layout)),
                "o": Out(stream.Signature(gather_layout(code_shape, rows, row_layout))),
            }
        )

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def latency(self) -> int:
        """Cycles from a group's last code transfer to its step on ``o`` (no back-pressure)."""
        return 2

    def elaborate(self, platform) -> Module:
        m = Module()
        rows = self._rows
        element = self._code_shape
        # The first rows - 1 codes of the group being filled; the last one completes it directly.
        filling = [Signal(element, name=f"filling{n}", reset_less=True) for n in range(rows - 1)]
        # At least one bit: a zero-width signal becomes an ascending [-1:0] range in Verilog.
        count = Signal(range(max(rows, 2)), name="filled")
        held = Signal(data.ArrayLayout(element, rows), reset_less=True)
        held_valid = Signal()

        # The held group leaves with the next row when the output register is free or being read.
        output_free = ~self.o.valid | self.o.ready
        move = Signal()
        m.d.comb += [
            move.eq(held_valid & self.row.valid & output_free),
            self.row.ready.eq(held_valid & output_free),
        ]
        completing = count == rows - 1
        # A completing code needs the holding register: empty, or emptied in this very cycle.
        m.d.comb += self.i.ready.eq(~completing | ~held_valid | move)
        accepted = self.i.valid & self.i.ready

        with m.If(accepted):
            with m.If(completing):
                m.d.sync += [held[n].eq(filling[n]) for n in range(rows - 1)]
                m.d.sync += [held[rows - 1].eq(self.i.payload), count.eq(0)]
            with m.Else():
                for n in range(rows - 1):
                    with m.If(count == n):
                        m.d.sync += filling[n].eq(self.i.payload)
                m.d.sync += count.eq(count + 1)
        with m.If(accepted & completing):
            m.d.sync += held_valid.eq(1)
        with m.Elif(move):
            m.d.sync += held_valid.eq(0)

        with m.If(move):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.codes.eq(held.as_value())]
            for name in self._row_layout.members:
                m.d.sync += self.o.payload[name].eq(self.row.payload[name])
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


class ConfigSplitter(wiring.Component):
    """Route one ``cfg`` stream to the ``cfg`` ports of several blocks (combinational).

    Each block's :class:`hw.config.ConfigMap` becomes a region of a larger address space: the top
    address bits select the region (in the order given), the low bits are the block's own
    address. :meth:`image` turns the blocks' own memory images into words for the shared port.

    Parameters
    ----------
    maps : dict of str to ConfigMap
        The region names (the output ports) and their blocks' maps, at least one.

    Members
    -------
    i : In(stream.Signature({addr, data}))
        ``addr = region << region_bits | block address``; ``data`` as wide as the widest block's.
    <name> : Out(maps[name].signature()), one per region
        The block's words (``data`` truncated to its width); valid only for its region.

    Latency is 0 cycles; ``i.ready`` is the selected region's ready. Throughput one word per cycle.
    """

    def __init__(self, maps: dict[str, ConfigMap]):
        if not maps or not all(isinstance(value, ConfigMap) for value in maps.values()):
            reject(self, ValueError(f"ConfigSplitter needs a dict of ConfigMaps, not {maps!r}"))
        if "i" in maps or not all(name.isidentifier() for name in maps):
            reject(self, ValueError(f"ConfigSplitter regions must be identifiers but 'i': {list(maps)}"))
        self._maps = dict(maps)
        self._region_bits = max(cfg_map.addr_width for cfg_map in maps.values())
        select_bits = max(1, (len(maps) - 1).bit_length())
        data_width = max(cfg_map.data_width for cfg_map in maps.values())
        self._layout = data.StructLayout(
            {"addr": unsigned(select_bits + self._region_bits), "data": unsigned(data_width)}
        )
        members = {"i": In(stream.Signature(self._layout))}
        members.update({name: Out(cfg_map.signature()) for name, cfg_map in maps.items()})
        super().__init__(members)

    @property
    def layout(self) -> data.StructLayout:
        """The shared ``cfg`` payload ``{addr, data}``."""
        return self._layout

    @property
    def latency(self) -> int:
        return 0

    def base(self, region: str) -> int:
        """The first address of ``region``."""
        if region not in self._maps:
            raise ValueError(f"config regions are {list(self._maps)}, not {region!r}")
        return list(self._maps).index(region) << self._region_bits

    def image(self, images: dict[str, list[tuple[int, int]]]) -> list[tuple[int, int]]:
        """The shared port's words for each region's own image, regions in declaration order."""
        unknown = sorted(set(images) - set(self._maps))
        if unknown:
            raise ValueError(f"config regions are {list(self._maps)}, not {unknown}")
        return [
            (self.base(name) | address, word)
            for name in self._maps
            if name in images
            for address, word in images[name]
        ]

    def elaborate(self, platform) -> Module:
        m = Module()
        select = self.i.payload.addr[self._region_bits :]
        for index, name in enumerate(self._maps):
            port = getattr(self, name)
            chosen = select == index
            m.d.comb += [
                port.valid.eq(self.i.valid & chosen),
                port.payload.addr.eq(self.i.payload.addr[: len(port.payload.addr)]),
                port.payload.data.eq(self.i.payload.data[: len(port.payload.data)]),
            ]
            with m.If(chosen):
                m.d.comb += self.i.ready.eq(port.ready)
        return m


class Lanes(wiring.Component):
    """``lanes`` copies of a one-value stream block side by side, in lockstep.

    Every copy sees the same ``valid``, ``ready`` and ``cfg`` words; only the payloads differ. The
    copies therefore stay in step when their handshakes do not depend on the payload, which holds
    for every :mod:`hw.pipeline` block (a stall-everything pipeline's ``ready`` and ``valid`` follow
    the valid bits and the output's ``ready`` alone); the constructor checks that each copy has
    ``i``, ``o`` and (optionally) ``cfg`` ports and nothing else.

    Parameters
    ----------
    build : callable
        Makes one copy (a ``wiring.Component`` with stream ports ``i`` and ``o``, optionally an
        always-ready ``cfg`` stream such as :class:`hw.threshold_quant.ThresholdQuantizer`'s).
    lanes : int
        Copies, 1..64.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(<copy's i payload>, lanes)))
        Value ``n`` goes to copy ``n``.
    o : Out(stream.Signature(ArrayLayout(<copy's o payload>, lanes)))
        Copy ``n``'s output in element ``n``.
    cfg : In(<copy's cfg signature>), when the copies have one
        Broadcast to every copy.

    Latency and throughput are the copy's (:attr:`latency`).

    Raises
    ------
    ValueError
        If ``lanes`` is not an integer in 1..64 or a copy has other ports.
    """

    def __init__(self, build: Callable[[], wiring.Component], lanes: int):
        if not _positive(lanes) or lanes > 64:
            reject(self, ValueError(f"Lanes lanes must be an integer in 1..64, not {lanes!r}"))
        # A prototype gives the ports and the latency; the copies are made when elaborated.
        self._build, self._lanes = build, lanes
        self._prototype = build()
        self._prototype._MustUse__silence = True
        members = dict(self._prototype.signature.members)
        if set(members) - {"cfg"} != {"i", "o"}:
            reject(self, ValueError(f"Lanes needs blocks with ports i, o (and cfg), not {sorted(members)}"))
        i_shape, o_shape = (members[port].signature.members["payload"].shape for port in ("i", "o"))
        signature = {
            "i": In(stream.Signature(data.ArrayLayout(i_shape, lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(o_shape, lanes))),
        }
        if "cfg" in members:
            signature["cfg"] = members["cfg"]
        super().__init__(signature)

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """The copy's latency."""
        return self._prototype.latency

    def elaborate(self, platform) -> Module:
        m = Module()
        copies = [self._build() for _ in range(self._lanes)]
        first = copies[0]
        for n, copy in enumerate(copies):
            m.submodules[f"lane{n}"] = copy
            m.d.comb += [
                copy.i.valid.eq(self.i.valid),
                copy.i.payload.eq(self.i.payload[n]),
                copy.o.ready.eq(self.o.ready),
                self.o.payload[n].eq(copy.o.payload),
            ]
            if "cfg" in self.signature.members:
                m.d.comb += [copy.cfg.valid.eq(self.cfg.valid), copy.cfg.payload.eq(self.cfg.payload)]
        m.d.comb += [self.i.ready.eq(first.i.ready), self.o.valid.eq(first.o.valid)]
        if "cfg" in self.signature.members:
            m.d.comb += self.cfg.ready.eq(first.cfg.ready)
        return m
