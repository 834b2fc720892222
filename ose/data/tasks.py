"""Downstream tasks: what each task is (text columns, labels, metrics), and its files.

A split is a `pandas.DataFrame` with the task's text columns (`text` for one sentence, `text_a` and
`text_b` for a pair) and `label` (class id, or a float for regression).

Built-in tasks have their spec in `TASK_SPECS`. A user's own task (`ose.data.user_tasks`) brings its
spec (`classification_spec`) to `make_task_data`, which registers it, and `task.json` carries it,
so `load_task` registers it again in a new process: `task_spec`, `main_metric` and `score` then
know the task by name like a built-in one.

Splits (docs/science.md, "Test splits Agora never sees"): Agora reads the dev set, so every
reported score is on a test split that Agora never saw. Our own tasks (`rotten_tomatoes`, `imdb`,
`bbc`) get a seeded, label-stratified train/dev/test split of their corpus. For GLUE and SuperGLUE,
whose test labels are hidden, the official dev set is our test split and a seeded part of the
official train set is our dev split (`split_off_dev`; readers in `ose.data.glue`).

Seeded splits are in `ose.data.splits`, metrics and `score` in `ose.data.metrics`.
"""

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ose.configs import OWN_TASKS
from ose.data.corpus import POLARITY, check_name, read_bbc, read_imdb, read_rotten_tomatoes
from ose.data.jsonl import jsonl_objects
from ose.data.splits import stratified_split, subsample_fractions
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.results import json_ready

SINGLE = ("text",)
PAIR = ("text_a", "text_b")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is, independent of where its data comes from."""

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None  # None: regression
    metric_names: tuple[str, ...]
    main_metric: str

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)


def _spec(
    name: str,
    columns: tuple[str, ...],
    labels: tuple[str, ...] | None,
    metrics: tuple[str, ...] = ("accuracy",),
    main: str | None = None,
) -> TaskSpec:
    return TaskSpec(name, columns, labels, tuple(metrics), main or metrics[0])


ENTAILMENT = ("entailment", "not_entailment")  # HF glue/rte, glue/qnli, super_glue/rte order
BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")

# Label order is the Hugging Face `glue` / `super_glue` order, so hub and TSV data agree.
TASK_SPECS: Mapping[str, TaskSpec] = {
    s.name: s
    for s in (
        _spec("rotten_tomatoes", SINGLE, POLARITY),
        _spec("imdb", SINGLE, POLARITY),
        _spec("bbc", SINGLE, BBC_TOPICS, ("accuracy", "macro_f1")),
        _spec("cola", SINGLE, ("unacceptable", "acceptable"), ("mcc",)),
        _spec("sst2", SINGLE, POLARITY),
        _spec("mrpc", PAIR, ("not_equivalent", "equivalent"), ("f1", "accuracy")),
        _spec("qqp", PAIR, ("not_duplicate", "duplicate"), ("f1", "accuracy")),
        _spec("stsb", PAIR, None, ("pearson", "spearman"), "spearman"),
        _spec("mnli", PAIR, ("entailment", "neutral", "contradiction")),
        _spec("qnli", PAIR, ENTAILMENT),
        _spec("rte", PAIR, ENTAILMENT),
        _spec("wnli", PAIR, ("not_entailment", "entailment")),
        _spec("boolq", PAIR, ("False", "True")),
        _spec("cb", PAIR, ("entailment", "contradiction", "neutral"), ("accuracy", "macro_f1")),
        # multiple choice as a pair: (premise + question, both alternatives) → which one (ose.data.superglue)
        _spec("copa", PAIR, ("choice1", "choice2")),
    )
}
TASK_NAMES = tuple(TASK_SPECS)
CLASSIFICATION_METRICS = ("accuracy", "f1", "macro_f1", "mcc")  # what a user's task may rank by

# Specs of the user's own tasks met in this process (by `make_task_data` or `load_task`).
_USER_SPECS: dict[str, TaskSpec] = {}


def task_spec(name: str) -> TaskSpec:
    """The spec of a task by name: a built-in one (`TASK_NAMES`), or a user's task made or loaded."""
    if name in _USER_SPECS:
        return _USER_SPECS[name]
    return TASK_SPECS[check_name("task", name, [*TASK_NAMES, *_USER_SPECS])]


def classification_spec(
    name: str, text_columns: int, label_names: Sequence[str], metric: str = "accuracy"
) -> TaskSpec:
    """The spec of a user's classification task: one text column or a pair, labels in id order.

    `metric` is the main metric; accuracy is always among the metrics (first when it is the main
    one, second otherwise, as for MRPC). f1 is the F1 of the second label (id 1), so needs two.
    """
    if name in TASK_SPECS:
        raise ValueError(f"task name {name!r} clashes with a built-in task; built-in: {list(TASK_NAMES)}")
    check_name("metric", metric, CLASSIFICATION_METRICS)
    if text_columns not in (1, 2):
        raise ValueError(f"{name}: a task has one text column or a pair, got {text_columns} columns")
    labels = tuple(str(label) for label in label_names)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(
            f"{name}: a classification task needs at least two distinct labels, got {list(labels)}"
        )
    if metric == "f1" and len(labels) != 2:
        raise ValueError(f"{name}: metric f1 is the positive class's F1, for two labels; got {list(labels)}")
    metrics = ("accuracy",) if metric == "accuracy" else (metric, "accuracy")
    return _spec(name, SINGLE if text_columns == 1 else PAIR, labels, metrics)


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make a user's task known by name in this process (`task_spec`, `score`); a built-in name is
    an error, a later spec of the same name replaces the earlier one."""
    if spec.name in TASK_SPECS:
        raise ValueError(
            f"task name {spec.name!r} clashes with a built-in task; built-in: {list(TASK_NAMES)}"
        )
    _USER_SPECS[spec.name] = spec
    return spec


def main_metric(task: str) -> str:
    """Name of the metric a task is ranked by (a key of `score`'s result)."""
    return task_spec(task).main_metric


@dataclass(frozen=True, eq=False)
class TaskData:
    """One task's splits and everything needed to train on and score it.

    `extra_tests` holds further test sets (MNLI's mismatched dev set as `test_mismatched`).
    Compare splits with `pandas.testing`, not `==` (identity only: frames have no truth value).
    Agora's grown train set is `dataclasses.replace(task, train=new_train)`.
    """

    name: str
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    num_labels: int
    metric_names: tuple[str, ...]
    main_metric: str
    is_regression: bool
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None = None
    extra_tests: dict[str, pd.DataFrame] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def splits(self) -> dict[str, pd.DataFrame]:
        """Every split by name: train, dev, test, then the extra test sets."""
        return {"train": self.train, "dev": self.dev, "test": self.test, **self.extra_tests}


def make_task_data(
    name: str,
    train: pd.DataFrame,
    dev: pd.DataFrame,
    test: pd.DataFrame,
    *,
    extra_tests: Mapping[str, pd.DataFrame] | None = None,
    provenance: Mapping[str, Any] | None = None,
    spec: TaskSpec | None = None,
) -> TaskData:
    """Assemble a `TaskData` from splits, checking columns and labels against the task's spec.

    `spec` is for a user's own task (`classification_spec`; it is registered, see `register_task`);
    a built-in task's spec comes from `TASK_SPECS`.
    """
    if spec is not None and spec.name != name:
        raise ValueError(f"spec of task {spec.name!r} given for task {name!r}")
    spec = task_spec(name) if spec is None else register_task(spec)
    splits = {"train": train, "dev": dev, "test": test, **(extra_tests or {})}
    columns = [*spec.text_columns, "label"]
    checked = {}
    for split, frame in splits.items():
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} {split} split lacks columns {missing}; has {list(frame)}")
        frame = frame[columns].reset_index(drop=True)
        if spec.is_regression:
            frame = frame.astype({"label": float})
            if not np.isfinite(frame["label"]).all():
                raise ValueError(f"{name} {split} split has non-finite labels (NaN or infinity)")
        else:
            frame = frame.astype({"label": int})
            bad = ~frame["label"].between(0, spec.num_labels - 1)
            if bad.any():
                shown = sorted(frame["label"][bad].unique().tolist())[:5]
                raise ValueError(f"{name} {split} split has labels outside 0..{spec.num_labels - 1}: {shown}")
        checked[split] = frame
    return TaskData(
        name=name,
        train=checked.pop("train"),
        dev=checked.pop("dev"),
        test=checked.pop("test"),
        num_labels=spec.num_labels,
        metric_names=spec.metric_names,
        main_metric=spec.main_metric,
        is_regression=spec.is_regression,
        text_columns=spec.text_columns,
        label_names=spec.label_names,
        extra_tests=checked,
        provenance=dict(provenance or {}),
    )


def eval_texts(task: TaskData) -> set[str]:
    """Every text of every split except train: what pretraining must never see."""
    texts: set[str] = set()
    for name, frame in task.splits().items():
        if name != "train":
            for column in task.text_columns:
                texts.update(frame[column].astype(str))
    return texts


# ---------------------------------------------------------------------------------------------
# Our own tasks, from the corpora


OWN_TASK_READERS: Mapping[str, Callable[[], Any]] = {
    "rotten_tomatoes": read_rotten_tomatoes,
    "imdb": read_imdb,
    "bbc": read_bbc,
}


def build_task(
    name: str,
    *,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    max_examples: int | None = None,
    readers: Mapping[str, Callable[[], Any]] = OWN_TASK_READERS,
) -> TaskData:
    """A seeded, label-stratified train/dev/test split of one of our own tasks (`OWN_TASKS`).

    `max_examples` first draws a stratified subsample of that size (the rest of the corpus is
    then neither train, dev nor test). Same arguments ⇒ same splits, of the sizes that
    `ose.data.splits.task_split_sizes` computes. `readers` is for tests.
    """
    check_name("name", name, OWN_TASKS)
    corpus = readers[name]()
    spec = task_spec(name)
    label_ids = [spec.label_names.index(label) for label in corpus.labels]
    rng = np.random.default_rng(seed)
    index = np.arange(len(corpus.texts))
    subsample = subsample_fractions(len(index), max_examples)
    if subsample:
        _, index = stratified_split(label_ids, len(index), subsample, rng)
    frame = pd.DataFrame({"text": [corpus.texts[i] for i in index], "label": [label_ids[i] for i in index]})
    train_fraction = 1 - dev_fraction - test_fraction
    train, dev, test = stratified_split(
        frame["label"].tolist(), len(frame), (train_fraction, dev_fraction, test_fraction), rng
    )
    provenance = {
        "corpus": corpus.provenance.to_dict(),
        "seed": seed,
        "dev_fraction": dev_fraction,
        "test_fraction": test_fraction,
        "max_examples": max_examples,
    }
    return make_task_data(name, frame.iloc[train], frame.iloc[dev], frame.iloc[test], provenance=provenance)


# ---------------------------------------------------------------------------------------------
# Saving and loading (JSON lines: texts may hold tabs and quotes)

TASK_FILE = "task.json"


def save_task(task: TaskData, directory: str | Path) -> None:
    """Write `<split>.jsonl` per split and `task.json` (spec, sizes, provenance), atomically.

    `task.json` is written last: its presence means the split files beside it are complete.
    """
    directory = Path(directory)
    sizes = {}
    for split, frame in task.splits().items():
        records = frame.to_dict(orient="records")
        # json.dumps asks only about what it cannot write: numpy scalars (`json_ready`), else the
        # text; floats it writes itself (a NaN as NaN, as these files always had it)
        lines = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in records)
        write_text_atomic(directory / f"{split}.jsonl", lines)
        sizes[split] = len(frame)
    meta = {
        "name": task.name,
        "num_labels": task.num_labels,
        "label_names": list(task.label_names) if task.label_names else None,
        "metric_names": list(task.metric_names),
        "main_metric": task.main_metric,
        "is_regression": task.is_regression,
        "text_columns": list(task.text_columns),
        "sizes": sizes,
        "provenance": task.provenance,
    }
    write_text_atomic(directory / TASK_FILE, json.dumps(meta, indent=2, default=str) + "\n")


def _json_default(value: Any) -> Any:
    return json_ready(value) if hasattr(value, "item") else str(value)


def _read_jsonl(path: Path, columns: Sequence[str], regression: bool) -> pd.DataFrame:
    """Rows of a split file (read by `ose.data.jsonl`); a line that is not a row of this task is a
    `path:line:` error."""
    rows = []
    for number, row in jsonl_objects(path.read_text(encoding="utf-8"), path):
        label = row.get("label")
        if regression and (isinstance(label, bool) or not isinstance(label, (int, float))):
            raise ValueError(f"{path}:{number}: label {label!r} is not a number")
        if regression and not math.isfinite(label):
            raise ValueError(f"{path}:{number}: label {label!r} is not a finite number")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}:1: empty file, expected one JSON object per line")
    return pd.DataFrame(rows, columns=list(columns))


def load_task(directory: str | Path) -> TaskData:
    """Read a task written by `save_task`."""
    directory = Path(directory)
    meta = json.loads((directory / TASK_FILE).read_text(encoding="utf-8"))
    columns = [*meta["text_columns"], "label"]
    regression = meta["is_regression"]
    splits = {
        split: _read_jsonl(directory / f"{split}.jsonl", columns, regression) for split in meta["sizes"]
    }
    for split, size in meta["sizes"].items():
        if len(splits[split]) != size:
            raise ValueError(
                f"{directory}/{split}.jsonl has {len(splits[split])} rows, task.json says {size}"
            )
    task = make_task_data(
        meta["name"],
        splits.pop("train"),
        splits.pop("dev"),
        splits.pop("test"),
        extra_tests=splits,
        provenance=meta["provenance"],
        spec=None if meta["name"] in TASK_SPECS else _saved_spec(meta),
    )
    saved_labels = None if meta["label_names"] is None else tuple(meta["label_names"])
    if saved_labels != task.label_names:
        raise ValueError(
            f"{directory} was saved with labels {saved_labels}; the {task.name} "
            f"task now has {task.label_names}"
        )
    return task


def _saved_spec(meta: Mapping[str, Any]) -> TaskSpec:
    """The spec of a user's task as `save_task` wrote it into `task.json`."""
    name, labels = meta["name"], meta["label_names"]
    if meta["is_regression"] or not labels:
        raise ValueError(f"task {name!r} is not built in, and only a built-in task can be regression")
    spec = classification_spec(name, len(meta["text_columns"]), labels, meta["main_metric"])
    saved = (tuple(meta["text_columns"]), tuple(meta["metric_names"]))
    if saved != (spec.text_columns, spec.metric_names):
        raise ValueError(
            f"task.json of {name!r} has text columns and metrics {saved}, expected "
            f"{(spec.text_columns, spec.metric_names)}"
        )
    return spec
