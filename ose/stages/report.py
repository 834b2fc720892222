"""Stage `report` (notebook 09): every stage's results beside the paper's claims, as reports/README.md.

The report only assembles: each stage module writes its own section and its rows of the claims
table next to its `Result` (`costs.size_section`, `costs.costs_section`, `extract.extract_section`,
`pretrain.pretraining_section`, `finetune.finetune_section`, `benchmark.speed_section`, and each
module's `claims`), from that stage's result read back from `reports/metrics/` and the tables it
wrote; the pieces they share are `ose.reporting.markdown`'s. The only other numbers are the paper's
own claims (`ose.paper`), each labelled as the paper's. This stage writes no metrics file: its
output is the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ose import stats, verdicts
from ose.params import Params
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table
from ose.reporting.markdown import claim_row
from ose.stages import agora_torus, benchmark, costs, extract, finetune, pretrain, teacher


class Paths(paths_class("report")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`)."""


@dataclass(frozen=True)
class Result(StageResult):
    """What the report says about the pipeline (not written: the report is the stage's output)."""

    profile: str
    stages_not_run: list[str]  # whose sections say "has not run"


@dataclass(frozen=True)
class Metrics:
    """The stages' results the report reads; None (no task, for `finetune`) where a stage has not run."""

    costs: costs.Result | None = None
    teacher: teacher.Result | None = None
    extract: extract.Result | None = None
    pretrain: pretrain.Result | None = None
    finetune: dict[str, finetune.Result] = field(default_factory=dict)  # task → its result
    agora_torus: agora_torus.Result | None = None
    benchmark: benchmark.Result | None = None


def _read(cls, path: Path):
    return cls.read(path) if path.exists() else None


def read_metrics(metrics_dir: str | Path, tasks: Sequence[str] | None = None) -> Metrics:
    """Every stage's `reports/metrics/<stage>.json` that exists, and `finetune/<task>.json` of
    `tasks` (default: every one there; the stage passes `finetune.tasks`, so the metrics of a task
    dropped from params, written by older code, are not read)."""
    root = Path(metrics_dir)
    finetune_files = sorted((root / "finetune").glob("*.json"))
    if tasks is not None:
        finetune_files = [p for p in finetune_files if p.stem in tasks]
    return Metrics(
        costs=_read(costs.Result, root / "costs.json"),
        teacher=_read(teacher.Result, root / "teacher.json"),
        extract=_read(extract.Result, root / "extract.json"),
        pretrain=_read(pretrain.Result, root / "pretrain.json"),
        finetune={p.stem: finetune.Result.read(p) for p in finetune_files},
        agora_torus=_read(agora_torus.Result, root / "agora_torus.json"),
        benchmark=_read(benchmark.Result, root / "benchmark.json"),
    )


NOT_TESTED = "not testable here"
CLAIM_COLUMNS = ["claim", "paper", "here", "verdict", "fair test?", "where"]
NO_GAP = "no gap known"


def fairness(m: Metrics) -> dict[str, str]:
    """Per stage, where a verdict may rest on how we measured rather than on the method: what the
    compared arms do not share besides the claim, or a validation taken at other settings than the
    method then uses. Read off the metrics; a stage without an entry has no known gap."""
    out = {}
    if m.extract:
        out["extract"] = extract.fairness(m.extract)
    if m.pretrain:
        out["pretrain"] = pretrain.fairness(m.pretrain)
    if m.finetune:
        out["finetune"] = finetune.fairness(m.finetune)
    return out


HEADLINE_MARGIN = 0.01  # "as accurate as": no worse than the source by more than one point of its metric


def headline_claim(m: Metrics) -> dict:
    """The paper's headline at our scale: the extracted model, pretrained and fine-tuned with Agora,
    is as accurate as its source while far smaller and faster. Per default task and student, the paired
    difference (student + Agora) − S on the test split over the seeds (`ose.stats.paired_effect`) with
    its 95% interval, beside the student's size and speed relative to the source. By the verdict rules
    (rule 3, a margin claim): reproduced at reduced scale when the student is smaller, faster (speed-up
    interval above 1) and every difference's lower bound clears −`HEADLINE_MARGIN`."""
    claim = (
        "The extracted model, pretrained and fine-tuned with Agora, is as accurate as its source "
        "while far smaller and faster"
    )
    paper_says = "Bort (16% of BERT-large, ~20× faster) beats BERT-large on 20 of 23 NLU tasks"
    where = "§5, §3, §6"
    if not (m.finetune and m.extract and m.benchmark and m.benchmark.speedup_extracted_vs_source):
        return claim_row(claim, paper_says, "needs extract, finetune and benchmark", NOT_TESTED, where)
    speed = m.benchmark.speedup_extracted_vs_source
    smaller = m.extract.params_vs_source < 1
    faster = speed["ci_low"] > 1
    parts, readings = [], []
    for task, result in m.finetune.items():
        source = result.labeller["scores"]
        for student in result.students:
            agora = result.arms[student]["agora"]["scores"]
            e = stats.paired_effect(agora, source)
            readings.append(verdicts.effect_reading(e.mean, e.ci_low, e.ci_high, margin=HEADLINE_MARGIN))
            parts.append(
                f"{task} ({result.train_size} train)/{student}: (student + Agora) − S "
                f"{100 * e.mean:+.1f} pts [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}] over {e.n} seeds "
                f"({readings[-1]}; S {100 * float(np.mean(source)):.1f})"
            )
    here = (
        f"student {m.extract.arch}: {100 * m.extract.params_vs_source:.0f}% of the source's parameters, "
        f"{speed['speedup']:.1f}× [{speed['ci_low']:.1f}, {speed['ci_high']:.1f}] faster at "
        f"{speed['batch']}×{speed['seq']}; " + "; ".join(parts)
    )
    verdict = (
        verdicts.REDUCED
        if smaller and faster and readings and all(r == verdicts.ESTABLISHED for r in readings)
        else verdicts.NOT_REPRODUCED
    )
    return claim_row(claim, paper_says, here, verdict, where)


def claims(m: Metrics, tables: Path) -> list[dict]:
    """One row per paper claim: what the paper says, the number here, the verdict, whether the test
    was fair to the method (`fairness`), where to look."""
    gaps = fairness(m)
    by_stage = [
        ("finetune", [headline_claim(m)]),
        ("costs", costs.claims(m.costs, tables)),
        ("extract", extract.claims(m.extract)),
        ("pretrain", pretrain.claims(m.pretrain)),
        ("finetune", finetune.claims(m.finetune)),
        ("benchmark", benchmark.claims(m.benchmark)),
    ]
    return [
        {**row, "fair test?": "—" if row["verdict"] == NOT_TESTED else gaps.get(stage, NO_GAP)}
        for stage, rows in by_stage
        for row in rows
    ]


def claims_section(m: Metrics, tables: Path) -> str:
    return (
        "## The paper's claims, one by one\n\n"
        f"{verdicts.RULES_MARKDOWN}\n\n"
        "Each row names the section with the evidence and the stage that computes it; the first is the "
        "paper's headline, at our scale. *Fair test?* says where a verdict may rest on how we measured "
        "rather than on the method: read such a verdict as provisional.\n\n"
        f"{markdown_table(claims(m, tables), columns=CLAIM_COLUMNS)}\n"
    )


def _sections(metrics: Metrics, tables: Path) -> list[tuple[str, str | None]]:
    """(stage, its section's Markdown or None when the stage has not run), in the report's order."""
    m = metrics
    return [
        ("costs", costs.size_section(tables, m.costs) if (tables / "bort_sizes.csv").exists() else None),
        ("costs", costs.costs_section(m.costs, tables) if m.costs else None),
        ("extract", extract.extract_section(m.extract, tables) if m.extract else None),
        (
            "pretrain",
            pretrain.pretraining_section(m.teacher, m.pretrain) if m.pretrain and m.teacher else None,
        ),
        (
            "finetune",
            finetune.finetune_section(m.finetune)
            + (agora_torus.section(m.agora_torus) if m.agora_torus else "")
            + "\n"
            if m.finetune
            else None,
        ),
        ("benchmark", benchmark.speed_section(m.benchmark) if m.benchmark else None),
    ]


def not_run(metrics_dir: str | Path, tables_dir: str | Path, tasks: Sequence[str] | None = None) -> list[str]:
    """The stages whose section says "has not run", once each."""
    sections = _sections(read_metrics(metrics_dir, tasks), Path(tables_dir))
    return list(dict.fromkeys(stage for stage, text in sections if text is None))


def render(
    metrics_dir: str | Path, tables_dir: str | Path, profile: str, tasks: Sequence[str] | None = None
) -> str:
    """The report's Markdown; sections of stages that have not run say so."""
    parts = [
        "# Bort, reproduced: results\n\n"
        f"Profile **{profile}**. Generated by `dvc repro report` from `reports/metrics/` and "
        "`reports/tables/`; "
        "every number below comes from those files, and each section names the stage that wrote it. "
        "Rendered notebooks with every detail are in `reports/notebooks/`.\n"
    ]
    metrics = read_metrics(metrics_dir, tasks)
    parts.append(claims_section(metrics, Path(tables_dir)))
    for stage, text in _sections(metrics, Path(tables_dir)):
        parts.append(text if text is not None else f"*(stage `{stage}` has not run)*\n")
    parts.append(
        "## Reproduce\n\n```bash\nmake reproduce            # the whole pipeline, embedded default profile\n"
        "dvc metrics show          # every metric\ndvc plots show            # every figure\n```\n"
    )
    return "\n".join(parts)


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Render the report from the stages' results and tables, and write it.

    Returns the result and what the notebook shows: the report's Markdown (`report`).
    """
    paths = paths or Paths()
    metrics_dir, tables_dir = resolve(paths.metrics_dir), resolve(paths.tables_dir)
    tasks = params.finetune.tasks
    text = render(metrics_dir, tables_dir, params.profile, tasks)
    write_text_atomic(resolve(paths.report_file), text)
    return Result(profile=params.profile, stages_not_run=not_run(metrics_dir, tables_dir, tasks)), {
        "report": text
    }
