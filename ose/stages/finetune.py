"""Stage `finetune` (notebook 06, one DVC stage per task): Agora against plain fine-tuning and a
compute-matched control, paired by seed, in Agora's regime (a scarce, balanced train sample).

`ose.finetuning.comparison.compare_on_task` on one task prepared by stage `data`, for every student of
`finetune.students` (pretrain's arms), with the teacher's input embeddings as Agora's generator.
Writes the per-seed test scores (paired, one row per seed), every arm's metrics, both loops'
rounds, one figure (scores per seed and the paired differences with their 95% CIs) and the
summary with the paired effects as the stage's metrics (`reports/metrics/finetune/<task>.json`).
Finished (seed, student) records are cached (`Paths.cache_dir`), so a killed run resumes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ose.configs import FineTune
from ose.data.tasks import TaskData, load_task
from ose.finetuning.agora import NearestNeighbourSubstitution, input_embeddings
from ose.finetuning.comparison import (
    ARMS,
    arm_rows,
    arm_scores,
    collapsed_rounds,
    compare_on_task,
    json_ready,
    labeller_scores,
    mean_agreement,
    paired_effects,
    round_rows,
    score_rows,
    summarise,
)
from ose.params import Params
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table, write_table
from ose.reporting import figures
from ose.search.extraction import load_teacher
from ose.training.source_model import resolve_source


@dataclass(frozen=True)
class Paths:
    """The notebook's path parameters (defaults: dvc.yaml's). `metrics_file` and `cache_dir` may
    hold `{task}`."""

    tasks_dir: str | Path = "data/tasks"
    teacher_dir: str | Path = "models/teacher"
    student_dir: str | Path = "models/student"  # arm kd: random init + KD (the paper's recipe)
    student_mlm_only_dir: str | Path = "models/student_mlm_only"  # arm mlm: random init + MLM only
    student_inherited_dir: str | Path = "models/student_inherited"  # arm inherited_kd (an extension)
    cache_dir: str | Path = "data/finetune/{task}"  # one JSON per finished (seed, student)
    metrics_file: str | Path = "reports/metrics/finetune/{task}.json"
    tables_dir: str | Path = "reports/tables"
    figures_dir: str | Path = "reports/figures"

    def task_dir(self, task: str) -> Path:
        return resolve(self.tasks_dir) / task

    def student(self, name: str) -> Path:
        """The directory of the student of `finetune.students` name `name`."""
        dirs = {
            "kd": self.student_dir,
            "mlm": self.student_mlm_only_dir,
            "inherited_kd": self.student_inherited_dir,
        }
        if name not in dirs:
            raise ValueError(
                f"finetune.students: unknown student {name!r}; allowed: {list(FineTune.STUDENTS)}"
            )
        return resolve(dirs[name])

    def cache(self, task: str) -> Path:
        return resolve(str(self.cache_dir).format(task=task))

    def metrics(self, task: str) -> Path:
        return resolve(str(self.metrics_file).format(task=task))

    def scores_table(self, task: str) -> Path:
        """Test scores, one row per seed: S and every student's arms side by side (`.md` + `.csv`)."""
        return resolve(self.tables_dir) / f"finetune_{task}.md"

    def arms_table(self, task: str) -> Path:
        """Every metric of every (seed, student, arm), with dev score, θ, best round, points added."""
        return resolve(self.tables_dir) / f"finetune_{task}_arms.md"

    def rounds_table(self, task: str) -> Path:
        """Agora's and the control's rounds per seed and student (`.md`; `.csv` with every column)."""
        return resolve(self.tables_dir) / f"finetune_{task}_agora_rounds.md"

    def figure(self, task: str) -> Path:
        return resolve(self.figures_dir) / f"finetune_{task}.png"


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/finetune/<task>.json.

    labeller: S's test scores ({scores per seed, mean, std}); arms: student → arm → the same;
    effects: student → contrast (agora_vs_plain, agora_vs_control) → `ose.stats.PairedEffect` as a
    dict (uncorrected p-values: the report corrects across tasks); best_round and points_added:
    student → arm → one per seed; anchor_agreement: student → arm → share of added points S
    labelled as their anchor's true label; collapsed_rounds: student → rounds whose best model
    predicted a single class on dev.
    """

    profile: str
    task: str
    metric: str
    train_size: int
    dev_size: int
    test_size: int
    seeds: list[int]
    students: list[str]
    labeller: dict
    arms: dict
    effects: dict
    best_round: dict
    points_added: dict
    anchor_agreement: dict
    collapsed_rounds: dict
    thetas: list[dict]
    tie_tolerance: float
    replay: int
    generator: dict


def generator_for(params: Params, tokenizer, teacher) -> NearestNeighbourSubstitution:
    """Agora's generator: nearest neighbours in the teacher's input-embedding space."""
    cfg = params.finetune
    return NearestNeighbourSubstitution(
        tokenizer, input_embeddings(teacher), **asdict(cfg.generator), max_tokens=cfg.max_len
    )


def describe(params: Params, data: TaskData) -> str:
    cfg = params.finetune
    return (
        f"profile {params.profile!r}, task {data.name!r}: {len(data.train):,} train (a balanced sample of "
        f"{cfg.train_size} per seed), {len(data.dev):,} dev (sampled to {cfg.dev_size}), {len(data.test):,} "
        f"test; metric {data.main_metric}; seeds {cfg.seeds}; students {cfg.students_for(data.name)}; "
        f"|Θ| = {len(cfg.thetas)}"
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
        {name: paths.student(name) for name in cfg.students_for(task)},
        cfg.source_config(),
        cfg.student_config(),
        [asdict(t) for t in cfg.thetas],
        generator_for(params, tokenizer, teacher),
        cfg.seeds,
        cfg.train_size,
        cfg.dev_size,
        replay=cfg.replay,
        tie_tolerance=cfg.tie_tolerance,
        cache_dir=paths.cache(task),
        progress=progress,
    )


def write_outputs(comparison: dict, result: Result, params: Params, task: str, paths: Paths) -> None:
    """The three tables and the figure (drawn from the metrics)."""
    profile = params.profile
    write_table(
        paths.scores_table(task),
        score_rows(comparison),
        title=f"{task}: test {comparison['metric']} per seed, S and each student's arms (profile {profile})",
        digits=4,
    )
    write_table(
        paths.arms_table(task),
        arm_rows(comparison),
        title=f"{task}: every arm's test metrics, dev score, θ, best round, points added (profile {profile})",
        digits=4,
    )
    write_table(
        paths.rounds_table(task),
        round_rows(comparison),
        title=f"{task}: Agora's and the control's rounds per seed (profile {profile})",
        digits=4,
    )
    fig = figures.finetune_scores(asdict(result))
    figures.save(fig, paths.figure(task))
    plt.close(fig)


def _per_arm(comparison: dict, field: str, arms=ARMS) -> dict:
    by_seed = {(r["student"], r["seed"]): r for r in comparison["records"]}
    return {
        student: {arm: [by_seed[student, s]["arms"][arm][field] for s in comparison["seeds"]] for arm in arms}
        for student in comparison["students"]
    }


def summarise_comparison(comparison: dict, params: Params, task: str) -> Result:
    """The stage's metrics from `compare_on_task`'s result."""
    cfg, students = params.finetune, comparison["students"]
    return Result(
        profile=params.profile,
        task=task,
        metric=comparison["metric"],
        train_size=comparison["train_size"],
        dev_size=comparison["dev_size"],
        test_size=comparison["test_size"],
        seeds=list(comparison["seeds"]),
        students=list(students),
        labeller=summarise(labeller_scores(comparison)),
        arms={s: {arm: summarise(arm_scores(comparison, s, arm)) for arm in ARMS} for s in students},
        effects=json_ready({s: paired_effects(comparison, s) for s in students}),  # inf, NaN: null
        best_round=_per_arm(comparison, "best_round", ("agora", "control")),
        points_added=_per_arm(comparison, "points_added", ("agora", "control")),
        anchor_agreement=json_ready(
            {s: {arm: mean_agreement(comparison, s, arm) for arm in ("agora", "control")} for s in students}
        ),
        collapsed_rounds={s: collapsed_rounds(comparison, s) for s in students},
        thetas=[asdict(t) for t in cfg.thetas],
        tie_tolerance=cfg.tie_tolerance,
        replay=cfg.replay,
        generator=asdict(cfg.generator),
    )


def summary_rows(result: Result) -> list[dict]:
    """Per student and arm (and S): mean and std over seeds and every seed's score."""
    rows = [{"student": "-", "arm": "labeller", **_row(result.labeller)}]
    rows += [
        {"student": student, "arm": arm, **_row(result.arms[student][arm])}
        for student in result.students
        for arm in ARMS
    ]
    return rows


def _row(summary: dict) -> dict:
    return {
        "mean": summary["mean"],
        "std": summary["std"],
        "seeds": ", ".join(f"{s:.4f}" for s in summary["scores"]),
    }


def effect_rows(result: Result) -> list[dict]:
    """Per student and contrast: the paired effect, its 95% CI and uncorrected p-values."""
    return [
        {
            "student": student,
            "contrast": contrast.replace("_vs_", " − "),
            "mean": e["mean"],
            "95% CI": f"[{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]" if e["ci_low"] is not None else "n/a",
            "t-test p": e["t_p"],
            "sign-flip p": e["sign_flip_p"],
            "n": e["n"],
        }
        for student in result.students
        for contrast, e in result.effects[student].items()
    ]


def seconds_rows(comparison: dict) -> list[dict]:
    """Wall seconds of each (seed, student) record when it was computed (cached ones: then)."""
    return [
        {"seed": r["seed"], "student": r["student"], **{f"{k} s": v for k, v in r["seconds"].items()}}
        for r in comparison["records"]
    ]


def run(params: Params, task: str, paths: Paths = Paths(), progress: bool = True) -> tuple[Result, dict]:
    """Run the paired experiment on `task`; write the tables, the figure and the metrics.

    Returns the metrics and what the notebook shows: Markdown tables (`scores`: per seed; `summary`:
    per arm; `effects`; `agora_rounds`; `added`: a few added points; `seconds`) and the figure.
    """
    comparison = compare(params, task, paths, progress)
    result = summarise_comparison(comparison, params, task)
    write_outputs(comparison, result, params, task, paths)
    result.write(paths.metrics(task))
    examples = [
        {"seed": r["seed"], "student": r["student"], **e}
        for r in comparison["records"]
        for e in r["examples"]
    ]
    shown = {
        "scores": markdown_table(score_rows(comparison), digits=4),
        "summary": markdown_table(summary_rows(result), digits=4),
        "effects": markdown_table(effect_rows(result), digits=4),
        "agora_rounds": markdown_table(round_rows(comparison), digits=4),
        "added": markdown_table(examples[:8]) if examples else "",
        "seconds": markdown_table(seconds_rows(comparison), digits=1),
        "figure": paths.figure(task),
    }
    return result, shown
