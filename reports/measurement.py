"""Facts for the "how it was measured" section, taken from the records where they exist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from architectures import model_meta
from architectures.meta import Paper, PaperResult
from bench.config import SuiteSpec
from bench.results import RunRecord
from reports import formatting as fmt
from reports.summary import LatencyKey

FVCORE_NOTE = (
    "fvcore counts one FLOP per multiply-add (its GFLOPs are GMACs) for convolutions and "
    "matrix products, and also counts batch norm, bilinear upsampling and adaptive average "
    "pooling; operators it has no handle for (sigmoid, element-wise add and mul, mean and max "
    "reductions) are skipped and listed as unsupported."
)
TORCH_NOTE = (
    "torch.utils.flop_counter counts two FLOPs per multiply-add and only matrix products and "
    "convolutions, so its numbers are about twice fvcore's."
)
UNKNOWN_NOTE = (
    "No description of this counter is known to the report; the convention is as recorded."
)


def counter_note(counter: str) -> str:
    """What a FLOP counter counts and what it skips."""
    name = counter.lower()
    if "fvcore" in name:
        return FVCORE_NOTE
    if "flop_counter" in name or name.startswith("torch"):
        return TORCH_NOTE
    return UNKNOWN_NOTE


def dataset_facts(records: Sequence[RunRecord]) -> dict[str, str] | None:
    """Dataset, split, image count and ignore index of the evaluation."""
    info = next((r.dataset for r in records if r.dataset is not None), None)
    if info is None:
        return None
    counts = sorted({r.metrics.num_images for r in records if r.metrics is not None})
    return {
        "name": info.name,
        "val_split": info.val_split,
        "num_classes": str(info.num_classes),
        "ignore_index": str(info.ignore_index),
        "num_images": ", ".join(str(n) for n in counts) or fmt.DASH,
    }


def absent_classes(records: Sequence[RunRecord]) -> list[dict[str, str]]:
    """Classes with zero union (NaN IoU, left out of the mean) and the runs they were absent in."""
    evaluated = [record for record in records if record.metrics is not None]
    seeds: dict[str, dict[str, list[str]]] = {}
    for record in evaluated:
        for name in record.metrics.absent_classes:
            seeds.setdefault(name, {}).setdefault(record.variant, []).append(str(record.seed))
    rows = []
    for name, by_variant in seeds.items():
        count = sum(len(values) for values in by_variant.values())
        if count == len(evaluated):
            where = f"every evaluated run ({count})"
        else:
            where = "; ".join(
                f"{variant} (seed{'s' if len(s) > 1 else ''} {', '.join(s)})"
                for variant, s in by_variant.items()
            )
        rows.append({"name": name, "runs": where})
    return rows


def convention_differences(records: Sequence[RunRecord]) -> list[dict[str, str]]:
    """Runs whose mIoU changes under PaddleSeg's convention (zero-union IoU = 0, kept in
    the mean), with both values in percent; runs recorded before that value existed are
    left out."""
    rows = []
    for record in records:
        metrics = record.metrics
        if metrics is None or metrics.miou_paddleseg is None:
            continue
        ours, theirs = fmt.percent(100 * metrics.miou), fmt.percent(100 * metrics.miou_paddleseg)
        if ours != theirs:
            rows.append(
                {"run": f"{record.variant} seed {record.seed}", "ours": ours, "paddleseg": theirs}
            )
    return rows


def evaluation_facts(suite: SuiteSpec) -> str:
    """How the suite's protocol evaluates: scale, multi-scale, flip and their combination."""
    spec = suite.protocol.eval
    parts = ["full resolution" if spec.scale == 1 else f"input scaled by {spec.scale:g}"]
    if spec.multiscale != (1.0,):
        scales = ", ".join(f"{factor:g}" for factor in spec.multiscale)
        parts.append(f"multi-scale ×({scales})")
    if spec.flip:
        parts.append("with horizontal flip")
    if spec.multiscale != (1.0,) or spec.flip:
        parts.append("mean of logits" if spec.combine == "logits_mean" else "sum of softmax")
    return ", ".join(parts) + ", fp32"


def flop_counters(records: Sequence[RunRecord]) -> list[dict[str, str]]:
    """Each FLOP counter used, its convention, input size, explanation and skipped operators."""
    counters: dict[tuple[str, str, str], dict[str, int]] = {}
    for record in records:
        for flops in record.cost.flops if record.cost is not None else ():
            key = (flops.counter, flops.convention, fmt.size(flops.input_size))
            skipped = counters.setdefault(key, {})
            for op, count in flops.unsupported_ops.items():
                skipped[op] = max(count, skipped.get(op, 0))
    return [
        {
            "counter": counter,
            "convention": convention,
            "input_size": input_size,
            "note": counter_note(counter),
            "unsupported": ", ".join(f"{op} ×{n}" for op, n in sorted(skipped.items()))
            or "none reported",
        }
        for (counter, convention, input_size), skipped in counters.items()
    ]


def latency_settings(records: Sequence[RunRecord]) -> list[dict[str, str]]:
    """Each latency setting used, with its warm-up, repeat and round counts and how many runs
    used it."""
    settings: dict[tuple[LatencyKey, int, int, int], int] = {}
    for record in records:
        for latency in record.cost.latency if record.cost is not None else ():
            key = (LatencyKey.of(latency), latency.warmup, latency.repeats, latency.rounds)
            settings[key] = settings.get(key, 0) + 1
    return [
        {
            "settings": fmt.latency_settings(key),
            "warmup": str(warmup),
            "repeats": str(repeats),
            "rounds": str(rounds),
            "runs": str(runs),
        }
        for (key, warmup, repeats, rounds), runs in settings.items()
    ]


def protocol_facts(suite: SuiteSpec) -> dict[str, str]:
    """The suite's shared training, evaluation and profiling settings in one line each."""
    protocol = suite.protocol
    train, optim, loss, profile = protocol.train, protocol.optim, protocol.loss, protocol.profile
    threads = "all cores" if profile.threads is None else str(profile.threads)
    length = f"{train.iters} iterations"
    augment = protocol.augment
    crops = f"crop {fmt.size(augment.crop_size)}"
    if augment.pipeline == "liteseg":
        crops = "passes with crops " + ", ".join(fmt.size(p.crop_size) for p in augment.passes)
    if train.epochs is not None:
        length = f"{train.epochs} epochs (iterations from the split size, see the records)"
    return {
        "data": f"{protocol.data.dataset}: train on {protocol.data.train_split!r}, "
        f"evaluate on {protocol.data.val_split!r} at {evaluation_facts(suite)}",
        "training": f"{length}, batch {train.batch_size}, {crops}, "
        f"augmentation {protocol.augment.pipeline!r}, "
        f"normalisation {protocol.augment.normalize!r}, mixed precision {train.amp}",
        "optimiser": f"SGD lr {optim.lr:g}, momentum {optim.momentum:g}, "
        f"weight decay {optim.weight_decay:g}, warm-up {optim.warmup_iters} it, "
        f"poly power {optim.poly_power:g}",
        "loss": f"{loss.kind} with output weights {', '.join(f'{w:g}' for w in loss.weights)}",
        "profile": f"FLOPs at {', '.join(fmt.size(s) for s in profile.flops_sizes)}; latency at "
        f"{fmt.size(profile.latency_size)}, batch {profile.latency_batch}, {profile.warmup} "
        f"warm-up and {profile.repeats} timed calls, threads: {threads}",
        "seeds": ", ".join(str(seed) for seed in suite.seeds),
    }


def paper_methods(suite: SuiteSpec) -> list[dict[str, str]]:
    """How the papers measured the speeds the suite quotes, read from the models' metadata."""
    by_paper: dict[Paper, list[PaperResult]] = {}
    for variant in suite.variants:
        if variant.paper is not None:
            meta = model_meta(variant.model)
            result = meta.result(variant.paper)
            if result.fps is not None:
                by_paper.setdefault(meta.paper, []).append(result)
    return [
        {
            "title": paper.title,
            "citation": paper.citation,
            "arxiv": paper.arxiv,
            "speed": "; ".join(dict.fromkeys(r.speed_setup for r in results if r.speed_setup))
            or "not stated",
            "sizes": ", ".join(
                dict.fromkeys(fmt.size(r.fps_resolution) for r in results if r.fps_resolution)
            ),
        }
        for paper, results in by_paper.items()
    ]


def measurement(suite: SuiteSpec, records: Sequence[RunRecord]) -> dict[str, Any]:
    """All data of the "how it was measured" section."""
    return {
        "dataset": dataset_facts(records),
        "absent_classes": absent_classes(records),
        "convention_differences": convention_differences(records),
        "evaluation": evaluation_facts(suite),
        "flop_counters": flop_counters(records),
        "latency_settings": latency_settings(records),
        "protocol": protocol_facts(suite),
        "protocol_note": suite.protocol_note,
        "papers": paper_methods(suite),
        "uncosted_runs": str(sum(r.cost is None for r in records)),
    }
