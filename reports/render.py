"""Render a suite's report: one self-contained HTML file plus results.csv and results.json.

The HTML embeds its CSS and every image (base64 PNG data URIs) and needs no
JavaScript or network. As in pytest-html, one Jinja environment with
autoescaping renders templates that receive plain data only (strings, lists,
dicts built by the small functions here and in :mod:`reports.tables`), so every
user string (variant names, notes, errors) is escaped.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from bench import stats
from bench.claims import Claim, load_claims
from bench.config import SuiteSpec
from bench.files import atomic_write_text
from bench.layout import SuiteLayout
from bench.plan import PlannedRun
from bench.results import DatasetInfoRecord, RunRecord, records_to_frame
from reports import formatting as fmt
from reports import images, plots, runtimes, tables
from reports.comparisons import evaluate_claims
from reports.measurement import measurement
from reports.protocol import protocol_tables
from reports.provenance import provenance
from reports.summary import (
    ENTRY_STATUSES,
    LatencyKey,
    ReportEntry,
    VariantSummary,
    primary_latency_key,
    summarize_suite,
)

__all__ = ["ReportEntry", "render_report"]

TEMPLATE = "report.html.j2"
# Columns results.csv always has, so an empty suite still gives a readable table.
BASE_COLUMNS = ("suite", "variant", "group", "model", "seed", "run_id", "status", "error")


@functools.cache
def environment() -> Environment:
    """The one Jinja environment of the report (autoescaping, undefined names are errors)."""
    return Environment(
        autoescape=True,
        loader=PackageLoader("reports", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def suite_dataset(entries: Sequence[ReportEntry]) -> DatasetInfoRecord | None:
    """The dataset description of the first record that has one."""
    return next(
        (e.record.dataset for e in entries if e.record is not None and e.record.dataset),
        None,
    )


def tradeoff_figure(
    summaries: Mapping[str, VariantSummary], key: LatencyKey | None
) -> dict[str, str] | None:
    """mIoU vs latency for every variant measured under ``key`` (None if none was)."""
    if key is None:
        return None
    points = [
        plots.TradeoffPoint(
            s.spec.name,
            s.latency[key].median_ms,
            s.miou.mean,
            s.miou.half_width,
            latency_interval(s.latency[key].round_medians_ms),
        )
        for s in summaries.values()
        if s.miou is not None and key in s.latency
    ]
    if not points:
        return None
    settings = fmt.latency_settings(key)
    return {
        "src": data_uri(plots.tradeoff_plot(points, settings)),
        "alt": "mIoU against latency",
        "caption": f"mIoU against median latency ({settings}). Bars: 95 % intervals, of the "
        "mean mIoU over seeds (t, n − 1 degrees of freedom) and of the latency over the "
        "interleaved rounds' medians (t on their logarithms). Red points form the Pareto "
        "front: no other variant is both faster and more accurate.",
    }


def latency_interval(round_medians_ms: Sequence[float]) -> tuple[float, float] | None:
    """95 % interval of a latency from its per-round medians: the t-interval of
    :func:`bench.stats.paired_effect` on their logarithms, back on the ms scale."""
    if len(round_medians_ms) < stats.MIN_PAIRS:
        return None
    logs = stats.paired_effect(np.log(round_medians_ms))
    return math.exp(logs.low), math.exp(logs.high)


def best_runtime_figure(summaries: Mapping[str, VariantSummary]) -> dict[str, str] | None:
    """mIoU vs latency at each main model's best runtime, beside its torch fp32 point; only
    drawn when some model was measured on more than its torch fp32 path."""
    points = runtimes.best_points(summaries)
    if not any(p.torch_ms is not None and p.torch_ms != p.latency_ms for p in points):
        return None
    return {
        "src": data_uri(plots.best_runtime_plot(points, "each point's own runtime")),
        "alt": "mIoU against latency at each model's best runtime",
        "caption": "Filled: each main model at its fastest runtime × precision whose accuracy "
        "cost is not shown to be negative (its paired 95 % interval does not lie below 0; "
        "fp32 exports count as exact), at the mIoU it has there, with its 95 % interval; "
        "hollow: the same model in fp32 PyTorch, measured side by side under the same "
        "conditions (see the latency-by-runtime table).",
    }


def curves_figure(summaries: Mapping[str, VariantSummary]) -> dict[str, str] | None:
    """Training loss and val mIoU curves of every run that logged them, coloured by variant."""
    series = [
        plots.CurveSeries(
            label=s.spec.name,
            runs=[
                e.record.training.curves
                for e in s.entries
                if e.record is not None and e.record.training is not None
            ],
        )
        for s in summaries.values()
    ]
    series = [item for item in series if any(c.step or c.val_step for c in item.runs)]
    if not series:
        return None
    return {
        "src": data_uri(plots.curves_plot(series)),
        "alt": "training loss and validation mIoU curves",
        "caption": "One line per run (all seeds of a variant share a colour); failed runs "
        "are included up to where they stopped.",
    }


def heatmap_figure(
    summaries: Mapping[str, VariantSummary], dataset: DatasetInfoRecord | None
) -> dict[str, str] | None:
    """Per-class IoU of every variant with results (mean over seeds)."""
    rows = [s for s in summaries.values() if s.records]
    if not rows:
        return None
    names = list(dataset.class_names) if dataset is not None else list(rows[0].per_class_iou)
    values = [[s.per_class_iou.get(name) for name in names] for s in rows]
    png = plots.class_iou_heatmap([s.spec.name for s in rows], names, values)
    return {
        "src": data_uri(png),
        "alt": "per-class IoU heatmap",
        "caption": "Per-class IoU (%) averaged over seeds; grey n/a = the class had zero union "
        "in every run of the variant (NaN, excluded from the mean).",
    }


def _image_cell(array: np.ndarray | None, label: str) -> dict[str, str | None]:
    if array is None:
        return {"src": None, "alt": label}
    return {"src": data_uri(images.png_bytes(array)), "alt": label}


def _prediction(summary: VariantSummary, layout: SuiteLayout, index: int) -> np.ndarray | None:
    record = next((r for r in summary.records if index in r.predictions), None)
    if record is None:
        return None
    return images.read_labels(layout.run(record.run_id).root / record.predictions[index])


def qualitative(
    layout: SuiteLayout, summaries: Sequence[VariantSummary], dataset: DatasetInfoRecord | None
) -> dict[str, Any] | None:
    """Image, ground truth and each model's prediction for the fixed val images."""
    indices = sorted({i for s in summaries for r in s.records for i in r.predictions})
    if dataset is None or not indices:
        return None
    palette, ignore = dataset.palette, dataset.ignore_index

    def coloured(labels: np.ndarray | None) -> np.ndarray | None:
        if labels is None:
            return None
        return images.thumbnail(images.colorize(labels, palette, ignore), nearest=True)

    rows = []
    for index in indices:
        image = images.read_rgb(layout.sample_image(index))
        label = images.read_labels(layout.sample_label(index))
        cells = [
            _image_cell(None if image is None else images.thumbnail(image, nearest=False), "image"),
            _image_cell(coloured(label), "ground truth"),
        ]
        cells += [
            _image_cell(coloured(_prediction(s, layout, index)), s.spec.name) for s in summaries
        ]
        rows.append({"index": str(index), "cells": cells})
    return {
        "columns": ["image", "ground truth", *(s.spec.name for s in summaries)],
        "rows": rows,
        "legend": [
            {"name": name, "color": "rgb({}, {}, {})".format(*color)}
            for name, color in zip(dataset.class_names, palette, strict=False)
        ],
        "ignore_index": str(ignore),
    }


def status_counts(entries: Sequence[ReportEntry]) -> list[dict[str, str]]:
    """How many planned runs have each status."""
    return [
        {"status": status, "count": str(sum(e.status == status for e in entries))}
        for status in ENTRY_STATUSES
    ]


def report_context(
    suite: SuiteSpec,
    entries: Sequence[ReportEntry],
    layout: SuiteLayout,
    suite_file: Path,
    claims: Sequence[Claim],
    added_seeds: Mapping[str, Sequence[int]],
) -> dict[str, Any]:
    """Everything the template shows, as plain data."""
    summaries = summarize_suite(suite, entries)
    records = [e.record for e in entries if e.record is not None]
    key = primary_latency_key(summaries.values())
    dataset = suite_dataset(entries)
    main = [s for s in summaries.values() if s.spec.group == tables.MAIN_GROUP]
    return {
        "suite": {
            "name": suite.name,
            "description": suite.description,
            "protocol_note": suite.protocol_note,
        },
        "counts": status_counts(entries),
        "claims": tables.claim_rows(evaluate_claims(suite, summaries, claims, key, added_seeds)),
        "provenance": provenance(suite.name, suite_file, records),
        "protocol": protocol_tables(suite, entries),
        "main_rows": tables.main_rows(summaries),
        "runtime_table": runtimes.runtime_table(summaries),
        "ablations": tables.ablation_tables(suite, summaries, key),
        "figures": {
            "tradeoff": tradeoff_figure(summaries, key),
            "best_runtime": best_runtime_figure(summaries),
            "curves": curves_figure(summaries),
            "heatmap": heatmap_figure(summaries, dataset),
        },
        "qualitative": qualitative(layout, main, dataset),
        "measurement": measurement(suite, records),
        "runs": tables.run_rows(suite, entries),
    }


def results_frame(entries: Sequence[ReportEntry]) -> pd.DataFrame:
    """One row per planned run: headline numbers, per-class IoU (``iou[class]``) and status."""
    rows = []
    for entry in entries:
        record = entry.record
        row = {"run_id": entry.run_id, "variant": entry.variant, "seed": entry.seed}
        if record is not None:
            row.update(records_to_frame([record]).iloc[0].to_dict())
            if record.metrics is not None:
                row.update(
                    {f"iou[{name}]": value for name, value in record.metrics.per_class_iou.items()}
                )
        row.update(status=entry.status, error=entry.message)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in BASE_COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    leading = list(BASE_COLUMNS)
    return frame[leading + [c for c in frame.columns if c not in leading]]


def records_json(records: Sequence[RunRecord]) -> str:
    """The records as a JSON list (each item validates as a ``RunRecord``)."""
    return json.dumps([r.model_dump(mode="json") for r in records], indent=2)


def entries_from_plan(plan: Sequence[PlannedRun]) -> list[ReportEntry]:
    """The report's view of every planned run, finished or not."""
    return [
        ReportEntry(
            run_id=run.run_id,
            variant=run.config.variant,
            seed=run.config.seed,
            status=run.status,
            record=run.record,
            config=run.config,
        )
        for run in plan
    ]


def render_report(
    suite: SuiteSpec,
    entries: Sequence[ReportEntry],
    layout: SuiteLayout,
    *,
    suite_file: Path,
    claims: Sequence[Claim] | None = None,
    added_seeds: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write the report (HTML, results.csv, results.json) into ``layout.report``; return the HTML.

    Args:
        suite: the suite the entries were planned from.
        entries: every planned run, finished or not; none is dropped.
        layout: the suite's output folder (its runs, samples and report).
        suite_file: the suite's TOML file, hashed into the provenance.
        claims: the claims to judge (default: the registry, ``experiments/claims``).
        added_seeds: seeds ``run --resolve-claims`` added, per variant (see
            :func:`reports.comparisons.evaluate_claims`).
    """
    claims = load_claims() if claims is None else claims
    html = (
        environment()
        .get_template(TEMPLATE)
        .render(report_context(suite, entries, layout, suite_file, claims, added_seeds or {}))
    )
    atomic_write_text(layout.results_csv, results_frame(entries).to_csv(index=False))
    records = [e.record for e in entries if e.record is not None]
    atomic_write_text(layout.results_json, records_json(records))
    atomic_write_text(layout.report_html, html)
    return layout.report_html
