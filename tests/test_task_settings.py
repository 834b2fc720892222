"""Per-task fine-tuning settings (`finetune.task_settings.<task>`): applied to that task only,
validated like the group, tracked by DVC per task, and checked against the task's classes before
any work."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import yaml

from ose.configs import FineTune, TaskSettings
from ose.params import ParamsError, from_dict, render_profile
from ose.pipeline import dvcfile
from ose.preflight import check_environment, check_finetune_sizes
from ose.stages.finetune import taken


@pytest.fixture
def raw() -> dict:
    return render_profile("default")


def test_a_task_gets_its_own_settings_and_the_others_the_groups(raw):
    raw["finetune"]["task_settings"] = {"rotten_tomatoes": {"train_size": 60, "max_len": 32}, "imdb": {}}
    fine = from_dict(raw).finetune
    rt, imdb = fine.for_task("rotten_tomatoes"), fine.for_task("imdb")
    assert (rt.train_size, rt.max_len, rt.dev_size) == (60, 32, fine.dev_size)
    assert (imdb.train_size, imdb.max_len) == (fine.train_size, fine.max_len)
    assert fine.key_of("rotten_tomatoes", "train_size") == "finetune.task_settings.rotten_tomatoes.train_size"
    assert fine.key_of("imdb", "train_size") == "finetune.train_size"


def test_null_is_a_value_not_a_missing_key(raw):
    raw["finetune"]["task_settings"]["rotten_tomatoes"] = {"train_size": None}
    assert from_dict(raw).finetune.for_task("rotten_tomatoes").train_size is None


def test_every_task_needs_an_entry(raw):
    raw["finetune"]["task_settings"] = {"imdb": {}}
    with pytest.raises(ParamsError, match=r"^finetune\.task_settings\.rotten_tomatoes: missing: .*`\{\}`"):
        from_dict(raw)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"train_size": 5}, r"^finetune\.task_settings\.imdb\.train_size: must be null .* >= 10, got 5"),
        ({"students": ["nope"]}, r"^finetune\.task_settings\.imdb\.students\[0\]: unknown name 'nope'"),
        ({"epochs": 3}, r"^finetune\.task_settings\.imdb\.epochs: unknown key; allowed keys here: "),
    ],
)
def test_an_entry_is_checked_like_the_group(raw, entry, message):
    raw["finetune"]["task_settings"]["imdb"] = entry
    with pytest.raises(ParamsError, match=message):
        from_dict(raw)


def test_task_settings_keys_are_finetune_keys():
    names = {f.name for f in dataclasses.fields(FineTune)}
    assert set(TaskSettings.KEYS) <= names
    assert {f.name for f in dataclasses.fields(TaskSettings)} == set(TaskSettings.KEYS)


def test_each_finetune_stage_tracks_the_group_but_the_task_list_and_its_own_entry():
    """Adding a task, or editing one task's entry, leaves the other tasks' stages up to date."""
    spec = yaml.safe_load(dvcfile.DVC_YAML.read_text(encoding="utf-8"))["stages"]["finetune"]["do"]
    tracked = [p for p in spec["params"] if p.startswith("finetune")]
    group = [
        f"finetune.{f.name}" for f in dataclasses.fields(FineTune) if f.name not in ("tasks", "task_settings")
    ]
    assert sorted(tracked) == sorted([*group, "finetune.task_settings.${item}"])


def _three_class_task(counts: dict[str, int]):
    """A task like SuperGLUE CB: three classes, one of them rare."""
    frame = pd.DataFrame(
        {
            "text_a": [f"premise {k}" for k in range(sum(counts.values()))],
            "text_b": [f"hypothesis {k}" for k in range(sum(counts.values()))],
            "label": [int(c) for c, n in counts.items() for _ in range(n)],
        }
    )
    return dataclasses.make_dataclass("Task", ["name", "train"])("cb", frame)


def test_sizes_are_checked_against_the_tasks_classes_naming_key_counts_and_what_fits(raw):
    raw["data"]["superglue_tasks"] = ["cb"]
    raw["finetune"]["tasks"] = ["cb"]
    raw["finetune"]["task_settings"] = {"cb": {}}
    raw["finetune"]["train_size"] = 200
    params = from_dict(raw)
    task = _three_class_task({"0": 115, "1": 104, "2": 14})
    with pytest.raises(ParamsError) as caught:
        check_finetune_sizes(params, task)
    assert str(caught.value) == (
        "finetune.train_size: 200 asks a balanced train sample of cb with 67 rows per class; its train split "
        "has {'0': 115, '1': 104, '2': 14}: set finetune.task_settings.cb.train_size to at most 42, or null "
        "(the whole split)"
    )
    raw["finetune"]["task_settings"] = {"cb": {"train_size": 42}}
    check_finetune_sizes(from_dict(raw), task)
    raw["finetune"]["task_settings"] = {"cb": {"train_size": 42, "dose_sizes": [30, 100]}}  # the curve's too
    with pytest.raises(ParamsError, match=r"^finetune\.task_settings\.cb\.dose_sizes\[1\]: 100 asks"):
        check_finetune_sizes(from_dict(raw), task)


def test_a_users_file_is_checked_before_any_work(raw, tmp_path):
    rows = ["text,label"] + [f"row {k},{'a' if k < 380 else 'b'}" for k in range(400)]  # train: ~16 b
    (tmp_path / "skewed.csv").write_text("\n".join(rows) + "\n")
    raw["data"]["files"] = [
        {"name": "skewed", "path": str(tmp_path / "skewed.csv"), "text": ["text"], "label": "label"}
    ]
    raw["data"]["tasks"] = []
    raw["finetune"]["tasks"] = ["skewed"]
    raw["finetune"]["task_settings"] = {"skewed": {}}
    with pytest.raises(
        ParamsError, match=r"^finetune\.train_size: \d+ asks a balanced train sample of skewed"
    ):
        check_environment(from_dict(raw))


@pytest.mark.parametrize(
    ("available", "asked", "words"),
    [
        (26, 300, "all 26 (300 asked)"),
        (26, None, "all 26 (none asked)"),
        (1000, 300, "a stratified sample of 300 of 1,000"),
    ],
)
def test_log_lines_say_what_was_taken(available, asked, words):
    assert taken(available, asked, "a stratified sample") == words


def test_superglue_cb_from_a_local_folder_stops_check_with_one_line(raw, tmp_path):
    """As SuperGLUE's CB: 250 training premises, few of them neutral; the default sizes do not fit."""
    import json

    labels = ["entailment"] * 115 + ["contradiction"] * 119 + ["neutral"] * 16
    folder = tmp_path / "CB"
    folder.mkdir()
    rows = [
        {"premise": f"P {i}.", "hypothesis": f"H {i}.", "idx": i, "label": lab}
        for i, lab in enumerate(labels)
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    val = [
        {"premise": f"V {i}.", "hypothesis": f"W {i}.", "idx": i, "label": labels[i * 5]} for i in range(50)
    ]
    (folder / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    raw["data"].update(superglue_tasks=["cb"], superglue_dir=str(tmp_path))
    raw["finetune"]["tasks"] = ["cb"]
    raw["finetune"]["task_settings"] = {"cb": {}}
    raw["finetune"]["train_size"] = 200  # below the split's 228 rows, so its classes decide
    with pytest.raises(ParamsError) as caught:
        check_environment(from_dict(raw))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(
        "finetune.train_size: 200 asks a balanced train sample of cb"
    )
    assert "'neutral': 14" in message and "set finetune.task_settings.cb.train_size to at most" in message
    raw["finetune"]["task_settings"] = {"cb": {"train_size": 36}}
    check_environment(from_dict(raw))
