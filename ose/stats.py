"""Paired comparisons over seeds: the effect of one arm against another, with its uncertainty.

Two arms run on the same seeds (same train sample, same dev set, same fit seeds) give paired
scores a_i, b_i; the unit of analysis is the difference d_i = a_i − b_i (in the scores' own units,
e.g. accuracy). `paired_effect` reports its mean, a 95% Student-t confidence interval, the paired
t-test's two-sided p-value and the exact sign-flip permutation p-value; `holm` corrects p-values
for testing the same contrast on several tasks.

The sign-flip test needs no normality: under the null hypothesis "the two arms are exchangeable
within a seed" every d_i is as likely to be −d_i, so the 2^n sign patterns are equally likely and
p is the share of them whose |Σ ±d_i| is at least the observed |Σ d_i|. With n seeds its smallest
possible two-sided p is 2 / 2^n (0.031 for n = 6, 0.0078 for n = 8): a floor worth knowing before
correcting for several tasks.

The t-test is SciPy's (`ttest_rel`); Holm's correction is ours as SciPy has none, and so is the sign-flip
test, the exact 2^n enumeration above in one product (`scipy.stats.permutation_test` agrees: tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats

EXACT_LIMIT = 16  # up to this many pairs the sign-flip test enumerates all 2^n patterns
MONTE_CARLO_DRAWS = 100_000  # random sign patterns beyond EXACT_LIMIT (seeded)


@dataclass(frozen=True)
class PairedEffect:
    """The paired difference a − b over n seeds.

    mean: mean difference; ci_low, ci_high: its 95% t interval (n − 1 degrees of freedom);
    t_p: two-sided paired t-test p-value; sign_flip_p: two-sided sign-flip permutation p-value
    (exact for n ≤ EXACT_LIMIT); sd: standard deviation of the differences (ddof 1). NaN where
    undefined (n < 2 for the interval, t-test and sd).
    """

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    t: float
    t_p: float
    sign_flip_p: float
    confidence: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """a − b, pair by pair (n,); both must be equally long, finite and non-empty."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"paired scores need two equally long 1-d sequences, got shapes {a.shape} and {b.shape}"
        )
    if len(a) == 0:
        raise ValueError("paired scores are empty: at least one pair is needed")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired scores must be finite numbers")
    return a - b


def sign_flip_p(d: Sequence[float], draws: int = MONTE_CARLO_DRAWS, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of the mean of the differences `d` being 0.

    Exact for len(d) ≤ EXACT_LIMIT: the share of all 2^n sign patterns s with |Σ s_i d_i| ≥ |Σ d_i|
    (the identity pattern included, so p ≥ 2 / 2^n unless every d_i is 0, which gives 1). Beyond
    that, `draws` seeded random patterns and the add-one estimate (k + 1) / (draws + 1).
    """
    d = np.asarray(d, dtype=np.float64)
    observed = abs(d.sum())
    slack = 1e-12 * max(1.0, float(np.abs(d).sum()))  # sums of floats that are equal on paper
    if len(d) <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))  # (2^n, n)
        totals = np.abs(signs @ d)  # (2^n,)
        return float(np.mean(totals >= observed - slack))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(draws, len(d)))  # (draws, n)
    extreme = int((np.abs(signs @ d) >= observed - slack).sum())
    return (extreme + 1) / (draws + 1)


def paired_effect(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedEffect:
    """The effect of arm a over arm b on paired seeds: mean of a − b, t interval, t-test, sign-flip test.

    The t interval, statistic and p-value are `scipy.stats.ttest_rel(a, b)`'s (the interval its
    `confidence_interval(confidence_level=confidence)`). With zero spread of the differences (up to
    rounding, where SciPy's t is 0/0 or noise) the t statistic is ±inf (p 0) when their mean is not 0
    and undefined (p 1) when it is, and the interval is [mean, mean]; the sign-flip p is always defined.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = differences(a, b)
    n, mean = len(d), float(d.mean())
    flip = sign_flip_p(d)
    if n < 2:
        nan = math.nan
        return PairedEffect(n, mean, nan, nan, nan, nan, nan, flip, confidence)
    # differences equal on paper (0.6 − 0.5 and 0.7 − 0.6) differ in the last bits: no spread
    if float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        t, p = (math.copysign(math.inf, mean), 0.0) if mean != 0 else (math.nan, 1.0)
        return PairedEffect(n, mean, 0.0, mean, mean, t, p, flip, confidence)
    test = scipy_stats.ttest_rel(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    low, high = test.confidence_interval(confidence_level=confidence)
    t, p = float(test.statistic), float(test.pvalue)
    return PairedEffect(n, mean, float(d.std(ddof=1)), float(low), float(high), t, p, flip, confidence)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of m p-values (family-wise error control), in the input order.

    Sorted ascending, p_(j) becomes max over k ≤ j of min(1, (m − k + 1) · p_(k)). A NaN p-value
    (a test that could not be run) stays NaN and does not count in m.
    """
    values = np.asarray(pvalues, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"pvalues must be a flat sequence, got shape {values.shape}")
    finite = ~np.isnan(values)
    if ((values[finite] < 0) | (values[finite] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {values.tolist()}")
    adjusted = np.full(len(values), math.nan)
    index = np.flatnonzero(finite)
    order = index[np.argsort(values[index], kind="stable")]
    m, running = len(order), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * values[i]))
        adjusted[i] = running
    return adjusted.tolist()
