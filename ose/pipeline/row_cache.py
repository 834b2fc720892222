"""Resumable row caches: the finished rows of a long computation, in a CSV file.

A computation made of many independent pieces (a latency per ξ in `ose.search.cost_model`, a surrogate
error per (ξ, θ) in `ose.search.surrogate`) rewrites its CSV file after each new row, so an interrupted
run resumes where it stopped. `read_rows` gives the rows by the values of some key columns, only
those whose settings match when asked; `write_rows` rewrites the whole file atomically
(`ose.pipeline.atomic`), so a reader never sees half a file.

Values read back are strings: the caller converts them. Values are written as `csv` writes them,
floats with `repr`, so a float reads back exactly and a file rewritten with the rows it holds is
byte-identical.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ose.pipeline.atomic import atomic_path


def read_rows(
    path: str | Path, key: Sequence[str], where: Mapping[str, str] | None = None
) -> dict[tuple[str, ...], dict[str, str]]:
    """The rows of a CSV file by the values of its `key` columns; {} when there is no file.

    where: keep only the rows whose columns hold these values (e.g. `{"settings": key}`); other
    rows stay in the file but are not returned. A key that occurs twice keeps its first position
    and its last row.
    """
    path = Path(path)
    if not path.exists():
        return {}
    where = dict(where or {})
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return {}  # an empty file: no header, no rows
        missing = [c for c in (*key, *where) if c not in reader.fieldnames]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; the header is {reader.fieldnames}")
        for row in reader:
            if all(row[column] == value for column, value in where.items()):
                rows[tuple(row[column] for column in key)] = row
    return rows


def write_rows(path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Rewrite `path` atomically: the header `columns`, then one line per row (other keys ignored)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
