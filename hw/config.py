"""Run-time parameters of a block: an address map written through a ``cfg`` stream.

Blocks whose parameters change per layer (thresholds, LUT contents, zero points, per-channel
multipliers) take them at run time, so one Verilator build serves every layer of a model. The
block declares a :class:`ConfigMap` of named fields (a register, or a table of ``depth``
entries); the map gives

* the ``cfg`` stream signature: payload ``{addr, data}``, always ready, one word per cycle;
* :meth:`ConfigMap.image`: the list of ``(addr, data)`` words for given values, in pure Python;
  this list is the block's *hardware memory image*, built from the same parameter objects the
  golden model reads;
* :meth:`ConfigMap.elaborate`: the registers, written when a ``cfg`` transfer hits their address.

Signed fields are written as two's complement words. Writing ``cfg`` while data is in flight is
not supported: verification plans send configuration in an earlier phase than data.

Stream rules: see :mod:`hw.pipeline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from amaranth import Module, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream

__all__ = ["ConfigField", "ConfigMap"]


@dataclasses.dataclass(frozen=True)
class ConfigField:
    """A named register (``depth == 1``) or table (``depth > 1``) of ``shape`` values."""

    name: str
    shape: Shape
    depth: int = 1

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Config field name must be an identifier, not {self.name!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(
                f"Config field {self.name!r} depth must be a positive integer, not {self.depth!r}"
            )
        object.__setattr__(self, "shape", Shape.cast(self.shape))


class ConfigMap:
    """Consecutive addresses for ``fields`` in the order given (tables take ``depth`` addresses)."""

    def __init__(self, fields: Sequence[ConfigField]):
        if not fields:
            raise ValueError("A config map needs at least one field")
        names = [field.name for field in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"Config field names must be unique, not {names!r}")
        self._fields = tuple(fields)
        self._base: dict[str, int] = {}
        address = 0
        for field in fields:
            self._base[field.name] = address
            address += field.depth
        self._size = address

    @property
    def fields(self) -> tuple[ConfigField, ...]:
        return self._fields

    @property
    def addr_width(self) -> int:
        return max(1, (self._size - 1).bit_length())

    @property
    def data_width(self) -> int:
        return max(field.shape.width for field in self._fields)

    def base(self, name: str) -> int:
        return self._base[name]

    def layout(self) -> data.StructLayout:
        return data.StructLayout({"addr": unsigned(self.addr_width), "data": unsigned(self.data_width)})

    def signature(self) -> stream.Signature:
        return stream.Signature(self.layout())

    def image(self, values: Mapping[str, int | Sequence[int]]) -> list[tuple[int, int]]:
        """The ``(addr, data)`` words that load ``values`` (every field must be given).

        Raises ``ValueError`` naming the field when a value is missing, has the wrong number of
        entries, or does not fit the field's shape.
        """
        missing = [field.name for field in self._fields if field.name not in values]
        unknown = sorted(set(values) - set(self._base))
        if missing or unknown:
            raise ValueError(f"config values: missing {missing}, unknown {unknown}")
        words = []
        for field in self._fields:
            entries = values[field.name]
            entries = [entries] if field.depth == 1 and isinstance(entries, int) else list(entries)
            if len(entries) != field.depth:
                raise ValueError(
                    f"config field {field.name!r} needs {field.depth} entries, got {len(entries)}"
                )
            width, signed = field.shape.width, field.shape.signed
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            for offset, value in enumerate(entries):
                value = int(value)
                if not lo <= value <= hi:
                    raise ValueError(
                        f"config field {field.name!r}[{offset}] = {value} does not fit "
                        f"{field.shape} [{lo}, {hi}]"
                    )
                words.append((self._base[field.name] + offset, value % (1 << width)))
        return words

    def elaborate(
        self, m: Module, cfg, *, fields: Iterable[str] | None = None, reset_less: bool = False
    ) -> dict[str, Signal | list[Signal]]:
        """Registers for every field (or only the ``fields`` named), written by ``cfg`` transfers;
        returns them by name. ``reset_less`` registers keep their contents through a reset (the
        block then documents that its configuration survives reset). Fields left out are the
        caller's to store, e.g. tables in memories written through :meth:`write_target`."""
        m.d.comb += cfg.ready.eq(1)
        wanted = set(self._base) if fields is None else set(fields)
        unknown = sorted(wanted - set(self._base))
        if unknown:
            raise ValueError(f"config map has no field {unknown[0]!r}")
        registers: dict[str, Signal | list[Signal]] = {}
        for field in (field for field in self._fields if field.name in wanted):
            cells = [
                Signal(field.shape, name=f"cfg_{field.name}{index}", reset_less=reset_less)
                for index in range(field.depth)
            ]
            for offset, cell in enumerate(cells):
                with m.If(cfg.valid & (cfg.payload.addr == self._base[field.name] + offset)):
                    m.d.sync += cell.eq(cfg.payload.data[: field.shape.width])
            registers[field.name] = cells[0] if field.depth == 1 else cells
        return registers

    def write_target(self, cfg, name: str) -> tuple[Value, Value]:
        """``(hit, index)`` for a field kept outside registers (a table in a memory): ``hit`` is
        high on a ``cfg`` transfer into field ``name``, ``index`` is the entry it writes."""
        field = next((field for field in self._fields if field.name == name), None)
        if field is None:
            raise ValueError(f"config map has no field {name!r}")
        base = self._base[name]
        index = (cfg.payload.addr - base)[: max(1, (field.depth - 1).bit_length())]
        hit = cfg.valid & (cfg.payload.addr < base + field.depth)
        if base:  # an unsigned address is always >= 0 (and Verilator's lint says so)
            hit &= cfg.payload.addr >= base
        return hit, index
