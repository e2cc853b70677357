"""Rows of the report's tables as plain data (strings, lists, dicts) for the templates.

Every cell is formatted here so the templates only place text; a run that did
not finish still gets its row, with its status saying why numbers are missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from architectures import model_meta
from architectures.meta import PaperResult
from bench import stats
from bench.config import Expected, SuiteSpec, VariantSpec
from reports import formatting as fmt
from reports.comparisons import (
    ClaimResult,
    Comparison,
    common_latency_key,
    latency_comparison,
    miou_comparison,
)
from reports.summary import (
    ENTRY_STATUSES,
    LatencyKey,
    LatencySummary,
    ReportEntry,
    SeedStat,
    VariantSummary,
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
        "miou": fmt.mean_ci(summary.miou),
        "seeds": seeds_text(summary.miou),
        "checkpoint": checkpoint_text(spec.checkpoint, summary.other_miou),
        "pixel_acc": fmt.mean_ci(summary.pixel_acc),
        "macc": fmt.mean_ci(summary.macc),
        "paper": paper_cell(paper),
        "delta_paper": fmt.signed(delta, decimals=1),
        "expected": expected_cell(spec.expected, summary.miou),
        "status": status_cell(summary),
    }


def main_rows(summaries: Mapping[str, VariantSummary]) -> list[dict[str, Any]]:
    """Rows of the main table: the variants of group ``main`` in suite order."""
    return [main_row(s) for s in summaries.values() if s.spec.group == MAIN_GROUP]


def effect_cells(comparison: Comparison, decimals: int = 2) -> dict[str, Any]:
    """The paired effect of a comparison as text: effect, 95 % interval, pairs, P(A>B)."""
    effect = comparison.effect
    unit = comparison.unit
    if effect is None:
        return {
            "effect": fmt.DASH,
            "interval": comparison.missing or fmt.DASH,
            "n": "",
            "p_better": fmt.DASH,
        }
    to_unit = comparison.to_unit
    p_better = effect.p_better
    return {
        "effect": f"{fmt.signed(to_unit(effect.mean), decimals)} {unit}",
        "interval": fmt.interval(to_unit(effect.low), to_unit(effect.high), decimals)
        + (f" {unit}" if effect.low is not None else "")
        + (f" ({100 * effect.confidence:g} %)" if effect.confidence != stats.CONFIDENCE else ""),
        "n": comparison.pairs_label,
        "p_better": fmt.DASH
        if p_better is None
        else f"{p_better[0]:.2f} [{p_better[1]:.2f}, {p_better[2]:.2f}]",
    }


def difference_verdict(comparison: Comparison, lower_is_better: bool = False) -> dict[str, str]:
    """The one verdict rule without a claimed direction: the interval excludes 0 above
    (``higher``) or below (``lower``), else ``inconclusive`` with the detectable effect."""
    effect = comparison.effect
    if effect is None:
        return {"text": comparison.missing or "no result", "css": "unknown"}
    if effect.low is None:
        return {"text": "inconclusive: one pair, no interval", "css": "noise"}
    if not effect.decided:
        mde = comparison.to_unit(effect.mde)
        return {"text": f"inconclusive (detectable: {mde:.2f} {comparison.unit})", "css": "noise"}
    higher = effect.low > 0
    words = ("slower", "faster") if comparison.metric == "latency" else ("higher", "lower")
    good = higher != lower_is_better
    return {"text": words[0] if higher else words[1], "css": "ok" if good else "bad"}


def claim_verdict(result: ClaimResult) -> dict[str, str]:
    """supports / contradicts / inconclusive, as a badge."""
    css = {"supports": "ok", "contradicts": "bad", "inconclusive": "noise"}[result.verdict]
    return {"text": result.verdict, "css": css}


def resolution_text(result: ClaimResult) -> str:
    """What would resolve an inconclusive claim (empty for a decided one)."""
    if result.verdict != "inconclusive":
        return ""
    comparison = result.comparison
    effect = comparison.effect
    if effect is None:
        return comparison.missing or "no result"
    if effect.low is None:
        return f"a second {comparison.pair_unit} (one has no interval)"
    source = "the paper's" if result.claim.paper_effect is not None else "the measured"
    target = f"{source} {abs(result.target):.2f} {comparison.unit}"
    needed = result.pairs_needed
    what = f"{comparison.pair_unit}s"
    now = f"detectable now: {comparison.to_unit(effect.mde):.2f} {comparison.unit}"
    if needed is None:
        reason = "the val split's own noise, or the spread, is too large"
        return f"{now}; {target}: out of reach of {stats.MAX_PAIRS} {what} ({reason})"
    return f"{now}; {target} needs {needed} {what}"


def claim_rows(results: Sequence[ClaimResult]) -> list[dict[str, Any]]:
    """Rows of the Claims section and of ``liteseg-bench claims``."""
    rows = []
    for result in results:
        claim = result.claim
        paper = (
            "not found"
            if claim.paper_effect is None
            else f"{fmt.signed(claim.paper_effect)} {claim.unit}"
        )
        rows.append(
            {
                "id": claim.id,
                "paper": claim.paper,
                "source": claim.source,
                "statement": claim.statement,
                "metric": claim.metric,
                "better": result.test.better,
                "than": result.test.than,
                "paper_effect": paper,
                "paper_setting": claim.paper_setting,
                **effect_cells(result.comparison),
                "verdict": claim_verdict(result),
                "resolve": resolution_text(result),
                "settings": fmt.latency_settings(result.comparison.latency_key)
                if result.comparison.latency_key is not None
                else "",
            }
        )
    return rows


def claims_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The claim rows as a plain-text table for the terminal."""
    if not rows:
        return "no claim of the registry is tested in this suite"
    columns = ("id", "paper_effect", "effect", "interval", "n", "p_better")
    titles = ("claim", "paper", "ours", "95 % CI", "pairs", "P(A>B) [95 % CI]", "verdict")
    cells = [[*(row[c] for c in columns), row["verdict"]["text"]] for row in rows]
    widths = [max(len(t), *(len(line[i]) for line in cells)) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True))]
    for row, line in zip(rows, cells, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        lines.append(f"    {row['statement']}: {row['better']} vs {row['than']}")
        if row["resolve"]:
            lines.append(f"    to resolve: {row['resolve']}")
    return "\n".join(lines)


def latency_delta(
    reference: VariantSummary, variant: VariantSummary, preferred: LatencyKey | None
) -> dict[str, Any]:
    """Latency of both sides under the same settings, the paired difference over the
    interleaved rounds (in %) and its verdict."""
    comparison = latency_comparison(variant, reference, preferred)
    key = comparison.latency_key or common_latency_key(
        variant, reference, preferred, side_by_side=False
    )
    if key is None:
        return dict.fromkeys(("reference", "variant", "delta"), fmt.DASH) | {
            "verdict": None,
            "settings": "",
        }
    cells = effect_cells(comparison, decimals=1)
    return {
        "reference": fmt.milliseconds(reference.latency[key].median_ms),
        "variant": fmt.milliseconds(variant.latency[key].median_ms),
        "delta": f"{cells['effect']} {cells['interval']}" if comparison.effect else fmt.DASH,
        "verdict": difference_verdict(comparison, lower_is_better=True),
        "settings": fmt.latency_settings(key),
    }


def ablation_row(
    reference: VariantSummary, variant: VariantSummary, preferred: LatencyKey | None
) -> dict[str, Any]:
    """One ablation row: the variant against its reference in mIoU and latency, seed-paired."""
    comparison = miou_comparison(variant, reference)
    cells = effect_cells(comparison)
    return {
        "variant": variant.spec.name,
        "description": variant.spec.description,
        "overrides": fmt.overrides(variant.spec.overrides),
        "reference": reference.spec.name,
        "reference_miou": fmt.mean_ci(reference.miou),
        "reference_seeds": seeds_text(reference.miou),
        "miou": fmt.mean_ci(variant.miou),
        "seeds": seeds_text(variant.miou),
        "delta_miou": cells["effect"],
        "interval": cells["interval"],
        "pairs": cells["n"],
        "p_better": cells["p_better"],
        "verdict": difference_verdict(comparison),
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
