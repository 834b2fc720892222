"""Stage `finetune` (notebook 06, one DVC stage per task): source vs student plain vs student with Agora.

`ose.comparison.compare_on_task` on one task prepared by stage `data`, with the teacher's input
embeddings as Agora's generator; its per-seed test scores and Agora's rounds as tables, a figure,
and the summary as the stage's metrics (`reports/metrics/finetune/<task>.json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ose import figures
from ose.agora import NearestNeighbourSubstitution, input_embeddings
from ose.comparison import MODELS, compare_on_task
from ose.extract import load_teacher
from ose.machine import machine_info
from ose.params import Params
from ose.paths import resolve
from ose.results import StageResult, markdown_table, write_table
from ose.tasks import TaskData, load_task
from ose.teacher import resolve_source


@dataclass(frozen=True)
class Paths:
    """The notebook's path parameters (defaults: dvc.yaml's). `metrics_file` may hold `{task}`."""

    tasks_dir: str | Path = "data/tasks"
    teacher_dir: str | Path = "models/teacher"
    student_dir: str | Path = "models/student"
    metrics_file: str | Path = "reports/metrics/finetune/{task}.json"
    tables_dir: str | Path = "reports/tables"
    figures_dir: str | Path = "reports/figures"

    def task_dir(self, task: str) -> Path:
        return resolve(self.tasks_dir) / task

    def metrics(self, task: str) -> Path:
        return resolve(str(self.metrics_file).format(task=task))

    def scores_table(self, task: str) -> Path:
        """Test scores per seed and model (`.md`; the `.csv` beside it has every column)."""
        return resolve(self.tables_dir) / f"finetune_{task}.md"

    def rounds_table(self, task: str) -> Path:
        """Agora's rounds per seed (`.md`; the `.csv` beside it has every column)."""
        return resolve(self.tables_dir) / f"finetune_{task}_agora_rounds.md"

    def figure(self, task: str) -> Path:
        return resolve(self.figures_dir) / f"finetune_{task}.png"


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/finetune/<task>.json. Each model's entry is `ose.comparison.summarise`'s
    {scores (one per seed), mean, std}."""

    profile: str
    task: str
    metric: str
    source: dict
    student_plain: dict
    student_agora: dict
    train_size: int
    test_size: int
    points_added_per_seed: dict[str, int]
    agora_rounds_per_seed: dict[str, int]
    thetas: list[dict]
    machine: dict


def generator_for(params: Params, tokenizer, teacher) -> NearestNeighbourSubstitution:
    """Agora's generator: nearest neighbours in the teacher's input-embedding space."""
    cfg = params.finetune
    return NearestNeighbourSubstitution(
        tokenizer, input_embeddings(teacher), **asdict(cfg.generator), max_tokens=cfg.max_len
    )


def describe(params: Params, data: TaskData) -> str:
    cfg = params.finetune
    return (
        f"profile {params.profile!r}, task {data.name!r}: {len(data.train):,} train "
        f"(sampled to {cfg.max_train_examples}), "
        f"{len(data.dev):,} dev, {len(data.test):,} test; metric {data.main_metric}; seeds {cfg.seeds}"
    )


def compare(params: Params, task: str, paths: Paths, progress: bool = True) -> dict:
    """`compare_on_task` with the stage's data, models and settings."""
    cfg = params.finetune
    data = load_task(paths.task_dir(task))
    teacher, tokenizer, _, _ = load_teacher(resolve(paths.teacher_dir))
    if progress:
        print(describe(params, data))
    return compare_on_task(
        data,
        tokenizer,
        resolve_source(params.source.model),
        resolve(paths.student_dir),
        cfg.source_config(),
        cfg.student_config(),
        [asdict(t) for t in cfg.thetas],
        generator_for(params, tokenizer, teacher),
        cfg.seeds,
        cfg.max_train_examples,
        cfg.replay,
        progress,
    )


def round_rows(comparison: dict) -> list[dict]:
    """Agora's log, one row per seed and round, with a `dev <θ>` column per hyperparameter set."""
    return [
        {
            **{k: v for k, v in r.items() if k != "scores"},
            **{f"dev {name}": score for name, score in r["scores"].items()},
        }
        for r in comparison["rounds"]
    ]


def write_outputs(comparison: dict, params: Params, task: str, paths: Paths) -> None:
    """The two tables and the figure."""
    profile = params.profile
    write_table(
        paths.scores_table(task),
        comparison["rows"],
        title=f"{task}: test scores per seed (profile {profile})",
        digits=4,
    )
    write_table(
        paths.rounds_table(task),
        round_rows(comparison),
        title=f"{task}: Agora's rounds per seed (profile {profile})",
        digits=4,
    )
    fig = figures.finetune_scores(comparison)
    figures.save(fig, paths.figure(task))
    plt.close(fig)


def summarise(comparison: dict, params: Params, task: str) -> Result:
    """The stage's metrics from `compare_on_task`'s result."""
    seeds, added = params.finetune.seeds, comparison["added"]
    return Result(
        profile=params.profile,
        task=task,
        metric=comparison["metric"],
        **{name: comparison[name] for name in MODELS},
        train_size=comparison["train_size"],
        test_size=comparison["test_size"],
        points_added_per_seed={str(s): int((added["seed"] == s).sum()) for s in seeds} if len(added) else {},
        agora_rounds_per_seed={str(s): sum(r["seed"] == s for r in comparison["rounds"]) for s in seeds},
        thetas=[asdict(t) for t in params.finetune.thetas],
        machine=machine_info(),
    )


def summary_rows(result: Result) -> list[dict]:
    """Each model's mean and std over seeds, and every seed's score."""
    return [
        {
            "model": name,
            "mean": getattr(result, name)["mean"],
            "std": getattr(result, name)["std"],
            "seeds": ", ".join(f"{s:.4f}" for s in getattr(result, name)["scores"]),
        }
        for name in MODELS
    ]


def run(params: Params, task: str, paths: Paths = Paths(), progress: bool = True) -> tuple[Result, dict]:
    """Compare the three models on `task`; write the tables, the figure and the metrics.

    Returns the metrics and what the notebook shows: Markdown tables (`scores`, `agora_rounds`,
    `added`: a few of the points Agora added, empty when none) and the figure's PNG path (`figure`).
    """
    comparison = compare(params, task, paths, progress)
    write_outputs(comparison, params, task, paths)
    result = summarise(comparison, params, task)
    result.write(paths.metrics(task))
    added = comparison["added"]
    shown = {
        "scores": markdown_table(summary_rows(result), digits=4),
        "agora_rounds": markdown_table(round_rows(comparison), digits=4),
        "added": markdown_table(added.head(8).to_dict(orient="records")) if len(added) else "",
        "figure": paths.figure(task),
    }
    return result, shown
