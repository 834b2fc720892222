"""A rendered notebook as a record anyone can read: no absolute path of the machine that ran it, and
the stage's wall time in its metadata.

`scripts/stage` calls this after papermill has written the notebook:

    python -m ose.pipeline.rendered reports/notebooks/07_agora_torus.ipynb \
        --started 1764633000.5 --exit-status 0

Absolute paths reach a notebook through library messages (a warning names the file that raised it,
transformers names the directory it loaded from, a traceback names every file) and through
papermill's metadata when it is given absolute paths. Each is rewritten: the repository root to a
relative path, the Python environment outside it to `<python-env>`, the home directory to `~`.
`ose.pipeline.timing` reads the wall time back to print the stage times of `make reproduce`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from ose.pipeline import paths
from ose.pipeline.atomic import atomic_path

METADATA_KEY = "ose"  # notebook metadata: {"ose": {"stage": {...}}}
BINARY_PREFIXES = ("image/",)  # output data that is base64, never text to rewrite


def machine_paths(root: Path = paths.ROOT) -> list[tuple[str, str]]:
    """(absolute path, replacement) pairs, longest first so a path inside another is rewritten first.

    The root is listed as given and resolved (a symlinked checkout shows up under either name); so is
    the Python environment (`sys.prefix`), which becomes relative when it lies inside the root.
    """
    pairs: dict[str, str] = {}
    roots = {str(root), os.path.realpath(root)}
    for prefix in {sys.prefix, os.path.realpath(sys.prefix)}:
        inside = next((r for r in roots if prefix == r or prefix.startswith(r + os.sep)), None)
        pairs[prefix] = os.path.relpath(prefix, inside) if inside else "<python-env>"
    for r in roots:
        pairs[r] = "."
    home = str(Path.home())
    if home not in ("/", ""):
        pairs.setdefault(home, "~")
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def relativizer(pairs: list[tuple[str, str]]) -> Callable[[str], str]:
    """A function that rewrites every whole occurrence of each absolute path in a text.

    A path matches only as a whole path component: `/work/main` is rewritten in `/work/main/x` and
    `/work/main.`, not in `/work/mainline`. `root/x` becomes `x`, the root alone `.`.
    """
    boundary = r"(?![\w-])"
    patterns = [
        (re.compile(re.escape(path) + r"/(?=[\w.~<-])"), "" if new == "." else new + "/")
        for path, new in pairs
    ] + [(re.compile(re.escape(path) + boundary), new) for path, new in pairs]

    def rewrite(text: str) -> str:
        for pattern, new in patterns:
            text = pattern.sub(new, text)
        return text

    return rewrite


def relativize(node: Any, rewrite: Callable[[str], str]) -> Any:
    """`node` (a notebook as plain JSON) with `rewrite` applied to every string but binary output data."""
    if isinstance(node, str):
        return rewrite(node)
    if isinstance(node, list):
        return [relativize(item, rewrite) for item in node]
    if isinstance(node, dict):
        return {
            key: value if key.startswith(BINARY_PREFIXES) else relativize(value, rewrite)
            for key, value in node.items()
        }
    return node


def stage_record(started: float, finished: float, exit_status: int) -> dict:
    """What `ose.pipeline.timing` reads: wall time (s) of the whole stage command, start and end
    (UTC, ISO)."""

    def iso(seconds: float) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")

    return {
        "started": iso(started),
        "finished": iso(finished),
        "wall_seconds": round(finished - started, 3),
        "exit_status": exit_status,
    }


def finish(
    notebook: str | Path,
    started: float,
    exit_status: int,
    finished: float | None = None,
    root: Path = paths.ROOT,
) -> dict:
    """Rewrite `notebook` in place without absolute paths and with its stage record; returns the record."""
    path = Path(notebook)
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb = relativize(nb, relativizer(machine_paths(root)))
    record = stage_record(started, time.time() if finished is None else finished, exit_status)
    nb.setdefault("metadata", {}).setdefault(METADATA_KEY, {})["stage"] = record
    mode = path.stat().st_mode
    with atomic_path(path) as tmp:
        tmp.write_text(nbformat.writes(nbformat.from_dict(nb)), encoding="utf-8")  # papermill's layout
        tmp.chmod(mode)  # readable as papermill left it, not the private mode of a temporary file
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ose.pipeline.rendered", description=__doc__.splitlines()[0]
    )
    parser.add_argument("notebook", help="the rendered notebook papermill wrote")
    parser.add_argument("--started", type=float, required=True, help="when the stage started (Unix time, s)")
    parser.add_argument("--exit-status", type=int, required=True, help="papermill's exit status")
    args = parser.parse_args(argv)
    finish(args.notebook, args.started, args.exit_status)


if __name__ == "__main__":
    main()
