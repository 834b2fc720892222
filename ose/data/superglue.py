"""SuperGLUE tasks (BoolQ, CB, COPA, RTE), from the classic JSONL layout or through `datasets`.

Local folder: the layout of the official SuperGLUE download (`<superglue_dir>/BoolQ/train.jsonl`,
`val.jsonl`, `test.jsonl`). Hub: `aps/super_glue` (the `super_glue` dataset), or a local copy of it
(see `ose.data.glue.load_hub_dataset`); offline and not cached, it fails at once with one line. Both
sources have the same field names; labels are strings or booleans in the JSONL files and ids on
the hub, and both map to the label order of `ose.data.tasks.TASK_SPECS` (the hub's order).

As for GLUE, test labels are hidden, so the official validation set is our test split and a seeded,
label-stratified part of the official train set is our dev split (docs/science.md, "Test splits
Agora never sees"); the official test file is not read.

COPA is a two-way multiple choice (premise, a question "cause" or "effect", two alternatives). The
classifier of this project reads one text or a pair, so each COPA item becomes one pair:
text_a = the premise followed by the question as a sentence ("What was the cause?" / "What
happened as a result?", the wording of the SuperGLUE baselines), text_b = "(1) <choice1> (2)
<choice2>", and the label is the correct alternative (`choice1` or `choice2`). One example per
item, so accuracy on these pairs is exactly COPA's accuracy. What the reduction gives up is the
usual per-alternative scoring (each (premise, alternative) scored alone, the higher one wins),
which is symmetric in the two alternatives by construction; here the model sees both at once and
must learn that symmetry from the data (COPA's correct answers are balanced between positions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ose.configs import SUPERGLUE_TASKS
from ose.data.corpus import check_name
from ose.data.glue import HubDatasetUnavailable, load_hub_dataset, unavailable_reason
from ose.data.jsonl import jsonl_objects
from ose.data.splits import split_off_dev
from ose.data.tasks import TaskData, make_task_data, task_spec

SUPERGLUE_HUB_ID = "aps/super_glue"
COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What happened as a result?"}


@dataclass(frozen=True)
class SuperGlueLayout:
    """A SuperGLUE task's folder in the classic layout and the fields of its records.

    `fields` are the text fields, in the order of our text columns; COPA's are turned into a pair
    by `copa_pair` instead.
    """

    folder: str
    fields: tuple[str, ...]


SUPERGLUE_LAYOUTS: Mapping[str, SuperGlueLayout] = {
    "boolq": SuperGlueLayout("BoolQ", ("question", "passage")),
    "cb": SuperGlueLayout("CB", ("premise", "hypothesis")),
    "copa": SuperGlueLayout("COPA", ("premise", "question", "choice1", "choice2")),
    "rte": SuperGlueLayout("RTE", ("premise", "hypothesis")),
}
assert tuple(SUPERGLUE_LAYOUTS) == SUPERGLUE_TASKS


def copa_pair(premise: str, question: str, choice1: str, choice2: str) -> tuple[str, str]:
    """The sentence pair of one COPA item (see the module docstring): (premise + question, both
    alternatives, numbered)."""
    check_name("COPA question", question, COPA_QUESTIONS)
    return f"{premise} {COPA_QUESTIONS[question]}", f"(1) {choice1} (2) {choice2}"


def label_id(value: Any, label_names: Sequence[str], where: str) -> int:
    """A record's label as a class id: a label name ("entailment"), a boolean (BoolQ: false/true,
    id 0/1) or an id; an unlabelled record (missing, or the hub's -1) is an error."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value in label_names:
        return label_names.index(value)
    if isinstance(value, int) and 0 <= value < len(label_names):
        return value
    if value is None or value == -1:
        raise ValueError(f"{where}: no label (an unlabelled test record?)")
    raise ValueError(f"{where}: label {value!r} is neither one of {list(label_names)} nor an id")


def superglue_frame(records: Iterable[Mapping[str, Any]], task: str, where: str) -> pd.DataFrame:
    """Records of a SuperGLUE task (JSONL lines or hub rows) as a frame of our text columns and `label`.

    `where` names the source in errors; a record's position is appended (1-based: the JSONL line).
    """
    check_name("task", task, SUPERGLUE_TASKS)
    layout, spec = SUPERGLUE_LAYOUTS[task], task_spec(task)
    rows = []
    for number, record in enumerate(records, start=1):
        missing = [f for f in (*layout.fields, "label") if f not in record]
        if missing:
            raise ValueError(f"{where}:{number}: record lacks fields {missing}; has {sorted(record)}")
        texts = [str(record[f]) for f in layout.fields]
        if task == "copa":
            texts = list(copa_pair(*texts))
        rows.append([*texts, label_id(record["label"], spec.label_names, f"{where}:{number}")])
    if not rows:
        raise ValueError(f"{where}: no records")
    return pd.DataFrame(rows, columns=[*spec.text_columns, "label"])


def read_jsonl_records(path: str | Path) -> list[dict]:
    """The JSON objects of a JSON-lines file, one per non-empty line; errors name `path:line`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    records = [record for _, record in jsonl_objects(path.read_text(encoding="utf-8-sig"), path)]
    if not records:
        raise ValueError(f"{path}: empty file, expected one JSON object per line")
    return records


def _task_from_official(
    task: str, train: pd.DataFrame, validation: pd.DataFrame, dev_fraction: float, seed: int, provenance: dict
) -> TaskData:
    """Official train → our train + a seeded, stratified dev; official validation → our test."""
    ours_train, dev = split_off_dev(train, dev_fraction, np.random.default_rng(seed))
    provenance = {
        **provenance,
        "official_sizes": {"train": len(train), "validation": len(validation)},
        "dev_fraction": dev_fraction,
        "seed": seed,
    }
    if task == "copa":
        provenance["reduction"] = "multiple choice as a pair: (premise + question, '(1) choice1 (2) choice2')"
    return make_task_data(task, ours_train, dev, validation, provenance=provenance)


def read_superglue_task(
    superglue_dir: str | Path, task: str, *, dev_fraction: float = 0.1, seed: int = 0
) -> TaskData:
    """A SuperGLUE task from a folder in the classic layout (`<dir>/<Folder>/train.jsonl`, `val.jsonl`)."""
    check_name("task", task, SUPERGLUE_TASKS)
    folder = Path(superglue_dir) / SUPERGLUE_LAYOUTS[task].folder
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no {folder.name}/ folder in {superglue_dir} (SuperGLUE task {task!r}; data.superglue_dir)"
        )
    frames = {
        split: superglue_frame(
            read_jsonl_records(folder / f"{split}.jsonl"), task, str(folder / f"{split}.jsonl")
        )
        for split in ("train", "val")
    }
    provenance = {
        "source": f"local SuperGLUE folder {folder}",
        "files": {"train": "train.jsonl", "test": "val.jsonl"},
    }
    return _task_from_official(task, frames["train"], frames["val"], dev_fraction, seed, provenance)


def hub_superglue_task(
    task: str,
    *,
    dev_fraction: float = 0.1,
    seed: int = 0,
    dataset_id: str = SUPERGLUE_HUB_ID,
    cache_dir: str | Path | None = None,
) -> TaskData:
    """A SuperGLUE task through `datasets` (hub validation split → our test split).

    Offline and not cached, raises `HubDatasetUnavailable` with one line naming the dataset, the
    config and the local alternative (`data.superglue_dir`).
    """
    check_name("task", task, SUPERGLUE_TASKS)
    try:
        dataset = load_hub_dataset(dataset_id, task, cache_dir=cache_dir)
    except HubDatasetUnavailable as error:
        folder = SUPERGLUE_LAYOUTS[task].folder
        raise HubDatasetUnavailable(
            f"Cannot load SuperGLUE task {task!r} from dataset {dataset_id!r}: {unavailable_reason()}. "
            f"Set data.superglue_dir to a folder in the classic JSONL layout ({folder}/train.jsonl, "
            f"{folder}/val.jsonl), or go online once so that `datasets` caches it "
            "(HF_DATASETS_OFFLINE=0 HF_HUB_OFFLINE=0)."
        ) from error.__cause__
    frames = {}
    for split in ("train", "validation"):
        if split not in dataset:
            raise ValueError(f"{dataset_id}/{task} has no {split!r} split; it has {list(dataset)}")
        frames[split] = superglue_frame(dataset[split].to_list(), task, f"{dataset_id}/{task} {split} row")
    provenance = {"source": dataset_id, "config": task, "splits": {"train": "train", "test": "validation"}}
    return _task_from_official(task, frames["train"], frames["validation"], dev_fraction, seed, provenance)


def load_superglue_tasks(
    tasks: Sequence[str], superglue_dir: str, dev_fraction: float, seed: int
) -> list[TaskData]:
    """`data.superglue_tasks`: from `superglue_dir` when it is set, else through `datasets`."""
    if superglue_dir:
        return [read_superglue_task(superglue_dir, t, dev_fraction=dev_fraction, seed=seed) for t in tasks]
    return [hub_superglue_task(t, dev_fraction=dev_fraction, seed=seed) for t in tasks]
