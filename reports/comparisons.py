"""Every comparison the report and ``liteseg-bench claims`` make, through one rule.

Accuracy: seed-paired mIoU differences of two variants' finished runs, with the test-set
term from their per-image confusion matrices (:func:`bench.stats.paired_effect`,
:func:`bench.stats.image_bootstrap_se`). Latency: per-round medians of one side-by-side
session, paired by round, as log ratios. A claim's verdict is the effect's verdict in the
claimed direction; what would resolve an inconclusive one is the pairs whose minimum
detectable effect reaches the paper's effect (or, where the paper gives none, the
measured one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench import stats
from bench.claims import Claim, ClaimTest, claims_for
from bench.config import SuiteSpec
from bench.results import Metrics, RunRecord
from reports.summary import LatencyKey, VariantSummary, reported_metrics


@dataclass(frozen=True)
class Comparison:
    """``first`` against ``second`` on one metric: the paired effect (first - second) in
    ``unit``, or why there is none (``missing``)."""

    metric: str
    unit: str
    effect: stats.PairedEffect | None
    missing: str | None = None
    latency_key: LatencyKey | None = None

    @property
    def pairs_label(self) -> str:
        """``2 seed pairs``, ``1 seed pair``, ``5 rounds``: what the effect was paired over."""
        n = 0 if self.effect is None else self.effect.n
        unit = "round" if self.metric == "latency" else "seed pair"
        return f"{n} {unit}" + ("" if n == 1 else "s")

    def to_unit(self, value: float | None) -> float | None:
        """A value of the effect's scale in the comparison's unit (latency: log -> %)."""
        if value is None or self.metric != "latency":
            return value
        return stats.as_percent(value)

    def in_unit(self, value: float) -> float:
        """A value in the comparison's unit on the effect's scale (latency: % -> log)."""
        return math.log1p(value / 100.0) if self.metric == "latency" else value


def _paired_metrics(
    first: VariantSummary, second: VariantSummary
) -> list[tuple[int, Metrics, Metrics]]:
    by_seed = {r.seed: reported_metrics(r, second.spec.checkpoint) for r in second.records}
    return [
        (record.seed, reported_metrics(record, first.spec.checkpoint), by_seed[record.seed])
        for record in first.records
        if record.seed in by_seed
    ]


def _image_se(pairs: Sequence[tuple[int, Metrics, Metrics]]) -> float | None:
    """The bootstrap-over-images term, when every run kept its per-image matrices."""
    matrices = [(a.per_image_confusion, b.per_image_confusion) for _, a, b in pairs]
    if any(a is None or b is None for a, b in matrices):
        return None
    first = np.asarray([a for a, _ in matrices], dtype=np.int64)
    second = np.asarray([b for _, b in matrices], dtype=np.int64)
    if first.shape != second.shape:
        return None
    classes = math.isqrt(first.shape[-1])
    first = first.reshape(*first.shape[:2], classes, classes)
    second = second.reshape(*second.shape[:2], classes, classes)
    return stats.image_bootstrap_se(first, second)


def miou_comparison(first: VariantSummary, second: VariantSummary) -> Comparison:
    """mIoU(first) - mIoU(second) in percentage points over the seeds both finished."""
    pairs = _paired_metrics(first, second)
    if not pairs:
        return Comparison("miou", "pp", None, "no seed finished on both sides")
    differences = [100.0 * (a.miou - b.miou) for _, a, b in pairs]
    if not all(math.isfinite(value) for value in differences):
        return Comparison("miou", "pp", None, "an mIoU is not finite")
    return Comparison("miou", "pp", stats.paired_effect(differences, _image_se(pairs)))


def common_latency_key(
    first: VariantSummary, second: VariantSummary, preferred: LatencyKey | None = None
) -> LatencyKey | None:
    """A latency setting both were timed under in one side-by-side session with per-round
    medians (``preferred`` when it qualifies)."""

    def paired(key: LatencyKey) -> bool:
        a, b = first.latency[key], second.latency[key]
        return (
            len(a.sessions) == 1
            and a.sessions == b.sessions
            and len(a.round_medians_ms) == len(b.round_medians_ms) > 0
        )

    common = [key for key in first.latency if key in second.latency and paired(key)]
    if preferred in common:
        return preferred
    return common[0] if common else None


def latency_comparison(
    slower: VariantSummary, faster: VariantSummary, preferred: LatencyKey | None = None
) -> Comparison:
    """How much longer ``slower`` takes than ``faster`` (log ratio per round, shown in %)."""
    key = common_latency_key(slower, faster, preferred)
    if key is None:
        return Comparison(
            "latency", "%", None, "not timed side by side (liteseg-bench run --reprofile)"
        )
    ratios = stats.log_ratios(
        slower.latency[key].round_medians_ms, faster.latency[key].round_medians_ms
    )
    return Comparison("latency", "%", stats.paired_effect(ratios), latency_key=key)


@dataclass(frozen=True)
class ClaimResult:
    """A claim, the test that measured it in one suite, and what it found."""

    claim: Claim
    test: ClaimTest
    comparison: Comparison

    @property
    def verdict(self) -> str:
        effect = self.comparison.effect
        return "inconclusive" if effect is None else effect.verdict("higher")

    @property
    def target(self) -> float | None:
        """The effect an inconclusive claim should resolve, in the claim's unit: the paper's,
        or the measured one where the paper gives none."""
        if self.claim.paper_effect is not None:
            return self.claim.paper_effect
        effect = self.comparison.effect
        return None if effect is None else self.comparison.to_unit(effect.mean)

    @property
    def pairs_needed(self) -> int | None:
        """Pairs whose minimum detectable effect reaches :attr:`target` (None: out of reach
        of more pairs, or unknown)."""
        effect, target = self.comparison.effect, self.target
        if effect is None or target is None or target == 0:
            return None
        return effect.pairs_needed(self.comparison.in_unit(abs(target)))


def evaluate_claims(
    suite: SuiteSpec,
    summaries: Mapping[str, VariantSummary],
    claims: Sequence[Claim],
    preferred_latency: LatencyKey | None = None,
) -> list[ClaimResult]:
    """Every claim tested in ``suite``, with its paired comparison."""
    results = []
    for claim, test in claims_for(suite, claims):
        better, than = summaries[test.better], summaries[test.than]
        if claim.metric == "miou":
            comparison = miou_comparison(better, than)
        else:
            comparison = latency_comparison(than, better, preferred_latency)
        results.append(ClaimResult(claim, test, comparison))
    return results


def accuracy_cost(records: Sequence[RunRecord], runtime: str, precision: str) -> Comparison:
    """mIoU of a deployment minus fp32 PyTorch, paired by run (same trained weights)."""
    pairs = [
        (record.metrics, deployed.metrics)
        for record in records
        if record.metrics is not None
        for deployed in record.deployed
        if (deployed.runtime, deployed.precision) == (runtime, precision)
    ]
    if not pairs:
        return Comparison("miou", "pp", None, "not evaluated")
    differences = [100.0 * (deployed.miou - fp32.miou) for fp32, deployed in pairs]
    indexed = [(index, deployed, fp32) for index, (fp32, deployed) in enumerate(pairs)]
    return Comparison("miou", "pp", stats.paired_effect(differences, _image_se(indexed)))


def seeds_to_add(
    results: Sequence[ClaimResult], summaries: Mapping[str, VariantSummary], max_seeds: int
) -> dict[str, set[int]]:
    """One more seed pair for each accuracy claim still inconclusive whose target effect
    ``max_seeds`` pairs could resolve (or that has a single pair, hence no interval yet).

    The new pair's seed is the smallest one not yet planned for both sides; a claim whose
    sides already plan ``max_seeds`` common seeds gets none. Latency claims get none: more
    seeds do not add timing rounds (``run --reprofile`` times again).
    """
    added: dict[str, set[int]] = {}
    for result in results:
        effect = result.comparison.effect
        if result.claim.metric != "miou" or effect is None or result.verdict != "inconclusive":
            continue
        resolvable = effect.n < stats.MIN_PAIRS or (
            result.pairs_needed is not None and result.pairs_needed <= max_seeds
        )
        better, than = summaries[result.test.better], summaries[result.test.than]
        common = {e.seed for e in better.entries} & {e.seed for e in than.entries}
        if not resolvable or len(common) >= max_seeds:
            continue
        seed = next(candidate for candidate in range(len(common) + 1) if candidate not in common)
        for name in (result.test.better, result.test.than):
            added.setdefault(name, set()).add(seed)
    return added


def claim_records(results: Sequence[ClaimResult]) -> list[dict[str, object]]:
    """The verdicts as plain JSON-ready data (``liteseg-bench claims --json``)."""
    records = []
    for result in results:
        comparison, effect = result.comparison, result.comparison.effect
        p_better = None if effect is None else effect.p_better
        records.append(
            {
                "id": result.claim.id,
                "statement": result.claim.statement,
                "paper": result.claim.paper,
                "source": result.claim.source,
                "metric": result.claim.metric,
                "unit": comparison.unit,
                "better": result.test.better,
                "than": result.test.than,
                "paper_effect": result.claim.paper_effect,
                "paper_setting": result.claim.paper_setting,
                "pairs": 0 if effect is None else effect.n,
                "effect": None if effect is None else comparison.to_unit(effect.mean),
                "ci_low": None if effect is None else comparison.to_unit(effect.low),
                "ci_high": None if effect is None else comparison.to_unit(effect.high),
                "p_better": None if p_better is None else list(p_better),
                "mde": None if effect is None else comparison.to_unit(effect.mde),
                "test_set_term": None if effect is None else effect.images_included,
                "verdict": result.verdict,
                "target": result.target,
                "pairs_needed": result.pairs_needed,
                "missing": comparison.missing,
            }
        )
    return records
