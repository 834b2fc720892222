"""Paired effects and the Holm correction, against hand-computed values and SciPy."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ose.stats import differences, holm, paired_effect, sign_flip_p


def test_paired_effect_by_hand():
    # d = [0.02, 0.04, 0.00, 0.06]: mean 0.03, sd sqrt(((-.01)²+.01²+(-.03)²+.03²)/3) = sqrt(0.002/3)
    a, b = [0.72, 0.74, 0.70, 0.76], [0.70, 0.70, 0.70, 0.70]
    effect = paired_effect(a, b)
    sd = math.sqrt(0.002 / 3)
    assert effect.n == 4 and effect.mean == pytest.approx(0.03) and effect.sd == pytest.approx(sd)
    half = 3.182446305284263 * sd / 2  # t_{0.975, 3}, from tables
    assert (effect.ci_low, effect.ci_high) == pytest.approx((0.03 - half, 0.03 + half))
    assert effect.t == pytest.approx(0.03 / (sd / 2))
    # sign flips: |Σ±d| over 16 patterns (d = 2, 4, 0, 6 in hundredths; Σ = 12); |Σ| ≥ 12 for the
    # patterns flipping none or all of {2, 4, 6} (each with either sign of the 0): 4 of 16
    assert effect.sign_flip_p == pytest.approx(4 / 16)


def test_paired_effect_matches_scipy():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.7, 0.02, 9), rng.normal(0.69, 0.02, 9)
    effect = paired_effect(a, b)
    reference = scipy_stats.ttest_rel(a, b)
    assert effect.t == pytest.approx(reference.statistic) and effect.t_p == pytest.approx(reference.pvalue)
    if hasattr(reference, "confidence_interval"):
        low, high = reference.confidence_interval(0.95)
        assert (effect.ci_low, effect.ci_high) == pytest.approx((low, high))
    exact = scipy_stats.permutation_test(
        (a - b,), np.mean, permutation_type="samples", alternative="two-sided", n_resamples=np.inf
    )
    assert effect.sign_flip_p == pytest.approx(exact.pvalue)


def test_sign_flip_floor_and_degenerate_differences():
    assert sign_flip_p([0.01] * 6) == pytest.approx(2 / 64), "the smallest p with 6 seeds"
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_p([0.1, -0.1]) == 1.0
    same = paired_effect([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.mean == 0 and same.t_p == 1.0 and (same.ci_low, same.ci_high) == (0.0, 0.0)
    shifted = paired_effect([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert shifted.t == math.inf and shifted.t_p == 0.0 and shifted.ci_low == pytest.approx(0.1)
    one = paired_effect([0.6], [0.5])
    assert one.n == 1 and one.mean == pytest.approx(0.1) and math.isnan(one.t_p) and one.sign_flip_p == 1.0


def test_sign_flip_beyond_the_exact_limit_is_seeded_and_close():
    d = np.r_[np.full(17, 0.01), -0.005]
    p = sign_flip_p(d, draws=20_000, seed=3)
    assert p == sign_flip_p(d, draws=20_000, seed=3)
    assert p < 0.001  # 18 nearly all-positive differences


def test_differences_are_checked():
    np.testing.assert_allclose(differences([3, 2], [1, 1]), [2, 1])
    with pytest.raises(ValueError, match="equally long"):
        differences([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        differences([], [])
    with pytest.raises(ValueError, match="finite"):
        differences([1, math.nan], [1, 1])
    with pytest.raises(ValueError, match="confidence"):
        paired_effect([1, 2], [1, 1], confidence=95)


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04), max(0.04, 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]), "capped at 1, monotone"
    assert holm([0.2]) == [0.2]
    adjusted = holm([0.01, math.nan, 0.03])
    assert (
        adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.03)
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


def test_holm_matches_statsmodels_when_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = [0.001, 0.2, 0.04, 0.03, 0.5]
    assert holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1].tolist())
