"""Speed-ups with confidence intervals, read off the interleaved rounds (`ose.speed.harness`).

Ratios (`speedups`, `ratio_ci`). For each round, speed-up = reference latency / model latency of
that round; the reported speed-up is the geometric mean of the per-round ratios, and its 95%
interval a percentile bootstrap over rounds. Rounds, not the pooled calls, are resampled: calls of
one block run back to back in one machine state and are not independent, so pooling them would
give intervals that ignore the round-to-round drift that actually moves a ratio between runs; a
round pairs the two models within seconds, which is what makes the ratio per round meaningful.
With R rounds the interval cannot be wider than the per-round ratios' range and, like every
percentile bootstrap of few samples, it runs somewhat narrow: R ≥ 5 is advised. `stability` splits
the rounds into an earlier and a later half, two runs in miniature, and says whether both halves'
ratios lie inside the whole run's interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import bootstrap

from ose import verdicts
from ose.speed.harness import check_positive

CI_LEVEL = 0.95  # every interval this module reports
BOOTSTRAP_RESAMPLES = 4000  # resamples of the rounds; a few ms for any R the stage uses
# An interval wider than this factor (ci_high / ci_low) neither confirms nor refutes a claim inside it:
# at 1.5 a claim of 20× "holds" only if the interval is about 20× ± 20% or tighter.
DECISIVE_CI_RATIO = 1.5

# --- speed-ups with confidence intervals --------------------------------------------------------


def _geometric_mean_ratio(log_ratios: np.ndarray) -> float:
    return float(np.exp(log_ratios.mean()))


def ratio_ci(
    reference_ms: Sequence[float],
    model_ms: Sequence[float],
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Speed-up of a model over a reference from paired per-round latencies, with a bootstrap interval.

    reference_ms[k], model_ms[k]: the two latencies (ms) of round k. Per-round ratio
    reference / model; `speedup` = their geometric mean (a ratio's natural average: 2× and ½×
    average to 1×); `ci_low`/`ci_high` = the percentile bootstrap interval at `level`, resampling
    rounds (`resamples` times, seeded): `scipy.stats.bootstrap` with `method="percentile"` (the
    `level` quantiles of the resampled geometric means, not BCa), its generator
    `np.random.default_rng(seed)`. Rounds with one common ratio give the interval [ratio, ratio].
    Also the spread across rounds: the smallest and largest per-round ratio and `round_sd_log`, the
    standard deviation of the natural-log ratios (≈ the coefficient of variation of the ratio when
    small).
    """
    ref = np.asarray(reference_ms, dtype=float)
    mod = np.asarray(model_ms, dtype=float)
    if ref.shape != mod.shape or ref.ndim != 1:
        raise ValueError(
            f"reference_ms and model_ms must be paired per round, got {ref.shape} and {mod.shape}"
        )
    if len(ref) < 2:
        raise ValueError(f"rounds: a confidence interval needs at least 2 rounds, got {len(ref)}")
    if not (np.all(ref > 0) and np.all(mod > 0) and np.all(np.isfinite(ref)) and np.all(np.isfinite(mod))):
        raise ValueError("reference_ms and model_ms must be positive, finite latencies")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    check_positive("resamples", [resamples])
    log_ratios = np.log(ref) - np.log(mod)  # (R,)
    low, high = bootstrap(
        (log_ratios,),
        lambda sample, axis: np.exp(sample.mean(axis=axis)),  # the geometric-mean ratio of a resample
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return {
        "speedup": _geometric_mean_ratio(log_ratios),
        "ci_low": float(low),
        "ci_high": float(high),
        "rounds": len(log_ratios),
        "round_min": float(np.exp(log_ratios.min())),
        "round_max": float(np.exp(log_ratios.max())),
        "round_sd_log": float(log_ratios.std(ddof=1)),
    }


def stability(reference_ms: Sequence[float], model_ms: Sequence[float], ci: Mapping[str, float]) -> dict:
    """Does the ratio repeat? The rounds' earlier and later halves (the middle round of an odd count
    goes to the earlier) as two runs in miniature: each half's geometric-mean ratio, and `stable`
    when both lie inside the whole run's interval `ci` (from `ratio_ci`)."""
    ref, mod = np.asarray(reference_ms, dtype=float), np.asarray(model_ms, dtype=float)
    if len(ref) < 2 or ref.shape != mod.shape:
        raise ValueError(f"stability needs at least 2 paired rounds, got {ref.shape} and {mod.shape}")
    log_ratios = np.log(ref) - np.log(mod)
    cut = (len(log_ratios) + 1) // 2
    halves = _geometric_mean_ratio(log_ratios[:cut]), _geometric_mean_ratio(log_ratios[cut:])
    return {
        "first_half": halves[0],
        "second_half": halves[1],
        "stable": all(ci["ci_low"] <= h <= ci["ci_high"] for h in halves),
    }


def _round_key(row: Mapping) -> tuple:
    return (str(row["run_id"]), int(row["batch"]), int(row["seq"]), int(row["threads"]))


def paired_rounds(rounds: Sequence[Mapping], model: str, reference: str) -> dict[tuple, tuple[list, list]]:
    """Per cell (run_id, batch, seq, threads): the reference's and the model's latencies, round by
    round, for the rounds both were timed in. Rows read back from CSV (strings) work too."""
    by_round: dict[tuple, dict[str, float]] = {}
    for row in rounds:
        if row["model"] in (model, reference):
            key = (*_round_key(row), int(row["round"]))
            by_round.setdefault(key, {})[row["model"]] = float(row["median_ms"])
    cells: dict[tuple, tuple[list, list]] = {}
    for key in sorted(by_round):
        pair = by_round[key]
        if model in pair and reference in pair:
            ref, mod = cells.setdefault(key[:-1], ([], []))
            ref.append(pair[reference])
            mod.append(pair[model])
    return cells


def speedups(
    rounds: Sequence[Mapping],
    reference: str,
    models: Sequence[str] | None = None,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> list[dict]:
    """Speed-up of each model over `reference` at every cell both were timed in, with its interval.

    rounds: `Timings.rounds` (or the same rows read back from CSV). Rounds are paired only when
    they share run_id, batch, seq, threads and round, so every ratio comes from one run.
    models: which models (default: every model timed, the reference included, whose speed-up is 1).
    Each row: model, reference, the cell, both median latencies (ms, over rounds) and `ratio_ci`'s
    keys.
    """
    present = list(dict.fromkeys(r["model"] for r in rounds))
    if reference not in present:
        raise ValueError(f"reference {reference!r} is not among the measured models {present}")
    wanted = present if models is None else list(models)
    unknown = [m for m in wanted if m not in present]
    if unknown:
        raise ValueError(f"models {unknown} are not among the measured models {present}")
    out = []
    for name in wanted:
        cells = paired_rounds(rounds, name, reference)
        if not cells:
            raise ValueError(
                f"models: {name!r} was never measured in the same run and cell as reference {reference!r}"
            )
        for (run_id, batch, seq, threads), (ref_ms, model_ms) in cells.items():
            out.append(
                {
                    "model": name,
                    "reference": reference,
                    "run_id": run_id,
                    "batch": batch,
                    "seq": seq,
                    "threads": threads,
                    "model_median_ms": float(np.median(model_ms)),
                    "reference_median_ms": float(np.median(ref_ms)),
                    **ratio_ci(ref_ms, model_ms, level=level, seed=seed),
                }
            )
    return out


def claim_status(row: Mapping, claimed: float, decisive: float = DECISIVE_CI_RATIO) -> str:
    """Where a claimed speed-up sits against a measured one (`speedups` row), the claim taken at its
    stated precision (`ose.verdicts.stated_interval`: "20×" covers [19.5, 20.5)): "short"
    when our interval lies wholly below it, "exceeded" when wholly above, "holds" when they meet, and
    "undecided" when they meet inside an interval so wide (ci_high / ci_low > `decisive`) that it
    would hold almost any claim."""
    low, high = float(row["ci_low"]), float(row["ci_high"])
    where = verdicts.side((low, high), claimed)
    if where == "below":
        return "short"
    if where == "above":
        return "exceeded"
    return "holds" if high / low <= decisive else "undecided"


def headline_speedup(speedup_rows: Sequence[dict], model: str, reference: str) -> dict | None:
    """The `speedups` row of `model` over `reference` at the smallest batch (and shortest sequence)
    measured: the single-request latency ratio that "N× faster" usually means. None when not measured."""
    cells = [r for r in speedup_rows if r["model"] == model and r["reference"] == reference]
    if not cells:
        return None
    return min(cells, key=lambda r: (int(r["batch"]), int(r["seq"])))
