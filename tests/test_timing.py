"""`ose.pipeline.timing`: the stage times `make reproduce` prints, read from hand-made rendered notebooks."""

import datetime as dt
import json

import nbformat
import pytest
import yaml

from ose.pipeline import paths, timing

SINCE = dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC)
DVC = {
    "vars": [{"figures": "reports/figures"}],
    "stages": {
        "costs": {
            "cmd": "scripts/stage notebooks/01.ipynb reports/notebooks/01.ipynb -p figures_dir ${figures}"
        },
        "finetune": {
            "foreach": "${finetune.tasks}",
            "do": {
                "cmd": "scripts/stage notebooks/06.ipynb reports/notebooks/06_${item}.ipynb -p task ${item}"
            },
        },
        "torus": {"cmd": "scripts/stage notebooks/07.ipynb reports/notebooks/07.ipynb"},
        "report": {"cmd": "scripts/stage notebooks/09.ipynb reports/notebooks/09.ipynb"},
        "bench": {"cmd": "scripts/stage notebooks/08.ipynb reports/notebooks/08.ipynb"},
        "shell": {"cmd": "python -m something"},  # not a notebook stage: not timed
    },
}


def rendered(root, name, metadata):
    path = root / "reports" / "notebooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata=metadata)
    path.write_text(nbformat.writes(nb), encoding="utf-8")


def ours(started, seconds, status=0):
    return {"ose": {"stage": {"started": started, "wall_seconds": seconds, "exit_status": status}}}


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"finetune": {"tasks": ["imdb", "bbc"]}}))
    rendered(tmp_path, "01.ipynb", ours("2026-12-01T22:00:05+00:00", 170.25))  # ran
    rendered(tmp_path, "06_imdb.ipynb", ours("2026-12-01T22:03:00+00:00", 61.5, status=1))  # failed
    # rendered before scripts/stage stamped its record: papermill's metadata; older than `since`
    rendered(
        tmp_path,
        "06_bbc.ipynb",
        {"papermill": {"start_time": "2026-11-27T16:03:08.8+00:00", "duration": 1683.6, "exception": None}},
    )
    # papermill's record only, run in this repro
    rendered(tmp_path, "07.ipynb", {"papermill": {"start_time": "2026-12-01T22:05:00Z", "duration": 47.25}})
    (tmp_path / "reports/notebooks/08.ipynb").write_text('{"cells": [ "broken')  # a bad merge
    return tmp_path  # 09.ipynb: never rendered


def test_rendered_notebooks_expands_foreach_and_vars(repo):
    found = timing.rendered_notebooks(repo / "dvc.yaml", repo / "params.yaml")
    assert found == {
        "costs": "reports/notebooks/01.ipynb",
        "finetune@imdb": "reports/notebooks/06_imdb.ipynb",
        "finetune@bbc": "reports/notebooks/06_bbc.ipynb",
        "torus": "reports/notebooks/07.ipynb",
        "report": "reports/notebooks/09.ipynb",
        "bench": "reports/notebooks/08.ipynb",
    }


def test_each_stage_is_ran_failed_up_to_date_or_never_run(repo):
    times = {t.stage: t for t in timing.stage_times(SINCE, repo)}
    assert {stage: t.status for stage, t in times.items()} == {
        "costs": timing.RAN,
        "finetune@imdb": timing.FAILED,
        "finetune@bbc": timing.UP_TO_DATE,
        "torus": timing.RAN,
        "report": timing.NEVER_RUN,
        "bench": timing.UNREADABLE,
    }
    assert times["costs"].seconds == 170.25 and times["torus"].seconds == 47.25
    assert times["finetune@bbc"].seconds == 1683.6  # its last run, not counted in the total
    assert timing.total_seconds(list(times.values())) == pytest.approx(170.25 + 61.5 + 47.25)


def test_the_table_marks_skipped_stages_and_gives_the_total(repo):
    text = timing.table(timing.stage_times(SINCE, repo))
    lines = text.splitlines()
    assert lines[0] == "| stage | wall time | status |"
    assert "| costs | 2m50s | ran |" in lines
    assert "| finetune@bbc | — | up to date (not run); last run 2026-11-27, 28m04s |" in lines
    assert "| report | — | never run |" in lines
    assert lines[-1] == "| **total** (3 of 6 stages ran) | 4m39s | |"


def test_the_json_record(repo):
    times = timing.stage_times(SINCE, repo)
    record = timing.report(times, SINCE, SINCE + dt.timedelta(seconds=300))
    assert record["repro_wall_seconds"] == 300
    assert record["stages_wall_seconds"] == pytest.approx(279.0)
    assert [s["stage"] for s in record["stages"]] == [t.stage for t in times]
    json.dumps(record)  # plain values only


def test_main_on_this_repository_writes_the_record_and_prints_every_stage(tmp_path, capsys):
    out = tmp_path / "stage_times.json"
    timing.main(["--since", str(SINCE.timestamp()), "--out", str(out)])
    record = json.loads(out.read_text())
    stages = timing.rendered_notebooks(paths.ROOT / "dvc.yaml", paths.ROOT / "params.yaml")
    assert [s["stage"] for s in record["stages"]] == list(stages)
    printed = capsys.readouterr().out
    assert all(f"| {stage} |" in printed for stage in stages)
    assert "**total**" in printed


def test_stage_times_is_not_a_dvc_output_or_dependency():
    """`make reproduce` writes it after `dvc repro`: inside a stage's outputs it would make DVC stale."""
    spec = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())
    target = timing.DEFAULT_OUT
    for name, stage in spec["stages"].items():
        stage = stage.get("do", stage)
        declared = [
            next(iter(o)) if isinstance(o, dict) else o
            for key in ("outs", "metrics", "plots")
            for o in stage.get(key, [])
        ] + list(stage.get("deps", []))
        for path in declared:
            path = path.split("${")[0]
            assert not (target == path or target.startswith(path.rstrip("/") + "/")), (name, path)


def test_a_missing_params_key_is_named(repo):
    (repo / "params.yaml").write_text(yaml.safe_dump({"finetune": {}}))
    with pytest.raises(KeyError, match=r"\$\{finetune.tasks\}"):
        timing.rendered_notebooks(repo / "dvc.yaml", repo / "params.yaml")
