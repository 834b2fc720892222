"""Stage `finetune` (notebook 06, one DVC stage per task): Agora against plain fine-tuning and a
compute-matched control, paired by seed, in Agora's regime (a scarce, balanced train sample).

`ose.finetuning.comparison.compare_on_sizes` on one task prepared by stage `data`, for every student of
`finetune.students` (pretrain's arms), with the teacher's input embeddings as Agora's generator.
Writes the per-seed test scores (paired, one row per seed), every arm's metrics, both loops'
rounds, one figure (scores per seed and the paired differences with their 95% CIs) and the
summary with the paired effects as the stage's metrics (`reports/metrics/finetune/<task>.json`).
Finished (seed, student) records are cached (`Paths.cache_dir`), so a killed run resumes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt

from ose import paper, verdicts
from ose.configs import FineTune
from ose.data.tasks import TaskData, load_task
from ose.finetuning.comparison import compare_on_sizes, json_ready
from ose.finetuning.effects import (
    ARMS,
    LABELLER_FLOOR,
    arm_field,
    arm_rows,
    arm_scores,
    at_chance,
    collapsed_rounds,
    labeller_below_floor,
    labeller_scores,
    loop_rounds,
    mean_agreement,
    paired_effects,
    round_rows,
    score_rows,
    summarise,
    theta_sizes,
    verdict,
)
from ose.finetuning.generator import NearestNeighbourSubstitution, input_embeddings
from ose.params import Params
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table, write_table
from ose.reporting import figures
from ose.reporting.markdown import claim_row, figure, fmt
from ose.search.extraction import load_teacher
from ose.stats import holm
from ose.training.source_model import resolve_source


class Paths(paths_class("finetune", item="{task}")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`), with
    `{task}` where dvc.yaml has `${item}` (`metrics_file`, `cache_dir`). `student_dir`: arm kd: random
    init + KD (the paper's recipe); `student_mlm_only_dir`: arm mlm: random init + MLM only;
    `student_inherited_dir`: arm inherited_kd (an extension); `cache_dir`: one JSON per finished (seed,
    student)."""

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

    def dose_table(self, task: str) -> Path:
        """Agora − plain and Agora − control per train size and student (`.md` + `.csv`)."""
        return resolve(self.tables_dir) / f"finetune_{task}_dose.md"

    def dose_figure(self, task: str) -> Path:
        return resolve(self.figures_dir) / f"finetune_{task}_dose.png"

    def size_cache(self, task: str, size: int | None, main: int | None) -> Path:
        """One cache folder per train size: the main size's is the task's own (as before the
        dose-response), another size's a `size<N>` folder inside it."""
        return self.cache(task) if size == main else self.cache(task) / f"size{size}"


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
    # Since #25 (a control that differs only in placement, Θ that survives ties, S's floor, the curve):
    pooling: str | None = None
    control_anchor: str | None = None
    chance: float | None = None  # the test split's majority-class share (None: regression)
    labeller_floor: float | None = None
    labeller_below_floor: list | None = None  # seeds whose S is under the floor
    plain_at_chance: dict | None = None  # student → its plain arm's t interval contains chance
    one_class_share: dict | None = None  # student → arm → per seed: share of dev in its majority class
    dev_test_gap: dict | None = None  # student → arm → per seed: dev − test main metric
    theta_sizes: dict | None = None  # student → loop → per seed: |Θ| after each round
    stops: dict | None = None  # student → loop → per seed: why the loop stopped
    sizes: dict | None = None  # train size → {labeller, arms, effects, plain_at_chance, ...}: the curve


def generator_for(params: Params, tokenizer, teacher) -> NearestNeighbourSubstitution:
    """Agora's generator: nearest neighbours in the teacher's input-embedding space."""
    cfg = params.finetune
    return NearestNeighbourSubstitution(
        tokenizer, input_embeddings(teacher), **asdict(cfg.generator), max_tokens=cfg.max_len
    )


def taken(available: int, asked: int | None, how: str) -> str:
    """What a sample of `asked` rows takes from `available`, in words."""
    if asked is None:
        return f"all {available:,} (none asked)"
    if asked >= available:
        return f"all {available:,} ({asked:,} asked)"
    return f"{how} of {asked:,} of {available:,}"


def describe(params: Params, data: TaskData) -> str:
    """The log line of the task's settings (`params.finetune` already the task's: `FineTune.for_task`)."""
    cfg = params.finetune
    train = taken(len(data.train), cfg.train_size, "a balanced sample")
    dev = taken(len(data.dev), cfg.dev_size, "a stratified sample")
    return (
        f"profile {params.profile!r}, task {data.name!r}: train {train} per seed; dev {dev} per seed; "
        f"test all {len(data.test):,}; metric {data.main_metric}; seeds {cfg.seeds}; "
        f"students {cfg.students}; max_len {cfg.max_len}; |Θ| = {len(cfg.thetas)}"
    )


def compare(params: Params, task: str, paths: Paths, progress: bool = True) -> dict[int | None, dict]:
    """`compare_on_sizes` with the stage's data, models and settings: train size → `compare_on_task`'s
    result, at every size of `finetune.train_sizes()` (one pool of workers over all of them)."""
    cfg = params.finetune
    data = load_task(paths.task_dir(task))
    teacher, tokenizer, _, _ = load_teacher(resolve(paths.teacher_dir))
    if progress:
        print(describe(params, data))
        print(f"train sizes {cfg.train_sizes()} (the first is the main table's)")
    return compare_on_sizes(
        data,
        tokenizer,
        resolve_source(params.source.model),
        {name: paths.student(name) for name in cfg.students},
        cfg.source_config(),
        cfg.student_config(),
        [asdict(t) for t in cfg.thetas],
        generator_for(params, tokenizer, teacher),
        cfg.seeds,
        {size: paths.size_cache(task, size, cfg.train_size) for size in cfg.train_sizes()},
        cfg.dev_size,
        replay=cfg.replay,
        tie_tolerance=cfg.tie_tolerance,
        control_anchor=cfg.control_anchor,
        nproc=cfg.nproc,
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


def _per_loop(comparison: dict, field: str) -> dict:
    """student → loop (agora, control) → per seed: `field` of the loop's last round (e.g. `stop`)."""
    return {
        student: {
            loop: [rounds[-1].get(field) for rounds in loop_rounds(comparison, student, loop)]
            for loop in ("agora", "control")
        }
        for student in comparison["students"]
    }


def summarise_comparison(comparison: dict, params: Params, task: str) -> Result:
    """The stage's metrics from `compare_on_task`'s result."""
    cfg, students = params.finetune, comparison["students"]
    chance = comparison.get("chance")
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
        pooling=cfg.pooling,
        control_anchor=cfg.control_anchor,
        chance=chance,
        labeller_floor=LABELLER_FLOOR,
        labeller_below_floor=labeller_below_floor(comparison),
        plain_at_chance={
            s: chance is not None and at_chance(arm_scores(comparison, s, "plain"), chance) for s in students
        },
        one_class_share=json_ready(
            {s: {arm: arm_field(comparison, s, arm, "dev_majority_share") for arm in ARMS} for s in students}
        ),
        dev_test_gap=json_ready(
            {s: {arm: arm_field(comparison, s, arm, "dev_test_gap") for arm in ARMS} for s in students}
        ),
        theta_sizes={
            s: {loop: theta_sizes(comparison, s, loop) for loop in ("agora", "control")} for s in students
        },
        stops=_per_loop(comparison, "stop"),
    )


SIZE_FIELDS = (  # what the curve keeps of each train size's result
    "train_size", "labeller", "arms", "effects", "plain_at_chance", "labeller_below_floor",
    "one_class_share", "dev_test_gap", "anchor_agreement", "points_added",
)  # fmt: skip


def dose_rows(result: Result) -> list[dict]:
    """Per train size and student: S's mean, the plain arm's, and Agora − plain, Agora − control
    (mean, 95% CI, uncorrected sign-flip p) in points."""
    rows = []
    for size, m in (result.sizes or {}).items():
        for student in m["effects"]:
            row = {
                "train size": int(size),
                "student": student,
                "S mean": m["labeller"]["mean"],
                "plain mean": m["arms"][student]["plain"]["mean"],
                "plain at chance": m["plain_at_chance"].get(student),
            }
            for contrast, e in m["effects"][student].items():
                name = contrast.replace("_vs_", " − ")
                row[f"{name} (points)"] = 100 * e["mean"]
                row[f"{name} CI low"] = None if e["ci_low"] is None else 100 * e["ci_low"]
                row[f"{name} CI high"] = None if e["ci_high"] is None else 100 * e["ci_high"]
                row[f"{name} sign-flip p"] = e["sign_flip_p"]
            rows.append(row)
    return sorted(rows, key=lambda r: (r["student"], r["train size"]))


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


def run(params: Params, task: str, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Run the paired experiment on `task`; write the tables, the figure and the metrics.

    Returns the metrics and what the notebook shows: Markdown tables (`scores`: per seed; `summary`:
    per arm; `effects`; `agora_rounds`; `added`: a few added points; `seconds`) and the figure.
    """
    paths = paths or Paths()
    params = replace(params, finetune=params.finetune.for_task(task))
    cfg = params.finetune
    by_size = {
        size: (comparison_at, summarise_comparison(comparison_at, params, task))
        for size, comparison_at in compare(params, task, paths, progress).items()
    }
    comparison, main = by_size[cfg.train_size]
    sizes = {str(size): {k: asdict(r)[k] for k in SIZE_FIELDS} for size, (_, r) in by_size.items()}
    result = replace(main, sizes=json_ready(sizes))
    write_outputs(comparison, result, params, task, paths)
    dose = dose_rows(result)
    write_table(
        paths.dose_table(task),
        dose,
        title=f"{task}: Agora − plain and Agora − control, test points, per train size ({params.profile})",
        digits=2,
    )
    fig = figures.dose_response(dose, task)
    figures.save(fig, paths.dose_figure(task))
    plt.close(fig)
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
        "dose": markdown_table(dose, digits=2),
        "dose_figure": paths.dose_figure(task),
    }
    return result, shown


# --- The report's section and claims rows (`ose.stages.report` assembles the report) ---


def paper_reference_table() -> str:
    """The paper's per-task scores (Bort and BERT-large), labelled as the paper's."""
    rows = [
        {"benchmark": bench, "task": task, "metric": metric, "paper: Bort": bort, "paper: BERT-large": large}
        for bench, table in (("GLUE", paper.GLUE), ("SuperGLUE", paper.SUPERGLUE))
        for task, (metric, bort, large) in table.items()
    ]
    rows += [
        {
            "benchmark": name.split()[0],
            "task": "average",
            "metric": name,
            "paper: Bort": bort,
            "paper: BERT-large": large,
        }
        for name, (bort, large) in paper.AVERAGES.items()
    ]
    return markdown_table(rows)


def _holm_over(members: list[tuple[str, str, dict]]) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """Holm over `members` ((task, train size, summary with "effects")): one family per (student,
    contrast); both the sign-flip and the t-test p corrected. Keys: (task, size, student, contrast)."""
    corrected: dict[tuple[str, str, str, str], dict[str, float]] = {}
    families = {(s, c) for _, _, m in members for s in m["effects"] for c in m["effects"][s]}
    for student, contrast in sorted(families):
        mine = [(name, size, m) for name, size, m in members if student in m["effects"]]
        for test in ("sign_flip_p", "t_p"):
            raw = [m["effects"][student][contrast][test] for _, _, m in mine]
            adjusted = holm([math.nan if p is None else p for p in raw])
            for (name, size, _), p in zip(mine, adjusted, strict=True):
                corrected.setdefault((name, size, student, contrast), {})[test] = p
    return corrected


def _main(name: str, m: Result) -> tuple[str, str, dict]:
    return (name, str(m.train_size), {"effects": m.effects, "plain_at_chance": m.plain_at_chance or {}})


def agora_holm(tasks: dict[str, Result]) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """The main table's question, does Agora help at each task's train size: Holm across the tasks,
    one family per (student, contrast). Keys: (task, size, student, contrast)."""
    return _holm_over([_main(name, m) for name, m in tasks.items()])


def dose_holm(name: str, m: Result) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """The dose-response's question, how Agora's effect varies with the train size: Holm across one
    task's sizes, one family per (student, contrast). (With 7 seeds the sign-flip test's floor is
    2/2^7 = 0.016, so one family over every task and size, 4 members, could reject nothing.)"""
    return _holm_over([(name, size, sm) for size, sm in (m.sizes or {}).items()])


def _uncorrected(effects: dict[str, dict], p_holm: dict[str, float], alpha: float = 0.05) -> str:
    """A note for a contrast whose t interval excludes 0 while the verdict's test (the Holm-corrected
    sign-flip p) does not reach `alpha`: the two readings are stated, not merged."""
    notes = []
    for contrast, e in effects.items():
        low, high = e["ci_low"], e["ci_high"]
        if low is None or math.isnan(low) or p_holm[contrast] < alpha or (low <= 0 <= high):
            continue
        notes.append(
            f"{contrast.replace('_vs_', ' − ')}'s 95% t interval excludes 0 (t-test p = {e['t_p']:.3g} "
            f"uncorrected), but the corrected sign-flip test, the verdict's, gives {p_holm[contrast]:.3g}"
        )
    return "" if not notes else " Note: " + "; ".join(notes) + "."


def _at_chance_line(name: str, size: str, student: str, m: dict) -> str:
    plain = m["arms"][student]["plain"]
    return (
        f"- **{name} ({size} train), student `{student}`**: its plain arm is at chance ({plain['mean']:.3f} "
        "over seeds, a 95% interval that contains the majority-class rate), so no Agora verdict is "
        "stated for it: a student that cannot learn the task says nothing about where new points go."
    )


def _diagnostics(m: Result, student: str) -> str:
    """One student's diagnostics at the main size: rounds, points, labels, Θ, one-class share, gaps."""
    share = m.one_class_share[student] if m.one_class_share else {}
    gap = m.dev_test_gap[student] if m.dev_test_gap else {}

    def mean(values) -> str:
        values = [v for v in values or [] if v is not None and not math.isnan(v)]
        return "n/a" if not values else f"{sum(values) / len(values):.2f}"

    sizes = (m.theta_sizes or {}).get(student, {})
    stops = (m.stops or {}).get(student, {})
    return (
        f"  Agora's best round per seed {m.best_round[student]['agora']} (1 = the plain model), the "
        f"control's {m.best_round[student]['control']}; points added per seed "
        f"{m.points_added[student]['agora']}; "
        f"S agreed with the anchor's true label on {_share(m.anchor_agreement[student]['agora'])} of Agora's "
        f"points and {_share(m.anchor_agreement[student]['control'])} of the control's. Share of dev "
        f"predicted as one class (mean over seeds): plain {mean(share.get('plain'))}, Agora "
        f"{mean(share.get('agora'))}, control {mean(share.get('control'))}; dev − test gap of the main "
        f"metric: plain {mean(gap.get('plain'))}, Agora {mean(gap.get('agora'))}, control "
        f"{mean(gap.get('control'))} (Agora's new points sit near dev points and it picks rounds on dev, "
        f"so its dev score is optimistic; test stays clean). |Θ| after each round, per seed: Agora "
        f"{sizes.get('agora', 'n/a')}, control {sizes.get('control', 'n/a')}; why Agora stopped: "
        f"{sorted(set(x for x in stops.get('agora', []) if x)) or 'n/a'}.\n"
    )


def _agora_task(name: str, m: Result, corrected: dict) -> str:
    """One task's part of the Agora section: scores per seed, paired effects, verdicts, diagnostics,
    and the dose-response over train sizes."""
    arms = ("plain", "agora", "control")
    below = set(m.labeller_below_floor or [])
    seeds = [
        {
            "seed": seed,
            "S (labeller)": f"{m.labeller['scores'][k]:.4f}" + (" ⚠" if seed in below else ""),
            **{f"{s} {arm}": m.arms[s][arm]["scores"][k] for s in m.students for arm in arms},
        }
        for k, seed in enumerate(m.seeds)
    ]
    seeds.append(
        {"seed": "mean", "S (labeller)": f"{m.labeller['mean']:.4f}"}
        | {f"{s} {arm}": m.arms[s][arm]["mean"] for s in m.students for arm in arms}
    )
    size = str(m.train_size)
    effects, verdicts = [], []
    for s in m.students:
        p_holm = {c: corrected[name, size, s, c]["sign_flip_p"] for c in m.effects[s]}
        for contrast, e in m.effects[s].items():
            effects.append(
                {
                    "student": s,
                    "contrast": contrast.replace("_vs_", " − "),
                    "mean (points)": fmt(100 * e["mean"], 2),
                    "95% CI (points)": "n/a"
                    if e["ci_low"] is None
                    else f"[{100 * e['ci_low']:+.2f}, {100 * e['ci_high']:+.2f}]",
                    "t-test p": fmt(e["t_p"], 3),
                    "sign-flip p": fmt(e["sign_flip_p"], 3),
                    "Holm t p": fmt(corrected[name, size, s, contrast]["t_p"], 3),
                    "Holm sign-flip p": fmt(p_holm[contrast], 3),
                }
            )
        if (m.plain_at_chance or {}).get(s):
            verdicts.append(_at_chance_line(name, size, s, {"arms": m.arms}))
        else:
            line = verdict(m.effects[s], p_holm) + _uncorrected(m.effects[s], p_holm)
            verdicts.append(f"- **{name} ({size} train), student `{s}`**: {line}")
        verdicts.append(_diagnostics(m, s))
    labeller = m.labeller
    floor = (
        f" Seeds under the floor of {m.labeller_floor:.2f} that Agora's author asks of S (⚠): "
        f"{sorted(below) or 'none'}."
        if m.labeller_floor is not None
        else ""
    )
    return (
        f"### {name}\n\n{m.metric} on the test split ({m.test_size:,} rows; majority class "
        f"{fmt(m.chance, 3)}); per seed a balanced train sample of {m.train_size:,} and a dev sample of "
        f"{m.dev_size:,}; {len(m.seeds)} seeds; profile `{m.profile}`. The labeller S (the source "
        f"fine-tuned on the same sample, {m.pooling or 'cls'} pooling): {labeller['mean']:.4f} ± "
        f"{labeller['std']:.4f} (min {min(labeller['scores']):.4f}).{floor}\n\n"
        f"{markdown_table(seeds, digits=4)}\n{markdown_table(effects)}\n"
        + "\n".join(verdicts)
        + "\n"
        + figure(f"finetune_{name}.png", f"{name}: test score per seed and arm; paired differences, 95% CI")
        + _dose_section(name, m)
    )


def _dose_section(name: str, m: Result) -> str:
    """The dose-response: per train size, Agora − plain and Agora − control with CIs and the
    corrected p, and a verdict per size (none where the plain arm is at chance)."""
    if not m.sizes or len(m.sizes) < 2:
        return ""
    corrected = dose_holm(name, m)
    rows, lines = [], []
    for size, sm in sorted(m.sizes.items(), key=lambda kv: int(kv[0])):
        for s, effects in sm["effects"].items():
            p_holm = {c: corrected[name, size, s, c]["sign_flip_p"] for c in effects}
            row = {"train size": size, "student": s, "S": fmt(sm["labeller"]["mean"], 3)}
            row["plain"] = fmt(sm["arms"][s]["plain"]["mean"], 3)
            for contrast, e in effects.items():
                label = contrast.replace("_vs_", " − ")
                interval = (
                    "" if e["ci_low"] is None else f" [{100 * e['ci_low']:+.1f}, {100 * e['ci_high']:+.1f}]"
                )
                row[f"{label} (points, 95% CI)"] = f"{100 * e['mean']:+.1f}{interval}"
                row[f"{label} Holm p"] = fmt(p_holm[contrast], 3)
            rows.append(row)
            if sm["plain_at_chance"].get(s):
                lines.append(_at_chance_line(name, size, s, sm))
            else:
                lines.append(f"- **{name} ({size} train), student `{s}`**: {verdict(effects, p_holm)}")
    return (
        f"\n**Does Agora's gain shrink as data grow?** {name} at train sizes "
        f"{', '.join(sorted(m.sizes, key=int))}, the same {len(m.seeds)} paired seeds at each size "
        "(Holm-corrected across this task's sizes):\n\n"
        f"{markdown_table(rows)}\n"
        + "\n".join(lines)
        + "\n\n"
        + figure(f"finetune_{name}_dose.png", f"{name}: Agora's effects against the train size, 95% CI")
    )


def _share(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.0f}%"


def finetune_section(tasks: dict[str, Result]) -> str:
    first = next(iter(tasks.values()))
    thetas = ", ".join(f"{t['name']} ({t['epochs']} epochs)" for t in first.thetas)
    text = (
        "## 5. Fine-tuning with Agora\n\nAgora in the regime it was made for: a scarce, balanced train "
        "sample per seed and a representative dev sample. Per seed, S (the source fine-tuned on the same "
        "sample) labels the new points; per student three arms are paired by seed: `plain` (the best θ on "
        "dev without data expansion: Agora's round 1), `agora`, and `control` (the same loop, generator and "
        f"S adding as many S-labelled points per round around {_anchors(first)}: as much data and as many "
        "steps as Agora, differing only in where the points go). Every arm's classifier reads the "
        f"{first.pooling or 'cls'}-pooled sentence vector. "
        f"Θ = {thetas}; tie tolerance {first.tie_tolerance}; {first.replay} replay rounds. Scores are on "
        "test splits that no fit, model selection or Agora read. Effects are paired differences over seeds "
        "with a 95% t interval; p-values from a paired t-test and an exact sign-flip test, Holm-corrected "
        "across tasks for each student and contrast. The verdicts use the corrected sign-flip p at 0.05.\n\n"
    )
    corrected = agora_holm(tasks)
    text += "".join(_agora_task(name, m, corrected) for name, m in tasks.items())
    glue = [(name, paper.GLUE[name]) for name in tasks if name in paper.GLUE]
    if glue:
        text += (
            "Paper's GLUE test scores for these tasks (0-100): "
            + ", ".join(f"{name} {claim[1]} ({claim[0]})" for name, claim in glue)
            + ".\n\n"
        )
    text += (
        f"Paper (a different scale: RoBERTa-large teacher, GLUE/SuperGLUE/RACE, full pretraining): "
        f"{paper.NLU}. Its per-task test scores, for reference only (the leaderboards' hidden test sets, "
        f"0-100; source: {paper.SCORES_SOURCE}):\n\n{paper_reference_table()}\n"
    )
    return text  # the report appends the torus paragraph (`ose.stages.agora_torus.section`), then "\n"


def _agora_claim(tasks: dict[str, Result]) -> dict:
    """Agora − plain over every (task, main train size, student) whose plain arm learns the task, by
    the verdict rules (`ose.verdicts`, rule 3, Holm-corrected sign-flip p over that family):
    reproduced at reduced scale when one effect is established and none contradicted. Agora − control
    (its placement) is stated beside it."""
    claim = "Agora improves fine-tuning of the small model"
    if not tasks:
        return claim_row(claim, "Agora helps", "not run", "not testable here", "§5, `dvc repro finetune`")
    corrected = agora_holm(tasks)
    parts, chance, readings = [], [], []
    for name, size, m in (_main(name, t) for name, t in tasks.items()):
        for student, effects in m["effects"].items():
            if m["plain_at_chance"].get(student):
                chance.append(f"{name}/{size}/{student}")
                continue
            e, c = effects["agora_vs_plain"], effects["agora_vs_control"]
            p = corrected[name, size, student, "agora_vs_plain"]["sign_flip_p"]
            pc = corrected[name, size, student, "agora_vs_control"]["sign_flip_p"]
            readings.append(verdicts.effect_reading(e["mean"], e["ci_low"], e["ci_high"], p))
            parts.append(
                f"{name} ({size} train)/{student} {100 * e['mean']:+.1f} pts "
                f"[{100 * e['ci_low']:+.1f}, {100 * e['ci_high']:+.1f}] "
                f"(Holm p {fmt(p, 2)}: {readings[-1]}), "
                f"vs control {100 * c['mean']:+.1f} (p {fmt(pc, 2)})"
            )
    if chance:
        parts.append(f"no verdict where the plain arm is at chance: {', '.join(chance)}")
    verdict = verdicts.combined_effects(readings)  # none tested (every plain arm at chance): not testable
    return claim_row(claim, "Agora fine-tuning (paper's NLU results)", "; ".join(parts), verdict, "§5")


NOT_TESTABLE = "not testable here"


def _anchors(m: Result) -> str:
    if (m.control_anchor or "random_train") == "random_train":
        return (
            "rows drawn at random from the train sample S was fine-tuned on (`control_anchor: random_train`)"
        )
    return "dev points drawn uniformly at random (never rows S was trained on)"


def _nlu_claim() -> dict:
    return claim_row(
        f"Bort beats BERT-large on {paper.NLU_TASKS_BETTER} of {paper.NLU_TASKS} NLU tasks",
        paper.NLU,
        "no BERT-large is fine-tuned here, nor GLUE/SuperGLUE/RACE test servers reached; our tasks compare "
        "the student with its own source (§5)",
        "not testable here",
        "§5; the paper profile for GLUE",
    )


SMALL_BERT_TOP_LR = 1e-3  # the top of the learning rates small BERTs are fine-tuned with


def fairness(tasks: dict[str, Result]) -> str:
    """Where the Agora verdicts may rest on how we measured, read off the metrics ("no gap known"
    when nothing): a control anchored on S's own training rows, Θ above the small-BERT range or too
    few epochs for best-on-dev to matter, S under its author's floor."""
    gaps = []
    if any((m.control_anchor or "random_train") == "random_train" for m in tasks.values()):
        shares = [a for m in tasks.values() for a in m.anchor_agreement.values()]
        control = [a["control"] for a in shares if a.get("control") is not None]  # None: no point added
        placed = [a["agora"] for a in shares if a.get("agora") is not None]
        agreement = (
            f" (S agrees with the anchor's label on {sum(control) / len(control):.0%} of the control's "
            f"points, {sum(placed) / len(placed):.0%} of Agora's)"
            if control and placed
            else ""
        )
        gaps.append(
            f"the control's anchors are train rows S was fine-tuned on{agreement}, so Agora − control mixes "
            "placement with label quality"
        )
    thetas = [t for m in tasks.values() for t in m.thetas]
    high = sorted({t["lr"] for t in thetas if t["lr"] > SMALL_BERT_TOP_LR})
    if high:
        gaps.append(
            f"Θ's learning rates {', '.join(f'{x:g}' for x in high)} are above those used for small BERTs"
        )
    if any(t.get("epochs", 0) < 5 for t in thetas):
        gaps.append("Θ trains fewer than 5 epochs, so best-on-dev per epoch hardly selects")
    pairs = [
        (s, m)
        for m in tasks.values()
        for s in (m.sizes or {str(m.train_size): {"labeller": m.labeller}}).values()
    ]
    scores = [x for s, _ in pairs for x in s["labeller"]["scores"]]
    floor = next((m.labeller_floor for m in tasks.values() if m.labeller_floor), 2 / 3)
    below = sum(x < floor for x in scores)
    if below:
        gaps.append(
            f"S is below {floor:.2f} test accuracy on {below} of {len(scores)} (task, size, seed) runs"
        )
    return "; ".join(gaps) if gaps else "no gap known"


def claims(tasks: dict[str, Result]) -> list[dict]:
    """This stage's rows of the report's claims table (`tasks`: task → its result, empty where none
    has run): Agora's effect, and the paper's NLU comparison, not testable here."""
    return [_agora_claim(tasks), _nlu_claim()]
