"""Every significance test of the reports, on scipy.stats: paired over test trajectories, Welch across seeds, and
Holm's correction over several tests.

Each test returns a `Comparison` of `a` against `b`: the difference of their means (negative: `a` has the lower
error), its confidence interval and the two-sided p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # the significance level the reports judge by, after Holm's correction


@dataclass(frozen=True)
class Comparison:
    """`a` against `b`: difference = mean(a) - mean(b), its interval [ci_low, ci_high], the two-sided p-value, the
    test's name and the number of samples it used (pairs, or seeds of both sides together)."""

    difference: float
    ci_low: float
    ci_high: float
    p: float
    test: str
    n: int


def paired(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, method: str = "t") -> Comparison:
    """`a` and `b` measured on the same samples (the same test trajectories), so that their correlation cancels.

    method "t": the paired t-test (`scipy.stats.ttest_rel`) and the t interval of the mean difference.
    method "wilcoxon": the Wilcoxon signed-rank test's p-value, for differences far from normal (a few diverged
    trajectories); the interval stays the t interval of the mean difference, so it can disagree with p.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need the same one-dimensional shape, got {a.shape} and {b.shape}")
    differences = a - b
    result = stats.ttest_rel(a, b)
    interval = result.confidence_interval(confidence)
    if method == "t":
        p = float(result.pvalue)
    elif method == "wilcoxon":
        p = float(stats.wilcoxon(a, b).pvalue)
    else:
        raise ValueError(f"method={method!r}: use 't' or 'wilcoxon'")
    return Comparison(
        float(differences.mean()), float(interval.low), float(interval.high), p, f"paired {method}", len(a)
    )


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Comparison:
    """Two independent samples with possibly unequal variances (the per-seed mean errors of two configurations):
    Welch's t-test (`scipy.stats.ttest_ind(equal_var=False)`) and the Welch-Satterthwaite interval of the
    difference of the means."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return Comparison(
        float(a.mean() - b.mean()),
        float(interval.low),
        float(interval.high),
        float(result.pvalue),
        "welch",
        len(a) + len(b),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the k-th smallest of m is multiplied by m - k + 1,
    then made monotone and capped at 1, so that `adjusted <= ALPHA` controls the family-wise error rate.

    Undefined p-values (NaN: a test without spread) stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    factors = len(order) - np.arange(len(order))
    adjusted[order] = np.minimum(np.maximum.accumulate(p[order] * factors), 1.0)
    return adjusted.tolist()
