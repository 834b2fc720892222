"""The one JSON-lines reader: saved task splits (`ose.data.tasks`), users' task files
(`ose.data.user_tasks`) and the official SuperGLUE files (`ose.data.superglue`) all parse with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def jsonl_objects(text: str, path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines text; a line that is not a
    JSON object raises ValueError naming `path:line` ("not a JSON object", and why when it is not
    even valid JSON)."""
    # split("\n"), not splitlines(): texts may hold U+2028 or U+0085, which JSON leaves raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{number}: not a JSON object, not even valid JSON ({error.msg}): {line[:80]!r}"
            ) from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: not a JSON object: {line[:80]!r}")
        yield number, record
