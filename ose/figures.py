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
from ose.atomic import atomic_path  # noqa: E402
from ose.costs import param_count  # noqa: E402
from ose.fptas import best_per_candidate  # noqa: E402


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
    front_mask: `ose.fptas.pareto_front(rows)`; source_point: an `ose.fptas.Point` or
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
    """The Agora toy example (`ose.torus.torus_experiment`), seen from above the torus.

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


def speedup_figure(speedup_rows: Sequence[dict], paper: dict[str, float]) -> Figure:
    """Measured speed-ups (`ose.bench.speedups`) beside the paper's claims, one group per comparison.

    A comparison is labelled "<model> vs <reference>"; `paper` maps such labels to the paper's
    claimed speed-up (e.g. `ose.paper.SPEEDUPS`) and is drawn as a hatched grey bar labelled
    "paper". Each measured (batch, seq) cell is one bar, with the interquartile spread as an error
    bar when the rows carry it. A claim with no measurement of its own still gets its group, so
    nothing the paper says is dropped silently.
    """
    measured = [r for r in speedup_rows if r["model"] != r["reference"]]
    groups = list(dict.fromkeys([_comparison(r) for r in measured] + list(paper)))
    if not groups:
        raise ValueError("speedup_rows and paper are both empty: nothing to draw")
    cells = sorted({(int(r["batch"]), int(r["seq"])) for r in measured})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    slots = len(cells) + 1  # one bar per cell, then the paper's
    width = 0.8 / slots
    fig, ax = plt.subplots(figsize=(max(6.5, 1.4 * len(groups) * slots / 2 + 3), 4.8))
    for k, cell in enumerate(cells):
        xs, ys, low, high = [], [], [], []
        for g, group in enumerate(groups):
            for r in measured:
                if _comparison(r) == group and (int(r["batch"]), int(r["seq"])) == cell:
                    value = float(r["speedup"])
                    xs.append(g - 0.4 + (k + 0.5) * width)
                    ys.append(value)
                    low.append(value - float(r.get("speedup_low", value)))
                    high.append(float(r.get("speedup_high", value)) - value)
        bars = ax.bar(
            xs,
            ys,
            width,
            color=colours[k % len(colours)],
            alpha=0.85,
            label=f"ours, batch {cell[0]} × seq {cell[1]}",
            yerr=[low, high],
            capsize=3,
        )
        ax.bar_label(bars, labels=[f"{y:.1f}×" for y in ys], fontsize=7, padding=2)
    claims = [(g, paper[group]) for g, group in enumerate(groups) if group in paper]
    if claims:
        xs = [g - 0.4 + (len(cells) + 0.5) * width for g, _ in claims]
        ys = [float(v) for _, v in claims]
        bars = ax.bar(
            xs, ys, width, color="lightgrey", edgecolor="black", hatch="//", label="paper (claimed)"
        )
        ax.bar_label(bars, labels=[f"paper {y:g}×" for y in ys], fontsize=7, padding=2)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="no speed-up")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}×"))
    ax.set_xticks(range(len(groups)), groups, rotation=15, ha="right")
    ax.set(
        ylabel="speed-up (reference latency / model latency)",
        title="CPU speed-up, ours (measured in one run) vs the paper",
    )
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    return fig


def latency_figure(rows: Sequence[dict]) -> Figure:
    """Median latency per model at each (batch, seq) cell (`ose.bench.benchmark_models` rows),
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


def finetune_scores(result: dict) -> Figure:
    """Test score of the source, the plain student and the student with Agora, one dot per seed."""
    labels = {"source": "source", "student_plain": "student\n(plain)", "student_agora": "student\n(Agora)"}
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for x, key in enumerate(labels):
        scores = result[key]["scores"]
        ax.bar(x, result[key]["mean"], color=f"C{x}", alpha=0.45, yerr=result[key]["std"], capsize=6)
        ax.scatter([x] * len(scores), scores, color=f"C{x}", zorder=3, s=22)
    ax.set_xticks(range(len(labels)), list(labels.values()))
    ax.set(
        ylabel=f"test {result['metric']}",
        title=f"{result['task']}: mean ± std over {len(result['source']['scores'])} seeds",
    )
    low = min(min(result[k]["scores"]) for k in labels)
    ax.set_ylim(max(0.0, low - 0.1), None)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
