"""Comparisons from run records: seed pairing, the test-set term, the int8 accuracy cost,
and which seed pairs --resolve-claims plans."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench import stats
from bench.claims import Claim, ClaimTest
from bench.config import VariantSpec
from bench.evaluate import metrics_from_confusion
from bench.results import DeployedAccuracy, RunRecord
from reports.comparisons import (
    ClaimResult,
    Comparison,
    accuracy_cost,
    miou_comparison,
    seeds_to_add,
)
from reports.summary import ReportEntry, summarize_variant

CLASSES = ["a", "b", "c"]


def _confusions(rng: np.random.Generator, accuracy: float, images: int = 30) -> np.ndarray:
    """Per-image 3x3 matrices: each class right with probability ``accuracy``."""
    pixels = rng.integers(50, 200, size=(images, 3))
    correct = rng.binomial(pixels, accuracy)
    matrices = np.zeros((images, 3, 3), dtype=np.int64)
    for c in range(3):
        matrices[:, c, c] = correct[:, c]
        matrices[:, c, (c + 1) % 3] = pixels[:, c] - correct[:, c]
    return matrices


def _metrics(per_image: np.ndarray):
    metrics = metrics_from_confusion(per_image.sum(axis=0), CLASSES, len(per_image))
    return metrics.model_copy(
        update={"per_image_confusion": [m.flatten().tolist() for m in per_image]}
    )


def _record(name: str, seed: int, per_image: np.ndarray, deployed=None) -> RunRecord:
    return RunRecord(
        suite="t", variant=name, group="main", reference=None, model="pp_liteseg_t",
        overrides={}, seed=seed, run_id=f"{name}{seed}", config={}, status="done",
        metrics=_metrics(per_image), deployed=deployed or [],
    )  # fmt: skip


def _summary(name: str, records: list[RunRecord]):
    spec = VariantSpec(name=name, model="pp_liteseg_t")
    entries = [ReportEntry(r.run_id, name, r.seed, "done", r) for r in records]
    return summarize_variant(spec, entries)


@pytest.fixture(scope="module")
def arms():
    rng = np.random.default_rng(0)
    better = [_record("better", seed, _confusions(rng, 0.7 + 0.01 * seed)) for seed in range(3)]
    worse = [_record("worse", seed, _confusions(rng, 0.6)) for seed in (0, 1, 2, 5)]
    return _summary("better", better), _summary("worse", worse)


def test_miou_comparison_pairs_by_seed_and_adds_the_test_set_term(arms):
    better, worse = arms
    comparison = miou_comparison(better, worse)
    effect = comparison.effect
    assert effect.n == 3, "seed 5 has no partner"
    ours = [100 * r.metrics.miou for r in better.records]
    theirs = [100 * r.metrics.miou for r in worse.records if r.seed < 3]
    seeds_only = scipy_stats.ttest_rel(ours, theirs).confidence_interval(0.95)
    assert effect.mean == pytest.approx(np.mean(ours) - np.mean(theirs))
    assert effect.images_included and effect.image_se > 0
    assert effect.low < seeds_only.low and effect.high > seeds_only.high
    assert comparison.pairs_label == "3 seed pairs"


def test_without_per_image_matrices_the_interval_is_the_seeds_alone(arms):
    better, worse = arms
    stripped = [
        r.model_copy(update={"metrics": r.metrics.model_copy(update={"per_image_confusion": None})})
        for r in better.records
    ]
    effect = miou_comparison(_summary("better", stripped), worse).effect
    assert not effect.images_included and effect.image_se == 0


def test_accuracy_cost_pairs_each_run_with_its_own_fp32_metrics(arms):
    better, _ = arms
    rng = np.random.default_rng(1)
    records = []
    for record in better.records:
        int8 = DeployedAccuracy(
            runtime="openvino", runtime_version="1", precision="int8",
            metrics=_metrics(_confusions(rng, 0.5)),
        )  # fmt: skip
        records.append(record.model_copy(update={"deployed": [int8]}))
    cost = accuracy_cost(records, "openvino", "int8")
    expected = [100 * (r.deployed[0].metrics.miou - r.metrics.miou) for r in records]
    assert cost.effect.differences == pytest.approx(expected)
    assert cost.effect.images_included
    assert accuracy_cost(records, "onnxruntime", "int8").missing == "not evaluated"


def _claim(metric: str = "miou", paper_effect: float | None = 1.0) -> Claim:
    return Claim(
        id="t.claim", paper="t", source="t", statement="t", metric=metric,
        paper_effect=paper_effect, paper_setting="t",
        tests=(ClaimTest(suite="t", better="a", than="b"),),
    )  # fmt: skip


def _planned(*seeds: int) -> SimpleNamespace:
    """What seeds_to_add reads of a variant: the seeds of its planned runs."""
    return SimpleNamespace(entries=[SimpleNamespace(seed=seed) for seed in seeds])


def _result(differences, extended=False, **claim) -> ClaimResult:
    metric = claim.get("metric", "miou")
    comparison = Comparison(metric, stats.paired_effect(differences))
    return ClaimResult(_claim(**claim), _claim(**claim).tests[0], comparison, extended)


def test_an_inconclusive_claim_gets_the_pairs_its_target_needs_in_one_step():
    summaries = {"a": _planned(0, 1), "b": _planned(0, 1)}
    result = _result([0.2, -0.4])
    wanted = stats.resolution_pairs(result.comparison.effect, 1.0, 50)
    added = seeds_to_add([result], summaries, max_seeds=50)
    assert added == {"a": set(range(2, wanted)), "b": set(range(2, wanted))}


def test_a_single_pair_gets_a_second_reusing_a_seed_one_side_planned():
    summaries = {"a": _planned(0, 1), "b": _planned(0, 4)}  # common: seed 0 only
    added = seeds_to_add([_result([0.3])], summaries, max_seeds=5)
    assert added == {"a": {1}, "b": {1}}  # a's run of seed 1 gets its partner


@pytest.mark.parametrize(
    ("result", "max_seeds"),
    [
        (_result([0.2, -0.4], extended=True), 50),  # its second look was its last
        (_result([5.0, 5.1, 4.9]), 50),  # decided
        (_result([0.2, -0.4]), 3),  # needs more than max_seeds
        (_result([0.2, -0.4], metric="latency"), 50),  # seeds add no timing rounds
        (_result([0.2, -0.4], paper_effect=None), 50),  # target: the measured -0.1, far off
    ],
)
def test_claims_that_more_seeds_cannot_or_may_not_resolve_get_none(result, max_seeds):
    summaries = {"a": _planned(0, 1), "b": _planned(0, 1)}
    assert seeds_to_add([result], summaries, max_seeds) == {}
