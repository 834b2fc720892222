"""The pipeline's guarantees, end to end on the smoke profile, in a copy of this working tree.

- A forced re-run of a stage whose inputs did not change writes identical outputs: `dvc repro -f -s
  STAGE` changes no md5 in dvc.lock and leaves `dvc status` clean (only the benchmark re-measures
  on purpose). Once, a re-run rewrote the corpus with new bytes, refitted the cost model in its last
  digits and stamped wall-clock times into the student's folder, so later stages re-ran for nothing.
- Stages run from a fresh shell whose PATH lacks the virtual environment (`.venv/bin/dvc repro`),
  as the README says; once this failed with `papermill: command not found` after DVC had already
  deleted the stage's committed results.
- An ablation re-runs only what depends on it (the README's table of common ablations): each edit
  of params.yaml leaves every other stage up to date. Once, adding a fine-tuning task changed the
  corpus's provenance (it counted the tasks' excluded texts), so teacher, extract and pretrain
  re-ran for nothing.

Both tests share one smoke run (a module fixture): the first leaves it up to date but for the
report, the second starts by bringing it up to date.
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


class Smoke:
    """A copy of this working tree with the smoke profile, run once; commands from a bare PATH."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.env = {**os.environ, "PATH": BARE_PATH}
        if sys.prefix == sys.base_prefix:
            self.env["OSE_PYTHON"] = sys.executable
        self.dvc = [str(Path(sys.executable).parent / "dvc")]

    def run(self, *args: str) -> str:
        done = subprocess.run(args, cwd=self.repo, env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def stale(self) -> set[str]:
        """The stages `dvc status` lists (changed deps, params or outs, or never run)."""
        return set(json.loads(self.run(*self.dvc, "status", "--json")))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Smoke:
    smoke = Smoke(copy_worktree(tmp_path_factory.mktemp("smoke") / "repo"))
    smoke.run(sys.executable, "-m", "ose.params", "use", "smoke")
    smoke.run(*smoke.dvc, "repro")
    return smoke


@pytest.mark.slow
def test_forced_rerun_of_every_stage_changes_no_output(smoke):
    repo, run, dvc = smoke.repo, smoke.run, smoke.dvc
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


def _set(params: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        params = params[key]
    params[last] = value


# The README's table of common ablations: the edit, and every stage `dvc status` may then list.
# (Stages downstream of a stale one are listed only once it has re-run and changed its outputs.)
ABLATIONS = {
    "change the fine-tuning seeds": (
        {"finetune.seeds": [0, 1, 2]},
        {"finetune@rotten_tomatoes", "finetune@bbc"},
    ),
    "change extract.epsilon": ({"extract.epsilon": 3}, {"extract"}),
    "change a distillation weight": ({"distill.alpha": 0.2}, {"extract", "pretrain"}),
    "change the released loss's KD weight": ({"distill.released.beta": 1.0}, {"pretrain"}),
    "change the benchmark grid": ({"benchmark.seq_lens": [16, 24]}, {"benchmark"}),
    "change one task's train size": (
        {"finetune.task_settings.bbc": {"train_size": 30}},
        {"finetune@bbc"},
    ),
}


def _user_task_csv(path: Path) -> None:
    """200 short labelled texts that no corpus source holds."""
    words = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite", "heath", "isle", "jade"]
    rows = ["text,label"] + [
        f"{words[k % 10]} {words[(k * 7) % 10]} survey {k} of the quarry,{'yes' if k % 2 else 'no'}"
        for k in range(200)
    ]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_an_ablation_reruns_only_what_depends_on_it(smoke):
    smoke.run(*smoke.dvc, "repro")  # the first test re-measured the benchmark: the report is stale
    assert smoke.stale() == set()
    params_file = smoke.repo / "params.yaml"
    original = params_file.read_text()
    try:
        for name, (edits, expected) in ABLATIONS.items():
            params = yaml.safe_load(original)
            for key, value in edits.items():
                _set(params, key, value)
            params_file.write_text(yaml.safe_dump(params, sort_keys=False))
            assert smoke.stale() == expected, name
            params_file.write_text(original)
            assert smoke.stale() == set(), f"{name}: undone"

        # Add a task (the user's own file): only data re-runs; then the new task's stage and the
        # report are stale, and nothing that reads the corpus.
        _user_task_csv(smoke.repo / "data" / "quarry.csv")
        params = yaml.safe_load(original)
        params["data"]["files"] = [
            {"name": "quarry", "path": "data/quarry.csv", "text": ["text"], "label": "label"}
        ]
        params["finetune"]["tasks"].append("quarry")
        params["finetune"]["task_settings"]["quarry"] = {}
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        smoke.run(sys.executable, "-m", "ose.params", "check")
        assert smoke.stale() == {"data", "finetune@quarry", "report"}
        smoke.run(*smoke.dvc, "repro", "--single-item", "data")
        assert smoke.stale() == {"finetune@quarry", "report"}, "adding a task must not touch the corpus"
    finally:
        params_file.write_text(original)
        smoke.run(*smoke.dvc, "repro", "--single-item", "data")
