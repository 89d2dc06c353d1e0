"""Figures of the quantized ViT golden model: fakequant vs integer agreement, accuracy, speed.

Usage::

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python -m bench.golden_vit           # a few minutes
    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python -m bench.golden_vit --quick   # seconds

Measured in one run, on one torch thread, and written to ``build/reports/golden_vit.{json,md}``:

* calibration wall time per stage (RepQ-ViT, the shipped model at the shipped default settings);
* top-1 of fp32 / fakequant / integer on the shipped evaluation subset, the fakequant-vs-integer
  top-1 agreement and logit error (max and mean absolute), for the shipped default parameters
  and a few other schemes;
* the same agreement and logit error on a randomly initialized DeiT-Tiny (random images: its
  "accuracy" means nothing, the agreement of the two modes does);
* integer-forward throughput of the shipped model (images per second, median of 3 runs).

These are figures, not tests: on a shared machine read the ratios, not the third digit (the
report records the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from calib.data import load_calibration_images, load_eval_set
from calib.models import DEFAULT_MODEL_NAME, build_model
from calib.pipeline import DEFAULT_SETTINGS, StageTimer, calibrate, make_config
from golden.vit import forward

__all__ = ["agreement", "main"]

#: Other settings measured on the shipped model besides the default (wbits=abits, attn, gelu).
SHIPPED_VARIANTS = [
    (4, "sqrt2_17", "uniform"),
    (4, "adalog", "adalog"),
    (6, "bitlog2_half_17", "uniform"),
    (8, "uniform", "uniform"),
]
DEIT_VARIANTS = [(4, "bitlog2_half_17", "uniform"), (8, "bitlog2_half_17", "uniform")]


@torch.no_grad()
def agreement(
    params: Any, images: torch.Tensor, fp32_logits: torch.Tensor, labels: torch.Tensor | None = None
) -> dict[str, float]:
    """Fakequant vs integer on ``images``: top-1 agreement, max and mean |logit error|, and for
    scale the max |fakequant logit| and the max |fp32 - fakequant| logit error (what quantization
    itself changes); with ``labels``, both modes' top-1."""
    fake = forward(params, images, "fakequant")
    integer = forward(params, images, "integer")
    error = (fake - integer).abs()
    result = {
        "images": len(images),
        "top1_agreement": float((fake.argmax(1) == integer.argmax(1)).float().mean()),
        "max_abs_logit_error": float(error.max()),
        "mean_abs_logit_error": float(error.mean()),
        "max_abs_logit": float(fake.abs().max()),
        "max_abs_logit_error_fp32_vs_fakequant": float((fp32_logits - fake).abs().max()),
    }
    if labels is not None:
        result["fakequant_top1"] = float((fake.argmax(1) == labels).float().mean())
        result["integer_top1"] = float((integer.argmax(1) == labels).float().mean())
    return result


def _settings(bits: int, attn: str, gelu: str) -> dict[str, Any]:
    return {**DEFAULT_SETTINGS, "wbits": bits, "abits": bits, "attn": attn, "gelu": gelu}


def shipped_figures(quick: bool) -> dict[str, Any]:
    model = build_model()
    eval_set = load_eval_set(limit=200 if quick else None)
    with torch.no_grad():
        fp32_logits = model(eval_set.images)
    fp32 = float((fp32_logits.argmax(1) == eval_set.labels).float().mean())
    rows = []
    variants = [(4, DEFAULT_SETTINGS["attn"], DEFAULT_SETTINGS["gelu"]), *([] if quick else SHIPPED_VARIANTS)]
    stages_of_default: dict[str, float] = {}
    throughput = None
    for bits, attn, gelu in variants:
        settings = _settings(bits, attn, gelu)
        images = load_calibration_images(settings["calib_images"])
        stages = StageTimer()
        result = calibrate(model, images, make_config(DEFAULT_MODEL_NAME, model, **settings), stages=stages)
        if not stages_of_default:
            stages_of_default = stages.seconds
            throughput = integer_throughput(result.params, eval_set.images)
        rows.append(
            {
                "wbits": bits,
                "abits": bits,
                "attn": attn,
                "gelu": gelu,
                **agreement(result.params, eval_set.images, fp32_logits, eval_set.labels),
            }
        )
    return {
        "fp32_top1": fp32,
        "calibration_seconds": stages_of_default,
        "integer_throughput": throughput,
        "rows": rows,
    }


def integer_throughput(params: Any, images: torch.Tensor, repeats: int = 3) -> dict[str, Any]:
    """Images per second of the integer forward (median of ``repeats`` runs, default batches), by
    wall time and by this process's CPU time (which a busy shared machine does not dilute)."""
    forward(params, images[:16], "integer")
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        forward(params, images, "integer")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "images": len(images),
        "seconds": wall,
        "cpu_seconds": cpu,
        "images_per_second": len(images) / wall,
        "images_per_cpu_second": len(images) / cpu,
    }


def deit_figures(quick: bool) -> list[dict[str, Any]]:
    model = build_model("deit_tiny_patch16_224")
    generator = torch.Generator().manual_seed(0)
    calib_images = torch.randn(4, 3, 224, 224, generator=generator)
    test_images = torch.randn(4 if quick else 16, 3, 224, 224, generator=generator)
    rows = []
    for bits, attn, gelu in DEIT_VARIANTS[:1] if quick else DEIT_VARIANTS:
        settings = {**_settings(bits, attn, gelu), "calib_images": len(calib_images)}
        config = make_config("deit_tiny_patch16_224", model, **settings)
        start = time.perf_counter()
        params = calibrate(model, calib_images, config).params
        calibration = time.perf_counter() - start
        with torch.no_grad():
            fp32_logits = model(test_images)
        row = {"wbits": bits, "abits": bits, "attn": attn, "gelu": gelu, "calibration_seconds": calibration}
        rows.append({**row, **agreement(params, test_images, fp32_logits)})
    return rows


def markdown(report: dict[str, Any]) -> str:
    shipped = report["shipped"]
    lines = [
        "# Quantized ViT golden model: figures",
        "",
        f"One torch thread; load average {report['environment']['load_average_1min']} on "
        f"{report['environment']['cpu_count']} cores; torch {report['environment']['torch']}.",
        "",
        f"## Shipped model ({DEFAULT_MODEL_NAME}), {shipped['rows'][0]['images']} evaluation images, "
        f"fp32 top-1 {100 * shipped['fp32_top1']:.2f} %",
        "",
        "| W/A | attn | gelu | fakequant top-1 | integer top-1 | agreement | max / mean abs logit err | "
        "max abs logit | max abs err fp32 vs fakequant |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in shipped["rows"]:
        cells = [
            f"W{row['wbits']}A{row['abits']}",
            row["attn"],
            row["gelu"],
            f"{100 * row['fakequant_top1']:.2f} %",
            f"{100 * row['integer_top1']:.2f} %",
            f"{100 * row['top1_agreement']:.2f} %",
            f"{row['max_abs_logit_error']:.3f} / {row['mean_abs_logit_error']:.3f}",
            f"{row['max_abs_logit']:.2f}",
            f"{row['max_abs_logit_error_fp32_vs_fakequant']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    speed = shipped["integer_throughput"]
    lines += [
        "",
        f"Integer forward: {speed['images_per_second']:.0f} images/s by wall time, "
        f"{speed['images_per_cpu_second']:.0f} images per CPU-second ({speed['images']} images, "
        f"{speed['seconds']:.2f} s wall, {speed['cpu_seconds']:.2f} s CPU, median of 3).",
        "",
        "Calibration of the default (RepQ-ViT, 32 images), seconds per stage: "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in shipped["calibration_seconds"].items()),
        "",
        "## Random DeiT-Tiny (random images)",
        "",
        "| W/A | attn | gelu | images | agreement | max abs logit err | max abs logit | "
        "max abs err fp32 vs fakequant | calibration s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["deit_tiny"]:
        cells = [
            f"W{row['wbits']}A{row['abits']}",
            row["attn"],
            row["gelu"],
            str(row["images"]),
            f"{100 * row['top1_agreement']:.1f} %",
            f"{row['max_abs_logit_error']:.4f}",
            f"{row['max_abs_logit']:.4f}",
            f"{row['max_abs_logit_error_fp32_vs_fakequant']:.4f}",
            f"{row['calibration_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.golden_vit", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="default settings only, fewer images")
    parser.add_argument("--out", type=Path, default=Path("build/reports"), help="report folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    report = {
        "environment": {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "torch": torch.__version__,
        },
        "shipped": shipped_figures(args.quick),
        "deit_tiny": deit_figures(args.quick),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "golden_vit.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    (args.out / "golden_vit.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
