"""Stage `extract`: the FPTAS over a space, its exhaustive optimum, the ε-sweep, the extracted ξ.

ê of a (ξ, θ) pair is deterministic for a fixed seed, so one exhaustive table (ε = 1, computed
once over torchrun workers, `ose.surrogate`) gives the FPTAS answer for every ε and for other
exponents of W without retraining (`ose.fptas.select_from_table`, `ose.fptas.epsilon_sweep`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from operator import itemgetter
from pathlib import Path

import matplotlib.pyplot as plt

from ose import extract, figures, fptas
from ose.arch import Arch
from ose.cost_model import CostModel
from ose.data import load_blocks
from ose.machine import machine_info
from ose.params import Params
from ose.paths import resolve
from ose.results import StageResult, markdown_table, write_table
from ose.surrogate import SurrogateJob, evaluate_table, worker_seconds

SWEEP_SHOWN_COLUMNS = ["epsilon", "n_candidates", "n_trainings", "arch", "w", "approx_ratio", "seconds"]
CANDIDATE_COLUMNS = ["arch", "p", "i", "theta", "error", "w", "pareto", "fptas_candidate"]
TOP_COLUMNS = ["arch", "p", "i", "theta", "error", "w", "pareto"]
TOP = 10  # candidates shown, by W


@dataclass(frozen=True)
class Paths:
    teacher_dir: str | Path = "models/teacher"
    corpus_dir: str | Path = "data/corpus"
    cost_model_dir: str | Path = "models/costs"
    sample_file: str | Path = "data/extract/sample.pt"
    surrogate_dir: str | Path = "data/extract/surrogate"
    extracted_dir: str | Path = "models/extracted"
    metrics_file: str | Path = "reports/metrics/extract.json"
    tables_dir: str | Path = "reports/tables"
    figures_dir: str | Path = "reports/figures"


@dataclass(frozen=True)
class Result(StageResult):
    profile: str
    arch: str
    w: float
    surrogate_error: float  # not "error": `dvc metrics show` reads that key as a failure
    theta: str
    epsilon: int
    n_space: int
    n_candidates: int
    n_trainings: int
    approx_ratio: float  # W(ε) / W(ε = 1), 1 when both are 0 (`ose.fptas.epsilon_sweep`)
    exhaustive_arch: str
    exhaustive_w: float
    exhaustive_trainings: int
    seconds: float | None  # training time of the FPTAS's own candidates (None without timings)
    exhaustive_seconds: float
    table_wall_seconds: float  # from the rows: a cached re-run reports the same
    nproc: int
    params: int
    params_vs_source: float
    predicted_latency_ms: float
    latency_vs_source: float
    smaller_and_faster_than_source: bool
    pareto_front_size: int
    chosen_on_pareto_front: bool
    machine: dict


def sweep_epsilons(sweep: list[int], epsilon: int) -> list[int]:
    """The ε of the sweep: those asked for, the chosen ε and 1, each once, in increasing order."""
    return sorted(set(sweep) | {1, epsilon})


def sweep_row(sweep: list[dict], epsilon: int) -> dict:
    return next(r for r in sweep if r["epsilon"] == epsilon)


def comparison_rows(chosen: fptas.FptasResult, optimum: fptas.FptasResult) -> list[dict]:
    """The FPTAS answer beside the exhaustive optimum, with the trainings each costs."""
    return [
        {"search": f"FPTAS, ε = {chosen.epsilon}", **chosen.best.as_dict(), "trainings": chosen.n_trainings},
        {"search": "exhaustive (ε = 1)", **optimum.best.as_dict(), "trainings": optimum.n_trainings},
    ]


def exponent_rows(points, table, epsilon: int, max_point, triples=extract.EXPONENT_ABLATION) -> list[dict]:
    """Per exponent triple of W: the optimum, its ê, the FPTAS's choice at ε and W(ε) / W(ε = 1)."""
    rows = []
    for triple in triples:
        optimum, at_eps = fptas.epsilon_sweep(points, table, [1, epsilon], triple, max_point)
        rows.append(
            {
                "exponents (p, i, ê)": str(tuple(triple)),
                "optimum": optimum["arch"],
                "optimum ê": optimum["error"],
                f"FPTAS at ε = {epsilon}": at_eps["arch"],
                "ratio": at_eps["approx_ratio"],
            }
        )
    return rows


def candidate_rows(optimum: fptas.FptasResult, chosen: fptas.FptasResult) -> list[dict]:
    """One row per ξ (its best θ), whether it is on the Pareto front and an FPTAS candidate at ε."""
    rows = fptas.best_per_candidate(optimum.rows)
    candidates = set(chosen.candidates)
    for row, on_front in zip(rows, fptas.pareto_front(rows), strict=True):
        row["pareto"] = on_front
        row["fptas_candidate"] = row["arch"] in candidates
    return rows


def surrogate_job(
    params: Params, space: list[Arch], embedding, paths: Paths, sample_key: str
) -> SurrogateJob:
    cfg = params.extract
    return SurrogateJob(
        archs=[a.name for a in space],
        thetas=[asdict(theta) for theta in cfg.thetas],
        sample_path=str(resolve(paths.sample_file)),
        embedding=asdict(embedding),
        steps=cfg.max_steps,
        weights=asdict(params.distill),
        seed=params.seed,
        shard_dir=str(resolve(paths.surrogate_dir)),
        threads=cfg.threads_per_process,
        sample_key=sample_key,
    )


def _save(fig, path: Path) -> Path:
    figures.save(fig, path)
    plt.close(fig)
    return path


def run(params: Params, paths: Paths = Paths(), progress: bool = True) -> tuple[Result, dict]:
    """Evaluate ê over the space, select, sweep ε, write tables, figures, the extracted ξ and metrics.

    Returns the metrics and what the notebook shows: Markdown tables and PNG paths by name.
    """
    cfg = params.extract
    tables, figs = resolve(paths.tables_dir), resolve(paths.figures_dir)
    teacher, tokenizer, teacher_arch, embedding = extract.load_teacher(resolve(paths.teacher_dir))
    cost_model = CostModel.from_json(resolve(paths.cost_model_dir) / f"{cfg.space}.json")
    space = params.spaces[cfg.space].architectures()
    points = extract.points_of(space, embedding, cost_model)
    source = Arch.parse(params.source.arch)
    source_point = extract.points_of([source], embedding, cost_model)[0]
    max_point = fptas.maximum_point(points, source=source_point)
    print(
        f"profile {params.profile!r}: {len(space)} architectures in spaces.{cfg.space}; "
        f"teacher {teacher_arch.name}; T = (p {max_point[0]:,}, i {max_point[1]:.2f} ms); "
        f"{fptas.n_candidates(len(space), cfg.epsilon)} candidates at ε = {cfg.epsilon}, "
        f"|Θ| = {len(cfg.thetas)}"
    )

    blocks, _ = load_blocks(resolve(paths.corpus_dir))
    sample_key = extract.write_sample(
        teacher,
        tokenizer,
        blocks,
        cfg.max_steps,
        cfg.batch_size,
        cfg.seq_len,
        cfg.heldout_batches,
        params.seed,
        resolve(paths.sample_file),
    )
    start = time.perf_counter()
    table = evaluate_table(
        surrogate_job(params, space, embedding, paths, sample_key), nproc=cfg.nproc, progress=progress
    )
    print(
        f"{len(table)} (ξ, θ) errors in {time.perf_counter() - start:.0f} s with {cfg.nproc} process(es); "
        f"{sum(r['seconds'] for r in table):.0f} s of training in all"
    )

    exponents = tuple(cfg.exponents)
    optimum = fptas.select_from_table(points, table, 1, exponents, max_point)
    chosen = fptas.select_from_table(points, table, cfg.epsilon, exponents, max_point)
    sweep = fptas.epsilon_sweep(
        points, optimum, sweep_epsilons(cfg.sweep_epsilons, cfg.epsilon), exponents, max_point
    )
    write_table(
        tables / "extract_epsilon_sweep",
        sweep,
        title=f"ε-sweep over spaces.{cfg.space} (profile {params.profile})",
        digits=4,
    )
    sensitivity = exponent_rows(points, table, cfg.epsilon, max_point)
    write_table(
        tables / "extract_exponents",
        sensitivity,
        title=f"The choice under other exponents of W, from the same table (profile {params.profile})",
        digits=4,
    )
    per_candidate = candidate_rows(optimum, chosen)
    front = [row["pareto"] for row in per_candidate]
    write_table(
        tables / "extract_candidates",
        per_candidate,
        columns=CANDIDATE_COLUMNS,
        title=f"Every ξ of spaces.{cfg.space}: p, predicted i (ms), best θ, ê, W (profile {params.profile})",
        digits=4,
    )
    top = sorted(per_candidate, key=itemgetter("w"), reverse=True)[:TOP]
    name = chosen.best.arch.name
    shown = {
        "comparison": markdown_table(comparison_rows(chosen, optimum), digits=4),
        "extract_epsilon_sweep": markdown_table(sweep, SWEEP_SHOWN_COLUMNS, digits=4),
        "extract_exponents": markdown_table(sensitivity, digits=4),
        "extract_candidates": markdown_table(top, TOP_COLUMNS, digits=4),
        "extract_pareto.png": _save(
            figures.pareto_plot(per_candidate, front, name, ("source", source_point.p, source_point.i)),
            figs / "extract_pareto.png",
        ),
        "extract_w.png": _save(figures.w_plot(optimum.rows, name), figs / "extract_w.png"),
        "extract_epsilon_sweep.png": _save(
            figures.epsilon_sweep_plot(sweep), figs / "extract_epsilon_sweep.png"
        ),
    }

    description = extract.describe(chosen.best, embedding, cost_model, source)
    extract.write_extracted(description, resolve(paths.extracted_dir))
    result = Result(
        profile=params.profile,
        arch=description["arch"],
        w=chosen.best.w,
        surrogate_error=chosen.best.error,
        theta=chosen.best.theta,
        epsilon=cfg.epsilon,
        n_space=chosen.n_space,
        n_candidates=chosen.n_candidates,
        n_trainings=chosen.n_trainings,
        approx_ratio=sweep_row(sweep, cfg.epsilon)["approx_ratio"],
        exhaustive_arch=optimum.best.arch.name,
        exhaustive_w=optimum.best.w,
        exhaustive_trainings=optimum.n_trainings,
        seconds=sweep_row(sweep, cfg.epsilon)["seconds"],
        exhaustive_seconds=sum(r["seconds"] for r in table),
        table_wall_seconds=worker_seconds(table),
        nproc=cfg.nproc,
        params=description["params"]["total"],
        params_vs_source=description["params_vs_source"],
        predicted_latency_ms=description["predicted_latency_ms"],
        latency_vs_source=description["latency_vs_source"],
        smaller_and_faster_than_source=description["params_vs_source"] < 1
        and description["latency_vs_source"] < 1,
        pareto_front_size=sum(front),
        chosen_on_pareto_front=next(r["pareto"] for r in per_candidate if r["arch"] == description["arch"]),
        machine=machine_info(),
    )
    result.write(resolve(paths.metrics_file))
    return result, shown
