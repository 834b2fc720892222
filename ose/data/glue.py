"""GLUE and SuperGLUE data, from a local folder in the classic TSV layout or through `datasets`.

Local folder: the layout `download_glue_data.py` produces (`<glue_dir>/RTE/train.tsv`, ...). Fields
are split on tabs only: quotes are ordinary characters (SST-2 and MRPC have unbalanced `"`), and
lines are split on `\\n` only (some texts hold other Unicode line separators). A UTF-8 BOM before
the header (MRPC) is dropped; a missing final newline (CoLA dev) is fine.

Hub: `load_hub_task("glue", "rte")` loads `datasets`' `glue`/`super_glue` configs (SuperGLUE's
classic JSONL layout, and COPA, are `ose.data.superglue`'s). Offline and not
cached, it fails at once with `HubDatasetUnavailable`, naming the dataset id and config.

Either way the result is a `TaskData` whose test split is the official dev set and whose dev split
is a seeded, label-stratified part of the official train set (docs/science.md, "Test splits Agora
never sees").
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ose.data.corpus import check_name
from ose.data.splits import split_off_dev
from ose.data.tasks import TaskData, make_task_data, task_spec


@dataclass(frozen=True)
class TsvLayout:
    """Where a GLUE task's fields sit in its classic TSV files.

    `fields` name the text column(s) then the label column, as header names, or as 0-based
    positions when the files have no header (CoLA). `test_files` maps our test split names to
    official dev files.
    """

    folder: str
    fields: tuple[str | int, ...]
    test_files: Mapping[str, str]
    has_header: bool = True
    skip_malformed: bool = False  # QQP's train file has a few rows with missing fields


_DEV = {"test": "dev.tsv"}
GLUE_TSV: Mapping[str, TsvLayout] = {
    "cola": TsvLayout("CoLA", (3, 1), _DEV, has_header=False),
    "sst2": TsvLayout("SST-2", ("sentence", "label"), _DEV),
    "mrpc": TsvLayout("MRPC", ("#1 String", "#2 String", "Quality"), _DEV),
    "qqp": TsvLayout("QQP", ("question1", "question2", "is_duplicate"), _DEV, skip_malformed=True),
    "stsb": TsvLayout("STS-B", ("sentence1", "sentence2", "score"), _DEV),
    "mnli": TsvLayout(
        "MNLI",
        ("sentence1", "sentence2", "gold_label"),
        {"test": "dev_matched.tsv", "test_mismatched": "dev_mismatched.tsv"},
    ),
    "qnli": TsvLayout("QNLI", ("question", "sentence", "label"), _DEV),
    "rte": TsvLayout("RTE", ("sentence1", "sentence2", "label"), _DEV),
    "wnli": TsvLayout("WNLI", ("sentence1", "sentence2", "label"), _DEV),
}
GLUE_TASKS = tuple(GLUE_TSV)


def _parse_label(value: str, label_names: tuple[str, ...] | None, where: str) -> float | int:
    if label_names is None:
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f"{where}: score {value!r} is not a number") from None
        if not math.isfinite(score):
            raise ValueError(f"{where}: score {value!r} is not a finite number")
        return score
    if value in label_names:
        return label_names.index(value)
    if value.isdigit() and int(value) < len(label_names):
        return int(value)
    raise ValueError(f"{where}: label {value!r} is neither one of {list(label_names)} nor an id")


def read_glue_file(path: str | Path, task: str) -> pd.DataFrame:
    """One classic GLUE TSV file of `task` as a frame with the task's text columns and `label`."""
    check_name("task", task, GLUE_TASKS)
    layout, spec = GLUE_TSV[task], task_spec(task)
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise ValueError(f"{path}:1: empty file, expected tab-separated rows of GLUE task {task!r}")
    first = 1 if layout.has_header else 0
    if len(lines) == first:
        raise ValueError(f"{path}:2: no data rows after the header")
    if layout.has_header:
        header = lines[0].split("\t")
        missing = [name for name in layout.fields if name not in header]
        if missing:
            raise ValueError(f"{path}: header {header} lacks columns {missing}")
        positions = [header.index(name) for name in layout.fields]
        width = len(header)
    else:
        positions = [int(p) for p in layout.fields]
        width = len(lines[0].split("\t"))
    rows, skipped = [], 0
    for number, line in enumerate(lines[first:], start=first + 1):
        values = line.split("\t")
        if len(values) != width:
            if layout.skip_malformed:
                skipped += 1
                continue
            raise ValueError(f"{path}:{number}: {len(values)} tab-separated fields, not {width}")
        *texts, label = (values[p] for p in positions)
        label_value = _parse_label(label, spec.label_names, f"{path}:{number}")
        rows.append([*(t.strip() for t in texts), label_value])
    frame = pd.DataFrame(rows, columns=[*spec.text_columns, "label"])
    frame.attrs["skipped_malformed_rows"] = skipped
    return frame


def read_glue_task(glue_dir: str | Path, task: str, *, dev_fraction: float = 0.1, seed: int = 0) -> TaskData:
    """A GLUE task from a local folder: official train → our train + dev; official dev → test."""
    check_name("task", task, GLUE_TASKS)
    layout = GLUE_TSV[task]
    folder = Path(glue_dir) / layout.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"no {layout.folder}/ folder in {glue_dir} (GLUE task {task!r})")
    official_train = read_glue_file(folder / "train.tsv", task)
    tests = {name: read_glue_file(folder / file, task) for name, file in layout.test_files.items()}
    rng = np.random.default_rng(seed)
    train, dev = split_off_dev(official_train, dev_fraction, rng, stratify=not task_spec(task).is_regression)
    provenance = {
        "source": f"local GLUE folder {folder}",
        "files": {"train": "train.tsv", **dict(layout.test_files)},
        "official_sizes": {"train": len(official_train), **{k: len(v) for k, v in tests.items()}},
        "skipped_malformed_rows": official_train.attrs.get("skipped_malformed_rows", 0),
        "dev_fraction": dev_fraction,
        "seed": seed,
    }
    test = tests.pop("test")
    return make_task_data(task, train, dev, test, extra_tests=tests, provenance=provenance)


# ---------------------------------------------------------------------------------------------
# Hugging Face `datasets`


@dataclass(frozen=True)
class HubLayout:
    """Column names of a hub config, and which of its splits becomes which of ours."""

    task: str
    fields: tuple[str, ...]  # text column(s), then the label column
    test_splits: Mapping[str, str]  # our name -> hub split (the official dev set)


_VALIDATION = {"test": "validation"}
HUB_LAYOUTS: Mapping[tuple[str, str], HubLayout] = {
    ("glue", "cola"): HubLayout("cola", ("sentence", "label"), _VALIDATION),
    ("glue", "sst2"): HubLayout("sst2", ("sentence", "label"), _VALIDATION),
    ("glue", "mrpc"): HubLayout("mrpc", ("sentence1", "sentence2", "label"), _VALIDATION),
    ("glue", "qqp"): HubLayout("qqp", ("question1", "question2", "label"), _VALIDATION),
    ("glue", "stsb"): HubLayout("stsb", ("sentence1", "sentence2", "label"), _VALIDATION),
    ("glue", "mnli"): HubLayout(
        "mnli",
        ("premise", "hypothesis", "label"),
        {"test": "validation_matched", "test_mismatched": "validation_mismatched"},
    ),
    ("glue", "qnli"): HubLayout("qnli", ("question", "sentence", "label"), _VALIDATION),
    ("glue", "rte"): HubLayout("rte", ("sentence1", "sentence2", "label"), _VALIDATION),
    ("glue", "wnli"): HubLayout("wnli", ("sentence1", "sentence2", "label"), _VALIDATION),
    ("super_glue", "boolq"): HubLayout("boolq", ("question", "passage", "label"), _VALIDATION),
    ("super_glue", "cb"): HubLayout("cb", ("premise", "hypothesis", "label"), _VALIDATION),
    ("super_glue", "rte"): HubLayout("rte", ("premise", "hypothesis", "label"), _VALIDATION),
}
BENCHMARKS = ("glue", "super_glue")


class HubDatasetUnavailable(RuntimeError):
    """A hub dataset could not be loaded (offline and not cached, or unreachable)."""


def _benchmark_of(dataset_id: str) -> str:
    """`glue`, `nyu-mll/glue`, `/data/mirror/glue` → `glue`; likewise `super_glue`."""
    name = Path(dataset_id.rstrip("/")).name.replace("-", "_")
    return name if name in BENCHMARKS else dataset_id


def unavailable_reason() -> str:
    """Why a hub dataset did not load: offline and not cached, or not reachable."""
    offline = [f"{v}=1" for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if os.environ.get(v) == "1"]
    if offline:
        return f"offline mode is on ({', '.join(offline)}) and it is not in the local cache"
    return "it could not be reached or found"


def load_hub_dataset(dataset_id: str, config: str, *, cache_dir: str | Path | None = None) -> Any:
    """`datasets.DatasetDict` of a hub id (or local copy of a hub repo) and config.

    `dataset_id` may be a hub id, a local folder laid out like the hub repo (config subfolders
    and a README declaring them, e.g. a `git clone` of `nyu-mll/glue`), or a folder holding one
    `DatasetDict.save_to_disk` output per config (`<dataset_id>/<config>/dataset_dict.json`).
    """
    import datasets

    saved = Path(dataset_id) / config
    if (saved / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(saved))
    try:
        return datasets.load_dataset(
            dataset_id, config, cache_dir=None if cache_dir is None else str(cache_dir)
        )
    except (ConnectionError, FileNotFoundError) as error:
        why = unavailable_reason()
        local_tsv = (
            f"a local GLUE folder in the classic TSV layout (read_glue_task(dir, {config!r})), "
            if config in GLUE_TSV and _benchmark_of(dataset_id) == "glue"
            else ""
        )
        raise HubDatasetUnavailable(
            f"Cannot load dataset {dataset_id!r}, config {config!r}: {why}. Use {local_tsv}a local "
            f"copy of the hub repository (load_hub_task('/path/to/{Path(dataset_id).name}', "
            f"{config!r})), or go online once so that `datasets` caches it "
            f"(HF_DATASETS_OFFLINE=0 HF_HUB_OFFLINE=0). Cause: {error}"
        ) from error


def hub_to_task(
    dataset: Mapping[str, Any],
    benchmark: str,
    config: str,
    *,
    dev_fraction: float = 0.1,
    seed: int = 0,
    source: str = "",
) -> TaskData:
    """Turn a loaded `DatasetDict` into a `TaskData` (hub validation split → our test split)."""
    check_name("benchmark", benchmark, BENCHMARKS)
    configs = [c for b, c in HUB_LAYOUTS if b == benchmark]
    check_name("config", config, configs)
    layout = HUB_LAYOUTS[(benchmark, config)]
    spec = task_spec(layout.task)

    def frame(split: str) -> pd.DataFrame:
        if split not in dataset:
            raise ValueError(f"{source or benchmark}/{config} has no {split!r} split; it has {list(dataset)}")
        table = dataset[split].to_pandas()
        missing = [c for c in layout.fields if c not in table.columns]
        if missing:
            raise ValueError(f"{source or benchmark}/{config} {split} lacks columns {missing}")
        renamed = dict(zip(layout.fields, [*spec.text_columns, "label"], strict=True))
        return table[list(layout.fields)].rename(columns=renamed)

    official_train = frame("train")
    tests = {ours: frame(theirs) for ours, theirs in layout.test_splits.items()}
    rng = np.random.default_rng(seed)
    train, dev = split_off_dev(official_train, dev_fraction, rng, stratify=not spec.is_regression)
    provenance = {
        "source": source or benchmark,
        "config": config,
        "splits": {"train": "train", **dict(layout.test_splits)},
        "official_sizes": {"train": len(official_train), **{k: len(v) for k, v in tests.items()}},
        "dev_fraction": dev_fraction,
        "seed": seed,
    }
    test = tests.pop("test")
    return make_task_data(layout.task, train, dev, test, extra_tests=tests, provenance=provenance)


def load_hub_task(
    dataset_id: str,
    config: str,
    *,
    dev_fraction: float = 0.1,
    seed: int = 0,
    benchmark: str | None = None,
    cache_dir: str | Path | None = None,
) -> TaskData:
    """A GLUE/SuperGLUE task through `datasets` (hub id or local copy; see `load_hub_dataset`).

    `benchmark` (`glue` or `super_glue`) defaults to the last component of `dataset_id`. The
    config is checked before anything is loaded.
    """
    benchmark = benchmark or _benchmark_of(dataset_id)
    check_name("benchmark", benchmark, BENCHMARKS)
    check_name("config", config, [c for b, c in HUB_LAYOUTS if b == benchmark])
    dataset = load_hub_dataset(dataset_id, config, cache_dir=cache_dir)
    return hub_to_task(dataset, benchmark, config, dev_fraction=dev_fraction, seed=seed, source=dataset_id)
