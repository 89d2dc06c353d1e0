"""``make bench``: speed figures measured in one run, with ratios (not tests: nothing asserts a time).

``python -m bench`` measures, for one registered design, the simulated clock cycles per second
under Verilator + cocotb, under Amaranth's simulator and in a plain Verilator C++ loop
(:mod:`bench.sim_speed`, :mod:`bench.cpp_loop`); the golden model's throughput
(:mod:`bench.golden_speed`); and calibration time per method (:mod:`bench.calib_speed`). A
figure that cannot be measured here (e.g. the C++ loop without a compiler) is listed as skipped
with the reason. Results go to ``build/reports/bench.{json,md}``. The DeiT-Tiny FPCS timing is
its own command, ``python -m bench.calib_fpcs`` (tens of minutes).
"""
