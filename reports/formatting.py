"""How numbers read in the report: one place for units and decimals.

mIoU and accuracies are percent with one decimal (spreads and deltas with
two), parameters in millions, GFLOPs with two decimals below 100, latency in
milliseconds and throughput in frames per second. Missing values read "—".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from reports.summary import LatencyKey, SeedStat

DASH = "—"


def percent(value: float | None) -> str:
    """A percentage with one decimal, or a dash."""
    return DASH if value is None else f"{value:.1f}"


def spread(value: float | None) -> str:
    """A standard deviation or noise level (percentage points), two decimals, or a dash."""
    return DASH if value is None else f"{value:.2f}"


def signed(value: float | None, decimals: int = 2) -> str:
    """A difference with its sign (``+0.42``), or a dash."""
    return DASH if value is None else f"{value:+.{decimals}f}"


def mean_std(stat: SeedStat | None) -> str:
    """``67.8 ± 0.42`` over seeds; ``67.8 ± —`` with one seed; a dash without results."""
    if stat is None:
        return DASH
    return f"{percent(stat.mean)} ± {spread(stat.std)}"


def mean_ci(stat: SeedStat | None) -> str:
    """``67.8 ± 4.1`` with the half-width of the 95 % t-interval over seeds (n - 1 df);
    ``67.8 ± —`` with one seed; a dash without results."""
    if stat is None:
        return DASH
    return f"{percent(stat.mean)} ± {spread(stat.half_width)}"


def interval(low: float | None, high: float | None, decimals: int = 2) -> str:
    """``[-0.41, +1.20]``, or a dash."""
    if low is None or high is None:
        return DASH
    return f"[{low:+.{decimals}f}, {high:+.{decimals}f}]"


def millions(count: int | None) -> str:
    """A parameter count in millions (``8.03 M``)."""
    return DASH if count is None else f"{count / 1e6:.2f} M"


def gflops(value: float | None) -> str:
    """GFLOPs with two decimals (one from 100 up)."""
    if value is None:
        return DASH
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def milliseconds(value: float | None) -> str:
    """A latency in ms: two decimals below 10 ms, one above."""
    if value is None:
        return DASH
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def fps(value: float | None) -> str:
    """Frames per second with one decimal."""
    return DASH if value is None else f"{value:.1f} FPS"


def size(height_width: tuple[int, int] | list[int]) -> str:
    """An input size as ``H×W``."""
    height, width = height_width
    return f"{height}×{width}"


def latency_settings(key: LatencyKey) -> str:
    """Everything a latency depends on, in one line (:meth:`bench.results.Latency.settings`)."""
    return " · ".join(key.settings)


def overrides(values: Mapping[str, Any]) -> str:
    """Model overrides as ``key=value`` pairs, sorted by key."""
    return ", ".join(f"{key}={value!r}" for key, value in sorted(values.items()))


def timestamp(iso: str) -> str:
    """An ISO-8601 time as ``YYYY-MM-DD HH:MM UTC`` (unparseable text is returned as is)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def counter_label(counter: str, convention: str) -> str:
    """A FLOP counter's short name with its multiply-add convention, e.g. ``fvcore, 1/MAC``."""
    name = counter.rsplit(".", 1)[-1] if counter.startswith("torch") else counter
    per_mac = (
        convention.split(" per multiply-add", 1)[0] if " per multiply-add" in convention else ""
    )
    return f"{name}, {per_mac}/MAC" if per_mac.isdigit() else name
