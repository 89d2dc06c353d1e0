"""``make accuracy``: top-1 of the shipped model, float and quantized, for every quantizer choice.

For each bit width (W4A4, W6A6, W3A3), each post-softmax quantizer (:data:`ATTN_SCHEMES`) and each
post-GELU quantizer (:data:`GELU_SCHEMES`) the shipped Fashion-MNIST ViT is calibrated on the 32
shipped calibration images and evaluated in three modes: ``fp32`` (the float model), ``fakequant``
and ``integer`` (:func:`calib.pipeline.evaluate`). The method is RepQ-ViT (``repq``, Q/K/V per
tensor) except for the AdaLog post-softmax rows, which use AdaLog's own calibration (``fpcs``, Q/K/V
per head as in AdaLog).

Writes ``build/reports/accuracy.md`` and ``accuracy.json`` (atomically). JSON rows have the keys
``attn, gelu, wbits, abits, method, mode, top1, calib_seconds`` (one row per configuration and
mode) and the header records the data, the image count and the total time.

Usage::

    python -m calib.accuracy                  # everything on the shipped 1000-image test subset
    python -m calib.accuracy --quick          # W4A4 only
    python -m calib.accuracy --bits 6 --attn adalog sqrt2_17
    python -m calib.accuracy --full           # the 10,000-image test split (needs the Debian package)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from calib.data import FASHION_MNIST_DIR, load_calibration_images, load_eval_set
from calib.models import DEFAULT_MODEL_NAME, build_model
from calib.pipeline import StageTimer, calibrate, evaluate, make_config
from golden.fileio import write_atomic
from golden.quantmodel import ATTN_SCHEMES, GELU_SCHEMES

__all__ = ["BIT_WIDTHS", "MODES", "Configuration", "configurations", "run", "write_reports", "main"]

#: The table's bit widths, in the order of the table (weights = activations).
BIT_WIDTHS = (4, 6, 3)
MODES = ("fp32", "fakequant", "integer")
REPORT_DIR = Path("build/reports")


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One calibrated model of the table."""

    bits: int
    attn: str
    gelu: str

    @property
    def method(self) -> str:
        """``fpcs`` (AdaLog's calibration) for the AdaLog post-softmax rows, else ``repq``."""
        return "fpcs" if self.attn == "adalog" else "repq"

    @property
    def qkv_granularity(self) -> str:
        """AdaLog quantizes Q, K, V per head; RepQ-ViT per tensor."""
        return "head" if self.method == "fpcs" else "tensor"


def configurations(
    bits: Sequence[int] = BIT_WIDTHS, attn: Sequence[str] = ATTN_SCHEMES, gelu: Sequence[str] = GELU_SCHEMES
) -> list[Configuration]:
    """Every selected (bits, attention quantizer, GELU quantizer), in table order."""
    return [Configuration(b, a, g) for b in bits for a in attn for g in gelu]


def run(
    configs: Sequence[Configuration],
    *,
    full: bool = False,
    eval_limit: int | None = None,
    calib_images: int = 32,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Calibrate and evaluate every configuration; return the report (header and rows)."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    model = build_model(DEFAULT_MODEL_NAME)
    images = load_calibration_images(calib_images, model=model)
    eval_set = load_eval_set(None, full=full, model=model, limit=eval_limit)
    rows: list[dict[str, Any]] = []
    for index, config in enumerate(configs, 1):
        settings = {"wbits": config.bits, "abits": config.bits, "attn": config.attn, "gelu": config.gelu}
        quant_config = make_config(
            DEFAULT_MODEL_NAME,
            model,
            **settings,
            method=config.method,
            calib_images=len(images),
            qkv_granularity=config.qkv_granularity,
        )
        calib_start = time.perf_counter()
        result = calibrate(model, images, quant_config, stages=StageTimer())
        seconds = time.perf_counter() - calib_start
        top1 = evaluate(model, result.params, eval_set.images, eval_set.labels)
        for mode in MODES:
            rows.append(
                {
                    "attn": config.attn,
                    "gelu": config.gelu,
                    "wbits": config.bits,
                    "abits": config.bits,
                    "method": config.method,
                    "mode": mode,
                    "top1": top1[mode],
                    "calib_seconds": round(seconds, 2),
                }
            )
        name = f"W{config.bits}A{config.bits} attn {config.attn:18s} gelu {config.gelu:8s} {config.method}"
        log(
            f"[{index}/{len(configs)}] {name}: fp32 {100 * top1['fp32']:.1f} %, "
            f"fakequant {100 * top1['fakequant']:.1f} %, integer {100 * top1['integer']:.1f} % "
            f"(calibration {seconds:.1f} s)"
        )
    data = "Fashion-MNIST test split (10,000 images)" if full else "shipped Fashion-MNIST test subset"
    return {
        "model": DEFAULT_MODEL_NAME,
        "data": data if eval_limit is None else f"{data}, first {eval_limit} images",
        "images": len(eval_set.labels),
        "calib_images": len(images),
        "torch_threads": torch.get_num_threads(),
        "total_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    """The table: one line per configuration, the three modes side by side."""
    lines = [
        "# Top-1 accuracy of the shipped model",
        "",
        f"{report['model']} on the {report['data']} ({report['images']} images), calibrated on "
        f"{report['calib_images']} images; {report['torch_threads']} torch thread(s); total "
        f"{report['total_seconds']:.0f} s. Written by `make accuracy` (`python -m calib.accuracy`).",
        "",
        "| bits | attention | GELU | method | FP32 | fakequant | integer | calibration (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_config: dict[tuple, dict[str, Any]] = {}
    for row in report["rows"]:
        key = (row["wbits"], row["abits"], row["attn"], row["gelu"], row["method"], row["calib_seconds"])
        by_config.setdefault(key, {})[row["mode"]] = row["top1"]
    for (wbits, abits, attn, gelu, method, seconds), top1 in by_config.items():
        cells = " | ".join(f"{100 * top1[mode]:.1f}" if mode in top1 else "" for mode in MODES)
        lines.append(f"| W{wbits}A{abits} | {attn} | {gelu} | {method} | {cells} | {seconds:.1f} |")
    return "\n".join(lines) + "\n"


def write_reports(report: dict[str, Any], directory: Path = REPORT_DIR) -> tuple[Path, Path]:
    """``accuracy.json`` and ``accuracy.md`` in ``directory``, each written atomically."""
    json_path, md_path = directory / "accuracy.json", directory / "accuracy.md"
    write_atomic(json_path, json.dumps(report, indent=2) + "\n")
    write_atomic(md_path, markdown(report))
    return json_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calib.accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="W4A4 only")
    parser.add_argument("--bits", type=int, nargs="+", choices=BIT_WIDTHS, help="bit widths to run")
    parser.add_argument("--attn", nargs="+", choices=ATTN_SCHEMES, help="post-softmax quantizers to run")
    parser.add_argument("--gelu", nargs="+", choices=GELU_SCHEMES, help="post-GELU quantizers to run")
    parser.add_argument("--full", action="store_true", help=f"the 10k test split from {FASHION_MNIST_DIR}")
    parser.add_argument("--eval-images", type=int, help="evaluate only the first N images")
    parser.add_argument("--out", type=Path, default=REPORT_DIR, help=f"report folder (default {REPORT_DIR})")
    args = parser.parse_args(argv)
    if args.full and not FASHION_MNIST_DIR.is_dir():
        print(f"python -m calib.accuracy: error: --full needs {FASHION_MNIST_DIR} (dataset-fashion-mnist)")
        return 2
    bits = (4,) if args.quick else tuple(args.bits or BIT_WIDTHS)
    configs = configurations(bits, args.attn or ATTN_SCHEMES, args.gelu or GELU_SCHEMES)
    report = run(configs, full=args.full, eval_limit=args.eval_images)
    json_path, md_path = write_reports(report, args.out)
    print(f"wrote {md_path} and {json_path} ({report['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
