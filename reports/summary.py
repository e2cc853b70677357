"""What the report knows about a suite: its planned runs, aggregated over seeds.

Metrics are aggregated as mean and sample standard deviation (ddof=1) over the
seeds that finished; cost is per architecture, so it is taken from one run and
latency is the median over the runs' medians. Everything here is in the units
the report shows (percent for metrics), and nothing here formats text.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from bench.config import RunConfig, SuiteSpec, VariantSpec
from bench.results import FlopCount, Latency, Metrics, ParamCount, RunRecord
from bench.stats import t_critical

EntryStatus = Literal["done", "failed", "partial", "missing"]
ENTRY_STATUSES: tuple[EntryStatus, ...] = ("done", "failed", "partial", "missing")


@dataclass(frozen=True)
class ReportEntry:
    """One planned run of a suite as the report sees it.

    Args:
        run_id: hash of the run's resolved config.
        variant: name of the suite variant.
        seed: training seed.
        status: ``done``, ``failed``, ``partial`` (checkpoint but no result yet) or ``missing``.
        record: the run's record, present for done and failed runs.
        error: why the run failed, if known (falls back to ``record.error``).
        config: the run's resolved config (from the plan), for the protocol table.
    """

    run_id: str
    variant: str
    seed: int
    status: EntryStatus
    record: RunRecord | None
    error: str | None = None
    config: RunConfig | None = None

    @property
    def message(self) -> str | None:
        """The error text of the entry, or of its record."""
        if self.error:
            return self.error
        return self.record.error if self.record is not None else None


@dataclass(frozen=True)
class SeedStat:
    """Mean and sample standard deviation over seeds (``std`` is None with one seed)."""

    mean: float
    std: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        """Half-width of the 95 % t-interval of the mean (``n - 1`` degrees of freedom)."""
        if self.std is None:
            return None
        return t_critical(self.n - 1) * self.std / math.sqrt(self.n)


class LatencyKey(NamedTuple):
    """The settings a latency was measured with; numbers are comparable only within a key.

    ``settings`` are :meth:`bench.results.Latency.settings` (device, runtime and version,
    backend, precision, timing, size, batch, threads, flags); the named fields repeat the
    ones the runtime table sorts by.
    """

    runtime: str
    precision: str
    timing: str
    context: tuple[str, str, tuple[int, int], int, int | None]
    settings: tuple[str, ...]

    @classmethod
    def of(cls, latency: Latency) -> LatencyKey:
        """The key of one measurement; ``context`` is what every runtime of a comparison
        shares (device, its name, input size, batch, threads)."""
        context = (
            latency.device,
            latency.device_name,
            tuple(latency.input_size),
            latency.batch,
            latency.threads,
        )
        return cls(latency.runtime, latency.precision, latency.timing, context, latency.settings())


@dataclass(frozen=True)
class LatencySummary:
    """Latency of one variant under one :class:`LatencyKey`, as the median over its measurements.

    Runs of the same architecture share one measurement (profiles are kept per architecture), so
    ``n`` counts distinct measurements and ``runs`` the runs that carry them.
    """

    key: LatencyKey
    median_ms: float
    iqr_ms: float
    fps: float
    warmup: int
    repeats: int
    n: int
    runs: int
    sessions: tuple[str, ...] = ()
    round_medians_ms: tuple[float, ...] = ()


@dataclass(frozen=True)
class VariantSummary:
    """A variant's planned runs and its results aggregated over finished seeds.

    The metrics are those of the evaluation the variant reports (``spec.checkpoint``:
    final weights or best periodic evaluation); ``other_miou`` is the other one (None when
    no run recorded a best evaluation).
    """

    spec: VariantSpec
    entries: tuple[ReportEntry, ...]
    records: tuple[RunRecord, ...]
    miou: SeedStat | None
    pixel_acc: SeedStat | None
    macc: SeedStat | None
    other_miou: SeedStat | None
    per_class_iou: dict[str, float | None]
    params: ParamCount | None
    flops: tuple[FlopCount, ...]
    latency: dict[LatencyKey, LatencySummary]

    def count(self, status: EntryStatus) -> int:
        """How many of the variant's planned runs have ``status``."""
        return sum(entry.status == status for entry in self.entries)


def seed_stat(values: Sequence[float]) -> SeedStat | None:
    """Mean and sample std of ``values`` (None if empty; std None with one value)."""
    if not values:
        return None
    std = statistics.stdev(values) if len(values) >= 2 else None
    return SeedStat(statistics.fmean(values), std, len(values))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which ``(latency, accuracy)`` points no other point beats (faster and more accurate)."""

    def dominated(point: tuple[float, float]) -> bool:
        latency, accuracy = point
        return any(
            other_latency <= latency
            and other_accuracy >= accuracy
            and (other_latency, other_accuracy) != (latency, accuracy)
            for other_latency, other_accuracy in points
        )

    return [not dominated(point) for point in points]


def _finished(entries: Iterable[ReportEntry]) -> tuple[RunRecord, ...]:
    records = [
        entry.record
        for entry in entries
        if entry.status == "done" and entry.record is not None and entry.record.metrics is not None
    ]
    return tuple(sorted(records, key=lambda record: record.seed))


def reported_metrics(record: RunRecord, checkpoint: str) -> Metrics:
    """The metrics a variant reports: the final evaluation, or the best periodic one
    (PaddleSeg's ``best_model``) when the variant says ``checkpoint = "best"`` and the run
    recorded one."""
    if checkpoint == "best" and record.best is not None:
        return record.best.metrics
    return record.metrics


def _metric(metrics: Sequence[Metrics], name: str) -> SeedStat | None:
    return seed_stat([100.0 * getattr(item, name) for item in metrics])


def _per_class_iou(metrics: Sequence[Metrics]) -> dict[str, float | None]:
    names: dict[str, None] = {}
    for item in metrics:
        names.update(dict.fromkeys(item.per_class_iou))
    result: dict[str, float | None] = {}
    for name in names:
        values = [
            100.0 * value for item in metrics if (value := item.per_class_iou.get(name)) is not None
        ]
        result[name] = statistics.fmean(values) if values else None
    return result


def _latency(records: Sequence[RunRecord]) -> dict[LatencyKey, LatencySummary]:
    grouped: dict[LatencyKey, list[Latency]] = {}
    for record in records:
        for latency in record.cost.latency if record.cost is not None else ():
            grouped.setdefault(LatencyKey.of(latency), []).append(latency)
    summaries = {}
    for key, items in grouped.items():
        distinct = list({item.model_dump_json(): item for item in items}.values())
        summaries[key] = LatencySummary(
            key=key,
            median_ms=statistics.median(item.median_ms for item in distinct),
            iqr_ms=statistics.median(item.iqr_ms for item in distinct),
            fps=statistics.median(item.fps for item in distinct),
            warmup=distinct[0].warmup,
            repeats=distinct[0].repeats,
            n=len(distinct),
            runs=len(items),
            sessions=tuple(sorted({item.session for item in distinct if item.session})),
            round_medians_ms=tuple(distinct[0].round_medians_ms) if len(distinct) == 1 else (),
        )
    return summaries


def summarize_variant(spec: VariantSpec, entries: Sequence[ReportEntry]) -> VariantSummary:
    """Aggregate the finished runs of one variant over its seeds."""
    records = _finished(entries)
    costed = next((record.cost for record in records if record.cost is not None), None)
    reported = [reported_metrics(record, spec.checkpoint) for record in records]
    other = "final" if spec.checkpoint == "best" else "best"
    other_metrics = [
        reported_metrics(record, other)
        for record in records
        if other == "final" or record.best is not None
    ]
    return VariantSummary(
        spec=spec,
        entries=tuple(sorted(entries, key=lambda entry: entry.seed)),
        records=records,
        miou=_metric(reported, "miou"),
        pixel_acc=_metric(reported, "pixel_acc"),
        macc=_metric(reported, "macc"),
        other_miou=_metric(other_metrics, "miou"),
        per_class_iou=_per_class_iou(reported),
        params=costed.params if costed is not None else None,
        flops=tuple(costed.flops) if costed is not None else (),
        latency=_latency(records),
    )


def summarize_suite(suite: SuiteSpec, entries: Sequence[ReportEntry]) -> dict[str, VariantSummary]:
    """One summary per suite variant, in the suite's order."""
    return {
        spec.name: summarize_variant(spec, [e for e in entries if e.variant == spec.name])
        for spec in suite.variants
    }


def primary_latency_key(summaries: Iterable[VariantSummary]) -> LatencyKey | None:
    """The latency setting measured for the most variants (first seen wins a tie)."""
    counts: dict[LatencyKey, int] = {}
    for summary in summaries:
        for key in summary.latency:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda key: counts[key])
