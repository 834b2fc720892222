"""Every stage path is written once, in dvc.yaml: the stage's `Paths` and its notebook's parameters
cell hold the same values (`ose.pipeline.dvcfile`).

A `foreach` stage's notebook holds the values of one item (its default task); dvc.yaml's template
holds `${item}` there, and the `Paths` class `{task}`.
"""

from __future__ import annotations

import ast
import importlib
import json
from dataclasses import fields

import pytest
import yaml

from ose.pipeline import dvcfile, paths

NOT_PATHS = set(dvcfile.NOT_PATHS)
SPEC = yaml.safe_load(dvcfile.DVC_YAML.read_text(encoding="utf-8"))["stages"]


def template(name: str) -> dict:
    entry = SPEC[name]
    return entry["do"] if "foreach" in entry else entry


def notebook_defaults(notebook: str) -> dict[str, object]:
    nb = json.loads((paths.ROOT / notebook).read_text(encoding="utf-8"))
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


def stage_module(name: str):
    return importlib.import_module(f"ose.stages.{name}")


def declared_paths(name: str, item: str) -> dict[str, str]:
    values = dvcfile.parameters(dvcfile.substitute_item(template(name), item))
    return {k: v for k, v in values.items() if k not in NOT_PATHS}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_paths_defaults_are_dvc_yamls(name):
    module = stage_module(name)
    expected = declared_paths(name, "{task}")
    got = {f.name: str(getattr(module.Paths(), f.name)) for f in fields(module.Paths)}
    assert got == expected, f"ose.stages.{name}.Paths and dvc.yaml's stage {name} disagree"


@pytest.mark.parametrize("name", sorted(SPEC))
def test_notebook_parameters_are_dvc_yamls(name):
    entry = template(name)
    defaults = notebook_defaults(dvcfile.notebook(entry))
    item = defaults.get("task", "")
    expected = dvcfile.parameters(dvcfile.substitute_item(entry, item))
    expected.pop("progress", None)
    got = {k: str(v) for k, v in defaults.items() if k in expected}
    assert got == expected, f"{dvcfile.notebook(entry)}: parameters cell and dvc.yaml stage {name} disagree"


def test_paths_class_names_a_stage_that_exists():
    with pytest.raises(KeyError, match="no stage 'nope'"):
        dvcfile.paths_class("nope")
