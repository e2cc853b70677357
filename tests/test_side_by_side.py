"""Latency verdicts survive a drifting machine: models timed side by side in one session
share a slow period; models timed minutes apart get no verdict at all.

A fake clock stands in for ``time.perf_counter``: every forward advances it by the model's
cost, 1.5 times more inside a planted slow period (another job on the machine).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.profile import latency as latency_module
from bench.profile import measure_latencies
from reports.comparisons import latency_comparison
from reports.summary import LatencyKey, LatencySummary
from reports.tables import latency_delta

COST_S = 0.01
SLOW_FACTOR = 1.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slow_from = float("inf")

    def perf_counter(self) -> float:
        return self.now

    def advance(self) -> None:
        self.now += COST_S * (SLOW_FACTOR if self.now >= self.slow_from else 1.0)


CLOCK = FakeClock()


class ClockedModel(nn.Module):
    """Costs ``COST_S`` of fake time per forward (identical architectures: equal speed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        CLOCK.advance()
        return self.conv(images)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    CLOCK.__init__()
    monkeypatch.setattr(latency_module.time, "perf_counter", CLOCK.perf_counter)
    return CLOCK


def _summary(record) -> LatencySummary:
    return LatencySummary(
        key=LatencyKey.of(record), median_ms=record.median_ms, iqr_ms=record.iqr_ms, fps=record.fps,
        warmup=record.warmup, repeats=record.repeats, n=1, runs=1, sessions=(record.session,),
        round_medians_ms=tuple(record.round_medians_ms),
    )  # fmt: skip


class Side:
    """What a latency comparison reads of a variant: its latencies by setting."""

    def __init__(self, summary: LatencySummary) -> None:
        self.latency = {summary.key: summary}


def _measure(models, **kwargs):
    return measure_latencies(models, (8, 8), warmup=1, repeats=20, threads=1, **kwargs)


def test_drift_between_separate_timings_would_flip_a_naive_verdict_but_gives_none(clock):
    first = _measure({"reference": ClockedModel()})["reference"]
    clock.slow_from = clock.now  # the machine slows down before the second timing
    second = _measure({"variant": ClockedModel()})["variant"]
    assert second.median_ms > 1.4 * first.median_ms, "identical models, drifted machine"
    comparison = latency_comparison(Side(_summary(second)), Side(_summary(first)))
    assert comparison.effect is None
    assert "not timed side by side" in comparison.missing


def test_side_by_side_rounds_share_the_slow_period_and_stay_inconclusive(clock):
    # The slow period starts halfway through the session: without interleaving the
    # variant would take all of it.
    clock.slow_from = 1.0 + 1.0 + 20 * COST_S  # after both warm-ups and the first half
    records = _measure({"reference": ClockedModel(), "variant": ClockedModel()}, rounds=5)
    reference, variant = _summary(records["reference"]), _summary(records["variant"])
    assert len(variant.round_medians_ms) == 5
    comparison = latency_comparison(Side(variant), Side(reference))
    assert comparison.effect is not None and comparison.effect.n == 5
    assert comparison.effect.verdict("higher") == "inconclusive", comparison.effect


def test_the_ablation_table_prints_no_verdict_across_sessions(clock):
    first = _summary(_measure({"a": ClockedModel()})["a"])
    second = _summary(_measure({"b": ClockedModel()})["b"])
    assert first.key == second.key, "same settings: only the sessions differ"
    verdict = latency_delta(Side(first), Side(second), first.key)["verdict"]
    assert verdict["css"] == "unknown" and "not timed side by side" in verdict["text"]
