"""The pipeline's guarantees, end to end on the smoke profile, in a copy of this working tree.

- A forced re-run of a stage whose inputs did not change writes identical outputs: `dvc repro -f -s
  STAGE` changes no md5 in dvc.lock and leaves `dvc status` clean (only the benchmark re-measures
  on purpose). Once, a re-run rewrote the corpus with new bytes, refitted the cost model in its last
  digits and stamped wall-clock times into the student's folder, so later stages re-ran for nothing.
- Stages run from a fresh shell whose PATH lacks the virtual environment (`.venv/bin/dvc repro`),
  as the README says; once this failed with `papermill: command not found` after DVC had already
  deleted the stage's committed results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ose.pipeline import paths

REMEASURED = {"benchmark"}  # times the presets and the student again on every run, on purpose
BARE_PATH = "/usr/bin:/bin"  # a fresh shell: no virtual environment on PATH


def copy_worktree(target: Path) -> Path:
    """The tracked and untracked (not ignored) files of this checkout, as a new git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=paths.ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = paths.ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / "dvc.lock").unlink(missing_ok=True)  # run every stage on the smoke profile
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    if sys.prefix != sys.base_prefix:  # the environment `make setup` made, where scripts/stage looks
        (target / ".venv").symlink_to(sys.prefix)
    return target


def lock_md5s(repo: Path) -> dict[tuple[str, str], str]:
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {(name, o["path"]): o["md5"] for name, stage in stages.items() for o in stage.get("outs", [])}


@pytest.mark.slow
def test_forced_rerun_of_every_stage_changes_no_output(tmp_path):
    repo = copy_worktree(tmp_path / "repo")
    env = {**os.environ, "PATH": BARE_PATH}
    if sys.prefix == sys.base_prefix:
        env["OSE_PYTHON"] = sys.executable
    dvc = [str(Path(sys.executable).parent / "dvc")]

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    run(sys.executable, "-m", "ose.params", "use", "smoke")
    run(*dvc, "repro")
    before = lock_md5s(repo)
    stages = sorted({name for name, _ in before} - REMEASURED)
    for stage in stages:
        run(*dvc, "repro", "--force", "--single-item", stage)
    after = lock_md5s(repo)
    changed = sorted(f"{stage}: {path}" for (stage, path), md5 in before.items() if after[stage, path] != md5)
    assert not changed, f"a forced re-run with unchanged inputs changed: {changed}"
    run(*dvc, "status", "--quiet")  # nothing left to do

    run(*dvc, "repro", "--force", "--single-item", *REMEASURED)
    stale = set(json.loads(run(*dvc, "status", "--json")))
    assert stale <= {"report"}, f"new timings must leave only the report stale, not {stale}"
