"""Hardware cost of every registered block: synthesis, place and route, reports and baselines.

``python -m synth`` (``make synth``) exports each design of :mod:`hw.registry`, synthesizes it
with the PyPI Yosys (``synth_ice40``, ``synth_ecp5`` and technology-independent ``synth``), places
and routes it with the PyPI nextpnr (iCE40 HX8K, ECP5-25k) for a maximum-frequency estimate, and
writes ``build/reports/synth.{json,md}``. Area comes from the bare block; Fmax from the block
between registers (:mod:`synth.harness`), so its input-to-output logic is timed too.

Modules: :mod:`synth.tools` (finding and running the tools), :mod:`synth.parse` (reading their
output), :mod:`synth.flow` (one design on one target, cached), :mod:`synth.report` (tables),
:mod:`synth.baseline` (the committed LUT/FF baseline), :mod:`synth.sweep` (MAC array scaling).
This package imports ``hw`` and ``golden.params``, never torch.
"""
