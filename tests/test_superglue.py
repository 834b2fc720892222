"""ose.data.superglue: BoolQ, CB, COPA and RTE from the classic JSONL layout and through `datasets`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from ose.data.glue import HubDatasetUnavailable
from ose.data.metrics import score
from ose.data.superglue import (
    SUPERGLUE_LAYOUTS,
    copa_pair,
    hub_superglue_task,
    load_superglue_tasks,
    read_superglue_task,
    superglue_frame,
)
from ose.data.tasks import load_task, save_task
from ose.params import ParamsError, from_dict, render_profile

REPO = Path(__file__).resolve().parent.parent


def boolq(i: int) -> dict:
    return {"question": f"is {i} even", "passage": f"{i} is a number.", "idx": i, "label": i % 2 == 0}


def cb(i: int) -> dict:
    label = ("entailment", "contradiction", "neutral")[i % 3]
    return {"premise": f"Premise {i}.", "hypothesis": f"Hypothesis {i}.", "idx": i, "label": label}


def copa(i: int) -> dict:
    return {
        "premise": f"The glass fell {i}.",
        "choice1": f"It broke {i}.",
        "choice2": f"It sang {i}.",
        "question": ("cause", "effect")[i % 2],
        "idx": i,
        "label": i % 2,
    }


def rte(i: int) -> dict:
    label = ("entailment", "not_entailment")[i % 2]
    return {"premise": f"Text {i}.", "hypothesis": f"Claim {i}.", "idx": i, "label": label}


RECORDS = {"boolq": boolq, "cb": cb, "copa": copa, "rte": rte}
TRAIN, VAL = 12, 6  # rows of the fixture files


def write_classic(root: Path) -> Path:
    """A SuperGLUE folder in the classic layout: train (12), val (6) and an unlabelled test (2)."""
    for task, record in RECORDS.items():
        folder = root / SUPERGLUE_LAYOUTS[task].folder
        folder.mkdir(parents=True)
        splits = {
            "train": [record(i) for i in range(TRAIN)],
            "val": [record(100 + i) for i in range(VAL)],
            "test": [{k: v for k, v in record(200 + i).items() if k != "label"} for i in range(2)],
        }
        for split, rows in splits.items():
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def hub_ids(task: str, record: dict) -> dict:
    """The record as the hub has it: labels as ids."""
    names = {"boolq": [False, True], "cb": ["entailment", "contradiction", "neutral"], "copa": [0, 1]}
    names["rte"] = ["entailment", "not_entailment"]
    return {**record, "label": names[task].index(record["label"])}


@pytest.mark.parametrize("task", list(RECORDS))
def test_classic_layout_gives_train_dev_and_the_official_val_as_test(tmp_path, task):
    root = write_classic(tmp_path / "superglue")
    data = read_superglue_task(root, task, dev_fraction=0.25, seed=1)
    assert len(data.test) == VAL and len(data.train) + len(data.dev) == TRAIN
    assert 2 <= len(data.dev) <= 4, "a quarter of train, per class"
    assert set(data.dev["text_a"]) <= {
        superglue_frame([RECORDS[task](i)], task, "x")["text_a"][0] for i in range(TRAIN)
    }
    assert data.provenance["official_sizes"] == {"train": TRAIN, "validation": VAL}
    save_task(data, tmp_path / "out")
    pd.testing.assert_frame_equal(load_task(tmp_path / "out").test, data.test)


def test_labels_map_to_the_hub_order():
    assert superglue_frame([boolq(0), boolq(1)], "boolq", "x")["label"].tolist() == [1, 0]  # True is id 1
    assert superglue_frame([cb(i) for i in range(3)], "cb", "x")["label"].tolist() == [0, 1, 2]
    assert superglue_frame([rte(0), rte(1)], "rte", "x")["label"].tolist() == [0, 1]
    assert superglue_frame([copa(0), copa(1)], "copa", "x")["label"].tolist() == [0, 1]


def test_copa_becomes_one_pair_per_item_with_the_question_and_both_alternatives():
    frame = superglue_frame([copa(0), copa(1)], "copa", "x")
    assert frame["text_a"].tolist() == [
        "The glass fell 0. What was the cause?",
        "The glass fell 1. What happened as a result?",
    ]
    assert frame["text_b"][0] == "(1) It broke 0. (2) It sang 0."
    # accuracy on the pairs is COPA's accuracy: one prediction per item
    assert score("copa", [0, 0], frame["label"])["accuracy"] == 0.5
    with pytest.raises(ValueError, match="COPA question must be one of"):
        copa_pair("p", "why", "a", "b")


def test_unlabelled_or_malformed_records_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"val\.jsonl:3: no label"):
        superglue_frame([rte(0), rte(1), {**rte(2), "label": -1}], "rte", "val.jsonl")
    with pytest.raises(ValueError, match=r"x:1: label 'maybe' is neither one of \['entailment'"):
        superglue_frame([{**cb(0), "label": "maybe"}], "cb", "x")
    with pytest.raises(ValueError, match=r"x:1: record lacks fields \['choice2'\]"):
        superglue_frame([{k: v for k, v in copa(0).items() if k != "choice2"}], "copa", "x")
    root = write_classic(tmp_path / "sg")
    (root / "CB" / "train.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"CB/train\.jsonl: empty file"):
        read_superglue_task(root, "cb")
    with pytest.raises(FileNotFoundError, match=r"no BoolQ/ folder in .*data\.superglue_dir"):
        read_superglue_task(tmp_path / "nowhere", "boolq")


def test_hub_copy_gives_the_same_task_as_the_classic_files(tmp_path):
    import datasets

    root = write_classic(tmp_path / "classic")
    for task, record in RECORDS.items():
        hub = datasets.DatasetDict(
            {
                "train": datasets.Dataset.from_list([hub_ids(task, record(i)) for i in range(TRAIN)]),
                "validation": datasets.Dataset.from_list(
                    [hub_ids(task, record(100 + i)) for i in range(VAL)]
                ),
                "test": datasets.Dataset.from_list([{**hub_ids(task, record(200)), "label": -1}]),
            }
        )
        hub.save_to_disk(str(tmp_path / "hub" / task))
        a = read_superglue_task(root, task, seed=4)
        b = hub_superglue_task(task, seed=4, dataset_id=str(tmp_path / "hub"))
        for split in ("train", "dev", "test"):
            pd.testing.assert_frame_equal(getattr(a, split), getattr(b, split))


def test_load_superglue_tasks_reads_the_folder_when_set(tmp_path):
    root = write_classic(tmp_path / "sg")
    names = [t.name for t in load_superglue_tasks(["copa", "boolq"], str(root), 0.25, 0)]
    assert names == ["copa", "boolq"]


def test_hub_offline_and_not_cached_fails_at_once_with_one_line(tmp_path):
    """In a fresh process with an empty HF cache, so a cached copy elsewhere cannot hide it."""
    script = textwrap.dedent(
        """
        from ose.data.glue import HubDatasetUnavailable
        from ose.data.superglue import hub_superglue_task
        try:
            hub_superglue_task("copa")
        except HubDatasetUnavailable as error:
            print(error)
        """
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    message = done.stdout.strip()
    assert "\n" not in message and "'copa'" in message and "'aps/super_glue'" in message
    assert (
        "HF_DATASETS_OFFLINE=1" in message and "data.superglue_dir" in message and "COPA/val.jsonl" in message
    )
    assert issubclass(HubDatasetUnavailable, RuntimeError)


def test_params_superglue_tasks_reach_finetune_and_rte_once():
    raw = render_profile("default")
    raw["data"]["superglue_tasks"] = ["copa", "rte"]
    raw["finetune"]["tasks"] = ["copa"]
    raw["finetune"]["task_settings"] = {"copa": {}}
    assert from_dict(raw).data.task_names()[-2:] == ["copa", "rte"]
    raw["data"]["glue_tasks"] = ["rte"]
    with pytest.raises(ParamsError, match=r"^data\.superglue_tasks\[1\]: 'rte' is also in glue_tasks"):
        from_dict(raw)
    raw["data"]["glue_tasks"] = []
    raw["data"]["superglue_tasks"] = ["wic"]
    with pytest.raises(ParamsError, match=r"^data\.superglue_tasks\[0\]: unknown name 'wic'"):
        from_dict(raw)
