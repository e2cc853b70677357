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
from reports.summary import LatencyKey, LatencySummary
from reports.tables import NOT_SIDE_BY_SIDE, latency_delta, same_session, timing_verdict

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
    )  # fmt: skip


def _measure(models, **kwargs):
    return measure_latencies(models, (8, 8), warmup=1, repeats=20, threads=1, **kwargs)


def test_drift_between_separate_timings_flips_the_verdict_but_the_report_gives_none(clock):
    first = _measure({"reference": ClockedModel()})["reference"]
    clock.slow_from = clock.now  # the machine slows down before the second timing
    second = _measure({"variant": ClockedModel()})["variant"]
    delta = second.median_ms - first.median_ms
    spread = max(first.iqr_ms, second.iqr_ms)
    assert timing_verdict(delta, spread)["text"] == "slower beyond timing spread"
    assert not same_session(_summary(first), _summary(second))


def test_side_by_side_rounds_share_the_slow_period_and_the_verdict_holds(clock):
    # The slow period starts halfway through the session: without interleaving the
    # variant would take all of it.
    clock.slow_from = 1.0 + 1.0 + 20 * COST_S  # after both warm-ups and the first half
    records = _measure({"reference": ClockedModel(), "variant": ClockedModel()}, rounds=5)
    reference, variant = _summary(records["reference"]), _summary(records["variant"])
    assert same_session(reference, variant)
    delta = variant.median_ms - reference.median_ms
    verdict = timing_verdict(delta, max(reference.iqr_ms, variant.iqr_ms))
    assert verdict["text"] == "within timing spread", (reference, variant)


def test_the_ablation_table_prints_no_verdict_across_sessions(clock):
    first = _summary(_measure({"a": ClockedModel()})["a"])
    second = _summary(_measure({"b": ClockedModel()})["b"])

    class Side:
        def __init__(self, summary):
            self.latency = {first.key: summary}

    assert first.key == second.key, "same settings: only the sessions differ"
    assert latency_delta(Side(first), Side(second), first.key)["verdict"] == NOT_SIDE_BY_SIDE
