"""The user's own classification tasks: labelled CSV, TSV or JSONL files named in `data.files`.

Each entry (`ose.configs.UserTask`) names the file(s), the text column(s) (one: single sentences;
two: sentence pairs), the label column and, optionally, the label order, a split column or one
file per split, and the main metric. `read_user_task` turns it into a `TaskData` like a built-in
task's, with the label names stored so that reports can print them:

- labels are read as strings (a CSV's `1` and a JSONL's `1` are the label "1") and mapped to ids in
  the order of `labels`, or sorted (numerically when every label is an integer);
- splits: the file's `split` column (train/dev/test per row), or one file per split; a split that
  is not given is carved from train, seeded and label-stratified (`data.dev_fraction`,
  `data.test_fraction`), exactly as our own tasks are split (`ose.data.splits.stratified_split`);
- errors name the params entry, the file, the column and what is allowed: a missing file or
  column, an empty file, an empty text or label, a label outside `labels`, a task of one class,
  an unknown split value, a split left empty.

Provenance records each file's path as given in params (relative paths stay relative, so the
output does not depend on the clone's location), its SHA-256 and its row count.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ose.configs import UserTask
from ose.data.jsonl import jsonl_objects
from ose.data.splits import stratified_split
from ose.data.tasks import TaskData, classification_spec, make_task_data
from ose.pipeline.paths import resolve

SPLITS = ("train", "dev", "test")
FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}  # suffix → field separator (None: JSON lines)
SHOWN = 5  # rows named in an error message


class UserTaskError(ValueError):
    """A user's task file that cannot become a task; the message names the entry, file and column."""


def read_table(path: Path, where: str, key: str = "path") -> pd.DataFrame:
    """Every column of a CSV, TSV or JSONL file as strings, one row per record.

    `frame.attrs["unit"]` says how rows are numbered in errors: "line" (JSONL: the file's line) or
    "data row" (CSV/TSV: 1 is the first row after the header). The row numbers are the index.
    """
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserTaskError(
            f"{where}: {path} ({key}): unknown file type {suffix!r}; allowed: {list(FORMATS)}"
        )
    if not path.is_file():
        raise UserTaskError(f"{where}: no such file: {path} ({key})")
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise UserTaskError(f"{where}: {path}: empty file")
    if FORMATS[suffix] is None:
        frame = _read_jsonl(path, text, where)
        frame.attrs["unit"] = "line"
    else:
        try:
            frame = pd.read_csv(
                path, sep=FORMATS[suffix], dtype=str, keep_default_na=False, encoding="utf-8-sig"
            )
        except pd.errors.ParserError as error:
            raise UserTaskError(
                f"{where}: {path}: not a well-formed {suffix[1:].upper()} file: {error}"
            ) from None
        frame.index = pd.RangeIndex(1, len(frame) + 1)
        frame.attrs["unit"] = "data row"
    if frame.empty:
        raise UserTaskError(f"{where}: {path}: a header but no rows")
    return frame


def _read_jsonl(path: Path, text: str, where: str) -> pd.DataFrame:
    """A JSON-lines file as a frame of strings indexed by line number; JSON null stays missing."""
    records, lines = [], []
    try:
        for number, record in jsonl_objects(text, path):
            records.append({k: None if v is None else str(v) for k, v in record.items()})
            lines.append(number)
    except ValueError as error:
        raise UserTaskError(f"{where}: {error}") from None
    return pd.DataFrame(records, index=pd.Index(lines, name="line"))


def _rows(frame: pd.DataFrame, mask: pd.Series) -> str:
    """'data rows [3, 9]' or 'lines [2]', at most SHOWN of them, for an error message."""
    numbers = frame.index[mask.to_numpy()].tolist()
    more = f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else ""
    return f"{frame.attrs['unit']}s {numbers[:SHOWN]}{more}"


def check_columns(frame: pd.DataFrame, path: Path, columns: Mapping[str, str], where: str) -> None:
    """Each params key's column (`{"text[0]": "review", "label": "sentiment"}`) is in the file and
    has no empty value."""
    for key, column in columns.items():
        if column not in frame.columns:
            raise UserTaskError(
                f"{where}: {path}: no column {column!r} ({key}); its columns: {list(frame.columns)}"
            )
        empty = frame[column].isna() | (frame[column].str.strip() == "")
        if empty.any():
            raise UserTaskError(
                f"{where}: {path}: column {column!r} ({key}) is empty at {_rows(frame, empty)}"
            )


def label_order(values: Sequence[str]) -> tuple[str, ...]:
    """The distinct labels, sorted: numerically when every one is an integer, else as strings."""
    distinct = set(values)
    if all(re.fullmatch(r"[+-]?\d+", v) for v in distinct):
        return tuple(sorted(distinct, key=int))
    return tuple(sorted(distinct))


def label_ids(
    frame: pd.DataFrame, path: Path, column: str, label_names: Sequence[str], where: str
) -> np.ndarray:
    """The label column as ids (index in `label_names`); a label outside them is an error."""
    unknown = ~frame[column].isin(label_names)
    if unknown.any():
        shown = sorted(set(frame[column][unknown]))[:SHOWN]
        raise UserTaskError(
            f"{where}: {path}: column {column!r} has labels {shown} at {_rows(frame, unknown)} that are "
            f"not in labels {list(label_names)}"
        )
    index = {name: i for i, name in enumerate(label_names)}
    return frame[column].map(index).to_numpy(dtype=np.int64)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def given_splits(cfg: UserTask, where: str) -> tuple[dict[str, tuple[Path, pd.DataFrame]], dict]:
    """The splits the entry gives, each with its file and rows: `path` (all in train, or by its
    `split` column) or `train`/`dev`/`test`; and the files' provenance."""
    files = {"all": cfg.path} if cfg.path else {s: getattr(cfg, s) for s in SPLITS if getattr(cfg, s)}
    tables = {
        name: (resolve(file), read_table(resolve(file), where, "path" if name == "all" else name))
        for name, file in files.items()
    }
    provenance = {
        name: {"path": file, "sha256": _sha256(tables[name][0]), "rows": len(tables[name][1])}
        for name, file in files.items()
    }
    if "all" not in tables:
        return tables, provenance
    path, table = tables["all"]
    if not cfg.split:
        return {"train": (path, table)}, provenance
    check_columns(table, path, {"split": cfg.split}, where)
    unknown = ~table[cfg.split].isin(SPLITS)
    if unknown.any():
        shown = sorted(set(table[cfg.split][unknown]))[:SHOWN]
        raise UserTaskError(
            f"{where}: {path}: column {cfg.split!r} (split) has values {shown} at {_rows(table, unknown)}; "
            f"allowed: {list(SPLITS)}"
        )
    parts = {s: (path, table[table[cfg.split] == s]) for s in SPLITS if (table[cfg.split] == s).any()}
    if "train" not in parts:
        raise UserTaskError(f"{where}: {path}: column {cfg.split!r} (split) marks no row as train")
    return parts, provenance


def complete_splits(
    given: Mapping[str, pd.DataFrame], dev_fraction: float, test_fraction: float, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """train, dev and test: the given ones, and the missing ones carved from train.

    A missing split takes its fraction of the given train rows, label-stratified; with neither dev
    nor test given this is `build_task`'s (train, dev, test) split of one pool.
    """
    missing = [s for s in ("dev", "test") if s not in given]
    if not missing:
        return dict(given)
    train = given["train"].reset_index(drop=True)
    fractions = {"dev": dev_fraction, "test": test_fraction}
    parts = stratified_split(
        train["label"].tolist(),
        len(train),
        (1 - sum(fractions[s] for s in missing), *(fractions[s] for s in missing)),
        rng,
    )
    out = dict(given)
    out["train"] = train.iloc[parts[0]]
    for split, rows in zip(missing, parts[1:], strict=True):
        out[split] = train.iloc[rows]
    return out


def read_user_task(
    cfg: UserTask, *, dev_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0, where: str = ""
) -> TaskData:
    """A user's task (one `data.files` entry) as a `TaskData`; `where` names the entry in errors."""
    where = where or f"data.files ({cfg.name})"
    splits, files = given_splits(cfg, where)
    columns = {f"text[{k}]": c for k, c in enumerate(cfg.text)} | {"label": cfg.label}
    for path, table in splits.values():
        check_columns(table, path, columns, where)
    names = cfg.label_names or label_order([v for _, t in splits.values() for v in t[cfg.label]])
    frames = {}
    for split, (path, table) in splits.items():
        ids = label_ids(table, path, cfg.label, names, where)
        texts = {c: table[column].to_numpy() for c, column in zip(_text_columns(cfg), cfg.text, strict=True)}
        frames[split] = pd.DataFrame({**texts, "label": ids})
    present = sorted({int(i) for f in frames.values() for i in f["label"]})
    if len(present) < 2:
        files = sorted({str(p) for p, _ in splits.values()})
        raise UserTaskError(
            f"{where}: {', '.join(files)}: column {cfg.label!r} holds one class ({names[present[0]]!r}); "
            "a classification task needs at least two"
        )
    try:
        spec = classification_spec(cfg.name, len(cfg.text), names, cfg.metric)
    except ValueError as error:
        raise UserTaskError(f"{where}: {error}") from None
    frames = complete_splits(frames, dev_fraction, test_fraction, np.random.default_rng(seed))
    _check_split_sizes(frames, names, where)
    provenance = {
        "source": "user files",
        "files": files,
        "text": list(cfg.text),
        "label": cfg.label,
        "split_column": cfg.split or None,
        "given_splits": sorted(splits),
        "seed": seed,
        "dev_fraction": dev_fraction,
        "test_fraction": test_fraction,
    }
    return make_task_data(
        cfg.name, frames["train"], frames["dev"], frames["test"], provenance=provenance, spec=spec
    )


def _text_columns(cfg: UserTask) -> tuple[str, ...]:
    return ("text",) if len(cfg.text) == 1 else ("text_a", "text_b")


def _check_split_sizes(frames: Mapping[str, pd.DataFrame], names: Sequence[str], where: str) -> None:
    """Every split has rows, and train has two classes (else fine-tuning learns nothing)."""
    sizes = {s: len(frames[s]) for s in SPLITS}
    for split in SPLITS:
        if not sizes[split]:
            remedy = "give more rows" + (f", or raise data.{split}_fraction" if split != "train" else "")
            raise UserTaskError(f"{where}: the {split} split is empty (split sizes {sizes}); {remedy}")
    classes = sorted(set(frames["train"]["label"].tolist()))
    if len(classes) < 2:
        raise UserTaskError(
            f"{where}: the train split holds one class ({names[classes[0]]!r}, {sizes['train']} rows); "
            "give more rows of the other classes"
        )


def load_user_tasks(
    files: Sequence[UserTask], dev_fraction: float, test_fraction: float, seed: int
) -> list[TaskData]:
    """Every `data.files` entry as a task, in order; errors name `data.files[k] (<name>)`."""
    return [
        read_user_task(
            cfg,
            dev_fraction=dev_fraction,
            test_fraction=test_fraction,
            seed=seed,
            where=f"data.files[{k}] ({cfg.name})",
        )
        for k, cfg in enumerate(files)
    ]
