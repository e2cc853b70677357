"""Paired comparisons that stay valid at the sample sizes a CPU suite affords (2-5 seeds).

One rule serves every comparison the report and ``liteseg-bench claims`` make:

- **Design.** Both arms train with the same seeds. A seed fixes the data order and every
  sample's augmentation (:class:`bench.train.ResumableBatchSampler`,
  :func:`bench.train.sample_seed`) whatever the model, so the seed-paired difference
  ``d_i = A_i - B_i`` cancels what the two runs share.
- **Effect and interval.** The mean of ``d`` with a 95 % t-interval. Its squared standard
  error has two parts: the seeds, ``s_d^2 / n`` with ``n - 1`` degrees of freedom, and the
  test set, ``se_images^2``: a bootstrap over validation images of the same mean
  difference, resampling each image's confusion matrix and recomputing mIoU (never
  averaging per-image IoUs), because a fixed val split of ~100 images has sampling noise
  of its own that no number of seeds removes. The degrees of freedom stay those of the
  seeds, ``n - 1``: conservative, and never narrower than the seed-only interval (a
  Welch-Satterthwaite count would treat the well-estimated image term as extra degrees
  of freedom and could narrow the interval below the seeds' own).
- **Verdict.** ``supports`` when the interval excludes 0 in the claimed direction,
  ``contradicts`` when it excludes 0 in the other, ``inconclusive`` otherwise, together
  with the minimum detectable effect and the pairs that would resolve the claimed one.
- **P(A > B)** (Bouthillier et al. 2021): the probability that A beats B on a new seed
  pair, ``Phi(mu / sigma)`` under normal seed-to-seed variation, with an exact interval
  from inverting the noncentral t distribution of the t statistic.
- **Power.** The minimum detectable effect (MDE) is the smallest true effect a
  two-sided test at this standard error and these degrees of freedom detects with 80 %
  probability (noncentral t); the pairs needed are the smallest ``n`` whose MDE, with the
  same per-seed spread and image term, reaches a target effect.
- **Latency** uses the same functions on the per-round medians of one interleaved timing
  session (rounds are the pairs), on a log scale so the effect is a ratio.
- **More seeds** (``run --resolve-claims``): a claim inconclusive at the suite's seeds gets,
  in one step, the pairs its target effect needs, and is judged once more. Two looks at
  one claim would double its error rate, so both are made at 97.5 % (Bonferroni); a claim
  is never extended twice.

``tests/test_stats.py`` checks the rule by simulation: identical arms give a decisive
verdict at most 5 % of the time with 2-5 pairs, and through the two looks of
``--resolve-claims``; an effect of twice the reported MDE is detected at least 80 % of
the time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import integrate, optimize, stats

from bench.evaluate import mean_iou

CONFIDENCE = 0.95
# `run --resolve-claims` looks at a claim twice: at the suite's seeds, then once more with
# the pairs its target effect needs. Bonferroni splits the 5 % between the two looks, so
# both are judged at 97.5 % (tests/test_stats.py simulates the two-look procedure).
RESOLVE_CONFIDENCE = 1 - (1 - CONFIDENCE) / 2
POWER = 0.8
MIN_PAIRS = 2
# Beyond this many pairs a target effect counts as out of reach of more seeds.
MAX_PAIRS = 1000
# Degrees of freedom above this are treated as the normal limit.
LARGE_DF = 1e6
IMAGE_RESAMPLES = 1000

Verdict = Literal["supports", "contradicts", "inconclusive"]
Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class PairedEffect:
    """The mean paired difference ``A - B`` with its 95 % interval and power.

    Attributes:
        differences: one difference per pair (seed or timing round).
        mean: mean difference, in the unit of the differences.
        seed_sd: sample standard deviation of the differences (None with one pair).
        image_se: standard error the test set adds (bootstrap over images); 0 when not
            estimated, see ``images_included``.
        se: combined standard error of ``mean`` (None with one pair).
        df: degrees of freedom of the interval, ``n - 1`` (None with one pair).
        low, high: the 95 % interval (None with one pair).
        confidence: the interval's coverage.
        images_included: whether the test-set term was estimated.
    """

    differences: tuple[float, ...]
    mean: float
    seed_sd: float | None
    image_se: float
    se: float | None
    df: int | None
    low: float | None
    high: float | None
    confidence: float = CONFIDENCE
    images_included: bool = False

    @property
    def n(self) -> int:
        """Pairs the differences come from."""
        return len(self.differences)

    @functools.cached_property
    def mde(self) -> float | None:
        """Minimum detectable effect at 80 % power at this ``n`` (None with one pair)."""
        if self.se is None:
            return None
        return minimum_detectable_effect(self.se, self.df, confidence=self.confidence)

    @functools.cached_property
    def p_better(self) -> tuple[float, float, float] | None:
        """P(A > B) on a new pair with its interval (None with one pair)."""
        return probability_of_outperforming(self.differences, self.confidence)

    @property
    def decided(self) -> bool:
        """Whether the interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def verdict(self, direction: Direction = "higher") -> Verdict:
        """``supports`` if the interval excludes 0 on the side of ``direction`` (A higher or
        lower than B), ``contradicts`` if on the other side, else ``inconclusive``."""
        if not self.decided:
            return "inconclusive"
        above = self.low > 0
        return "supports" if above == (direction == "higher") else "contradicts"

    def pairs_needed(self, target: float, max_pairs: int = MAX_PAIRS) -> int | None:
        """Pairs whose MDE reaches ``|target|`` with this seed spread and image term; None
        when no number up to ``max_pairs`` does (or the spread is unknown)."""
        if self.seed_sd is None:
            return None
        return pairs_needed(
            target, self.seed_sd, self.image_se, max_pairs=max_pairs, confidence=self.confidence
        )


def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided t quantile: a ``confidence`` interval is ``mean ± t_critical * se``."""
    return float(stats.t.ppf(1 - (1 - confidence) / 2, df))


def noncentral_t_cdf(x: float, df: float, noncentrality: float) -> float:
    """P(T <= x) for ``T ~ nct(df, noncentrality)``: ``scipy.stats.nct``, or where that
    returns NaN (1 df with a large noncentrality) the integral over ``S = chi_df / sqrt(df)``
    of ``Phi(x S - nc)``."""
    value = float(stats.nct.cdf(x, df, noncentrality))
    if math.isfinite(value):
        return value
    chi = stats.chi(df)

    def integrand(root: float) -> float:
        return stats.norm.cdf(x * root / math.sqrt(df) - noncentrality) * chi.pdf(root)

    value, _ = integrate.quad(integrand, 0.0, math.inf, limit=200)
    return float(min(max(value, 0.0), 1.0))


def minimum_detectable_effect(
    se: float, df: float, *, confidence: float = CONFIDENCE, power: float = POWER
) -> float:
    """Smallest true effect a two-sided t-test at ``se`` and ``df`` detects with ``power``.

    Solves ``P(|T'| > t_crit) = power`` for the noncentrality of ``T' ~ nct(df, delta)``
    and returns ``delta * se``.
    """
    if se <= 0:
        return 0.0
    if df > LARGE_DF:
        critical = stats.norm.ppf(1 - (1 - confidence) / 2)
        return float((critical + stats.norm.ppf(power)) * se)
    critical = t_critical(df, confidence)

    def shortfall(delta: float) -> float:
        rejected = 1 - noncentral_t_cdf(critical, df, delta)
        return rejected + noncentral_t_cdf(-critical, df, delta) - power

    upper = 2 * (critical + stats.norm.ppf(power)) + 10
    while shortfall(upper) < 0:
        upper *= 2
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-6) * se)


def pairs_needed(
    target: float,
    seed_sd: float,
    image_se: float = 0.0,
    *,
    max_pairs: int = MAX_PAIRS,
    confidence: float = CONFIDENCE,
) -> int | None:
    """Smallest number of pairs (>= 2) whose MDE is at most ``|target|``, given the spread of
    one pair's difference and the test set's fixed term; None if more seeds cannot get
    there (the image term alone is too large, or more than ``max_pairs`` would be needed)."""
    target = abs(target)
    if (
        target == 0
        or minimum_detectable_effect(image_se, math.inf, confidence=confidence) >= target
    ):
        return None

    def reached(n: int) -> bool:
        se = math.sqrt(seed_sd**2 / n + image_se**2)
        return minimum_detectable_effect(se, n - 1, confidence=confidence) <= target

    if not reached(max_pairs):
        return None
    low, high = MIN_PAIRS, max_pairs
    while low < high:
        middle = (low + high) // 2
        if reached(middle):
            high = middle
        else:
            low = middle + 1
    return low


def probability_of_outperforming(
    differences: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float] | None:
    """P(A > B) = Phi(mu / sigma) on a new pair, and its interval.

    The t statistic ``mean / (sd / sqrt(n))`` follows a noncentral t with ``n - 1`` degrees
    of freedom and noncentrality ``sqrt(n) * mu / sigma``; inverting it gives an exact
    interval for ``mu / sigma`` under normality, and Phi maps it to probabilities. None
    with fewer than 2 pairs; with no spread at all the estimate is 0, 0.5 or 1 exactly.
    """
    values = np.asarray(differences, dtype=np.float64)
    n = values.size
    if n < MIN_PAIRS:
        return None
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd == 0:
        point = 0.5 if mean == 0 else float(mean > 0)
        return point, point, point
    df = n - 1
    observed = mean / (sd / math.sqrt(n))
    alpha = 1 - confidence

    def noncentrality(probability: float) -> float:
        # nct.cdf(observed; nc) falls as nc grows: find nc where it equals `probability`.
        def gap(nc: float) -> float:
            return noncentral_t_cdf(observed, df, nc) - probability

        low, high = observed - 10.0, observed + 10.0
        for _ in range(60):
            if gap(low) > 0 > gap(high):
                return optimize.brentq(gap, low, high, xtol=1e-8)
            low, high = low - (high - low), high + (high - low)
        return -math.inf if gap(low) <= 0 else math.inf

    delta_low = noncentrality(1 - alpha / 2) / math.sqrt(n)
    delta_high = noncentrality(alpha / 2) / math.sqrt(n)
    return (
        float(stats.norm.cdf(mean / sd)),
        float(stats.norm.cdf(delta_low)),
        float(stats.norm.cdf(delta_high)),
    )


def paired_effect(
    differences: Sequence[float], image_se: float | None = None, confidence: float = CONFIDENCE
) -> PairedEffect:
    """The rule of this module applied to seed-paired differences ``A_i - B_i``.

    Args:
        differences: one difference per pair (seed or timing round).
        image_se: standard error the test set adds to the mean difference (see
            :func:`image_bootstrap_se`); None when it was not estimated.
        confidence: coverage of the interval.
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no paired differences")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"paired differences must be finite, got {values.tolist()}")
    n = int(values.size)
    image_term = 0.0 if image_se is None else float(image_se)
    seed_sd = se = df = low = high = None
    if n >= MIN_PAIRS:
        seed_sd = float(values.std(ddof=1))
        se = math.sqrt(seed_sd**2 / n + image_term**2)
        df = n - 1
        half = t_critical(df, confidence) * se
        low, high = float(values.mean()) - half, float(values.mean()) + half
    return PairedEffect(
        differences=tuple(float(value) for value in values),
        mean=float(values.mean()),
        seed_sd=seed_sd,
        image_se=image_term,
        se=se,
        df=df,
        low=low,
        high=high,
        confidence=confidence,
        images_included=image_se is not None,
    )


def image_bootstrap_se(
    first: np.ndarray,
    second: np.ndarray,
    *,
    scale: float = 100.0,
    resamples: int = IMAGE_RESAMPLES,
    seed: int = 0,
) -> float:
    """Standard error over validation images of the mean paired mIoU difference.

    Args:
        first, second: ``(n, images, C, C)`` per-image confusion matrices of the two arms,
            pair ``i`` of both trained with the same seed and scored on the same images.
        scale: unit of the result (100 = percentage points).
        resamples: bootstrap resamples of the images (one draw serves every run, so the
            arms stay paired by image too).
        seed: seed of the resampling.

    mIoU is recomputed from the summed matrices of each resample (``scipy.stats.bootstrap``
    with that statistic), never averaged over per-image IoUs.
    """
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape or first.ndim != 4:
        raise ValueError(f"arms must be (pairs, images, C, C) alike: {first.shape}, {second.shape}")
    images = first.shape[1]
    stacked = np.stack([first, second]).reshape(2, first.shape[0], images, -1)
    classes = first.shape[-1]

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        indices = np.moveaxis(np.asarray(indices), axis, -1)
        weights = (indices[..., :, None] == np.arange(images)).sum(axis=-2)
        summed = np.einsum("...i,abik->...abk", weights, stacked)
        summed = summed.reshape(*summed.shape[:-1], classes, classes)
        miou = mean_iou(summed)
        return scale * (miou[..., 0, :] - miou[..., 1, :]).mean(axis=-1)

    result = stats.bootstrap(
        (np.arange(images),),
        statistic,
        n_resamples=resamples,
        vectorized=True,
        batch=100,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.standard_error)


def resolution_pairs(effect: PairedEffect, target: float, max_pairs: int) -> int | None:
    """How many pairs in all a comparison seen for the first time should get so that its
    second and last look (both at :data:`RESOLVE_CONFIDENCE`) can detect ``target``; None
    when it needs no more (decided at the first look) or cannot get there within
    ``max_pairs``. A single pair gets a second one: it had no interval, so no look yet."""
    if effect.n < MIN_PAIRS:
        return MIN_PAIRS
    image_se = effect.image_se if effect.images_included else None
    first_look = paired_effect(effect.differences, image_se, RESOLVE_CONFIDENCE)
    if first_look.decided:
        return None
    needed = first_look.pairs_needed(target, max_pairs)
    return needed if needed is not None and needed > effect.n else None


def log_ratios(first: Sequence[float], second: Sequence[float]) -> list[float]:
    """``log(first_r / second_r)`` per round: latencies paired by interleaved round."""
    if len(first) != len(second):
        raise ValueError(f"rounds differ: {len(first)} vs {len(second)}")
    return [math.log(a / b) for a, b in zip(first, second, strict=True)]


def as_percent(log_ratio: float | None) -> float | None:
    """A log ratio as a percent change (``+10`` = 10 % longer)."""
    return None if log_ratio is None else 100.0 * math.expm1(log_ratio)
