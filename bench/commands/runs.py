"""``list``, ``plan``, ``run`` and ``report``: suites and their runs."""

from __future__ import annotations

import argparse

from architectures import list_models
from bench.config import available_suites


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the run-related subcommands."""
    parser = subparsers.add_parser("list", help="list suites and models")
    parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    print("suites:", ", ".join(available_suites()) or "(none)")
    print("models:", ", ".join(list_models()) or "(none)")
    return 0
