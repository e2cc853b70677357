"""``export MODEL``: a static-size ONNX file of a model, checked against PyTorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.commands.profile import add_set_argument, build_model, parse_size
from bench.config import RunConfig
from bench.data import dataset_info
from bench.errors import ConfigError
from bench.layout import find_run
from bench.models import load_weights
from bench.profile import random_images

DEFAULT_OUT = Path("outputs")
# The export is compared with the PyTorch eval logits in ONNX Runtime:
# max|difference| must stay within this fraction of the logits' standard deviation.
TOLERANCE = 1e-4


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="write a model as an ONNX file at a static input size",
        description="Export the eval-mode model (batch norms folded) with PyTorch's "
        "torch.export-based ONNX exporter at one static size (any size, odd ones too), "
        "validate it with onnx's checker and strict shape inference, and compare its "
        "logits in ONNX Runtime with PyTorch's on a random input.",
    )
    parser.add_argument("model", metavar="MODEL", help="a registered model (liteseg-bench list)")
    parser.add_argument("--size", required=True, metavar="HxW", help="input size, e.g. 512x1024")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.onnx")
    parser.add_argument(
        "--weights",
        metavar="RUN_ID_OR_PATH",
        help="a run id (its model_final.pt under --out), a run folder, or a state-dict file",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output root holding the runs (outputs/)"
    )
    parser.add_argument(
        "--num-classes", type=int, help="output classes (default: the run's dataset, else 19)"
    )
    parser.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    add_set_argument(parser)
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from bench.deploy import export_onnx, onnx_error
    from bench.deploy.export import check_onnx_destination

    size = parse_size(args.size)
    if args.batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {args.batch}")
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {args.num_classes}")
    check_onnx_destination(args.output)
    assignments = list(args.set)
    num_classes = args.num_classes
    weights_file = None
    if args.weights is not None:
        run = find_run(args.weights, args.out)
        if run is not None:
            config = RunConfig.model_validate_json(run.config.read_text(encoding="utf-8"))
            if config.model.name != args.model:
                raise ConfigError(
                    f"--weights {args.weights}: the run trained {config.model.name!r}, "
                    f"not {args.model!r}"
                )
            assignments = [
                f"{key}={json.dumps(value)}" for key, value in config.model.overrides.items()
            ] + assignments
            if num_classes is None:
                num_classes = dataset_info(config.data.dataset, config.data.synthetic).num_classes
            weights_file = run.final_weights
        else:
            weights_file = Path(args.weights)
            if weights_file.suffix not in (".pt", ".pth"):
                raise ConfigError(
                    f"--weights {args.weights!r}: not a run id under {args.out}, a run folder "
                    "or a .pt/.pth file"
                )
    model = build_model(args.model, 19 if num_classes is None else num_classes, assignments)
    if weights_file is not None:
        load_weights(model, weights_file, where="--weights: ")
    path = export_onnx(model.eval(), size, args.output, batch=args.batch)
    error = onnx_error(model, path, random_images(size, args.batch))
    verdict = "ok" if error <= TOLERANCE else "TOO LARGE"
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {args.model}, input "
        f"{args.batch}x3x{size[0]}x{size[1]} 'images' -> 'logits', batch norms folded\n"
        f"ONNX Runtime vs PyTorch eval logits: max|diff| = {error:.2e} x std "
        f"(tolerance {TOLERANCE:.0e}): {verdict}"
    )
    return 0 if error <= TOLERANCE else 1
