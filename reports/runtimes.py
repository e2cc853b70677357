"""The "latency by runtime" table and the best-runtime accuracy/latency points.

One row per main variant x (runtime, precision, timing) measured under the same
conditions (device, input size, batch, threads): median and IQR, the speed-up over the
variant's torch fp32 row, and the accuracy cost of a reduced precision: the mIoU of
the deployed model (``RunRecord.deployed``) minus the fp32 mIoU of the same run, paired
by run, with its 95 % interval (:func:`reports.comparisons.accuracy_cost`). Per variant
the fastest row is marked, and the fastest row whose accuracy cost is known and not
shown to be negative (or that runs fp32) is its "best runtime". The paper's FPS stands
beside the row measured with the paper's method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.results import TIMING_LABELS
from reports import formatting as fmt
from reports.comparisons import Comparison, accuracy_cost, deployed_pairs
from reports.summary import LatencyKey, LatencySummary, VariantSummary, seed_stat
from reports.tables import MAIN_GROUP, difference_verdict, effect_cells, paper_result

# How each paper timed its FPS (REFERENCE.md): PP-LiteSeg, an ONNX -> TensorRT fp32 engine
# without host/device copies on a GTX 1080Ti; LiteSeg, eager PyTorch fp32 on a 1080Ti.
PAPER_METHODS: dict[str, tuple[str, str, str, str]] = {
    "pp_liteseg": ("cuda", "tensorrt", "fp32", "compute"),
    "liteseg": ("cuda", "torch", "fp32", "compute"),
}


def paper_method(model: str) -> tuple[str, str, str, str] | None:
    """(device, runtime, precision, timing) the paper of ``model`` timed with, if known."""
    for prefix, method in PAPER_METHODS.items():
        if model.startswith(prefix):
            return method
    return None


def describe_method(method: tuple[str, str, str, str]) -> str:
    """``tensorrt fp32, engine only (no host/device copies), on cuda``."""
    device, runtime, precision, timing = method
    return f"{runtime} {precision}, {TIMING_LABELS[timing]}, on {device}"


def _acceptable(key: LatencyKey, cost: Comparison) -> bool:
    """fp32, or a reduced precision whose paired accuracy cost is not shown to be negative."""
    if key.precision == "fp32":
        return True
    effect = cost.effect
    return effect is not None and effect.low is not None and effect.high >= 0


def _cost_cell(key: LatencyKey, cost: Comparison) -> dict[str, Any]:
    if cost.effect is not None:
        cells = effect_cells(cost)
        return {
            "text": f"{cells['effect']} {cells['interval']}",
            "verdict": difference_verdict(cost),
        }
    if key.precision == "fp32":
        text = "reference" if key.runtime == "torch" else "fp32 export (checked ≤ 1e-4·std)"
        return {"text": text, "verdict": None}
    return {"text": "not evaluated", "verdict": {"text": "accuracy unknown", "css": "unknown"}}


def _paper_fps(summary: VariantSummary, key: LatencyKey) -> str | None:
    method = paper_method(summary.spec.model)
    paper = paper_result(summary.spec)
    if method is None or paper is None or paper.fps is None:
        return None
    if (key.context[0], key.runtime, key.precision, key.timing) != method:
        return None
    return fmt.fps(paper.fps)


def variant_rows(summary: VariantSummary) -> list[dict[str, Any]]:
    """Rows of one variant, fastest first within each measurement context."""
    by_context: dict[tuple, list[tuple[LatencyKey, LatencySummary]]] = {}
    for key, latency in summary.latency.items():
        by_context.setdefault(key.context, []).append((key, latency))
    rows = []
    for items in by_context.values():
        items.sort(key=lambda item: item[1].median_ms)
        torch_fp32 = next(
            (lat for key, lat in items if (key.runtime, key.precision) == ("torch", "fp32")), None
        )
        costs = {
            key: accuracy_cost(summary.records, key.runtime, key.precision) for key, _ in items
        }
        best = next((key for key, _ in items if _acceptable(key, costs[key])), None)
        for rank, (key, latency) in enumerate(items):
            speedup = None if torch_fp32 is None else torch_fp32.median_ms / latency.median_ms
            rows.append(
                {
                    "variant": summary.spec.name,
                    "runtime": key.runtime,
                    "version": key.settings[1],
                    "backend": key.settings[2],
                    "precision": key.precision,
                    "timing": TIMING_LABELS[key.timing],
                    "ms": fmt.milliseconds(latency.median_ms),
                    "iqr": fmt.milliseconds(latency.iqr_ms),
                    "fps": fmt.fps(latency.fps),
                    "speedup": fmt.DASH if speedup is None else f"{speedup:.2f}×",
                    "fastest": rank == 0,
                    "best": key == best,
                    "cost": _cost_cell(key, costs[key]),
                    "paper_fps": _paper_fps(summary, key),
                    "settings": fmt.latency_settings(key),
                    "sessions": ", ".join(latency.sessions) or fmt.DASH,
                }
            )
    return rows


def runtime_table(summaries: Mapping[str, VariantSummary]) -> dict[str, Any] | None:
    """The "latency by runtime" table of the main variants (None without latencies)."""
    main = [s for s in summaries.values() if s.spec.group == MAIN_GROUP and s.latency]
    if not main:
        return None
    unmatched = []
    rows = []
    for summary in main:
        own = variant_rows(summary)
        rows += own
        method = paper_method(summary.spec.model)
        paper = paper_result(summary.spec)
        if method and paper and paper.fps and not any(row["paper_fps"] for row in own):
            unmatched.append(
                {
                    "variant": summary.spec.name,
                    "fps": fmt.fps(paper.fps),
                    "method": describe_method(method),
                }
            )
    return {"rows": rows, "unmatched_paper": unmatched}


@dataclass(frozen=True)
class BestPoint:
    """A variant's fastest acceptable deployment and its fp32 torch point."""

    variant: str
    label: str
    latency_ms: float
    miou: float
    miou_half_width: float | None
    torch_ms: float | None
    fp32_miou: float


def best_points(summaries: Mapping[str, VariantSummary]) -> list[BestPoint]:
    """Per main variant with an mIoU: the fastest runtime/precision whose accuracy cost is
    not shown to be negative (fp32 counts as exact), at its deployed mIoU."""
    points = []
    for summary in summaries.values():
        if summary.spec.group != MAIN_GROUP or summary.miou is None:
            continue
        candidates = []
        for key, latency in summary.latency.items():
            cost = accuracy_cost(summary.records, key.runtime, key.precision)
            if _acceptable(key, cost):
                candidates.append((latency.median_ms, key, cost))
        if not candidates:
            continue
        median_ms, key, cost = min(candidates, key=lambda item: item[0])
        torch_ms = next(
            (
                lat.median_ms
                for other, lat in summary.latency.items()
                if other.context == key.context
                and (other.runtime, other.precision) == ("torch", "fp32")
            ),
            None,
        )
        deployed = deployed_pairs(summary.records, key.runtime, key.precision)
        stat = summary.miou
        if key.precision != "fp32" and deployed:
            stat = seed_stat([100.0 * metrics.miou for metrics, _ in deployed])
        points.append(
            BestPoint(
                summary.spec.name,
                f"{summary.spec.name} ({key.runtime} {key.precision})",
                median_ms,
                stat.mean,
                stat.half_width,
                torch_ms,
                summary.miou.mean,
            )
        )
    return points
