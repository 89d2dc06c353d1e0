"""The golden model: the bit-exact integer specification of every Quiver block.

``golden.params`` (standard library only) holds the parameter objects that the RTL generators in
``hw/``, the golden model and calibration all take; the rest of ``golden`` uses PyTorch and must
never import Amaranth or cocotb. Importing ``golden`` itself imports nothing heavy.
"""
