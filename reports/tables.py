"""Rows of the report's tables as plain data (strings, lists, dicts) for the templates.

Every cell is formatted here so the templates only place text; a run that did
not finish still gets its row, with its status saying why numbers are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from architectures import model_meta
from architectures.meta import PaperResult
from bench.config import Expected, SuiteSpec, VariantSpec
from reports import formatting as fmt
from reports.summary import (
    ENTRY_STATUSES,
    LatencyKey,
    LatencySummary,
    ReportEntry,
    SeedStat,
    VariantSummary,
    seed_noise,
)

MAIN_GROUP = "main"


def status_cell(summary: VariantSummary) -> dict[str, str]:
    """``3/3 done`` or ``1/3 done · 1 failed · 1 missing`` with a CSS class (ok, warn, bad)."""
    planned = len(summary.entries)
    if planned == 0:
        return {"text": "no runs planned", "css": "bad"}
    done = len(summary.records)
    parts = [f"{done}/{planned} done"]
    parts += [
        f"{summary.count(status)} {status}"
        for status in ENTRY_STATUSES[1:]
        if summary.count(status)
    ]
    css = "ok" if done == planned else "warn" if done else "bad"
    return {"text": " · ".join(parts), "css": css}


def flops_grid(summary: VariantSummary) -> dict[str, list] | None:
    """GFLOPs as a small grid: one row per input size, one column per counter.

    Column labels carry the counting convention in short (e.g. ``fvcore, 1/MAC``);
    the full conventions are in the "How it was measured" section.
    """
    if not summary.flops:
        return None
    counters = list(dict.fromkeys((f.counter, f.convention) for f in summary.flops))
    sizes = list(dict.fromkeys(tuple(f.input_size) for f in summary.flops))
    values = {(f.counter, tuple(f.input_size)): f.gflops for f in summary.flops}
    return {
        "columns": [fmt.counter_label(counter, convention) for counter, convention in counters],
        "rows": [
            {
                "size": fmt.size(size),
                "cells": [
                    fmt.gflops(values[(counter, size)]) if (counter, size) in values else "—"
                    for counter, _ in counters
                ],
            }
            for size in sizes
        ],
    }


def latency_cell(latency: LatencySummary) -> dict[str, str]:
    """Median latency, IQR, FPS and the settings they were measured with."""
    if latency.n == 1:
        shared = f", shared by {latency.runs} runs" if latency.runs > 1 else ""
        count = f"one measurement{shared}"
    else:
        count = f"median of {latency.n} measurements"
    return {
        "ms": fmt.milliseconds(latency.median_ms),
        "iqr": f"IQR {fmt.milliseconds(latency.iqr_ms)}",
        "fps": fmt.fps(latency.fps),
        "settings": fmt.latency_settings(latency.key),
        "n": count,
    }


def paper_result(spec: VariantSpec) -> PaperResult | None:
    """The paper result a variant refers to, read from its model's metadata."""
    return None if spec.paper is None else model_meta(spec.model).result(spec.paper)


def paper_cell(paper: PaperResult | None) -> dict[str, str] | None:
    """The paper's numbers for a variant with the dataset, how they were measured and trained."""
    if paper is None:
        return None
    dataset = paper.dataset
    if paper.resolution is not None:
        dataset += f", {fmt.size(paper.resolution)}"
    fps = fmt.fps(paper.fps)
    if paper.fps is not None and paper.fps_resolution is not None:
        fps += f" at {fmt.size(paper.fps_resolution)}"
    notes = (paper.speed_setup, paper.training, paper.source, paper.note)
    return {
        "miou": fmt.percent(paper.miou),
        "fps": fps,
        "gflops": fmt.gflops(paper.gflops),
        "params": fmt.DASH if paper.params_m is None else f"{paper.params_m:.2f} M",
        "dataset": dataset,
        "note": "; ".join(note for note in notes if note),
    }


def expected_cell(expected: Expected | None, miou: SeedStat | None) -> dict[str, str] | None:
    """Pass when ``|mean mIoU − expected| ≤ tolerance``; ``no result`` without finished seeds."""
    if expected is None:
        return None
    target = f"{expected.miou:.1f} ± {expected.tolerance:.1f}"
    if miou is None:
        return {"verdict": "no result", "css": "bad", "target": target}
    passed = abs(miou.mean - expected.miou) <= expected.tolerance
    return {
        "verdict": "pass" if passed else "fail",
        "css": "ok" if passed else "bad",
        "target": target,
    }


def seeds_text(stat: SeedStat | None) -> str:
    """``n=3 seeds``."""
    count = 0 if stat is None else stat.n
    return f"n={count} seed" if count == 1 else f"n={count} seeds"


def checkpoint_text(checkpoint: str, other: SeedStat | None) -> str:
    """Which evaluation the row reports, and the other one beside it."""
    if checkpoint == "best":
        return f"best periodic evaluation (final weights: {fmt.mean_std(other)})"
    best = "" if other is None else f" (best periodic evaluation: {fmt.mean_std(other)})"
    return f"final weights{best}"


def main_row(summary: VariantSummary) -> dict[str, Any]:
    """One row of the main table (a variant aggregated over its seeds)."""
    spec = summary.spec
    paper = paper_result(spec)
    delta = None
    if paper is not None and paper.miou is not None and summary.miou is not None:
        delta = summary.miou.mean - paper.miou
    return {
        "variant": spec.name,
        "description": spec.description,
        "model": spec.model,
        "overrides": fmt.overrides(spec.overrides),
        "params": fmt.millions(summary.params.inference if summary.params else None),
        "params_total": fmt.millions(summary.params.total) if summary.params else None,
        "flops": flops_grid(summary),
        "latency": [latency_cell(latency) for latency in summary.latency.values()],
        "miou": fmt.mean_std(summary.miou),
        "seeds": seeds_text(summary.miou),
        "checkpoint": checkpoint_text(spec.checkpoint, summary.other_miou),
        "pixel_acc": fmt.mean_std(summary.pixel_acc),
        "macc": fmt.mean_std(summary.macc),
        "paper": paper_cell(paper),
        "delta_paper": fmt.signed(delta, decimals=1),
        "expected": expected_cell(spec.expected, summary.miou),
        "status": status_cell(summary),
    }


def main_rows(summaries: Mapping[str, VariantSummary]) -> list[dict[str, Any]]:
    """Rows of the main table: the variants of group ``main`` in suite order."""
    return [main_row(s) for s in summaries.values() if s.spec.group == MAIN_GROUP]


def noise_verdict(delta: float | None, noise: float | None) -> dict[str, str]:
    """Classify a mIoU difference against the seed noise (see :func:`seed_noise`)."""
    if delta is None:
        return {"text": "no result", "css": "bad"}
    if noise is None:
        return {"text": "noise unknown (fewer than 2 seeds on both sides)", "css": "unknown"}
    if abs(delta) <= noise:
        return {"text": "within seed noise", "css": "noise"}
    return {"text": "beyond seed noise", "css": "ok" if delta > 0 else "bad"}


def timing_verdict(delta_ms: float, spread_ms: float) -> dict[str, str]:
    """Classify a latency difference against the larger interquartile range of both sides."""
    if abs(delta_ms) <= spread_ms:
        return {"text": "within timing spread", "css": "noise"}
    if delta_ms < 0:
        return {"text": "faster beyond timing spread", "css": "ok"}
    return {"text": "slower beyond timing spread", "css": "bad"}


def _common_latency(
    reference: VariantSummary, variant: VariantSummary, preferred: LatencyKey | None
) -> LatencyKey | None:
    common = [key for key in variant.latency if key in reference.latency]
    if preferred in common:
        return preferred
    return common[0] if common else None


def latency_delta(
    reference: VariantSummary, variant: VariantSummary, preferred: LatencyKey | None
) -> dict[str, str]:
    """Latency of both sides under the same settings, the difference in ms and percent, and
    whether it exceeds the timing spread (see :func:`timing_verdict`)."""
    key = _common_latency(reference, variant, preferred)
    if key is None:
        return {
            "reference": fmt.DASH,
            "variant": fmt.DASH,
            "delta": fmt.DASH,
            "verdict": None,
            "settings": "",
        }
    ref, var = reference.latency[key], variant.latency[key]
    delta = var.median_ms - ref.median_ms
    relative = 100 * (var.median_ms / ref.median_ms - 1)
    return {
        "reference": fmt.milliseconds(ref.median_ms),
        "variant": fmt.milliseconds(var.median_ms),
        "delta": f"{fmt.signed(delta)} ms ({fmt.signed(relative, 1)}%)",
        "verdict": timing_verdict(delta, max(ref.iqr_ms, var.iqr_ms))
        if same_session(ref, var)
        else NOT_SIDE_BY_SIDE,
        "settings": fmt.latency_settings(key),
    }


NOT_SIDE_BY_SIDE = {
    "text": "no verdict: not timed side by side (liteseg-bench run --reprofile)",
    "css": "unknown",
}


def same_session(first: LatencySummary, second: LatencySummary) -> bool:
    """Whether two latencies were timed in one interleaved session (and only one each), the
    only case in which their difference says something about the models rather than about
    the machine's drift between two measurements."""
    return len(first.sessions) == 1 and first.sessions == second.sessions


def ablation_row(
    reference: VariantSummary, variant: VariantSummary, preferred: LatencyKey | None
) -> dict[str, Any]:
    """One ablation row: the variant against its reference in mIoU and latency."""
    delta = None
    if reference.miou is not None and variant.miou is not None:
        delta = variant.miou.mean - reference.miou.mean
    noise = seed_noise(reference.miou, variant.miou)
    return {
        "variant": variant.spec.name,
        "description": variant.spec.description,
        "overrides": fmt.overrides(variant.spec.overrides),
        "reference": reference.spec.name,
        "reference_miou": fmt.mean_std(reference.miou),
        "reference_seeds": seeds_text(reference.miou),
        "miou": fmt.mean_std(variant.miou),
        "seeds": seeds_text(variant.miou),
        "delta_miou": fmt.signed(delta),
        "noise": fmt.spread(noise),
        "verdict": noise_verdict(delta, noise),
        "latency": latency_delta(reference, variant, preferred),
        "params": fmt.millions(variant.params.inference if variant.params else None),
        "status": status_cell(variant),
    }


def ablation_tables(
    suite: SuiteSpec, summaries: Mapping[str, VariantSummary], preferred: LatencyKey | None
) -> list[dict[str, Any]]:
    """One table per group holding variants with a ``reference``, groups in suite order."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for spec in suite.variants:
        if spec.reference is None:
            continue
        row = ablation_row(summaries[spec.reference], summaries[spec.name], preferred)
        tables.setdefault(spec.group, []).append(row)
    return [{"group": group, "rows": rows} for group, rows in tables.items()]


def run_rows(suite: SuiteSpec, entries: Sequence[ReportEntry]) -> list[dict[str, Any]]:
    """Every planned run, in suite order then seed, with its status and error text."""
    order = {spec.name: index for index, spec in enumerate(suite.variants)}
    rows = []
    for entry in sorted(
        entries, key=lambda e: (order.get(e.variant, len(order)), e.variant, e.seed)
    ):
        record = entry.record
        training = record.training if record is not None else None
        rows.append(
            {
                "run_id": entry.run_id,
                "variant": entry.variant,
                "in_suite": entry.variant in order,
                "seed": str(entry.seed),
                "status": entry.status,
                "error": entry.message or "",
                "finished_at": fmt.timestamp(record.finished_at) if record is not None else "",
                "wall_time": fmt.DASH if training is None else f"{training.wall_time_s:.0f} s",
            }
        )
    return rows
