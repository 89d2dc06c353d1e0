"""``python -m calib``: calibrate a timm ViT, write its parameter file, optionally evaluate it.

Examples::

    python -m calib --out build/calib                       # the shipped model and data, W4A4
    python -m calib --wbits 6 --abits 6 --attn adalog --gelu adalog --eval --out build/w6a6
    python -m calib --model deit_tiny_patch16_224 --checkpoint deit.pth --data imagenet/val \\
        --calib-images 32 --out build/deit

Bad input (an unknown option value, a missing checkpoint or data folder, an unsupported model,
an output path that is a file) prints one line naming the problem and the fix and exits with
code 2 before anything is written. A failure during calibration exits with code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from calib.data import DataError, load_calibration_images, load_eval_set
from calib.models import DEFAULT_MODEL_NAME, ModelError, build_model
from calib.paramfile import JSON_NAME, TENSOR_NAME, save_params
from calib.pipeline import (
    DEFAULT_SETTINGS,
    CalibrationError,
    StageTimer,
    calibrate,
    evaluate,
    get_method,
    make_config,
)
from golden.floatvit import FloatViT
from golden.intops import AccumulatorOverflowError
from golden.params import ParamError
from golden.quantmodel import ATTN_SCHEMES, GELU_SCHEMES, QKV_GRANULARITIES, SUPPORTED_BITS

__all__ = ["build_parser", "main"]

PROG = "python -m calib"
DEFAULT_OUT = Path("build/calib")


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message} (see {PROG} --help)", file=sys.stderr)
        raise SystemExit(2)


def _bits(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value not in SUPPORTED_BITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} bits are not supported; use one of {', '.join(map(str, SUPPORTED_BITS))}"
        )
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Calibrate a timm ViT (default: the shipped tiny Fashion-MNIST model) and write its "
        f"parameter file ({JSON_NAME} + {TENSOR_NAME}) to --out.",
    )
    add = parser.add_argument
    d = DEFAULT_SETTINGS
    add(
        "--model",
        metavar="NAME",
        default=DEFAULT_MODEL_NAME,
        help=f"timm model name (default {DEFAULT_MODEL_NAME})",
    )
    add(
        "--checkpoint",
        metavar="PATH",
        type=Path,
        help="weights (.safetensors/.pth/.pt/.bin); default: shipped",
    )
    add("--data", metavar="FOLDER", type=Path, help="calibration images: ImageFolder, idx folder or .npz")
    add("--calib-images", metavar="N", type=_positive, default=d["calib_images"], help="default 32")
    add("--wbits", metavar="{3,4,6,8}", type=_bits, default=d["wbits"], help="weight bits (default 4)")
    add("--abits", metavar="{3,4,6,8}", type=_bits, default=d["abits"], help="activation bits (default 4)")
    add(
        "--attn",
        choices=ATTN_SCHEMES,
        default=d["attn"],
        help="post-softmax quantizer (default bitlog2_half_17)",
    )
    add("--gelu", choices=GELU_SCHEMES, default=d["gelu"], help="post-GELU quantizer (default uniform)")
    add("--method", choices=("repq", "fpcs"), default=d["method"], help="calibration method (default repq)")
    add(
        "--qkv-granularity",
        choices=QKV_GRANULARITIES,
        default="tensor",
        help="tensor (RepQ-ViT) or head (AdaLog)",
    )
    add(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default {DEFAULT_OUT})",
    )
    add(
        "--seed",
        metavar="N",
        type=_non_negative,
        default=d["seed"],
        help="seed of any randomness (default 0)",
    )
    add("--eval", action="store_true", help="print top-1 of fp32, fakequant and integer on the eval set")
    add("--eval-data", metavar="FOLDER", type=Path, help="evaluation images (default: --data, or shipped)")
    add("--eval-images", metavar="N", type=_positive, help="evaluate only the first N images")
    add("--no-progress", action="store_true", help="no progress bars")
    return parser


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"--out {out} is a file; give a directory (it will hold {JSON_NAME} and {TENSOR_NAME})"
        )
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {existing} is not a writable directory; choose another --out")


def _prepare(args: argparse.Namespace, stages: StageTimer) -> tuple[torch.nn.Module, torch.Tensor, object]:
    """Everything that can fail because of bad input, before any work or any write."""
    try:
        get_method(args.method)
    except CalibrationError as error:
        raise UsageError(str(error)) from None
    _check_out(args.out)
    with stages.stage("load model"):
        try:
            model = build_model(args.model, args.checkpoint)
            FloatViT.from_timm(model)
        except (ModelError, ParamError) as error:
            raise UsageError(f"{error}") from None
    with stages.stage("load calibration images"):
        try:
            images = load_calibration_images(args.calib_images, args.data, model=model)
        except DataError as error:
            raise UsageError(f"{'--data' if args.data else 'calibration images'}: {error}") from None
    eval_set = None
    if args.eval:
        with stages.stage("load evaluation images"):
            try:
                source = args.eval_data if args.eval_data is not None else args.data
                eval_set = load_eval_set(source, model=model, limit=args.eval_images)
            except DataError as error:
                raise UsageError(f"--eval-data: {error}") from None
    return model, images, eval_set


def _run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    stages = StageTimer(log=print, progress=not args.no_progress and sys.stderr.isatty())
    start = time.perf_counter()
    print(
        f"calibrating {args.model}: W{args.wbits}A{args.abits}, attn {args.attn}, gelu {args.gelu}, "
        f"method {args.method}, seed {args.seed}, {args.calib_images} images"
    )
    model, images, eval_set = _prepare(args, stages)
    config = make_config(
        args.model,
        model,
        wbits=args.wbits,
        abits=args.abits,
        attn=args.attn,
        gelu=args.gelu,
        method=args.method,
        seed=args.seed,
        calib_images=len(images),
        qkv_granularity=args.qkv_granularity,
    )
    result = calibrate(model, images, config, stages=stages)
    with stages.stage("write parameter file"):
        path = save_params(result.params, args.out)
    print(f"wrote {path} and {path.with_name(TENSOR_NAME)}")
    if eval_set is not None:
        top1 = evaluate(model, result.params, eval_set.images, eval_set.labels, stages=stages)
        print(
            f"top-1 on {len(eval_set.labels)} images: fp32 {100 * top1['fp32']:.2f} %, "
            f"fakequant {100 * top1['fakequant']:.2f} %, integer {100 * top1['integer']:.2f} % "
            f"(fakequant/integer agreement {100 * top1['agreement']:.2f} %)"
        )
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 calibration failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (UsageError, CalibrationError) as error:  # a method may refuse settings it cannot calibrate
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except (ParamError, AccumulatorOverflowError, DataError) as error:
        print(f"{PROG}: calibration failed: {error}", file=sys.stderr)
        return 1
