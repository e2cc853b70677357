"""``env``: this machine's CPU features and runtimes, and what ``precisions = "auto"`` times."""

from __future__ import annotations

import argparse

import torch

from bench.config import RUNTIME_NAMES
from bench.errors import UserError
from bench.hardware import auto_precisions, detect


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``env`` subcommand."""
    parser = subparsers.add_parser(
        "env",
        help="this machine's CPU features, runtimes, and the precisions 'auto' measures here",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.set_defaults(handler=_env)


def _env(args: argparse.Namespace) -> int:
    from bench.deploy.runtimes import get_runtime

    hardware = detect()
    print(f"machine: {hardware.describe()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f'precisions = "auto" on {args.device}:')
    for name in RUNTIME_NAMES:
        runtime = get_runtime(name)
        if not runtime.precisions_by_device.get(args.device):
            print(f"  {name:<12} does not run on {args.device}")
            continue
        try:
            version = runtime.version()
        except UserError:
            print(f"  {name:<12} not installed ({runtime.install})")
            continue
        precisions = auto_precisions(name, args.device, hardware)
        print(f"  {name:<12} {version:<12} {', '.join(precisions)}")
    return 0
