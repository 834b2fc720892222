"""Is ê a valid ranking? The surrogate check of the FPTAS's error objective.

The FPTAS's guarantee is relative to ê, the held-out distillation loss after a few steps. Whether
a few steps rank architectures the way longer training does is an empirical question: reduced-
training proxies reach Kendall τ ≈ 0.6 on NAS benchmarks. The check trains a stratified set of
architectures for a long reference run, logs the held-out loss at several step counts s in the
same run, and asks, per s:
- rank agreement: Kendall τ_b between ê_s and the final loss, with a bootstrap 95% CI over
  architectures (`tau_with_ci`);
- decision quality: the W-regret of the architecture ê_s would pick, W recomputed with the final
  loss (`w_regret`): 0 when ê_s picks the architecture the long runs would;
- seed noise: how much ê_s moves with the seed alone (`seed_noise`), the floor under any ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import DegenerateDataWarning, bootstrap, kendalltau


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ_b (ties in either ranking accounted for); NaN when a ranking is constant."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two rankings of equal length >= 2, got {len(x)} and {len(y)}")
    return float(kendalltau(x, y, variant="b").statistic)


def tau_with_ci(
    x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """τ_b with a percentile bootstrap CI, resampling architectures (pairs) with replacement.

    `scipy.stats.bootstrap` with `paired=True` and `method="percentile"` (the `level` quantiles of
    the resampled τ_b, not BCa), `n_boot` resamples drawn by `np.random.default_rng(seed)`.
    Resamples whose rankings are constant (τ undefined) are dropped before the quantiles are taken;
    `n_valid` says how many remained (none: a NaN interval).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    tau = kendall_tau_b(x, y)

    def statistic(xs: np.ndarray, ys: np.ndarray) -> float:
        return kendall_tau_b(xs, ys) if np.ptp(xs) > 0 and np.ptp(ys) > 0 else np.nan

    options = {"paired": True, "vectorized": False, "confidence_level": level, "method": "percentile"}
    with warnings.catch_warnings():  # a NaN interval when some τ are undefined: redone below
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap((x, y), statistic, n_resamples=n_boot, rng=np.random.default_rng(seed), **options)
    draws = res.bootstrap_distribution[~np.isnan(res.bootstrap_distribution)]
    if not len(draws):
        return {"tau": tau, "ci_low": float("nan"), "ci_high": float("nan"), "n_valid": 0}
    if len(draws) < n_boot:  # the interval of the defined τ only
        res = bootstrap((x, y), statistic, n_resamples=0, bootstrap_result=_Draws(draws), **options)
    low, high = res.confidence_interval
    return {"tau": tau, "ci_low": float(low), "ci_high": float(high), "n_valid": len(draws)}


@dataclass(frozen=True)
class _Draws:
    """A bootstrap distribution to take `scipy.stats.bootstrap`'s interval of (`bootstrap_result`)."""

    bootstrap_distribution: np.ndarray


def w_regret(
    archs: Sequence[str],
    proxy_error: Mapping[str, float],
    final_error: Mapping[str, float],
    w_of: Callable[[str, float], float],
) -> dict[str, float | str]:
    """The W lost by choosing with the proxy: 1 − W(pick) / W(best), both W from the final error.

    `w_of(arch, error)` is W of an architecture given an error; the pick maximises W with the proxy
    error, the best maximises it with the final error (ties: the first in `archs`).
    """
    if not archs:
        raise ValueError("no architectures to choose from")
    pick = max(archs, key=lambda a: w_of(a, proxy_error[a]))
    best = max(archs, key=lambda a: w_of(a, final_error[a]))
    w_pick, w_best = w_of(pick, final_error[pick]), w_of(best, final_error[best])
    return {
        "pick": pick,
        "best": best,
        "w_pick": w_pick,
        "w_best": w_best,
        "regret": 0.0 if w_best == 0 else 1.0 - w_pick / w_best,
    }


def seed_noise(errors_by_seed: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Seed noise of ê: per architecture the std over seeds; summarised as its mean, and relative to
    the spread of ê across architectures (the std of the per-architecture means). A ratio near 1
    means the seed alone moves ê as much as the architecture does."""
    values = [np.asarray(v, float) for v in errors_by_seed.values()]
    if not values or any(len(v) < 2 for v in values):
        raise ValueError("need at least two seeds for every architecture")
    within = float(np.mean([v.std(ddof=1) for v in values]))
    between = float(np.std([v.mean() for v in values], ddof=1)) if len(values) > 1 else float("nan")
    return {"mean_std_over_seeds": within, "std_across_archs": between, "ratio": within / between}


def stratified_sample(archs: Sequence, n: int, key: Callable, seed: int = 0) -> list:
    """n architectures spread over the space: sorted by `key` (e.g. size), one from each of n equal
    strata, chosen with a seeded generator; both extremes always included."""
    if not 2 <= n <= len(archs):
        raise ValueError(f"n must be between 2 and {len(archs)}, got {n}")
    ordered = sorted(archs, key=key)
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, len(ordered), n + 1).round().astype(int)
    picks = [ordered[edges[k] + rng.integers(0, max(1, edges[k + 1] - edges[k]))] for k in range(n)]
    picks[0], picks[-1] = ordered[0], ordered[-1]
    return picks
