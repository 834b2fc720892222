"""The surrogate check, run: long reference runs, ê_s against the final loss, and the choice of s.

For each of a stratified set of architectures, one long run of the surrogate's own recipe
(`ose.training.distill.surrogate_error` with `eval_steps`: same sample construction, same first θ, same
seed) logs the held-out distillation loss at every s of `log_steps` and at the end (the runs are
a surrogate table, `ose.search.surrogate`, so they share its workers); ê_s is the loss at step s of
that run (its learning-rate schedule spans the whole run, unlike an s-step surrogate's). ê at the
smallest s is also measured as the FPTAS measures it (`surrogate_error`, s steps) under several
seeds, for its seed noise. `check_table` scores each s (`ose.search.ranking`), `recommend_steps` picks
the s that `extract.max_steps: auto` uses. Each run is cached (a shard row per architecture), so
an interrupted check resumes, and the cache is keyed by every input (sample, settings, code).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ose.arch import Arch, Embedding  # noqa: E402
from ose.configs import KDWeights, SurrogateCheck, SurrogateTheta  # noqa: E402
from ose.search import ranking  # noqa: E402
from ose.search.surrogate import SurrogateJob, cached_rows, evaluate_table, logged_losses  # noqa: E402
from ose.training.distill import FixedSample  # noqa: E402


def reference_runs(
    archs: Sequence[Arch],
    embedding: Embedding,
    train: FixedSample,
    heldout: FixedSample,
    check: SurrogateCheck,
    theta: SurrogateTheta,
    weights: KDWeights,
    seed: int,
    shard_dir: Path,
    sample_key: str,
    nproc: int = 1,
    threads: int = 1,
    progress: bool = True,
) -> list[dict]:
    """One long run per ξ: {"arch", "losses": {s: held-out loss}, "final", "seconds", "rank"}.

    The runs are a surrogate table (`ose.search.surrogate`) with `log_steps`: dealt out over `nproc`
    workers, cached in `shard_dir` and resumed like the FPTAS's ê (keyed by the sample, settings
    and code). The sample (one batch per step, with the teacher's logits) is written to a
    temporary file only when a run is still to do.
    """
    job = SurrogateJob(
        archs=[a.name for a in archs],
        thetas=[{"name": theta.name, "lr": theta.lr, "warmup_steps": theta.warmup_steps}],
        sample_path="",
        embedding=asdict(embedding),
        steps=check.steps,
        weights=asdict(weights),
        seed=seed,
        shard_dir=str(shard_dir),
        threads=threads,
        sample_key=sample_key,
        log_steps=sorted({*check.log_steps, check.steps}),
        desc="reference runs",
    )
    table = _evaluated(job, train, heldout, nproc, progress)
    runs = []
    for row in table:
        losses = logged_losses(row)
        runs.append(
            {
                "arch": row["arch"],
                "losses": {s: losses[s] for s in check.log_steps},
                "final": losses[check.steps],
                "seconds": row["seconds"],
                "rank": row["rank"],
            }
        )
    return runs


def _evaluated(
    job: SurrogateJob, train: FixedSample, heldout: FixedSample, nproc: int, progress: bool
) -> list[dict]:
    """The job's table from its cache, or computed; the sample goes to a temporary file only when a
    run is still to do."""
    table = cached_rows(job)
    if table is None:
        with tempfile.TemporaryDirectory(prefix="ose-surrogate-") as tmp:
            sample_path = Path(tmp) / "sample.pt"
            torch.save({"train": train.to_dict(), "heldout": heldout.to_dict()}, sample_path)
            table = evaluate_table(replace(job, sample_path=str(sample_path)), nproc=nproc, progress=progress)
    return table


def seed_errors(
    archs: Sequence[Arch],
    embedding: Embedding,
    train: FixedSample,
    heldout: FixedSample,
    steps: int,
    theta: SurrogateTheta,
    weights: KDWeights,
    seeds: Sequence[int],
    shard_dir: Path,
    sample_key: str,
    nproc: int = 1,
    threads: int = 1,
    progress: bool = True,
) -> dict[str, list[float]]:
    """ê after `steps` steps, as the FPTAS measures it, under each seed: {arch: [ê per seed]}.

    One surrogate table per seed (`shard_dir/seed<k>`), cached and resumed like the reference runs:
    a re-run with the same sample, settings and code trains nothing.
    """
    out: dict[str, list[float]] = {a.name: [] for a in archs}
    for seed in seeds:
        job = SurrogateJob(
            archs=[a.name for a in archs],
            thetas=[{"name": theta.name, "lr": theta.lr, "warmup_steps": theta.warmup_steps}],
            sample_path="",
            embedding=asdict(embedding),
            steps=steps,
            weights=asdict(weights),
            seed=seed,
            shard_dir=str(Path(shard_dir) / f"seed{seed}"),
            threads=threads,
            sample_key=sample_key,
            desc=f"ê under seed {seed}",
        )
        for row in _evaluated(job, train, heldout, nproc, progress):
            out[row["arch"]].append(row["error"])
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
