"""Co-simulation: cocotb testbenches that drive the exported Verilog on Verilator against the
golden model, the build/run machinery around them, and the bit-exact reports."""
