import math

import numpy as np
import pytest

from ose.search.ranking import kendall_tau_b, seed_noise, stratified_sample, tau_with_ci, w_regret


def test_tau_b_on_hand_made_rankings():
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six: (5 − 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # with a tie in y, τ_b divides by sqrt(6 · 5): concordant 5, discordant 0
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 3, 3]) == pytest.approx(5 / math.sqrt(30))
    assert math.isnan(kendall_tau_b([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match="equal length"):
        kendall_tau_b([1, 2], [1])


def test_bootstrap_ci_brackets_tau_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=17)
    y = x + rng.normal(scale=0.7, size=17)
    a, b = tau_with_ci(x, y, n_boot=500, seed=3), tau_with_ci(x, y, n_boot=500, seed=3)
    assert a == b
    assert a["ci_low"] <= a["tau"] <= a["ci_high"]
    assert 0 < a["tau"] < 1 and a["n_valid"] == 500
    perfect = tau_with_ci(x, 2 * x, n_boot=200)
    assert perfect["tau"] == pytest.approx(1.0)
    assert perfect["ci_low"] == pytest.approx(1.0) and perfect["ci_high"] == pytest.approx(1.0)


def test_bootstrap_ci_drops_resamples_with_an_undefined_tau():
    # three architectures, two tied in x: a resample of only the tied pair (or one point) has no τ
    some = tau_with_ci([1.0, 1.0, 2.0], [3.0, 4.0, 5.0], n_boot=400, seed=0)
    assert 0 < some["n_valid"] < 400
    assert -1 <= some["ci_low"] <= some["ci_high"] <= 1
    none = tau_with_ci([1.0, 2.0, 3.0], [5.0, 5.0, 5.0], n_boot=50)
    assert none["n_valid"] == 0 and math.isnan(none["ci_low"]) and math.isnan(none["ci_high"])


def test_w_regret_on_a_hand_made_table():
    saving = {"a": 0.9, "b": 0.5, "c": 0.2}  # size/cost factors of W

    def w(arch, error):
        return saving[arch] / error

    final = {"a": 9.0, "b": 2.0, "c": 1.0}  # W: 0.1, 0.25, 0.2 → b is best
    assert w_regret(["a", "b", "c"], final, final, w)["regret"] == 0.0
    proxy = {"a": 1.0, "b": 2.0, "c": 1.0}  # the proxy picks a (W 0.9)
    out = w_regret(["a", "b", "c"], proxy, final, w)
    assert (out["pick"], out["best"]) == ("a", "b")
    assert out["regret"] == pytest.approx(1 - 0.1 / 0.25)


def test_seed_noise_relative_to_the_spread_across_architectures():
    out = seed_noise({"a": [1.0, 1.2], "b": [2.0, 2.2], "c": [3.0, 3.2]})
    assert out["mean_std_over_seeds"] == pytest.approx(np.std([1.0, 1.2], ddof=1))
    assert out["std_across_archs"] == pytest.approx(1.0)
    assert out["ratio"] == pytest.approx(out["mean_std_over_seeds"])
    with pytest.raises(ValueError, match="two seeds"):
        seed_noise({"a": [1.0]})


def test_stratified_sample_spans_the_space():
    archs = list(range(100))
    picks = stratified_sample(archs, 16, key=lambda a: a, seed=1)
    assert len(picks) == len(set(picks)) == 16
    assert picks[0] == 0 and picks[-1] == 99
    assert all(k * 100 // 16 - 1 <= p < (k + 1) * 100 // 16 + 1 for k, p in enumerate(picks[1:-1], 1))
    assert picks == stratified_sample(archs, 16, key=lambda a: a, seed=1)
