"""The report's figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot
state), so rendering works headless and does not leak figures between calls.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.results import Curves
from reports.summary import pareto_front

DPI = 110
FRONT_COLOR = "#d62728"
POINT_COLOR = "#1f77b4"
# Log-scale the latency axis when the slowest model is this many times the fastest.
LOG_AXIS_RATIO = 10.0


@dataclass(frozen=True)
class TradeoffPoint:
    """One variant in the accuracy/latency plane."""

    label: str
    latency_ms: float
    miou: float
    miou_half_width: float | None
    latency_interval_ms: tuple[float, float] | None = None


@dataclass(frozen=True)
class CurveSeries:
    """Training curves of the runs (seeds) of one variant."""

    label: str
    runs: Sequence[Curves]


def plain(text: str) -> str:
    """``text`` shown literally: matplotlib would read ``$...$`` as math."""
    return text.replace("$", r"\$")


def figure_png(figure: Figure) -> bytes:
    """Render ``figure`` to PNG bytes with the Agg canvas."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def tradeoff_plot(points: Sequence[TradeoffPoint], latency_label: str) -> bytes:
    """mIoU against latency, every point labelled, the Pareto front in red."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    on_front = pareto_front([(p.latency_ms, p.miou) for p in points])
    # Alternate label offsets along the latency axis so neighbouring labels do not overlap.
    order = sorted(range(len(points)), key=lambda i: (points[i].latency_ms, points[i].miou))
    label_offsets = {index: (6, 5 if rank % 2 == 0 else -12) for rank, index in enumerate(order)}
    for index, (point, is_front) in enumerate(zip(points, on_front, strict=True)):
        low, high = point.latency_interval_ms or (point.latency_ms, point.latency_ms)
        axes.errorbar(
            point.latency_ms,
            point.miou,
            yerr=point.miou_half_width or 0.0,
            xerr=[[point.latency_ms - low], [high - point.latency_ms]],
            fmt="o",
            color=FRONT_COLOR if is_front else POINT_COLOR,
            markersize=8 if is_front else 6,
            capsize=3,
        )
        axes.annotate(
            plain(point.label),
            (point.latency_ms, point.miou),
            xytext=label_offsets[index],
            textcoords="offset points",
            fontsize=8,
        )
    front_points = sorted(
        (p.latency_ms, p.miou) for p, is_front in zip(points, on_front, strict=True) if is_front
    )
    if front_points:
        xs, ys = zip(*front_points, strict=True)
        axes.step(xs, ys, where="post", color=FRONT_COLOR, linewidth=1.5, label="Pareto front")
        axes.legend(loc="lower right", fontsize=8)
    latencies = [p.latency_ms for p in points]
    if min(latencies) > 0 and max(latencies) / min(latencies) > LOG_AXIS_RATIO:
        axes.set_xscale("log")
    axes.set_xlabel(plain(f"latency, median (ms) — {latency_label}"), fontsize=9)
    axes.set_ylabel("mIoU (%), mean and 95 % CI over seeds")
    axes.grid(alpha=0.3)
    axes.margins(x=0.15, y=0.15)
    return figure_png(figure)


def best_runtime_plot(points: Sequence[Any], latency_label: str) -> bytes:
    """mIoU against latency at each model's best runtime (filled, labelled with it), and the
    same model in fp32 PyTorch (hollow), joined by an arrow.

    ``points`` carry ``label``, ``latency_ms``, ``miou``, ``miou_half_width``, ``torch_ms`` and
    ``fp32_miou`` (see :class:`reports.runtimes.BestPoint`).
    """
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    for point in points:
        axes.errorbar(
            point.latency_ms,
            point.miou,
            yerr=point.miou_half_width or 0.0,
            fmt="o",
            color=FRONT_COLOR,
            capsize=3,
        )
        axes.annotate(
            plain(point.label),
            (point.latency_ms, point.miou),
            xytext=(6, 5),
            textcoords="offset points",
            fontsize=8,
        )
        if point.torch_ms is not None:
            axes.plot(point.torch_ms, point.fp32_miou, "o", mfc="none", color=POINT_COLOR)
            axes.annotate(
                "",
                (point.latency_ms, point.miou),
                xytext=(point.torch_ms, point.fp32_miou),
                arrowprops={"arrowstyle": "->", "color": "#888888"},
            )
    axes.plot([], [], "o", color=FRONT_COLOR, label="best runtime × precision")
    axes.plot([], [], "o", mfc="none", color=POINT_COLOR, label="torch fp32")
    axes.legend(loc="lower right", fontsize=8)
    axes.set_xlabel(plain(f"latency, median (ms) — {latency_label}"), fontsize=9)
    axes.set_ylabel("mIoU (%), mean and 95 % CI over seeds")
    axes.grid(alpha=0.3)
    axes.margins(x=0.15, y=0.15)
    return figure_png(figure)


def curves_plot(series: Sequence[CurveSeries]) -> bytes:
    """Training loss (left) and validation mIoU (right) against iteration."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    loss_axes, miou_axes = figure.subplots(1, 2)
    colors = matplotlib.colormaps["tab10" if len(series) <= 10 else "tab20"]
    for index, variant in enumerate(series):
        style = {"color": colors(index % colors.N), "label": plain(variant.label)}
        for curves in variant.runs:
            if curves.step:
                loss_axes.plot(curves.step, curves.loss, linewidth=1, **style)
            if curves.val_step:
                miou = [100.0 * value for value in curves.val_miou]
                miou_axes.plot(curves.val_step, miou, marker="o", markersize=3, **style)
            style["label"] = None
    loss_axes.set(xlabel="iteration", ylabel="training loss", title="Training loss")
    miou_axes.set(xlabel="iteration", ylabel="val mIoU (%)", title="Validation mIoU")
    for axes in (loss_axes, miou_axes):
        axes.grid(alpha=0.3)
    handles: dict[str, Any] = {}
    for axes in (loss_axes, miou_axes):
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        figure.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=8)
    return figure_png(figure)


def class_iou_heatmap(
    variants: Sequence[str], classes: Sequence[str], values: Sequence[Sequence[float | None]]
) -> bytes:
    """Per-class IoU (%) as a variants × classes heatmap; absent classes are grey ``n/a``."""
    grid = np.array(
        [[math.nan if value is None else value for value in row] for row in values], dtype=float
    )
    width = max(6.0, 0.6 * len(classes) + 3)
    height = max(2.5, 0.4 * len(variants) + 1.8)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    axes.set_xticks(range(len(classes)), [plain(c) for c in classes], rotation=45, ha="right")
    axes.set_yticks(range(len(variants)), [plain(v) for v in variants])
    for row, col in np.ndindex(grid.shape):
        value = grid[row, col]
        text = "n/a" if math.isnan(value) else f"{value:.1f}"
        color = "black" if math.isnan(value) or value > 60 else "white"
        axes.text(col, row, text, ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axes, label="IoU (%)", fraction=0.03)
    return figure_png(figure)
