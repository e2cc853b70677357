"""Every comparison the report and ``liteseg-bench claims`` make, through one rule.

Accuracy: seed-paired mIoU differences of two variants' finished runs, with the test-set
term from their per-image confusion matrices (:func:`bench.stats.paired_effect`,
:func:`bench.stats.image_bootstrap_se`). Latency: per-round medians of one side-by-side
session, paired by round, as log ratios. A claim's verdict is the effect's verdict in the
claimed direction; what would resolve an inconclusive one is the pairs whose minimum
detectable effect reaches the paper's effect (or, where the paper gives none, the
measured one). A claim ``run --resolve-claims`` extended is on its second look and is
judged at :data:`bench.stats.RESOLVE_CONFIDENCE`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench import stats
from bench.claims import UNITS, Claim, ClaimMetric, ClaimTest, claims_for
from bench.config import SuiteSpec
from bench.results import Metrics, RunRecord
from reports.summary import LatencyKey, VariantSummary, reported_metrics


@dataclass(frozen=True)
class Comparison:
    """``first`` against ``second`` on one metric: the paired effect (first - second), or
    why there is none (``missing``)."""

    metric: ClaimMetric
    effect: stats.PairedEffect | None
    missing: str | None = None
    latency_key: LatencyKey | None = None

    @property
    def unit(self) -> str:
        """``pp`` for mIoU, ``%`` for latency."""
        return UNITS[self.metric]

    @property
    def pair_unit(self) -> str:
        """What one pair is: a seed pair, or an interleaved timing round."""
        return "round" if self.metric == "latency" else "seed pair"

    @property
    def pairs_label(self) -> str:
        """``2 seed pairs``, ``1 seed pair``, ``5 rounds``: what the effect was paired over."""
        n = 0 if self.effect is None else self.effect.n
        return f"{n} {self.pair_unit}" + ("" if n == 1 else "s")

    def to_unit(self, value: float | None) -> float | None:
        """A value of the effect's scale in the comparison's unit (latency: log -> %)."""
        if value is None or self.metric != "latency":
            return value
        return stats.as_percent(value)

    def in_unit(self, value: float) -> float:
        """A value in the comparison's unit on the effect's scale (latency: % -> log)."""
        return math.log1p(value / 100.0) if self.metric == "latency" else value


MetricsPair = tuple[Metrics, Metrics]


def _seed_pairs(first: VariantSummary, second: VariantSummary) -> list[MetricsPair]:
    """The reported metrics of both sides for every seed both finished."""
    by_seed = {r.seed: reported_metrics(r, second.spec.checkpoint) for r in second.records}
    return [
        (reported_metrics(record, first.spec.checkpoint), by_seed[record.seed])
        for record in first.records
        if record.seed in by_seed
    ]


def _image_se(pairs: Sequence[MetricsPair]) -> float | None:
    """The bootstrap-over-images term, when every run kept its per-image matrices."""
    if any(a.per_image_confusion is None or b.per_image_confusion is None for a, b in pairs):
        return None
    arms = np.asarray(
        [[a.per_image_confusion for a, _ in pairs], [b.per_image_confusion for _, b in pairs]],
        dtype=np.int64,
    )
    if arms.ndim != 4:  # the runs scored different numbers of images
        return None
    classes = math.isqrt(arms.shape[-1])
    arms = arms.reshape(*arms.shape[:3], classes, classes)
    return stats.image_bootstrap_se(arms[0], arms[1])


def _miou_effect(
    pairs: Sequence[MetricsPair], none_paired: str, confidence: float = stats.CONFIDENCE
) -> Comparison:
    """mIoU(a) - mIoU(b) in percentage points over ``pairs``."""
    if not pairs:
        return Comparison("miou", None, none_paired)
    differences = [100.0 * (a.miou - b.miou) for a, b in pairs]
    if not all(math.isfinite(value) for value in differences):
        return Comparison("miou", None, "an mIoU is not finite")
    return Comparison("miou", stats.paired_effect(differences, _image_se(pairs), confidence))


def miou_comparison(
    first: VariantSummary, second: VariantSummary, confidence: float = stats.CONFIDENCE
) -> Comparison:
    """mIoU(first) - mIoU(second) in percentage points over the seeds both finished."""
    pairs = _seed_pairs(first, second)
    return _miou_effect(pairs, "no seed finished on both sides", confidence)


def common_latency_key(
    first: VariantSummary,
    second: VariantSummary,
    preferred: LatencyKey | None = None,
    *,
    side_by_side: bool = True,
) -> LatencyKey | None:
    """A latency setting both were timed under (``preferred`` when it qualifies); with
    ``side_by_side``, only one timed in a single interleaved session with per-round medians,
    the only kind a paired comparison may use."""

    def paired(key: LatencyKey) -> bool:
        a, b = first.latency[key], second.latency[key]
        return (
            len(a.sessions) == 1
            and a.sessions == b.sessions
            and len(a.round_medians_ms) == len(b.round_medians_ms) > 0
        )

    common = [
        key for key in first.latency if key in second.latency and (not side_by_side or paired(key))
    ]
    if preferred in common:
        return preferred
    return common[0] if common else None


def latency_comparison(
    slower: VariantSummary, faster: VariantSummary, preferred: LatencyKey | None = None
) -> Comparison:
    """How much longer ``slower`` takes than ``faster`` (log ratio per round, shown in %)."""
    key = common_latency_key(slower, faster, preferred)
    if key is None:
        return Comparison("latency", None, "not timed side by side (liteseg-bench run --reprofile)")
    ratios = stats.log_ratios(
        slower.latency[key].round_medians_ms, faster.latency[key].round_medians_ms
    )
    return Comparison("latency", stats.paired_effect(ratios), latency_key=key)


@dataclass(frozen=True)
class ClaimResult:
    """A claim, the test that measured it in one suite, and what it found.

    ``extended``: ``run --resolve-claims`` added seed pairs to it, so this is its second
    look and it is judged at :data:`bench.stats.RESOLVE_CONFIDENCE`.
    """

    claim: Claim
    test: ClaimTest
    comparison: Comparison
    extended: bool = False

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
    added_seeds: Mapping[str, Sequence[int]] | None = None,
) -> list[ClaimResult]:
    """Every claim tested in ``suite``, with its paired comparison.

    ``added_seeds`` (variant -> seeds ``run --resolve-claims`` added) marks the accuracy
    claims on their second look, judged at :data:`bench.stats.RESOLVE_CONFIDENCE`.
    """
    added = added_seeds or {}
    results = []
    for claim, test in claims_for(suite, claims):
        better, than = summaries[test.better], summaries[test.than]
        if claim.metric == "miou":
            extended = bool(set(added.get(test.better, ())) & set(added.get(test.than, ())))
            confidence = stats.RESOLVE_CONFIDENCE if extended else stats.CONFIDENCE
            comparison = miou_comparison(better, than, confidence)
            results.append(ClaimResult(claim, test, comparison, extended))
        else:
            comparison = latency_comparison(than, better, preferred_latency)
            results.append(ClaimResult(claim, test, comparison))
    return results


def deployed_pairs(records: Sequence[RunRecord], runtime: str, precision: str) -> list[MetricsPair]:
    """(deployed, fp32 PyTorch) metrics of every run that scored ``runtime``/``precision``."""
    return [
        (deployed.metrics, record.metrics)
        for record in records
        if record.metrics is not None
        for deployed in record.deployed
        if (deployed.runtime, deployed.precision) == (runtime, precision)
    ]


def accuracy_cost(records: Sequence[RunRecord], runtime: str, precision: str) -> Comparison:
    """mIoU of a deployment minus fp32 PyTorch, paired by run (same trained weights)."""
    return _miou_effect(deployed_pairs(records, runtime, precision), "not evaluated")


def seeds_to_add(
    results: Sequence[ClaimResult], summaries: Mapping[str, VariantSummary], max_seeds: int
) -> dict[str, set[int]]:
    """The seed pairs ``run --resolve-claims`` adds, at most once per claim.

    An accuracy claim on its first look that is inconclusive at
    :data:`bench.stats.RESOLVE_CONFIDENCE` gets, in one step, the pairs its target effect
    needs (:func:`bench.stats.resolution_pairs`), when that is at most ``max_seeds``; its
    next look is its last. The new seeds are the smallest not yet planned for both sides.
    Latency claims get none: more seeds do not add timing rounds (``run --reprofile``
    times again).
    """
    added: dict[str, set[int]] = {}
    for result in results:
        effect, target = result.comparison.effect, result.target
        if result.claim.metric != "miou" or result.extended or effect is None or target is None:
            continue
        wanted = stats.resolution_pairs(effect, abs(target), max_seeds)
        if wanted is None:
            continue
        better, than = summaries[result.test.better], summaries[result.test.than]
        common = {e.seed for e in better.entries} & {e.seed for e in than.entries}
        candidates = (seed for seed in range(wanted + len(common)) if seed not in common)
        new = {next(candidates) for _ in range(wanted - len(common))}
        if not new:  # the pairs it needs are planned already (unfinished or failed)
            continue
        for name in (result.test.better, result.test.than):
            added.setdefault(name, set()).update(new)
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
                "confidence": None if effect is None else effect.confidence,
                "mde": None if effect is None else comparison.to_unit(effect.mde),
                "test_set_term": None if effect is None else effect.images_included,
                "verdict": result.verdict,
                "extended": result.extended,
                "target": result.target,
                "pairs_needed": result.pairs_needed,
                "missing": comparison.missing,
            }
        )
    return records
