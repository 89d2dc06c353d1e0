"""Amaranth RTL generators for Quiver's blocks and their Verilog export.

Every block is a :class:`amaranth.lib.wiring.Component` built from a parameter object of
:mod:`golden.params` (the one source of truth shared with the golden model). This package
never imports torch.
"""
