"""Figures, one function per figure, each returning a matplotlib Figure for the notebook to show."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker  # noqa: E402

matplotlib.use("Agg")  # headless: papermill and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ose.arch import Arch, Embedding  # noqa: E402
from ose.pipeline.atomic import atomic_path  # noqa: E402
from ose.search.fptas import best_per_candidate  # noqa: E402
from ose.search.objectives import param_count  # noqa: E402


def save(fig: Figure, path) -> None:
    """Save a figure atomically (a reader never sees half a PNG); the format is the suffix's."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=120, bbox_inches="tight")


def predicted_vs_measured(fits: Sequence) -> Figure:
    """Cost model prediction against measured latency, one panel per space, held-out marked."""
    fig, axes = plt.subplots(1, len(fits), figsize=(5.5 * len(fits), 5), squeeze=False)
    for ax, fit in zip(axes[0], fits, strict=True):
        for split, marker, colour in (("fit", "o", "tab:blue"), ("held-out", "s", "tab:orange")):
            rows = [r for r in fit.rows if r["split"] == split]
            ax.scatter(
                [r["median_ms"] for r in rows],
                [r["predicted_ms"] for r in rows],
                marker=marker,
                color=colour,
                label=f"{split} ({len(rows)})",
                alpha=0.8,
            )
        values = [r["median_ms"] for r in fit.rows] + [r["predicted_ms"] for r in fit.rows]
        lo, hi = min(values) * 0.8, max(values) * 1.2
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="y = x")
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel="measured latency (ms)",
            ylabel="predicted latency (ms)",
            title=f"{fit.space} space: held-out MAPE {fit.mape_heldout:.1f}% (fit {fit.mape_fit:.1f}%)",
        )
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3, which="both")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    return fig


def latency_vs_dimensions(fits: Sequence) -> Figure:
    """Measured latency against each of D, A, H, I, one row per space, coloured by depth."""
    dims = (
        ("depth", "D (layers)"),
        ("heads", "A (heads)"),
        ("hidden", "H (hidden size)"),
        ("intermediate", "I (intermediate size)"),
    )
    fig, axes = plt.subplots(len(fits), 4, figsize=(16, 3.8 * len(fits)), squeeze=False)
    for row_axes, fit in zip(axes, fits, strict=True):
        depth = np.array([r["depth"] for r in fit.rows])
        latency = np.array([r["median_ms"] for r in fit.rows])
        for ax, (key, label) in zip(row_axes, dims, strict=True):
            x = np.array([r[key] for r in fit.rows])
            points = ax.scatter(x, latency, c=depth, cmap="viridis", s=22)
            ax.set(xlabel=label, ylabel="latency (ms)", yscale="log")
            ax.set_title(f"{fit.space} space", fontsize=10)
            ax.grid(alpha=0.3)
        fig.colorbar(points, ax=row_axes[-1], label="D")
    fig.tight_layout()
    return fig


def size_vs_cost(
    space_name: str, space: Sequence[Arch], model, embedding: Embedding, marks: dict[str, Arch]
) -> Figure:
    """p(ξ) against predicted i(ξ) over a whole space: the plane the FPTAS searches."""
    p = np.array([param_count(a, embedding).total for a in space]) / 1e6
    i = model.predict_many(space)
    depth = np.array([a.depth for a in space])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    points = ax.scatter(p, i, c=depth, cmap="viridis", s=14, alpha=0.8)
    for label, arch in marks.items():
        ax.scatter(
            [param_count(arch, embedding).total / 1e6],
            [model.predict(arch)],
            marker="*",
            s=220,
            color="tab:red",
            edgecolor="black",
            zorder=3,
        )
        ax.annotate(
            label,
            (param_count(arch, embedding).total / 1e6, model.predict(arch)),
            textcoords="offset points",
            xytext=(6, -12),
            fontsize=9,
        )
    ax.set(
        xlabel="p(ξ): parameters (millions)",
        ylabel="i(ξ): predicted latency (ms)",
        title=f"{space_name} space: {len(space)} architectures",
    )
    fig.colorbar(points, ax=ax, label="D")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def training_curves(history: Sequence[dict], title: str, metric: str = "masked_acc") -> Figure:
    """Training loss per step (and its running mean) beside the held-out metric at each evaluation."""
    steps = [h for h in history if "loss" in h]
    evals = [h for h in history if metric in h]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.array([h["step"] for h in steps])
    loss = np.array([h["loss"] for h in steps])
    left.plot(x, loss, color="tab:blue", alpha=0.35, lw=1, label="per step")
    window = max(1, len(loss) // 20)
    if len(loss) >= window:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        left.plot(x[window - 1 :], smooth, color="tab:blue", lw=2, label=f"mean of {window}")
    left.set(xlabel="step", ylabel="training loss", title=title)
    left.legend()
    left.grid(alpha=0.3)
    right.plot([h["step"] for h in evals], [h[metric] for h in evals], marker="o", color="tab:green")
    right.set(xlabel="step", ylabel=f"held-out {metric.replace('_', ' ')}", title="held-out evaluation")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _chosen_row(rows: Sequence[dict], chosen_name: str) -> dict:
    for row in rows:
        if row["arch"] == chosen_name:
            return row
    raise ValueError(f"chosen_name {chosen_name!r} is not among the evaluated architectures")


def pareto_plot(
    rows: Sequence[dict], front_mask: Sequence[bool], chosen_name: str, source_point=None
) -> Figure:
    """The evaluated points in the (p, i) plane, coloured by ê, with the Pareto front and the choice.

    rows: dicts with "arch", "p", "i", "error" (e.g. `FptasResult.rows` or one row per candidate);
    front_mask: `ose.search.fptas.pareto_front(rows)`; source_point: an `ose.search.fptas.Point` or
    (label, p, i), drawn as a reference.
    """
    if len(front_mask) != len(rows):
        raise ValueError(f"front_mask has {len(front_mask)} entries for {len(rows)} rows")
    p = np.array([r["p"] for r in rows], dtype=float) / 1e6
    i = np.array([r["i"] for r in rows], dtype=float)
    error = np.array([r["error"] for r in rows], dtype=float)
    front = np.asarray(front_mask, dtype=bool)
    fig, ax = plt.subplots(figsize=(7, 5.2))
    points = ax.scatter(p, i, c=error, cmap="viridis", s=26, alpha=0.9, zorder=2)
    if front.any():
        order = np.lexsort((i[front], p[front]))
        ax.plot(p[front][order], i[front][order], color="tab:red", lw=1, ls="--", alpha=0.6, zorder=1)
        ax.scatter(
            p[front],
            i[front],
            s=70,
            facecolor="none",
            edgecolor="tab:red",
            lw=1.2,
            zorder=3,
            label=f"Pareto front in (p, i, ê) ({int(front.sum())})",
        )
    chosen = _chosen_row(rows, chosen_name)
    ax.scatter(
        [chosen["p"] / 1e6],
        [chosen["i"]],
        marker="*",
        s=320,
        color="gold",
        edgecolor="black",
        zorder=4,
        label=f"chosen: {chosen_name}",
    )
    ax.annotate(chosen_name, (chosen["p"] / 1e6, chosen["i"]), textcoords="offset points", xytext=(8, 6))
    if source_point is not None:
        if hasattr(source_point, "arch"):
            label, sp, si = f"source {source_point.arch.name}", source_point.p, source_point.i
        else:
            label, sp, si = source_point
        ax.scatter(
            [sp / 1e6], [si], marker="D", s=70, color="tab:grey", edgecolor="black", zorder=4, label=label
        )
    ax.set(
        xlabel="p(ξ): parameters (millions)",
        ylabel="i(ξ): inference cost (ms)",
        title=f"FPTAS: {len(rows)} evaluated points",
    )
    fig.colorbar(points, ax=ax, label="ê(ξ): surrogate error")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def w_plot(rows: Sequence[dict], chosen_name: str) -> Figure:
    """W of every evaluated candidate (its best θ as a bar, every θ as a dot), candidates in p order."""
    best = sorted(best_per_candidate(rows), key=lambda r: (r["p"], r["i"], r["arch"]))
    _chosen_row(best, chosen_name)
    names = [r["arch"] for r in best]
    position = {name: k for k, name in enumerate(names)}
    fig, ax = plt.subplots(figsize=(max(6.5, min(16, 0.25 * len(best))), 4.5))
    colours = ["tab:red" if n == chosen_name else "tab:blue" for n in names]
    ax.bar(range(len(best)), [r["w"] for r in best], color=colours, alpha=0.75, label="max over θ")
    ax.scatter(
        [position[r["arch"]] for r in rows],
        [r["w"] for r in rows],
        s=8,
        color="black",
        zorder=3,
        label="each θ",
    )
    k = position[chosen_name]
    ax.annotate(
        chosen_name, (k, best[k]["w"]), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=9
    )
    if len(best) <= 40:
        ax.set_xticks(range(len(best)), names, rotation=90, fontsize=7)
    ax.margins(y=0.12)  # room for the chosen candidate's label
    ax.set(
        xlabel="candidate, in (p, i) order",
        ylabel="W(ξ)",
        title=f"W-coefficient of {len(best)} candidates; chosen {chosen_name}",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def epsilon_sweep_plot(sweep_rows: Sequence[dict]) -> Figure:
    """Approximation ratio W(ε)/W(ε = 1) against ε, beside the trainings (and seconds) each ε costs."""
    eps = np.array([r["epsilon"] for r in sweep_rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(eps, [r["approx_ratio"] for r in sweep_rows], marker="o", color="tab:blue")
    left.axhline(1.0, color="grey", ls="--", lw=1)
    left.set(
        xlabel="ε (interval size)", ylabel="W(ε) / W(ε = 1)", title="approximation ratio", ylim=(0, 1.08)
    )
    left.grid(alpha=0.3)
    right.plot(eps, [r["n_trainings"] for r in sweep_rows], marker="o", color="tab:green", label="trainings")
    right.set(xlabel="ε (interval size)", ylabel="trainings ⌈|Ξ|/ε⌉·|Θ|", title="search cost")
    right.grid(alpha=0.3)
    seconds = [r.get("seconds") for r in sweep_rows]
    if all(s is not None for s in seconds):
        twin = right.twinx()
        twin.plot(eps, seconds, marker="s", ls=":", color="tab:orange", label="seconds")
        twin.set_ylabel("training time (s)")
        lines = right.get_lines() + twin.get_lines()
        right.legend(lines, [line.get_label() for line in lines], fontsize=8)
    else:
        right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pretraining_curves(
    histories: dict[str, Sequence[dict]], reference: dict[str, float] | None = None
) -> Figure:
    """Training loss and held-out masked-LM metrics of several runs, with an optional reference
    (e.g. the teacher) drawn as horizontal lines."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (label, history) in zip(colours, histories.items(), strict=False):
        steps = [h for h in history if "loss" in h]
        loss = np.array([h["loss"] for h in steps])
        window = max(1, len(loss) // 25)
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        axes[0].plot([h["step"] for h in steps][window - 1 :], smooth, color=colour, label=label)
        evals = [h for h in history if "masked_acc" in h]
        for ax, key in ((axes[1], "mlm_ce"), (axes[2], "masked_acc")):
            ax.plot(
                [h["step"] for h in evals], [h[key] for h in evals], marker="o", color=colour, label=label
            )
    if reference:
        for ax, key in ((axes[1], "mlm_ce"), (axes[2], "masked_acc")):
            if key in reference:
                ax.axhline(reference[key], color="grey", ls="--", lw=1, label="teacher")
    axes[0].set(xlabel="step", ylabel="training loss (running mean)", title="training loss")
    axes[1].set(xlabel="step", ylabel="held-out masked-LM cross-entropy", title="held-out cross-entropy")
    axes[2].set(xlabel="step", ylabel="held-out masked-token accuracy", title="held-out accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def torus_figure(result: dict) -> Figure:
    """The Agora toy example (`ose.finetuning.torus.torus_experiment`), seen from above the torus.

    Left: the test sample coloured by true sector (faint), the non-representative training sample
    and the points Agora added near the dev mistakes (labelled by S). Middle: test predictions
    without and with Agora, wrong ones marked. Right: test accuracy of both (and of the D ∪ E
    reference, which sees the dev set's true labels).
    """
    test, train, added = result["test"], result["train"], result["added"]
    cmap = plt.get_cmap("tab10")
    colours = np.array([cmap(k % 10) for k in range(result["sectors"])])
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.6), gridspec_kw={"width_ratios": [1, 1, 1, 0.8]})
    data, without, with_agora, bars = axes
    data.scatter(test["x"], test["y"], c=colours[test["label"]], s=4, alpha=0.15)
    data.scatter(train["x"], train["y"], c=colours[train["label"]], s=28, edgecolor="black", lw=0.6)
    if len(added):
        labels = added["label"].to_numpy().astype(int)
        data.scatter(added["x"], added["y"], c=colours[labels], marker="x", s=22, lw=1.2)
    # grey stand-ins: the legend shows marker shapes, the colours are the sectors
    data.scatter(
        [], [], color="grey", s=28, edgecolor="black", lw=0.6, label=f"training sample ({len(train)})"
    )
    data.scatter([], [], color="grey", marker="x", s=22, lw=1.2, label=f"added, labelled by S ({len(added)})")
    data.set_title("training sample and Agora's points")
    data.legend(loc="lower left", fontsize=8)
    panels = ((without, "pred_without", "without Agora"), (with_agora, "pred_with", "with Agora"))
    for ax, column, name in panels:
        predicted = test[column].to_numpy().astype(int)
        wrong = predicted != test["label"].to_numpy()
        ax.scatter(test["x"], test["y"], c=colours[predicted], s=5, alpha=0.5)
        ax.scatter(test["x"][wrong], test["y"][wrong], marker="x", s=10, color="black", lw=0.6, label="wrong")
        ax.set_title(f"test predictions {name}: {1 - wrong.mean():.1%} correct")
        ax.legend(loc="lower left", fontsize=8)
    for ax in axes[:3]:
        ax.set(xlabel="x", ylabel="y", aspect="equal")
        ax.grid(alpha=0.3)
    names = ["without Agora", "with Agora", "D ∪ E (true labels)"]
    values = [result[k] for k in ("accuracy_without_agora", "accuracy_with_agora", "accuracy_train_plus_dev")]
    bars.bar(names, values, color=["tab:grey", "tab:green", "tab:blue"], alpha=0.8)
    for k, value in enumerate(values):
        bars.annotate(f"{value:.3f}", (k, value), textcoords="offset points", xytext=(0, 4), ha="center")
    bars.axhline(1 / result["sectors"], color="grey", ls="--", lw=1, label="chance")
    bars.set(ylim=(0, 1.08), ylabel="test accuracy (whole torus)", title=f"seed {result['seed']}")
    bars.tick_params(axis="x", labelrotation=20)
    bars.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _comparison(row: dict) -> str:
    return f"{row['model']} vs {row['reference']}"


def speedup_figure(
    speedup_rows: Sequence[dict], paper: dict[str, float], also: Sequence[str] = ("bort-released",)
) -> Figure:
    """The paper's speed claims across the measured grid: one panel per claim, compact.

    `paper` maps "<model> vs <reference>" (e.g. `ose.paper.SPEEDUPS`) to the claimed speed-up.
    In each panel: the claimed model's measured speed-up over the reference at every (batch, seq)
    cell (`ose.speed.ratios.speedups` rows), with its 95% interval as error bars; the models of `also`
    against the same reference, where measured, beside it; the paper's figure as a dashed line.
    A claim with no measurement still gets its panel, saying so, so nothing the paper says is
    dropped silently.
    """
    if not paper:
        raise ValueError("paper is empty: no claim to draw")
    cells = sorted({(int(r["batch"]), int(r["seq"])) for r in speedup_rows})
    position = {cell: k for k, cell in enumerate(cells)}
    fig, axes = plt.subplots(1, len(paper), figsize=(4.3 * len(paper), 3.7), squeeze=False)
    for ax, (label, claimed) in zip(axes[0], paper.items(), strict=True):
        model, reference = label.split(" vs ")
        series = [model] + [m for m in also if m != model]
        width = 0.8 / len(series)
        drawn = False
        for k, name in enumerate(series):
            mine = sorted(
                (r for r in speedup_rows if (r["model"], r["reference"]) == (name, reference)),
                key=lambda r: position[(int(r["batch"]), int(r["seq"]))],
            )
            if not mine:
                continue
            xs = [position[(int(r["batch"]), int(r["seq"]))] - 0.4 + (k + 0.5) * width for r in mine]
            ys = np.array([float(r["speedup"]) for r in mine])
            low = ys - np.array([float(r["ci_low"]) for r in mine])
            high = np.array([float(r["ci_high"]) for r in mine]) - ys
            ax.errorbar(
                xs,
                ys,
                yerr=[low, high],
                fmt="o" if k == 0 else "s",
                ms=5,
                capsize=4,
                color=f"C{k}",
                label=name,
            )
            for x, y, h in zip(xs, ys, high, strict=True):
                ax.annotate(
                    f"{y:.1f}×",
                    (x, y + h),
                    textcoords="offset points",
                    xytext=(0, 3),
                    ha="center",
                    fontsize=7,
                )
            drawn = True
        ax.axhline(claimed, color="black", ls="--", lw=1)
        ax.annotate(
            f"paper {claimed:g}×",
            (1, claimed),
            xycoords=("axes fraction", "data"),
            xytext=(-3, 3),
            textcoords="offset points",
            ha="right",
            fontsize=8,
        )
        if not drawn:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="grey")
        ax.set_xticks(range(len(cells)), [f"{b}×{s}" for b, s in cells])
        ax.set_xlim(-0.6, max(len(cells), 1) - 0.4)
        ax.set_ylim(0, max([claimed, *ax.get_ylim()]) * 1.12)
        ax.set(xlabel="batch × sequence length", ylabel=f"speed-up over {reference}", title=label)
        ax.grid(alpha=0.3, axis="y")
        if drawn:
            ax.legend(fontsize=7, loc="lower left")
    threads = {int(r["threads"]) for r in speedup_rows if "threads" in r}
    setting = f", {threads.pop()} threads" if len(threads) == 1 else ""
    fig.suptitle(f"CPU speed-up with 95% bootstrap intervals over rounds{setting}", fontsize=10)
    fig.tight_layout()
    return fig


def latency_figure(rows: Sequence[dict]) -> Figure:
    """Median latency per model at each (batch, seq) cell (`ose.speed.harness.benchmark_models` rows),
    log scale, with the interquartile range as error bars."""
    if not rows:
        raise ValueError("rows is empty: nothing to draw")
    cells = sorted({(int(r["batch"]), int(r["seq"])) for r in rows})
    position = {cell: k for k, cell in enumerate(cells)}
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(cells) + 4), 4.8))
    for name in models:
        mine = sorted(
            (r for r in rows if r["model"] == name), key=lambda r: position[(int(r["batch"]), int(r["seq"]))]
        )
        median = np.array([float(r["median_ms"]) for r in mine])
        if all("q1_ms" in r and "q3_ms" in r for r in mine):
            low = median - np.array([float(r["q1_ms"]) for r in mine])
            high = np.array([float(r["q3_ms"]) for r in mine]) - median
        else:
            low = high = np.array([float(r["iqr_ms"]) / 2 for r in mine])
        ax.errorbar(
            [position[(int(r["batch"]), int(r["seq"]))] for r in mine],
            median,
            yerr=[np.minimum(low, median * 0.999), high],
            marker="o",
            ls=":",  # the cells are categories; the line only helps the eye follow one model
            capsize=3,
            label=name,
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    low, high = ax.get_ylim()
    if high / low < 20:  # within about a decade the log axis has no major tick to read: label the minor ones
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    else:
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(range(len(cells)), [f"{b} × {s}" for b, s in cells])
    ax.set(
        xlabel="batch × sequence length",
        ylabel="median latency (ms), IQR bars",
        title=f"CPU latency, {rows[0].get('threads', '?')} thread(s)",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def dose_response(rows: list[dict], task: str) -> Figure:
    """Agora − plain and Agora − control (test points, mean and 95% t interval over paired seeds)
    against the train size, one panel per student (rows: `ose.stages.finetune.dose_rows`)."""
    students = list(dict.fromkeys(r["student"] for r in rows)) or ["-"]
    fig, axes = plt.subplots(1, len(students), figsize=(5.2 * len(students), 3.8), squeeze=False)
    for ax, student in zip(axes[0], students, strict=True):
        mine = sorted((r for r in rows if r["student"] == student), key=lambda r: r["train size"])
        sizes = [r["train size"] for r in mine]
        for j, (name, dodge) in enumerate((("agora − plain", 0.97), ("agora − control", 1.03))):
            means = np.array([r[f"{name} (points)"] for r in mine], dtype=float)
            lows = np.array([np.nan if r[f"{name} CI low"] is None else r[f"{name} CI low"] for r in mine])
            highs = np.array([np.nan if r[f"{name} CI high"] is None else r[f"{name} CI high"] for r in mine])
            ax.errorbar(
                [x * dodge for x in sizes], means, yerr=[means - lows, highs - means], marker="o",
                capsize=4, color=f"C{j + 3}", label=name,
            )  # fmt: skip
        chance = [r["train size"] for r in mine if r.get("plain at chance")]
        if chance:
            ax.scatter(chance, [0] * len(chance), marker="x", color="0.3", zorder=4, label="plain at chance")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xscale="log", xlabel="train size (balanced sample)", ylabel="test score difference (points)")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_title(f"{task}, student {student}")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def finetune_scores(result: dict) -> Figure:
    """Stage finetune's figure from its metrics (`ose.stages.finetune.Result` as a dict).

    Left: test score per seed of S and of each student's arms (plain, agora, control), a seed's
    arms joined by a line. Right: the paired differences Agora − plain and Agora − control in points
    (×100), one dot per seed, the mean with its 95% t interval. At most 1,440 px wide at dpi 120.
    """
    students, seeds = result["students"], result["seeds"]
    arms = ("plain", "agora", "control")
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(min(12.0, 4.5 + 2.2 * len(students)), 4.4), gridspec_kw={"width_ratios": [3, 2]}
    )
    positions, labels = [0.0], ["S\n(labeller)"]
    left.scatter([0.0] * len(seeds), result["labeller"]["scores"], color="0.4", s=18, zorder=3)
    for k, student in enumerate(students):
        xs = [1.2 + 3.6 * k + j for j in range(len(arms))]
        scores = np.array([result["arms"][student][arm]["scores"] for arm in arms])  # (arms, seeds)
        for seed_scores in scores.T:
            left.plot(xs, seed_scores, color="0.75", lw=0.8, zorder=1)
        for j in range(len(arms)):
            left.scatter([xs[j]] * len(seeds), scores[j], color=f"C{j}", s=18, zorder=3)
            left.hlines(scores[j].mean(), xs[j] - 0.3, xs[j] + 0.3, color=f"C{j}", lw=2)
        positions += xs
        labels += list(arms)
        left.text(xs[1], -0.13, student, transform=left.get_xaxis_transform(), ha="center", fontsize=9)
    left.set_xticks(positions, labels, fontsize=8)
    left.set(ylabel=f"test {result['metric']}", title=f"{result['task']}: {len(seeds)} paired seeds")
    left.grid(axis="y", alpha=0.3)

    ticks, names = [], []
    for k, student in enumerate(students):
        for j, (contrast, effect) in enumerate(result["effects"][student].items()):
            a, b = contrast.split("_vs_")
            y = k * (len(result["effects"][student]) + 1) + j
            scores = result["arms"][student]
            d = 100 * (np.array(scores[a]["scores"]) - np.array(scores[b]["scores"]))
            right.scatter(d, [y] * len(d), color=f"C{j + 3}", s=14, alpha=0.6, zorder=2)
            if effect["n"] > 1 and effect["ci_low"] is not None:
                mean, low, high = (100 * effect[key] for key in ("mean", "ci_low", "ci_high"))
                right.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="D", color="black", capsize=4)
            ticks.append(y)
            names.append(f"{student}: {a} − {b}")
    right.set_yticks(ticks, names, fontsize=8)
    right.invert_yaxis()
    right.axvline(0, color="0.3", lw=1)
    right.set(xlabel="paired difference (points)", title="mean and 95% CI; dots: seeds")
    right.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
