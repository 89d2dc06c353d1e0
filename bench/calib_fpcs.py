"""FPCS wall time on DeiT-Tiny (random weights, seed 0) with 32 random images, on one thread by default.

Usage::

    python -m bench.calib_fpcs                      # the full model: per-stage and total wall time
    python -m bench.calib_fpcs --blocks 1           # only the first block (a quick look)
    python -m bench.calib_fpcs --speedup proj       # straightforward vs fast on one layer's searches
    python -m bench.calib_fpcs --threads 2          # two torch threads (an otherwise idle machine)

Prints the wall time of every stage (per module kind: qkv, q @ k^T, A @ V, proj, fc1, fc2, ...), the
number of candidate scores per tier, and writes ``build/reports/fpcs_time.json``. ``--speedup``
runs one layer's complete search (block 0's ``proj`` or ``qkv``... ) with both implementations in
this run, states the ratio and writes ``fpcs_speedup.json``; the choices must be equal. Timings
are measured once on a shared machine: read the ratios, not the third digit. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from golden.fileio import write_atomic

__all__ = ["main"]

MODEL = "deit_tiny_patch16_224"
REPORT = Path("build/reports/fpcs_time.json")
SPEEDUP_REPORT = Path("build/reports/fpcs_speedup.json")


def _images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, 224, 224, generator=generator)


def _model(blocks: int | None) -> torch.nn.Module:
    from calib.models import build_model

    model = build_model(MODEL)
    if blocks is not None:
        model.blocks = model.blocks[:blocks]
    return model


def run_full(blocks: int | None, images: int, bits: int, fast: bool = True) -> dict:
    """One FPCS calibration of the model (the pipeline's context, :func:`calib.fpcs_model.calibrate_model`):
    per-stage seconds and candidate scores per tier."""
    from calib.fpcs_model import calibrate_model
    from calib.pipeline import CalibrationContext, StageTimer, make_config
    from golden.floatvit import FloatViT

    model = _model(blocks)
    settings = {"wbits": bits, "abits": bits, "attn": "adalog", "gelu": "adalog", "method": "fpcs"}
    config = make_config(MODEL, model, **settings, calib_images=images, qkv_granularity="head")
    stages = StageTimer(log=lambda line: print(line, flush=True))
    context = CalibrationContext(model, FloatViT.from_timm(model), _images(images), config, stages)
    started = time.perf_counter()
    with torch.no_grad():
        calibrate_model(context, fast=fast)
    total = time.perf_counter() - started
    search = context.fpcs
    return {
        "total_seconds": total,
        "stages": stages.seconds,
        "blocks": len(model.blocks),
        "scores_per_tier": search.stats.evaluated,
        "worst_radius_use": search.stats.worst_radius_use,
        "search_seconds": search.seconds,
    }


def run_speedup(layer: str, images: int, bits: int) -> dict:
    """Block 0's ``layer`` searched by both implementations in one run."""
    import torch.nn.functional as F

    from calib.fpcs import SearchContext, search_linear, search_post_layernorm_linear
    from golden.floatvit import FloatViT

    net = FloatViT.from_timm(_model(1))
    block, s = net.blocks[0], net.structure
    x = _images(images)
    tokens = F.conv2d(x, net.patch_embed.weight, net.patch_embed.bias, stride=s.patch_size)
    x = (
        torch.cat([net.cls_token.expand(images, -1, -1), tokens.flatten(2).transpose(1, 2)], 1)
        + net.pos_embed
    )
    h = F.layer_norm(x, (x.shape[-1],), block.norm1_weight, block.norm1_bias, s.ln_eps)
    timings, choices = {}, {}
    for fast in (True, False):
        context = SearchContext(fast=fast)
        started = time.perf_counter()
        if layer == "qkv":
            raw = F.linear(h, block.qkv.weight, block.qkv.bias)
            choice = search_post_layernorm_linear(
                h,
                raw,
                block.qkv.weight,
                block.qkv.bias,
                block.norm1_weight,
                block.norm1_bias,
                bits,
                bits,
                context,
            ).linear
        else:
            raw = F.linear(h, block.proj.weight, block.proj.bias)
            choice = search_linear(h, raw, block.proj.weight, block.proj.bias, bits, bits, context)
        name = "fast" if fast else "straightforward"
        timings[name] = time.perf_counter() - started
        choices[fast] = choice
        print(f"  {name}: {timings[name]:.1f} s", flush=True)
    same = all(
        torch.equal(getattr(choices[True], part).scale, getattr(choices[False], part).scale)
        and torch.equal(getattr(choices[True], part).zero_point, getattr(choices[False], part).zero_point)
        for part in ("weight", "input")
    )
    return {
        "layer": layer,
        "seconds": timings,
        "ratio": timings["straightforward"] / timings["fast"],
        "same": same,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calib_fpcs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, help="calibrate only the first N blocks")
    parser.add_argument("--images", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--bits", type=int, default=4, help="weight and activation bits (default 4)")
    parser.add_argument("--speedup", choices=("proj", "qkv"), help="time one layer with both implementations")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, not {args.threads}")
    torch.set_num_threads(args.threads)
    environment = {
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    print(f"FPCS on {MODEL} (random weights, seed 0), {args.images} random images, W{args.bits}A{args.bits}")
    print(f"environment: {environment}")
    if args.speedup:
        speedup = run_speedup(args.speedup, args.images, args.bits)
        report = {"speedup": speedup}
        print(f"speed-up on block 0 {args.speedup}: {speedup['ratio']:.1f}x, same choices: {speedup['same']}")
    else:
        run = run_full(args.blocks, args.images, args.bits)
        print("per stage:")
        for name, seconds in run["stages"].items():
            print(f"  {name:40s} {seconds:8.1f} s")
        print("per search kind:")
        for name, seconds in sorted(run["search_seconds"].items()):
            print(f"  {name:40s} {seconds:8.1f} s")
        print(f"candidate scores per tier: {run['scores_per_tier']}")
        total = run["total_seconds"]
        print(f"total {total:.1f} s ({total / 60:.1f} min) for {run['blocks']} blocks")
        report = {"full": run}
    report["environment"] = environment
    write_atomic(SPEEDUP_REPORT if args.speedup else REPORT, json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
