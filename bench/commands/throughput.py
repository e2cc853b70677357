"""``throughput``: training and evaluation speed side by side (see :mod:`bench.throughput`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.data import DATA_ROOT_ENV
from bench.throughput import DEFAULT_MODELS, OPTIONS, ThroughputSettings, measure_throughput


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``throughput`` subcommand."""
    parser = subparsers.add_parser(
        "throughput",
        help="training steps/s of our trainer vs its floor, speed options and PaddleSeg",
        description="In one interleaved session, per model at the suite's batch and crop: "
        "our trainer's steps/s (data included), the bare fp32 step (the floor), each speed "
        "option, PaddleSeg's own step (PP-LiteSeg-T) and evaluation images/s; prints medians "
        "and their ratios.",
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="MODEL")
    parser.add_argument("--rounds", type=_positive, default=3, help="timed rounds (default 3)")
    parser.add_argument(
        "--steps", type=_positive, default=3, help="steps per configuration and round (default 3)"
    )
    parser.add_argument(
        "--eval-images", type=_positive, default=8, help="val images per round (default 8)"
    )
    parser.add_argument(
        "--options",
        nargs="*",
        choices=OPTIONS,
        default=list(OPTIONS),
        help=f"speed options to measure (default: all of {', '.join(OPTIONS)})",
    )
    parser.add_argument(
        "--paddle-python",
        type=Path,
        default=Path(sys.executable),
        metavar="PATH",
        help="interpreter with paddlepaddle and paddleseg for PaddleSeg's step "
        "(default: this one; e.g. .nox/parity/bin/python)",
    )
    parser.add_argument("--threads", type=_positive, help="CPU threads (default: all cores)")
    parser.add_argument("--suite", default="camvid-quick", help="default camvid-quick")
    parser.add_argument("--data-root", metavar="DIR", help=f"data root (default: ${DATA_ROOT_ENV})")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.set_defaults(handler=_throughput)


def _throughput(args: argparse.Namespace) -> int:
    settings = ThroughputSettings(
        models=tuple(args.models),
        rounds=args.rounds,
        steps=args.steps,
        eval_images=args.eval_images,
        options=tuple(args.options),
        paddle_python=args.paddle_python,
        threads=args.threads,
        suite=args.suite,
    )
    report = measure_throughput(settings, args.data_root)
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return 0
