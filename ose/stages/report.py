"""Stage `report` (notebook 09): every stage's results beside the paper's claims, as reports/README.md.

The content is `ose.reporting.report.render`'s. This stage writes no metrics file: its output is the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ose.params import Params
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult
from ose.reporting.report import not_run, render


@dataclass(frozen=True)
class Paths:
    """The notebook's path parameters (defaults: dvc.yaml's)."""

    metrics_dir: str | Path = "reports/metrics"
    tables_dir: str | Path = "reports/tables"
    report_file: str | Path = "reports/README.md"


@dataclass(frozen=True)
class Result(StageResult):
    """What the report says about the pipeline (not written: the report is the stage's output)."""

    profile: str
    stages_not_run: list[str]  # whose sections say "has not run"


def run(params: Params, paths: Paths = Paths(), progress: bool = True) -> tuple[Result, dict]:
    """Render the report from the stages' results and tables, and write it.

    Returns the result and what the notebook shows: the report's Markdown (`report`).
    """
    metrics_dir, tables_dir = resolve(paths.metrics_dir), resolve(paths.tables_dir)
    tasks = params.finetune.tasks
    text = render(metrics_dir, tables_dir, params.profile, tasks)
    write_text_atomic(resolve(paths.report_file), text)
    return Result(profile=params.profile, stages_not_run=not_run(metrics_dir, tables_dir, tasks)), {
        "report": text
    }
