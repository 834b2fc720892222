"""Each pipeline stage's wall time, as `make reproduce` prints it at the end.

Every stage runs its notebook through `scripts/stage`, which stamps the rendered notebook with the
stage's start and wall time (`ose.pipeline.rendered`; papermill's own `start_time`/`duration` for a notebook
rendered before that). A stage whose rendered notebook started before this `dvc repro` did not run:
DVC found it up to date. The table lists every stage of dvc.yaml, in its order (a `foreach` stage
once per item, as `finetune@imdb`), and the total wall time of the stages that ran.

    python -m ose.pipeline.timing --since 1764633000.5 --out reports/metrics/stage_times.json

`reports/metrics/stage_times.json` is no stage's output and no stage's dependency (the report stage
reads named metrics files only), so writing it leaves `dvc status` clean.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ose.pipeline import dvcfile, paths
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.progress import format_seconds
from ose.pipeline.rendered import METADATA_KEY

RAN, FAILED, UP_TO_DATE, NEVER_RUN = "ran", "failed", "up to date (not run)", "never run"
UNREADABLE = "rendered notebook unreadable"
DEFAULT_OUT = "reports/metrics/stage_times.json"


@dataclass(frozen=True)
class StageTime:
    """One stage's record: `seconds` is its wall time in this run (RAN, FAILED) or its last one."""

    stage: str
    notebook: str  # the rendered notebook, relative to the repository root
    status: str  # RAN, FAILED, UP_TO_DATE, NEVER_RUN or UNREADABLE
    seconds: float | None
    started: str | None  # UTC, ISO 8601


def rendered_notebooks(dvc_yaml: Path, params_yaml: Path) -> dict[str, str]:
    """{stage name as DVC names it: rendered notebook path} for every `scripts/stage` stage."""
    expanded = dvcfile.stages(dvc_yaml, params_yaml)
    return {
        name: dvcfile.rendered(stage)
        for name, stage in expanded.items()
        if dvcfile.command(stage)[:1] == [dvcfile.RUNNER]
    }


def _parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def stage_time(stage: str, notebook: Path, since: dt.datetime, root: Path = paths.ROOT) -> StageTime:
    """The record of one stage from its rendered notebook (NEVER_RUN when there is none)."""
    name = notebook.relative_to(root).as_posix() if notebook.is_relative_to(root) else str(notebook)
    if not notebook.exists():
        return StageTime(stage, name, NEVER_RUN, None, None)
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (json.JSONDecodeError, UnicodeDecodeError):  # the table must still print; say which one
        return StageTime(stage, name, UNREADABLE, None, None)
    ours = metadata.get(METADATA_KEY, {}).get("stage")
    papermill = metadata.get("papermill", {})
    if ours:
        started, seconds, failed = ours["started"], ours["wall_seconds"], ours["exit_status"] != 0
    elif papermill.get("start_time"):
        started, seconds = papermill["start_time"], papermill.get("duration")
        failed = bool(papermill.get("exception"))
    else:
        return StageTime(stage, name, NEVER_RUN, None, None)
    if _parse_time(started) < since:
        return StageTime(stage, name, UP_TO_DATE, seconds, started)
    return StageTime(stage, name, FAILED if failed else RAN, seconds, started)


def stage_times(since: dt.datetime, root: Path = paths.ROOT) -> list[StageTime]:
    """Every stage's record, in dvc.yaml's order, for a `dvc repro` that started at `since`."""
    notebooks = rendered_notebooks(root / "dvc.yaml", root / "params.yaml")
    return [stage_time(stage, root / notebook, since, root) for stage, notebook in notebooks.items()]


def total_seconds(times: list[StageTime]) -> float:
    """Wall time (s) of the stages that ran in this `dvc repro`, failed ones included."""
    return sum(t.seconds or 0.0 for t in times if t.status in (RAN, FAILED))


def table(times: list[StageTime]) -> str:
    """The Markdown table `make reproduce` prints: one row per stage, then the total."""
    rows = ["| stage | wall time | status |", "|---|---:|---|"]
    for t in times:
        if t.status == UP_TO_DATE:
            last = f"last run {t.started[:10]}, {format_seconds(t.seconds)}" if t.seconds is not None else ""
            rows.append(f"| {t.stage} | — | {t.status}{'; ' + last if last else ''} |")
        elif t.seconds is None:
            rows.append(f"| {t.stage} | — | {t.status} |")
        else:
            rows.append(f"| {t.stage} | {format_seconds(t.seconds)} | {t.status} |")
    ran = sum(t.status in (RAN, FAILED) for t in times)
    total = format_seconds(total_seconds(times))
    rows.append(f"| **total** ({ran} of {len(times)} stages ran) | {total} | |")
    return "\n".join(rows)


def report(times: list[StageTime], since: dt.datetime, finished: dt.datetime) -> dict:
    """The JSON record: each stage, the total of the stages that ran, the whole `dvc repro`'s wall time."""
    return {
        "since": since.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "repro_wall_seconds": round((finished - since).total_seconds(), 3),
        "stages_wall_seconds": round(total_seconds(times), 3),
        "stages": [asdict(t) for t in times],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ose.pipeline.timing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--since", type=float, required=True, help="when `dvc repro` started (Unix time, s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"the JSON record (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    since = dt.datetime.fromtimestamp(args.since, dt.UTC)
    times = stage_times(since)
    finished = dt.datetime.now(dt.UTC)
    write_text_atomic(paths.resolve(args.out), json.dumps(report(times, since, finished), indent=2) + "\n")
    print(f"\nStage wall times (dvc repro took {format_seconds((finished - since).total_seconds())}):\n")
    print(table(times))


if __name__ == "__main__":
    main()
