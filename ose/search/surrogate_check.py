"""The surrogate check, run: long reference runs, ê_s against the final loss, seed noise, and the choice of s.

ê is validated as the FPTAS uses it. For each of a stratified set of architectures and for EVERY θ
of Θ (the FPTAS picks its θ after the check, so every θ it may pick is checked), one long run of the
surrogate's own recipe (`ose.training.distill.surrogate_error` with `eval_steps`: same sample, same
init, same seed) logs the held-out loss at every s of `log_steps` and at the end; ê_s is the loss
at step s of that run. The runs are a surrogate table (`ose.search.surrogate`), so they share its
workers and its cache. Seed noise is measured as the FPTAS measures ê (s-step runs, their own
schedule) at EVERY logged s and θ, under several seeds, beside the spread of ê across architectures
at that s. `check_table` scores each (θ, s) (`ose.search.ranking`); `recommend_steps` picks the s
that `extract.max_steps: auto` uses, never an s whose spread across architectures is within twice
its seed noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ose.arch import Arch  # noqa: E402
from ose.configs import SurrogateCheck  # noqa: E402
from ose.search import ranking  # noqa: E402
from ose.search.surrogate import Sample, SurrogateJob, evaluated, logged_losses  # noqa: E402

NOISE_FACTOR = 2.0  # an s qualifies when ê's spread across architectures exceeds this × its seed noise


def reference_runs(
    archs: Sequence[Arch],
    sample: Sample,
    check: SurrogateCheck,
    base: SurrogateJob,
    shard_dir: Path,
    nproc: int = 1,
    progress: bool = True,
) -> list[dict]:
    """One long run per (ξ, θ of `base.thetas`): {"arch", "theta", "losses": {s: loss}, "final",
    "seconds", "rank"}.

    `base` holds what every ê run shares (embedding, weights, seed, init, threads). The runs are a
    surrogate table with `log_steps`: dealt out over `nproc` workers, cached in `shard_dir` and
    resumed like the FPTAS's ê (keyed by the sample, settings and code).
    """
    job = replace(
        base,
        archs=[a.name for a in archs],
        steps=check.steps,
        shard_dir=str(shard_dir),
        log_steps=sorted({*check.log_steps, check.steps}),
        desc=f"reference runs ({base.init} init)",
    )
    runs = []
    for row in evaluated(job, sample, nproc, progress):
        losses = logged_losses(row)
        runs.append(
            {
                "arch": row["arch"],
                "theta": row["theta"],
                "losses": {s: losses[s] for s in check.log_steps},
                "final": losses[check.steps],
                "seconds": row["seconds"],
                "rank": row["rank"],
            }
        )
    return runs


def _variant(theta: str, s: int, seed: int) -> str:
    """The name of θ trained for s steps from `seed`, as one "θ" of the seed-noise table."""
    return f"{theta}|s{s}|seed{seed}"


def seed_errors(
    archs: Sequence[Arch],
    sample: Sample,
    steps: Sequence[int],
    seeds: Sequence[int],
    base: SurrogateJob,
    shard_dir: Path,
    nproc: int = 1,
    progress: bool = True,
) -> tuple[dict[tuple[str, int], dict[str, list[float]]], list[dict]]:
    """ê after s steps, as the FPTAS measures it, under each seed: {(θ, s): {arch: [ê per seed]}},
    and the table's rows (for their seconds).

    One surrogate table (one set of workers) whose "θ" are every (θ, s, seed): each trains s steps
    from its own seed, as `surrogate_error` does, on the first s batches of B (step t trains on
    batch t mod |B|, and s ≤ |B|). Cached and resumed like the reference runs: a re-run with the
    same sample, settings and code trains nothing.
    """
    if max(steps) > len(sample.train):
        raise ValueError(f"s up to {max(steps)} needs as many batches; the sample has {len(sample.train)}")
    thetas = [
        {**t, "name": _variant(t["name"], s, seed), "steps": s, "seed": seed}
        for s in steps
        for seed in seeds
        for t in base.thetas
    ]
    job = replace(
        base,
        archs=[a.name for a in archs],
        thetas=thetas,
        shard_dir=str(shard_dir),
        log_steps=[],
        desc=f"ê at every s and seed ({base.init} init)",
    )
    table = evaluated(job, sample, nproc, progress)
    rows = {(r["arch"], r["theta"]): r for r in table}
    errors = {  # (θ, s) in order, archs in order, seeds in order
        (t["name"], s): {
            a.name: [rows[(a.name, _variant(t["name"], s, seed))]["error"] for seed in seeds] for a in archs
        }
        for t in base.thetas
        for s in steps
    }
    return errors, table


def noise_rows(errors: dict[tuple[str, int], dict[str, list[float]]]) -> list[dict]:
    """Per (θ, s): seed noise of ê (mean std over seeds), its spread across architectures (std of the
    per-architecture means), their ratio, and whether s qualifies (spread > `NOISE_FACTOR` × noise)."""
    rows = []
    for (theta, s), by_arch in errors.items():
        noise = ranking.seed_noise(by_arch)
        qualifies = noise["std_across_archs"] > NOISE_FACTOR * noise["mean_std_over_seeds"]
        rows.append({"theta": theta, "s": s, **noise, "qualifies": bool(qualifies)})
    return rows


def check_table(
    runs: Sequence[dict],
    log_steps: Sequence[int],
    w_of: Callable[[str, float], float],
    n_boot: int,
    seed: int,
    same_point: Callable[[str, str], bool] = lambda a, b: False,
) -> list[dict]:
    """Per (θ, s): Kendall τ_b of ê_s with the final loss (bootstrap 95% CI) and the W-regret of
    ê_s's pick; `tie`: the pick and the long runs' best are one point of the order (equal p, i)."""
    rows = []
    thetas = list(dict.fromkeys(r["theta"] for r in runs))
    for theta in thetas:
        mine = [r for r in runs if r["theta"] == theta]
        names = [r["arch"] for r in mine]
        final = {r["arch"]: r["final"] for r in mine}
        for s in log_steps:
            proxy = {r["arch"]: r["losses"][s] for r in mine}
            tau = ranking.tau_with_ci([proxy[a] for a in names], [final[a] for a in names], n_boot, seed)
            regret = ranking.w_regret(names, proxy, final, w_of)
            rows.append(
                {
                    "theta": theta,
                    "s": s,
                    "tau_b": tau["tau"],
                    "ci_low": tau["ci_low"],
                    "ci_high": tau["ci_high"],
                    "pick": regret["pick"],
                    "best": regret["best"],
                    "w_regret": regret["regret"],
                    "tie": regret["pick"] != regret["best"] and same_point(regret["pick"], regret["best"]),
                }
            )
    return rows


def recommend_steps(
    rows: Sequence[dict], noise: Sequence[dict], tau: float, max_steps: int
) -> tuple[int | None, str]:
    """The s `max_steps: auto` uses, and why. Only an s ≤ `max_steps` whose spread across
    architectures exceeds `NOISE_FACTOR` × its seed noise under every θ qualifies; among those, the
    smallest s whose τ_b ≥ `tau` with zero W-regret under every θ, else the largest qualifying s
    (the budget decides, and says so). None when no s qualifies."""
    logged = sorted({r["s"] for r in rows})
    if not [s for s in logged if s <= max_steps]:
        raise ValueError(f"no logged s is <= {max_steps}; log a smaller s in extract.check.log_steps")
    ok = {s for s in logged if s <= max_steps and all(n["qualifies"] for n in noise if n["s"] == s)}
    ok &= {n["s"] for n in noise}
    failed = [s for s in logged if s <= max_steps and s not in ok]
    why_not = (
        f"; s ∈ {failed} excluded: spread across architectures within {NOISE_FACTOR:g}× seed noise"
        if failed
        else ""
    )
    if not ok:
        return (
            None,
            f"no s ≤ {max_steps} has a spread across architectures above {NOISE_FACTOR:g}× its seed noise",
        )
    for s in sorted(ok):
        at_s = [r for r in rows if r["s"] == s]
        if all(r["tau_b"] >= tau and r["w_regret"] <= 1e-12 for r in at_s):
            taus = ", ".join(f"{r['theta']} {r['tau_b']:.2f}" for r in at_s)
            return s, (
                f"the smallest qualifying s with τ_b ≥ {tau} ({taus}) whose pick is the long runs' best "
                f"under every θ{why_not}"
            )
    s = max(ok)
    taus = ", ".join(f"{r['theta']} {r['tau_b']:.2f}" for r in rows if r["s"] == s)
    return s, (
        f"no qualifying s ≤ {max_steps} reaches τ_b ≥ {tau} with zero W-regret under every θ; the largest "
        f"qualifying s is used (τ_b {taus}){why_not}"
    )


def tau_figure(
    rows: Sequence[dict], noise: Sequence[dict], final_steps: int, chosen: dict[str, int]
) -> Figure:
    """Per init and θ against s: τ_b (95% CI), W-regret, and ê's spread across architectures over its
    seed noise. `rows`/`noise` carry an "init" key; `chosen`: the s each init's FPTAS used."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 3.8))
    lines = list(dict.fromkeys((r["init"], r["theta"]) for r in rows))
    for k, (init, theta) in enumerate(lines):
        mine = [r for r in rows if (r["init"], r["theta"]) == (init, theta)]
        s = [r["s"] * (1.03 ** (k - (len(lines) - 1) / 2)) for r in mine]  # dodge the error bars
        tau = [r["tau_b"] for r in mine]
        err = [[r["tau_b"] - r["ci_low"] for r in mine], [r["ci_high"] - r["tau_b"] for r in mine]]
        style = "-" if init == "random" else "--"
        left.errorbar(s, tau, yerr=err, marker="o", capsize=3, ls=style, label=f"{init}, {theta}")
        middle.plot([r["s"] for r in mine], [r["w_regret"] for r in mine], marker="o", ls=style)
        spread = [n for n in noise if (n["init"], n["theta"]) == (init, theta)]
        ratio = [n["std_across_archs"] / n["mean_std_over_seeds"] for n in spread]
        right.plot([n["s"] for n in spread], ratio, marker="o", ls=style)
    for init, s in chosen.items():
        for ax in (left, middle, right):
            ax.axvline(s, color="grey", ls=":" if init == "random" else "-.", lw=1)
    left.axhline(0, color="grey", lw=0.8)
    left.set(xscale="log", xlabel="s (steps)", ylabel="Kendall τ_b", ylim=(-1.05, 1.05))
    left.set_title(f"ê_s against the loss after {final_steps} steps")
    left.legend(loc="lower right", fontsize=7)
    middle.set(xscale="log", xlabel="s (steps)", ylabel="1 − W(pick) / W(best)", ylim=(-0.02, None))
    middle.set_title("W lost by choosing with ê_s")
    right.axhline(NOISE_FACTOR, color="tab:red", lw=1, label=f"{NOISE_FACTOR:g}× noise")
    right.set(xscale="log", yscale="log", xlabel="s (steps)", ylabel="spread / seed noise")
    right.set_title("ê's spread across ξ over its seed noise")
    right.legend(loc="best", fontsize=7)
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
