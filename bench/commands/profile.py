"""``profile MODEL``: parameters, FLOPs and latency of one model."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``profile`` subcommand (filled in with bench.profile)."""
