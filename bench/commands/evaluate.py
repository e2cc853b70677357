"""``evaluate``: score any checkpoint on any split of any dataset, as runs are scored."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import torch
from pydantic import ValidationError

from architectures import model_meta
from architectures.weights import WeightLoadError, load_official
from bench.config import (
    AugmentSpec,
    DataSpec,
    EvalSpec,
    ModelSpec,
    RunConfig,
    format_validation_error,
    parse_assignments,
)
from bench.data import DATASETS, dataset_info, resolve_data_root
from bench.data.transforms import NORMALIZATION
from bench.distributed import init_distributed, shutdown_distributed
from bench.environment import environment
from bench.errors import ConfigError
from bench.layout import find_run
from bench.models import build_model
from bench.results import RunRecord, write_record
from bench.scoring import dataset_record, score

DEFAULT_OUT = Path("outputs")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a run, a weights file or an official checkpoint on any split",
        description="SOURCE is a finished run (its id, looked up under --out, or its folder), "
        "a state dict of ours (.pt), or an official checkpoint read without executing code: "
        "PaddleSeg PP-LiteSeg .pdparams, a LiteSeg release .pth. The metrics are computed by "
        "the code runs use and written as a run record.",
    )
    parser.add_argument("source", metavar="SOURCE", help="run id, run folder or weights file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where runs are looked up")
    parser.add_argument("--model", help="model name, for a weights file (liteseg-bench list)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model override for a weights file, repeatable (e.g. --set sppm=false)",
    )
    parser.add_argument(
        "--checkpoint",
        choices=("final", "best"),
        default="final",
        help="for a run: its final weights or those of its best evaluation",
    )
    parser.add_argument("--dataset", choices=DATASETS, help="default: the run's")
    parser.add_argument("--split", help="default: the run's validation split")
    parser.add_argument(
        "--data-root", type=Path, help="datasets folder (default: $LITESEG_BENCH_DATA)"
    )
    parser.add_argument(
        "--normalize",
        choices=sorted(NORMALIZATION),
        help="input normalisation (default: the run's; for a file, its encoder's ImageNet stats)",
    )
    parser.add_argument("--scale", type=float, help="network input scale (default: the run's)")
    parser.add_argument(
        "--multiscale", type=float, nargs="+", metavar="F", help="factors of --scale to combine"
    )
    parser.add_argument("--flip", action="store_true", help="also evaluate the mirrored input")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("-o", "--output", type=Path, help="record file (default under --out)")
    parser.set_defaults(handler=_evaluate)


class _Source:
    """What is evaluated: a model spec, its weights file, and the run it came from (if any)."""

    def __init__(self, model: ModelSpec, weights: Path, run: RunConfig | None, label: str) -> None:
        self.model = model
        self.weights = weights
        self.run = run
        self.label = label


def _source(args: argparse.Namespace) -> _Source:
    layout = find_run(args.source, args.out)
    if layout is None and not Path(args.source).is_file():
        raise ConfigError(
            f"{args.source!r} is no weights file, and no run with that id is under "
            f"{args.out}/*/runs; pass a run folder, a weights file, or the run's --out"
        )
    if layout is not None:
        run = RunConfig.model_validate_json(layout.config.read_text(encoding="utf-8"))
        weights = layout.final_weights if args.checkpoint == "final" else layout.best_weights
        if not weights.is_file():
            raise ConfigError(f"run {layout.run_id} has no {args.checkpoint} weights ({weights})")
        model = run.model.model_copy(update={"pretrained": None})
        return _Source(model, weights, run, f"{run.variant} seed {run.seed} ({layout.run_id})")
    if args.model is None:
        raise ConfigError(f"{args.source} is a weights file: name its model with --model")
    model = ModelSpec(name=args.model, overrides=parse_assignments(args.set))
    return _Source(model, Path(args.source), None, f"{args.model} ({Path(args.source).name})")


def _data(args: argparse.Namespace, run: RunConfig | None) -> tuple[DataSpec, str]:
    if args.dataset is None and run is None:
        raise ConfigError("name the dataset to evaluate on with --dataset")
    if run is not None and args.dataset in (None, run.data.dataset):
        return run.data, args.split or run.data.val_split
    return DataSpec(dataset=args.dataset, cache=False), args.split or "val"


def _normalize(args: argparse.Namespace, source: _Source) -> str:
    if args.normalize is not None:
        return args.normalize
    if source.run is not None:
        return source.run.augment.normalize
    weights = model_meta(source.model.name).imagenet
    for name, stats in NORMALIZATION.items():
        if weights is not None and stats == (tuple(weights.mean), tuple(weights.std)):
            return name
    raise ConfigError(f"give the input normalisation of {source.model.name} with --normalize")


def _model(source: _Source, num_classes: int, dataset: str) -> torch.nn.Module:
    hint = (
        f"; does the checkpoint predict the {num_classes} classes of {dataset}? "
        "(a Cityscapes checkpoint has 19)"
    )
    errors = []
    if source.weights.suffix != ".pdparams":
        try:
            return build_model(source.model, num_classes, weights=source.weights)
        except ConfigError as error:
            if source.run is not None:
                raise ConfigError(f"{error}{hint}") from None
            errors.append(f"as a state dict of ours: {error}")
    try:
        return load_official(
            source.model.name, source.weights, num_classes=num_classes, **source.model.overrides
        )
    except (WeightLoadError, ValueError) as error:
        errors.append(f"as an official checkpoint: {error}")
    raise ConfigError(f"cannot load {source.weights}:\n  " + "\n  ".join(errors) + hint)


def _check_factors(option: str, factors: list[float], example: str) -> None:
    """Scale factors are finite and > 0: the input is resized by them."""
    if not all(math.isfinite(factor) and factor > 0 for factor in factors):
        given = " ".join(f"{factor:g}" for factor in factors)
        raise ConfigError(
            f"{option} {given}: {'every factor' if len(factors) > 1 else 'the factor'} must be "
            f"a finite number > 0, e.g. {option} {example}"
        )


def _eval_updates(args: argparse.Namespace) -> dict:
    """The evaluation settings given as options, checked."""
    updates: dict = {"visualize": ()}
    if args.scale is not None:
        _check_factors("--scale", [args.scale], "0.5")
        updates["scale"] = args.scale
    if args.multiscale:
        _check_factors("--multiscale", args.multiscale, "0.75 1.0 1.25")
        updates["multiscale"] = tuple(args.multiscale)
    if args.flip:
        updates["flip"] = True
    return updates


def _evaluate(args: argparse.Namespace) -> int:
    updates = _eval_updates(args)
    source = _source(args)
    data, split = _data(args, source.run)
    data_root = resolve_data_root(
        args.data_root, dataset="synthetic" if data.dataset == "synthetic" else None
    )
    base = source.run.eval if source.run is not None else EvalSpec()
    try:
        spec = EvalSpec.model_validate({**base.model_dump(), **updates})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, "evaluate options")) from None
    augment = AugmentSpec(normalize=_normalize(args, source))
    info = dataset_info(data.dataset, data.synthetic)
    model = _model(source, info.num_classes, data.dataset).eval()
    ctx = init_distributed(args.device)
    try:
        metrics = score(model, data, split, augment, spec, data_root, ctx.device).metrics
        record = _record(args, source, data, split, augment, spec, metrics, environment(ctx))
    finally:
        shutdown_distributed()
    path = args.output or args.out / "evaluations" / f"{record.run_id}.json"
    write_record(path, record)
    print(_table(source.label, data.dataset, split, spec, metrics))
    print(f"record: {path}")
    return 0


def _record(args, source, data, split, augment, spec, metrics, env) -> RunRecord:
    config = {
        "source": str(source.weights),
        "model": source.model.model_dump(mode="json"),
        "data": data.model_dump(mode="json"),
        "split": split,
        "normalize": augment.normalize,
        "eval": spec.model_dump(mode="json"),
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    run = source.run
    return RunRecord(
        suite="evaluate",
        variant=source.label,
        group="evaluate",
        reference=None,
        model=source.model.name,
        overrides=dict(source.model.overrides),
        seed=run.seed if run is not None else 0,
        run_id=digest,
        config=config,
        status="done",
        dataset=dataset_record(data, run.data.train_split if run else "", split),
        metrics=metrics,
        environment=env,
        evaluated_from=str(source.weights),
    )


def _table(label, dataset, split, spec, metrics) -> str:
    settings = f"scale {spec.scale:g}"
    if spec.multiscale != (1.0,):
        settings += f", multi-scale {list(spec.multiscale)}"
    if spec.flip:
        settings += ", flip"
    lines = [
        f"{label} on {dataset} [{split}], {metrics.num_images} images, {settings}, fp32",
        f"  mIoU {100 * metrics.miou:.2f}  (PaddleSeg convention "
        f"{'n/a' if metrics.miou_paddleseg is None else f'{100 * metrics.miou_paddleseg:.2f}'})"
        f"  pixel acc {100 * metrics.pixel_acc:.2f}  mean class acc {100 * metrics.macc:.2f}",
        f"  {'class':<14} {'IoU':>6} {'precision':>9} {'recall':>7}",
    ]
    for name, iou in metrics.per_class_iou.items():
        cells = [iou, metrics.per_class_precision.get(name), metrics.per_class_recall.get(name)]
        text = ["   n/a" if v is None else f"{100 * v:6.2f}" for v in cells]
        lines.append(f"  {name:<14} {text[0]:>6} {text[1]:>9} {text[2]:>7}")
    return "\n".join(lines)
