"""The ``liteseg-bench`` command: parses arguments and turns user errors into exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from bench import __version__
from bench.commands import data, env, evaluate, export, profile, runs, throughput, weights
from bench.errors import UserError

COMMAND_MODULES = (runs, evaluate, data, profile, export, weights, env, throughput)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per user task."""
    parser = argparse.ArgumentParser(
        prog="liteseg-bench",
        description="Train, evaluate, profile and report real-time segmentation models "
        "under one protocol.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    # Under torchrun only rank 0 reports progress; the others speak up for problems.
    quiet = os.environ.get("RANK", "0") != "0"
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args) or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and the next run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
