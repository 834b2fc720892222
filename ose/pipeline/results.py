"""Writing results: JSON metrics and CSV + Markdown tables, always atomically (temp file, rename)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Self

from ose.pipeline.atomic import write_text_atomic


def json_ready(value):
    """`value` as plain JSON values, the one sanitiser of everything written as JSON: numpy (and
    torch) scalars → Python numbers (`.item()`), NaN and ±inf → None (JSON null), tuples → lists,
    dict keys → `str(key)`, recursively; anything else is returned as it is (`json.dumps` then
    refuses what JSON cannot hold). The result is what reading the written file gives back."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def write_json(path: str | Path, data: dict) -> Path:
    return write_text_atomic(path, json.dumps(json_ready(data), indent=2) + "\n")


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _cell(value, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 2) -> str:
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, ""), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(
    stem: str | Path,
    rows: Sequence[dict],
    columns: Sequence[str] | None = None,
    title: str = "",
    digits: int = 2,
) -> tuple[Path, Path]:
    """`stem.csv` (every column, full precision) and `stem.md` (the chosen columns, rounded)."""
    if not rows:
        raise ValueError(f"no rows to write to {stem}")
    stem = Path(stem)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = write_text_atomic(stem.with_suffix(".csv"), buffer.getvalue())
    heading = f"{title}\n\n" if title else ""
    md_path = write_text_atomic(stem.with_suffix(".md"), heading + markdown_table(rows, columns, digits))
    return csv_path, md_path


@dataclass(frozen=True)
class StageResult:
    """Base of every stage's typed metrics: written to and read from one JSON file.

    Subclasses are plain dataclasses of JSON values (numbers, strings, lists, dicts); `read`
    ignores keys the class does not know, so an older metrics file still reads.
    """

    def write(self, path: str | Path) -> Path:
        return write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | Path) -> Self:
        data = read_json(path)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
