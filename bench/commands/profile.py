"""``profile MODEL``: parameters, FLOPs and latency of one model."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from pydantic import ValidationError

from bench import models, profile
from bench.config import (
    PRECISIONS,
    RUNTIME_NAMES,
    ModelSpec,
    ProfileSpec,
    format_validation_error,
    parse_assignments,
)
from bench.errors import ConfigError
from bench.files import atomic_write_text
from bench.results import Cost, FlopCount, Latency, ParamCount

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
DEFAULT_SIZE = "512x1024"
# The largest side of an input, 4x the width of a Cityscapes image: a float input of
# 8192x8192 is 805 MB, and a model's activations at that size are tens of GB.
MAX_SIDE = 8192


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``profile`` subcommand."""
    parser = subparsers.add_parser(
        "profile",
        help="parameters, FLOPs and latency of one model",
        description="Count parameters, count FLOPs with fvcore (1 per multiply-add) and "
        "torch.utils.flop_counter (2 per multiply-add), and time eval-mode forwards "
        "(median and IQR) at each input size.",
        epilog="Several --runtime and --precision values are measured side by side in "
        "interleaved rounds: each runtime in the precisions it runs here (pairs left out, "
        "such as torch int8 or fp16 on CPU, are listed with the reason). int8 is "
        "calibrated on random inputs here: its time is right, its accuracy is measured by "
        "a suite run. Torch options (--compile, --channels-last, --fold-bn, ...) apply to "
        "the torch runtime; the others run the ONNX export with batch norms folded.",
    )
    parser.add_argument("model", metavar="MODEL", help="a registered model (liteseg-bench list)")
    parser.add_argument("--num-classes", type=int, default=19, help="output classes (default 19)")
    parser.add_argument(
        "--size",
        nargs="+",
        default=[DEFAULT_SIZE],
        metavar="HxW",
        help=f"input size(s) as HEIGHTxWIDTH (default {DEFAULT_SIZE})",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--runtime",
        nargs="+",
        choices=RUNTIME_NAMES,
        default=["torch"],
        help="runtime(s) to time side by side (default torch)",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=["fp32"],
        help="precision(s) for every runtime that runs them (default fp32)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--batch", type=int, default=1, help="images per timed call (default 1)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile; same as --backend inductor"
    )
    parser.add_argument(
        "--backend", choices=profile.BACKENDS, help="eager (default), inductor or torchscript"
    )
    parser.add_argument("--cuda-graphs", action="store_true", help="replay a CUDA graph")
    parser.add_argument("--fold-bn", action="store_true", help="fold batch norms into convs")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls (default 3)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls (default 10)")
    parser.add_argument("--no-latency", action="store_true", help="count only, do not time")
    add_set_argument(parser)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the Cost record")
    parser.set_defaults(handler=_profile)


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): model constructor overrides."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model constructor override, repeatable (e.g. --set sppm=false)",
    )


def parse_size(text: str) -> tuple[int, int]:
    """``"512x1024"`` -> ``(512, 1024)``; each side 1 to :data:`MAX_SIDE` pixels, else a
    :class:`ConfigError`."""
    match = _SIZE.match(text)
    height, width = (int(match[1]), int(match[2])) if match is not None else (0, 0)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ConfigError(
            f"--size {text!r}: expected HEIGHTxWIDTH with each side 1 to {MAX_SIDE} pixels "
            f"({MAX_SIDE} is 4x a Cityscapes image's width), e.g. 512x1024"
        )
    return height, width


def _options(args: argparse.Namespace) -> profile.InferenceOptions:
    if args.compile and args.backend not in (None, "inductor"):
        raise ConfigError(f"--compile means --backend inductor; it conflicts with {args.backend}")
    backend = "inductor" if args.compile else (args.backend or "eager")
    return profile.InferenceOptions(
        channels_last=args.channels_last,
        fold_bn=args.fold_bn,
        backend=backend,
        cuda_graphs=args.cuda_graphs,
    )


def build_model(name: str, num_classes: int, assignments: list[str]) -> torch.nn.Module:
    """A registered model with ``--set`` overrides; bad names and values are ConfigErrors."""
    if num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {num_classes}")
    spec = ModelSpec(name=name, overrides=parse_assignments(assignments))
    return models.build_model(spec, num_classes)


def _runtime_precisions(args: argparse.Namespace, device) -> tuple[dict, list[str]]:
    """Per runtime, the asked precisions it runs on ``device``, and a note per pair it does
    not (e.g. torch int8): ``--runtime torch openvino --precision fp32 int8`` measures the
    three pairs that exist and says which one it left out. A runtime that runs none of the
    precisions, or is not installed, is an error."""
    from bench.deploy import RuntimeMissingError, check_combination

    kept: dict[str, tuple[str, ...]] = {}
    notes = []
    for runtime in dict.fromkeys(args.runtime):
        ok = []
        for precision in dict.fromkeys(args.precision):
            try:
                check_combination(runtime, precision, device)
            except RuntimeMissingError:
                raise
            except ConfigError as error:
                notes.append(f"not measured: {runtime} {precision}: {error}")
            else:
                ok.append(precision)
        if not ok:
            raise ConfigError(
                f"--runtime {runtime} runs none of --precision {args.precision} on "
                f"{device.type}: " + "; ".join(notes)
            )
        kept[runtime] = tuple(ok)
    return kept, notes


def _spec(args: argparse.Namespace, size: tuple[int, int], runtime_precisions: dict) -> ProfileSpec:
    try:
        return ProfileSpec(
            flops_sizes=(size,),
            latency_size=size,
            latency_batch=args.batch,
            warmup=args.warmup,
            repeats=args.repeats,
            threads=args.threads,
            inference=_options(args),
            runtimes=tuple(runtime_precisions),
            precisions=tuple(dict.fromkeys(args.precision)),
            runtime_precisions=runtime_precisions,
        )
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, "profile")) from None


def _profile(args: argparse.Namespace) -> int:
    sizes = [parse_size(text) for text in args.size]
    device = profile.resolve_device(args.device)
    if args.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {args.rounds}")
    profile.check_settings(
        device,
        _options(args),
        batch=args.batch,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
    )
    runtime_precisions, notes = _runtime_precisions(args, device)
    specs = [_spec(args, size, runtime_precisions) for size in sizes]
    for spec in specs:
        profile.check_profile_spec(spec, device)
    model = build_model(args.model, args.num_classes, args.set)
    if args.no_latency:
        flops = [record for size in sizes for record in profile.count_flops(model, size)]
        cost = Cost(params=profile.count_parameters(model), flops=flops, latency=[])
    else:
        costs = [
            profile.profile_models({args.model: model}, spec, device, rounds=args.rounds)[
                args.model
            ]
            for spec in specs
        ]
        cost = Cost(
            params=costs[0].params,
            flops=[record for one in costs for record in one.flops],
            latency=[record for one in costs for record in one.latency],
        )
    print(format_cost(args.model, args.num_classes, parse_assignments(args.set), cost))
    for note in notes:
        print(note)
    if args.json is not None:
        atomic_write_text(args.json, cost.model_dump_json(indent=2))
    return 0


def format_cost(name: str, num_classes: int, overrides: dict, cost: Cost) -> str:
    """The readable report printed by ``liteseg-bench profile``."""
    title = f"{name} (num_classes={num_classes}"
    title += "".join(f", {key}={value!r}" for key, value in sorted(overrides.items())) + ")"
    sections = [title, _params_table(cost.params), _flops_table(cost.flops)]
    if cost.latency:
        sections.append(_latency_table(cost.latency))
    return "\n\n".join(sections)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows of text: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return [line(header), "  ".join("-" * width for width in widths), *map(line, rows)]


def _params_table(params: ParamCount) -> str:
    rows = [
        ["total", f"{params.total:,}"],
        ["trainable", f"{params.trainable:,}"],
        ["inference (eval forward)", f"{params.inference:,}"],
        *([f"  {name}", f"{count:,}"] for name, count in params.per_module.items()),
    ]
    return "\n".join(["parameters", *_table(["", "count"], rows)])


def _flops_table(flops: list[FlopCount]) -> str:
    rows = [
        [
            record.counter,
            _size(record.input_size),
            f"{record.gflops:.3f}",
            f"{profile.conv_gmacs(record):.3f}",
        ]
        for record in flops
    ]
    table = _table(["counter", "input", "GFLOPs", "conv GMACs"], rows)
    notes = ["conventions:"]
    notes += sorted({f"  {record.counter}: {record.convention}" for record in flops})
    skipped = {
        ", ".join(f"{op} x{count}" for op, count in record.unsupported_ops.items())
        for record in flops
        if record.unsupported_ops
    }
    notes += [f"  skipped by fvcore (unsupported op x calls): {ops}" for ops in sorted(skipped)]
    return "\n".join(["FLOPs (eval mode, batch 1)", *table, *notes])


def _latency_table(latency: list[Latency]) -> str:
    """One row per measurement; settings every row shares are printed once above the table,
    the others in the row. The fastest row of each input size is marked."""
    parts = [record.settings() for record in latency]
    shared = [part for part in parts[0] if all(part in other for other in parts[1:])]
    fastest = {}
    for record in latency:
        best = fastest.get(record.input_size)
        if best is None or record.median_ms < best.median_ms:
            fastest[record.input_size] = record
    first = latency[0]
    settings = (
        "latency: " + ", ".join(shared) + f"; {first.warmup} warm-up + {first.repeats} timed "
        f"calls in {first.rounds} interleaved round(s), side by side"
    )
    rows = []
    for record, own in zip(latency, parts, strict=True):
        fastest_size = fastest[record.input_size]
        rows.append(
            [
                ", ".join(part for part in own if part not in shared) or "-",
                f"{record.median_ms:.2f}",
                f"{record.iqr_ms:.2f}",
                f"{record.fps:.2f}",
                f"{record.median_ms / fastest_size.median_ms:.2f}x"
                + (" fastest" if record is fastest_size else ""),
            ]
        )
    header = ["measurement", "median ms", "IQR ms", "FPS", "vs fastest"]
    return "\n".join([settings, *_table(header, rows)])


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
