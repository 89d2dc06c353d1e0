"""The model run of ``make sim``: every integer operator of the shipped ViT through the RTL, bit-exact.

Steps (:func:`run_model`):

1. the quantized model: the shipped parameters, a parameter file of the shipped model (``params``,
   e.g. from ``python -m calib --method fpcs``), or (``attn``/``gelu`` other than the shipped ones)
   a RepQ-ViT calibration on the shipped calibration images, saved beside the reports;
2. ``images`` real images from the shipped evaluation set, the golden integer forward with every
   operator captured (:func:`golden.vit.forward`);
3. the circuits (:class:`cosim.model_hw.ModelHardware`) and the jobs (:func:`cosim.model_plan.plan_model`),
   optionally one operator's hardware memory image deliberately corrupted;
4. per circuit: export the Verilog, one cached Verilator build (harness memories sized for the
   model's largest layer), all of its jobs in one :func:`cosim.fast.run_harness` call; two
   circuits at a time;
5. the results per operator (:class:`RunResult`) for :mod:`cosim.model_report`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from golden.quantmodel import QuantizedViTParams
from golden.vit import forward
from hw.export import export_design

from .fast import run_harness
from .jobs import Check
from .model_corrupt import corrupt
from .model_hw import ModelHardware
from .model_plan import ModelPlan, OpRun, plan_model, words_per_port
from .runner import SimulationError

__all__ = [
    "ModelOptions",
    "RunResult",
    "ModelRun",
    "load_model",
    "capture_records",
    "run_model",
    "parse_array",
]


@dataclasses.dataclass
class ModelOptions:
    """What to run: ``images`` from the eval set, schemes, ``rows x cols`` engines, seed, waves,
    ``only`` (operator-name prefixes), ``corrupt`` (an operator name), ``throttle`` (idle and
    back-pressure probability; 0 compares every job's cycles with the formula)."""

    images: int = 1
    attn: str | None = None
    gelu: str | None = None
    params: pathlib.Path | None = None
    rows: int = 4
    cols: int = 4
    seed: int = 1
    waves: bool = False
    only: Sequence[str] | None = None
    corrupt: str | None = None
    throttle: float = 0.0


@dataclasses.dataclass
class RunResult:
    """The outcome of one :class:`OpRun` (all its output streams)."""

    run: OpRun
    vectors: int
    mismatches: int
    first_mismatch: dict | None
    max_abs_error: int | None
    cycles: int
    timed_out: bool
    error: str | None
    wall_seconds: float

    @property
    def cycles_match(self) -> bool:
        return self.run.job.expected_cycles is None or self.cycles == self.run.job.expected_cycles

    @property
    def passed(self) -> bool:
        return self.error is None and not self.timed_out and self.mismatches == 0 and self.cycles_match


@dataclasses.dataclass
class ModelRun:
    options: ModelOptions
    plan: ModelPlan
    results: list[RunResult]
    model: dict[str, Any]
    images: list[int]
    stages: dict[str, float]
    units: dict[str, dict[str, Any]]


def parse_array(text: str) -> tuple[int, int]:
    """``"RxC"`` to ``(R, C)``; raises ``ValueError`` naming the format."""
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"array must look like RxC (e.g. 4x4), not {text!r}") from None
    if not (1 <= rows <= 64 and 1 <= cols <= 64 and cols & (cols - 1) == 0):
        raise ValueError(f"array {text!r}: R in 1..64 and C a power of two up to 64")
    return rows, cols


def load_model(
    attn: str | None,
    gelu: str | None,
    out_dir: pathlib.Path,
    log: Callable[[str], None],
    params_dir: pathlib.Path | None = None,
):
    """The shipped parameters, a parameter file (``params_dir``, for the shipped model), or a
    calibration for other schemes; returns ``(params, description)``. Raises ``ValueError`` with
    one line for an unreadable file or one made for another model."""
    from calib.paramfile import (
        DEFAULT_PARAMS_DIR,
        load_default_params,
        load_params,
        params_file_sha256,
        save_params,
    )

    if params_dir is not None:
        from calib.models import DEFAULT_MODEL_NAME

        if attn or gelu:
            raise ValueError("--params and --attn/--gelu exclude each other: the file fixes the quantizers")
        params = load_params(params_dir)
        if params.config.model != DEFAULT_MODEL_NAME:
            raise ValueError(
                f"--params {params_dir}: made for {params.config.model!r}; the model run feeds the shipped "
                f"{DEFAULT_MODEL_NAME!r} its shipped images, so it takes that model's parameter files"
            )
        log(f"model: parameter file {params_dir} ({params.config.attn}, gelu {params.config.gelu})")
        return params, {
            "source": "file",
            "path": str(params_dir),
            "sha256": params_file_sha256(params_dir),
            "config": params.config.to_dict(),
        }
    shipped = load_default_params()
    attn = attn or shipped.config.attn
    gelu = gelu or shipped.config.gelu
    if (attn, gelu) == (shipped.config.attn, shipped.config.gelu):
        log(f"model: shipped parameters {DEFAULT_PARAMS_DIR.name} ({attn}, gelu {gelu})")
        return shipped, {
            "source": "shipped",
            "path": str(DEFAULT_PARAMS_DIR),
            "sha256": params_file_sha256(DEFAULT_PARAMS_DIR),
            "config": shipped.config.to_dict(),
        }
    from calib.data import load_calibration_images
    from calib.models import build_model
    from calib.pipeline import calibrate, make_config

    started = time.perf_counter()
    model = build_model()
    images = load_calibration_images(shipped.config.calib_images, model=model)
    # AdaLog's convention quantizes Q, K, V per head; RepQ-ViT's per tensor.
    granularity = "head" if attn == "adalog" else "tensor"
    config = make_config(
        shipped.config.model,
        model,
        wbits=shipped.config.wbits,
        abits=shipped.config.abits,
        attn=attn,
        gelu=gelu,
        method="repq",
        seed=shipped.config.seed,
        calib_images=len(images),
        qkv_granularity=granularity,
    )
    params = calibrate(model, images, config).params
    path = save_params(params, out_dir / "params").parent
    log(
        f"model: calibrated on the fly ({attn}, gelu {gelu}, Q/K/V per {granularity}, repq, "
        f"{len(images)} shipped calibration images, {time.perf_counter() - started:.1f} s), saved to {path}"
    )
    return params, {
        "source": "calibrated",
        "path": str(path),
        "sha256": params_file_sha256(path),
        "config": params.config.to_dict(),
    }


def capture_records(params: QuantizedViTParams, count: int) -> tuple[dict, list[int], torch.Tensor]:
    """The golden integer forward of the first ``count`` shipped evaluation images with every operator
    captured: ``(records, labels, logits)``."""
    from calib.data import load_eval_set

    evaluation = load_eval_set(limit=count)
    logits, records = forward(params, evaluation.images, "integer", capture=True)
    return records, evaluation.labels.tolist(), logits


def _max_abs_error(expected: Any, got: Any) -> int | None:
    """The largest ``|got - expected|`` over every numeric field of the common transfers."""
    if isinstance(expected, dict):
        parts = [_max_abs_error(expected[key], got[key]) for key in expected if key in got]
        parts = [part for part in parts if part is not None]
        return max(parts) if parts else None
    expected, got = np.asarray(expected, dtype=object), np.asarray(got, dtype=object)
    common = min(len(expected), len(got))
    if common == 0:
        return None
    difference = np.abs((got[:common] - expected[:common]).astype(object))
    return int(difference.max())


def _combine(run: OpRun, checks: list[Check], received: dict, error: str | None) -> RunResult:
    if error is None and not checks:
        error = "the simulator returned no result for this job"
    if error is not None:
        return RunResult(run, 0, 0, None, None, 0, False, error, 0.0)
    mismatches = sum(check.mismatches for check in checks)
    first = next(
        (check.first_mismatch | {"port": check.port} for check in checks if check.first_mismatch), None
    )
    worst = None
    if mismatches:
        outputs = received.get(run.job.name, {})
        errors = [
            _max_abs_error(stream.expected, outputs[stream.port])
            for stream in run.job.outputs
            if stream.port in outputs
        ]
        errors = [e for e in errors if e is not None]
        worst = max(errors) if errors else None
    return RunResult(
        run=run,
        vectors=sum(check.vectors for check in checks),
        mismatches=mismatches,
        first_mismatch=first,
        max_abs_error=worst,
        cycles=max(check.cycles for check in checks),
        timed_out=any(check.timed_out for check in checks),
        error=None,
        wall_seconds=max(check.wall_seconds for check in checks),
    )


def _throttle(runs: Sequence[OpRun], probability: float, seed: int) -> None:
    """Random idle cycles and back-pressure on every job (cycles are then not compared)."""
    for number, run in enumerate(runs):
        job = run.job
        job.seed = seed + number
        job.expected_cycles = None
        for stream in job.inputs:
            stream.idle_probability = probability
        for stream in job.outputs:
            stream.stall_probability = probability


def run_model(options: ModelOptions, build: pathlib.Path, log: Callable[[str], None] = print) -> ModelRun:
    """Run the model through the RTL (see the module docstring); never raises on a mismatch."""
    stages: dict[str, float] = {}
    started = time.perf_counter()
    out_dir = build / "model-sim"
    params, model = load_model(options.attn, options.gelu, out_dir, log, options.params)
    records, labels, logits = capture_records(params, options.images)
    stages["model and golden capture"] = time.perf_counter() - started

    mark = time.perf_counter()
    hardware = ModelHardware(params, options.rows, options.cols)
    # Harness memories for the whole model's largest layer (one image), whatever is selected, so
    # that every selection of operators and image count shares one build per circuit.
    full = plan_model(hardware, records, 1, heads=True)
    depths = words_per_port(full.runs)
    plan = (
        full
        if options.images == 1 and not options.only
        else plan_model(hardware, records, options.images, only=options.only)
    )
    if not plan.runs:
        raise ValueError(f"--ops {' '.join(options.only or [])}: no simulated operator has such a prefix")
    if options.corrupt:
        changed = corrupt(plan, records, options.corrupt)
        log(f"corrupted the hardware memory image of {options.corrupt} in {len(changed)} job(s)")
    if options.throttle:
        _throttle(plan.runs, options.throttle, options.seed)
    stages["plan"] = time.perf_counter() - mark
    for note in plan.notes:
        log(note)
    log(
        f"{len(plan.runs)} jobs on {len(plan.designs)} circuits ({options.rows}x{options.cols} engines), "
        f"{options.images} image(s), {len(plan.golden_only)} golden-only operators"
    )

    mark = time.perf_counter()
    verilog_dir, work_dir = out_dir / "verilog", out_dir / "work"
    units: dict[str, dict[str, Any]] = {}

    # Export in this thread (Amaranth is pure Python; the simulators below are subprocesses).
    exported = {}
    for name, design in plan.designs.items():
        verilog, sidecar_path = export_design(design, verilog_dir)
        exported[name] = (verilog, json.loads(sidecar_path.read_text()))

    def simulate(name: str) -> tuple[list[RunResult], dict[str, Any]]:
        runs = [run for run in plan.runs if run.unit == name]
        design = plan.designs[name]
        unit_started = time.perf_counter()
        verilog, sidecar = exported[name]
        received: dict[str, dict] = {}
        try:
            checks = run_harness(
                sidecar,
                verilog,
                [run.job for run in runs],
                work_dir,
                waves=options.waves,
                min_depths=depths.get(name),
                received=received,
            )
        except SimulationError as error:
            message = str(error).splitlines()[0]
            return [_combine(run, [], {}, message) for run in runs], {"error": message}
        by_job: dict[str, list[Check]] = {}
        for check in checks:
            by_job.setdefault(check.job, []).append(check)
        results = [_combine(run, by_job.get(run.job.name, []), received, None) for run in runs]
        info = {
            "block": design.block,
            "params": design.params.to_dict(),
            "jobs": len(runs),
            "simulator": checks[0].simulator if checks else None,
            "wall_seconds": round(time.perf_counter() - unit_started, 2),
            "sim_seconds": round(sum(result.wall_seconds for result in results), 3),
            "cycles": sum(result.cycles for result in results),
        }
        return results, info

    results: list[RunResult] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(simulate, name) for name in plan.designs}
        for name, future in futures.items():
            unit_results, info = future.result()
            units[name] = info
            results += unit_results
            bad = sum(not result.passed for result in unit_results)
            status = "ERROR" if "error" in info else ("ok " if not bad else "BAD")
            detail = info.get("error") or (
                f"{info['jobs']:4d} jobs {info['cycles']:>10,} cycles {info['wall_seconds']:6.1f} s"
            )
            log(f"  {status} {name:46s} {detail}")
    order = {id(run): number for number, run in enumerate(plan.runs)}
    results.sort(key=lambda result: order[id(result.run)])
    stages["RTL simulation"] = time.perf_counter() - mark
    model["logits"] = logits.tolist()
    model["labels"] = labels
    return ModelRun(options, plan, results, model, list(range(options.images)), stages, units)
