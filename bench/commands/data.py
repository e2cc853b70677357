"""``data check``: verify (and for CamVid, download) a dataset folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` subcommand (filled in with the dataset code)."""
