"""Rendered notebooks read as a report: figures inline, a few progress lines, no warning about
progress widgets, no absolute path of the machine that ran them (`ose.pipeline.rendered`, `scripts/stage`)."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from test_reproducible import BARE_PATH, copy_worktree

from ose.pipeline import paths, rendered, timing

MAX_STREAM_OUTPUTS = 50  # issue #16: none had fewer than 60 lines of redrawn bars before


def stream_outputs(nb) -> int:
    return sum(o["output_type"] == "stream" for c in nb["cells"] for o in c.get("outputs", []))


def image_outputs(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))


def declared_figures() -> dict[str, int]:
    """{stage as DVC names it: how many PNG plots it declares}, a `foreach` stage once per item."""
    spec = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]
    stages = timing.rendered_notebooks(paths.ROOT / "dvc.yaml", paths.ROOT / "params.yaml")
    count = {}
    for stage in stages:
        plots = spec[stage.split("@")[0]]
        plots = plots.get("do", plots).get("plots", [])
        count[stage] = sum(
            next(iter(p)).endswith(".png") if isinstance(p, dict) else p.endswith(".png") for p in plots
        )
    return count


RENDERED = timing.rendered_notebooks(paths.ROOT / "dvc.yaml", paths.ROOT / "params.yaml")


@pytest.mark.parametrize("stage", sorted(RENDERED))
def test_committed_rendered_notebooks_read_as_reports(stage):
    """Issue #16's acceptance, for every rendered notebook that `scripts/stage` has stamped (one
    rendered before it is skipped until its stage runs again): each figure the stage makes shown
    inline, at most 50 stream outputs, no progress-widget warning, no absolute path of this machine."""
    path = paths.ROOT / RENDERED[stage]
    if not path.exists():
        pytest.skip(f"{RENDERED[stage]} was never rendered")
    text = path.read_text(encoding="utf-8")
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as error:  # once, a text edit put unescaped quotes into two of them
        pytest.fail(f"{RENDERED[stage]} is not valid JSON ({error}): run its stage again")
    if rendered.METADATA_KEY not in nb.get("metadata", {}):
        pytest.skip(f"{RENDERED[stage]} was rendered before scripts/stage stamped its notebooks")
    assert image_outputs(nb) >= declared_figures()[stage], "a figure the stage makes is not shown"
    assert stream_outputs(nb) <= MAX_STREAM_OUTPUTS
    assert "IProgress" not in text
    for absolute in {str(paths.ROOT), os.path.realpath(paths.ROOT), str(Path.home())}:
        assert absolute not in text, f"{absolute} appears in {RENDERED[stage]}"


def test_paths_shown_are_relative_to_the_root_inside_it(tmp_path):
    assert paths.shown(paths.ROOT / "models" / "teacher_checkpoint" / "checkpoint.pt") == (
        "models/teacher_checkpoint/checkpoint.pt"
    )
    assert paths.shown("models/student") == "models/student"
    assert paths.shown(tmp_path / "x.pt") == str(tmp_path / "x.pt")  # outside: left as it is


def test_paths_are_rewritten_only_as_whole_paths():
    rewrite = rendered.relativizer(
        sorted(
            [
                ("/work/main", "."),
                ("/work/main/.venv", ".venv"),
                ("/opt/env", "<python-env>"),
                ("/home/u", "~"),
            ],
            key=lambda p: len(p[0]),
            reverse=True,
        )
    )
    assert rewrite("from: /work/main/models/student\n") == "from: models/student\n"
    assert rewrite("/work/main/.venv/lib/python3.11/x.py:21: W") == ".venv/lib/python3.11/x.py:21: W"
    assert rewrite("cwd /work/main, then") == "cwd ., then"
    assert rewrite("'/work/main'") == "'.'"
    assert rewrite("/opt/env/lib/site-packages/tqdm/auto.py") == "<python-env>/lib/site-packages/tqdm/auto.py"
    assert rewrite("~ is /home/u/.cache/huggingface") == "~ is ~/.cache/huggingface"
    assert rewrite("/work/mainline and /home/user") == "/work/mainline and /home/user"  # other paths


def test_finish_removes_the_root_everywhere_and_records_the_wall_time(tmp_path):
    root = tmp_path / "checkout"
    image = "iVBORw0KGgo" + "A" * 40  # base64 is left alone
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "run()",
                outputs=[
                    nbformat.v4.new_output(
                        "stream", name="stderr", text=f"{root}/ose/x.py:3: UserWarning: w\n"
                    ),
                    nbformat.v4.new_output(
                        "display_data", data={"text/plain": f"PosixPath('{root}/models')", "image/png": image}
                    ),
                    nbformat.v4.new_output(
                        "error", ename="E", evalue="e", traceback=[f'File "{root}/ose/stages/a.py", line 1']
                    ),
                ],
            )
        ],
        metadata={"papermill": {"input_path": f"{root}/notebooks/a.ipynb", "cwd": str(root)}},
    )
    path = tmp_path / "a.ipynb"
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    path.chmod(0o644)
    record = rendered.finish(path, started=1_000.0, exit_status=1, finished=1_042.5, root=root)
    text = path.read_text(encoding="utf-8")
    assert str(root) not in text and str(tmp_path) not in text
    assert path.stat().st_mode & 0o777 == 0o644
    after = nbformat.reads(text, as_version=4)
    outputs = after.cells[0].outputs
    assert outputs[0].text == "ose/x.py:3: UserWarning: w\n"
    assert outputs[1].data["text/plain"] == "PosixPath('models')"
    assert outputs[1].data["image/png"] == image
    assert after.metadata.papermill == {"input_path": "notebooks/a.ipynb", "cwd": "."}
    assert record["wall_seconds"] == 42.5 and record["exit_status"] == 1
    assert after.metadata.ose.stage == record
    assert record["started"] == "1970-01-01T00:16:40.000+00:00"


@pytest.mark.slow
def test_a_stage_rendered_by_scripts_stage_reads_as_a_report(tmp_path):
    """The cheapest stage with a figure (agora_torus, about a minute), rendered in a copy of this
    working tree as `dvc repro` renders it: its figure inline, few stream outputs, no warning about
    progress widgets, no absolute path, and its wall time where `make reproduce` reads it."""
    repo = copy_worktree(tmp_path / "repo")
    notebook, out = "notebooks/07_agora_torus.ipynb", "reports/notebooks/07_agora_torus.ipynb"
    env = {**os.environ, "PATH": BARE_PATH}
    if sys.prefix == sys.base_prefix:
        env["OSE_PYTHON"] = sys.executable
    args = ["-p", "params_file", "params.yaml", "-p", "metrics_file", "reports/metrics/agora_torus.json"]
    args += ["-p", "figures_dir", "reports/figures", "-p", "progress", "True"]
    smoke = subprocess.run(
        [sys.executable, "-m", "ose.params", "use", "smoke"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert smoke.returncode == 0, smoke.stderr
    since = dt.datetime.now(dt.UTC)
    done = subprocess.run(
        ["scripts/stage", notebook, out, *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (repo / out).read_text(encoding="utf-8")
    nb = json.loads(text)
    assert image_outputs(nb) >= 1, "the torus figure is not shown inline"
    assert stream_outputs(nb) <= MAX_STREAM_OUTPUTS
    assert "IProgress" not in text
    assert "Warning" not in text, [line for line in text.splitlines() if "Warning" in line]
    for absolute in {str(repo), os.path.realpath(repo), str(tmp_path), str(paths.ROOT), str(Path.home())}:
        assert absolute not in text, f"{absolute} appears in the rendered notebook"
    (times,) = [t for t in timing.stage_times(since, repo) if t.stage == "agora_torus"]
    assert times.status == timing.RAN and 0 < times.seconds < 600


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.parametrize(
    "figure", sorted((paths.ROOT / "reports" / "figures").glob("*.png")), ids=lambda p: p.name
)
def test_committed_figures_are_readable_at_page_width(figure):
    width, _ = _png_size(figure)
    assert width <= 2400, f"{figure.name} is {width} px wide"
