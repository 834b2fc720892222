"""The stages as dvc.yaml declares them: the one place where each stage's paths are written.

Every stage's command is `scripts/stage NOTEBOOK RENDERED -p NAME VALUE ...`. The `-p` pairs are
the notebook's parameters; the path-valued ones are the stage's inputs and outputs. Each stage's
`Paths` class (`ose.stages.<stage>.Paths`) is made here from them (`paths_class`): its fields and
their defaults are what dvc.yaml passes, and a test checks that each notebook's parameters cell
holds the same values, so a path is written once, in dvc.yaml.

`foreach` stages are expanded as DVC names them (`finetune@imdb`), with `${item}`/`${key}` put in
and `foreach: ${dotted.key}` looked up in params.yaml (and dvc.yaml's `vars`).
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
from collections.abc import Mapping
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Any

import yaml

from ose.pipeline import paths

DVC_YAML = paths.ROOT / "dvc.yaml"
RUNNER = "scripts/stage"


def _lookup(dotted: str, scope: Mapping[str, Any]) -> Any:
    value: Any = scope
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(f"dvc.yaml refers to ${{{dotted}}}, which params.yaml and dvc.yaml vars lack")
        value = value[key]
    return value


def substitute_item(value: Any, item: Any) -> Any:
    if isinstance(value, str):
        return value.replace("${item}", str(item)).replace("${key}", str(item))
    if isinstance(value, list):
        return [substitute_item(v, item) for v in value]
    if isinstance(value, dict):
        return {substitute_item(k, item): substitute_item(v, item) for k, v in value.items()}
    return value


def expand_stages(dvc: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, dict]:
    """Every stage by name, in dvc.yaml's order; a `foreach` stage as `name@item` per item."""
    scope = {**params}
    for entry in dvc.get("vars", []):
        if isinstance(entry, Mapping):
            scope.update(entry)
    out: dict[str, dict] = {}
    for name, stage in dvc["stages"].items():
        if "foreach" not in stage:
            out[name] = dict(stage)
            continue
        items = stage["foreach"]
        if isinstance(items, str):
            match = re.fullmatch(r"\$\{\s*([\w.]+)\s*\}", items)
            if not match:
                raise ValueError(f"stage {name}: foreach {items!r}: expected ${{dotted.key}}")
            items = _lookup(match.group(1), scope)
        for item in items:  # a list's items, a dict's keys
            out[f"{name}@{item}"] = substitute_item(stage["do"], item)
    return out


@functools.cache
def _parsed(path: Path, modified_ns: int) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_yaml(path: str | Path) -> Any:
    """A YAML file, parsed once per version of it (keyed by its modification time)."""
    path = Path(path)
    return copy.deepcopy(_parsed(path, path.stat().st_mtime_ns))


def stages(dvc_yaml: Path = DVC_YAML, params_yaml: Path = paths.PARAMS) -> dict[str, dict]:
    """The expanded stages of dvc.yaml, with `foreach` looked up in params.yaml."""
    return expand_stages(read_yaml(dvc_yaml), read_yaml(params_yaml) or {})


def command(stage: Mapping[str, Any]) -> list[str]:
    """A stage's command as tokens."""
    return shlex.split(stage["cmd"])


def notebook(stage: Mapping[str, Any]) -> str:
    """The source notebook a `scripts/stage` stage runs."""
    tokens = command(stage)
    if tokens[:1] != [RUNNER] or len(tokens) < 3:
        raise ValueError(f"not a `{RUNNER} NOTEBOOK RENDERED ...` command: {stage['cmd']!r}")
    return tokens[1]


def rendered(stage: Mapping[str, Any]) -> str:
    """The rendered notebook a `scripts/stage` stage writes."""
    notebook(stage)
    return command(stage)[2]


def parameters(stage: Mapping[str, Any]) -> dict[str, str]:
    """The notebook parameters a stage passes (`-p NAME VALUE`), as the strings dvc.yaml writes."""
    tokens = command(stage)
    out = {}
    for k, token in enumerate(tokens):
        if token == "-p":
            out[tokens[k + 1]] = tokens[k + 2]
    return out


NOT_PATHS = ("params_file", "progress", "task")  # notebook parameters that are not paths


def paths_class(stage: str, item: str = "{item}") -> type:
    """A frozen dataclass with one field per path parameter of `stage`, defaults as dvc.yaml's.

    For a `foreach` stage, `stage` is its name without `@item`, and the values come from its `do`
    template with `${item}` written as `item` (`"{task}"`: a `str.format` field the caller fills).
    Subclass it to add what the stage derives from its paths (`class Paths(paths_class("x"))`).
    """
    spec = read_yaml(DVC_YAML)["stages"]
    if stage not in spec:
        raise KeyError(f"dvc.yaml has no stage {stage!r}")
    entry = spec[stage]
    values = parameters(substitute_item(entry["do"], item) if "foreach" in entry else entry)
    fields = [(name, "str | Path", field(default=v)) for name, v in values.items() if name not in NOT_PATHS]
    return make_dataclass(f"{stage}_paths", fields, frozen=True)
