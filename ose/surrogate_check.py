"""The surrogate check, run: long reference runs, ê_s against the final loss, and the choice of s.

For each of a stratified set of architectures, one long run of the surrogate's own recipe
(`ose.distill.distill_on_sample`: same sample construction, same first θ, same seed) logs the
held-out distillation loss at every s of `log_steps` and at the end; ê_s is the loss at step s of
that run (its learning-rate schedule spans the whole run, unlike an s-step surrogate's). ê at the
smallest s is also measured as the FPTAS measures it (`surrogate_error`, s steps) under several
seeds, for its seed noise. `check_table` scores each s (`ose.ranking`), `recommend_steps` picks
the s that `extract.max_steps: auto` uses. Each run is cached (a CSV row per architecture), so an
interrupted check resumes, and the cache is keyed by every input (sample, settings, code).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ose import arch as arch_module  # noqa: E402
from ose import distill, mlm, ranking, row_cache, training  # noqa: E402
from ose.arch import Arch, Embedding  # noqa: E402
from ose.configs import KDWeights, SurrogateCheck, SurrogateTheta  # noqa: E402
from ose.distill import FixedSample, distill_on_sample, surrogate_error  # noqa: E402
from ose.fingerprint import mapping_digest, source_digest  # noqa: E402
from ose.progress import bar as progress_bar  # noqa: E402

RUN_COLUMNS = ("arch", "seed", "losses", "final", "seconds", "settings")


def eval_every(log_steps: Sequence[int], steps: int) -> int:
    """The evaluation period that hits every logged s and the last step."""
    return math.gcd(*log_steps, steps)


def settings_key(check: SurrogateCheck, theta: SurrogateTheta, weights: KDWeights, sample_key: str) -> str:
    """Identifies what a cached run was computed with: sample, recipe, settings and code."""
    return mapping_digest(
        {
            "check": [check.steps, check.log_steps],
            "theta": [theta.lr, theta.warmup_steps],
            "weights": [weights.alpha, weights.beta, weights.temperature],
            "sample": sample_key,
            "code": source_digest(distill, training, mlm, arch_module),
        }
    )


def reference_runs(
    archs: Sequence[Arch],
    embedding: Embedding,
    train: FixedSample,
    heldout: FixedSample,
    check: SurrogateCheck,
    theta: SurrogateTheta,
    weights: KDWeights,
    seed: int,
    cache: Path,
    sample_key: str,
    progress: bool = True,
) -> list[dict]:
    """One long run per ξ: {"arch", "losses": {s: held-out loss}, "final", "seconds"}."""
    settings = settings_key(check, theta, weights, sample_key)
    kept = row_cache.read_rows(cache, ("arch", "seed"))
    done = {k: r for k, r in kept.items() if r["settings"] == settings}
    every = eval_every(check.log_steps, check.steps)
    for arch in progress_bar(
        [a for a in archs if (a.name, str(seed)) not in done],
        desc="reference runs",
        unit="runs",
        disable=not progress,
    ):
        _, history = distill_on_sample(
            arch, embedding, train, heldout, check.steps, theta.lr, theta.warmup_steps, weights, seed, every
        )
        losses = {h["step"]: h["kd_loss"] for h in history if "kd_loss" in h}
        seconds = max(h["seconds"] for h in history)
        row = {
            "arch": arch.name,
            "seed": str(seed),
            "losses": json.dumps({str(s): losses[s] for s in check.log_steps}),
            "final": repr(losses[check.steps]),
            "seconds": repr(seconds),
            "settings": settings,
        }
        kept[(arch.name, str(seed))] = done[(arch.name, str(seed))] = row
        row_cache.write_rows(cache, RUN_COLUMNS, kept.values())
    return [_parse(done[(a.name, str(seed))]) for a in archs]


def _parse(row: dict) -> dict:
    return {
        "arch": row["arch"],
        "losses": {int(s): v for s, v in json.loads(row["losses"]).items()},
        "final": float(row["final"]),
        "seconds": float(row["seconds"]),
    }


def seed_errors(
    archs: Sequence[Arch],
    embedding: Embedding,
    train: FixedSample,
    heldout: FixedSample,
    steps: int,
    theta: SurrogateTheta,
    weights: KDWeights,
    seeds: Sequence[int],
    progress: bool = True,
) -> dict[str, list[float]]:
    """ê after `steps` steps, as the FPTAS measures it, under each seed: {arch: [ê per seed]}."""
    pairs = [(a, s) for a in archs for s in seeds]
    out: dict[str, list[float]] = {a.name: [] for a in archs}
    for arch, seed in progress_bar(
        pairs, desc="ê under several seeds", unit="trainings", disable=not progress
    ):
        result = surrogate_error(
            arch, embedding, train, heldout, steps, theta.lr, theta.warmup_steps, weights, seed
        )
        out[arch.name].append(result["error"])
    return out


def check_table(
    runs: Sequence[dict],
    log_steps: Sequence[int],
    w_of: Callable[[str, float], float],
    n_boot: int,
    seed: int,
) -> list[dict]:
    """Per s: Kendall τ_b of ê_s with the final loss (bootstrap 95% CI) and the W-regret of ê_s's pick."""
    names = [r["arch"] for r in runs]
    final = {r["arch"]: r["final"] for r in runs}
    rows = []
    for s in log_steps:
        proxy = {r["arch"]: r["losses"][s] for r in runs}
        tau = ranking.tau_with_ci([proxy[a] for a in names], [final[a] for a in names], n_boot, seed)
        regret = ranking.w_regret(names, proxy, final, w_of)
        rows.append(
            {
                "s": s,
                "tau_b": tau["tau"],
                "ci_low": tau["ci_low"],
                "ci_high": tau["ci_high"],
                "pick": regret["pick"],
                "best": regret["best"],
                "w_regret": regret["regret"],
            }
        )
    return rows


def recommend_steps(rows: Sequence[dict], tau: float, max_steps: int) -> tuple[int, str]:
    """The s `max_steps: auto` uses, and why: the smallest s with τ_b ≥ `tau` whose pick loses no W,
    among those ≤ `max_steps`; else the largest s ≤ `max_steps` (the budget decides, and says so)."""
    allowed = [r for r in rows if r["s"] <= max_steps]
    if not allowed:
        raise ValueError(f"no logged s is <= {max_steps}; log a smaller s in extract.check.log_steps")
    for row in allowed:
        if row["tau_b"] >= tau and row["w_regret"] <= 1e-12:
            return row["s"], (
                f"the smallest s with τ_b ≥ {tau} ({row['tau_b']:.2f}) whose pick ({row['pick']}) is the "
                f"long runs' best"
            )
    row = allowed[-1]
    return row["s"], (
        f"no s ≤ {max_steps} reaches τ_b ≥ {tau} with zero W-regret; the largest allowed s is used "
        f"(τ_b {row['tau_b']:.2f}, W-regret {row['w_regret']:.3f})"
    )


def tau_figure(rows: Sequence[dict], final_steps: int, chosen: int) -> Figure:
    """τ_b (95% CI) and W-regret of ê_s against s."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    s = [r["s"] for r in rows]
    tau = [r["tau_b"] for r in rows]
    low = [r["tau_b"] - r["ci_low"] for r in rows]
    high = [r["ci_high"] - r["tau_b"] for r in rows]
    left.errorbar(s, tau, yerr=[low, high], marker="o", capsize=4)
    left.axhline(0, color="grey", lw=0.8)
    left.axvline(chosen, color="tab:red", ls="--", lw=1, label=f"chosen s = {chosen}")
    left.set(xscale="log", xlabel="s (steps)", ylabel="Kendall τ_b", ylim=(-1.05, 1.05))
    left.set_title(f"ê_s against the loss after {final_steps} steps")
    left.legend(loc="lower right")
    right.plot(s, [r["w_regret"] for r in rows], marker="o")
    right.axvline(chosen, color="tab:red", ls="--", lw=1)
    right.set(xscale="log", xlabel="s (steps)", ylabel="1 − W(pick) / W(best)", ylim=(-0.02, None))
    right.set_title("W lost by choosing with ê_s")
    fig.tight_layout()
    return fig


def scatter_figure(runs: Sequence[dict], s: int, final_steps: int) -> Figure:
    """ê_s against the final loss, one point per architecture."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    x = [r["losses"][s] for r in runs]
    y = [r["final"] for r in runs]
    ax.scatter(x, y)
    for r, xi, yi in zip(runs, x, y, strict=True):
        ax.annotate(r["arch"], (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set(xlabel=f"ê after {s} steps", ylabel=f"held-out loss after {final_steps} steps")
    ax.set_title("Does a short run rank like a long one?")
    fig.tight_layout()
    return fig
