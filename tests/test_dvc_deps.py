"""Every stage of dvc.yaml depends on each `ose` module its notebook runs.

For each stage (a `foreach` stage once per item), the notebook's code cells are parsed with `ast`
and its imports of `ose` followed: `import ose.x`, `from ose import x`, `from ose.x import y` (y
may itself be a module, `ose/x/y.py`), then, recursively, every import in each module reached,
including imports inside functions and relative ones. The stage's `deps` must list every module
file of that closure, and every `ose/*.py` they list must exist. The closure is computed from the
files each time, so a module added later is covered without editing this test.

Code under `if __name__ == "__main__":` is not followed: it runs only as a script.
Package `__init__.py` files are followed like modules: `ose/__init__.py` runs on every import of
`ose` (it switches the hub offline through `ose/pipeline/offline.py`), so both are every stage's deps.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ose.pipeline import dvcfile, paths

PACKAGE = "ose"


# --- the checker -------------------------------------------------------------------------------


def notebook_code(path: Path) -> list[str]:
    """The source of every code cell of a notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    sources = [c["source"] for c in nb["cells"] if c["cell_type"] == "code"]
    return ["".join(s) if isinstance(s, list) else s for s in sources]


def module_files(dotted: str, root: Path) -> list[str] | None:
    """Files (relative to root) that importing the `ose` module `dotted` runs; None: no such module."""
    parts = dotted.split(".")
    files = []
    for k in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:k])
        if (base / "__init__.py").is_file():
            files.append((base / "__init__.py").relative_to(root).as_posix())
        elif k == len(parts) and base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py").relative_to(root).as_posix())
        elif k == len(parts) or not base.is_dir():
            return None  # (a folder without __init__.py on the way is a namespace package)
    return files


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":`: runs only as a script (`python -m ose.params`), never on import."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _is_ours(dotted: str) -> bool:
    return dotted == PACKAGE or dotted.startswith(PACKAGE + ".")


def imported_modules(source: str, where: str, package: str | None = None) -> Iterator[tuple[str, bool]]:
    """(`ose` module name, must exist) for each import in `source`, anywhere in it.

    `from A import b` gives A (must exist) and A.b (only if it is a module: b may be a name).
    package: the package that relative imports are taken from (None in a notebook).
    """
    tree = ast.parse(source, filename=where)
    tree.body = [node for node in tree.body if not _is_main_guard(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_ours(alias.name):
                    yield alias.name, True
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    raise ValueError(f"{where}: relative import outside the package")
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if _is_ours(base):
                yield base, True
                for alias in node.names:
                    yield f"{base}.{alias.name}", False


@functools.cache
def _module_imports(root: Path, file: str, package: str) -> tuple[tuple[str, bool], ...]:
    """`imported_modules` of one module file (parsed once per test session)."""
    return tuple(imported_modules((root / file).read_text(encoding="utf-8"), file, package))


def import_closure(sources: list[str], where: str, root: Path) -> tuple[set[str], list[str]]:
    """(module files the code runs, imports of `ose` modules that do not exist)."""
    files: set[str] = set()
    unresolved: list[str] = []
    todo: list[tuple[str, str | None]] = [(where, None)]  # (a notebook or a module file, its package)
    while todo:
        origin, package = todo.pop()
        if package is None:
            found_imports = [i for source in sources for i in imported_modules(source, origin)]
        else:
            found_imports = list(_module_imports(root, origin, package))
        for dotted, required in found_imports:
            found = module_files(dotted, root)
            if found is None:
                if required:
                    unresolved.append(f"{origin}: {dotted}")
                continue
            for file in found:
                if file not in files:
                    files.add(file)
                    is_package = file.endswith("/__init__.py")
                    name = file.removesuffix("/__init__.py" if is_package else ".py").replace("/", ".")
                    todo.append((file, name if is_package else name.rpartition(".")[0]))
    return files, sorted(set(unresolved))


def stage_problems(name: str, stage: Mapping[str, Any], root: Path) -> list[str]:
    """What is wrong with one stage's `deps` (an empty list: nothing)."""
    notebook = dvcfile.notebook(stage)
    deps = [next(iter(d)) if isinstance(d, dict) else d for d in stage.get("deps", [])]
    closure, unresolved = import_closure(notebook_code(root / notebook), notebook, root)
    problems = []
    missing = sorted(closure - set(deps))
    if missing:
        problems.append(f"stage {name}: deps omit {missing} (imported by {notebook}, directly or not)")
    if unresolved:
        problems.append(f"stage {name}: imports of modules that do not exist: {unresolved}")
    absent = [d for d in deps if re.fullmatch(rf"{PACKAGE}/.+\.py", d) and not (root / d).is_file()]
    if absent:
        problems.append(f"stage {name}: deps name files that do not exist: {absent}")
    extra = sorted(
        d for d in deps if re.fullmatch(rf"{PACKAGE}/.+\.py", d) and d not in closure | set(absent)
    )
    if extra:
        problems.append(f"stage {name}: deps name modules it never imports (a needless re-run): {extra}")
    return problems


# --- the real pipeline -------------------------------------------------------------------------

DVC = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())
STAGES = dvcfile.stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_the_notebooks_import_closure(name):
    problems = stage_problems(name, STAGES[name], paths.ROOT)
    assert not problems, "\n".join(problems)


def test_foreach_stages_are_expanded():
    assert any("@" in name for name in STAGES)
    assert all("${" not in dep for stage in STAGES.values() for dep in map(str, stage.get("deps", [])))


def _closure_deps() -> list[tuple[str, str]]:
    out = []
    for name, stage in sorted(STAGES.items()):
        closure, _ = import_closure(notebook_code(paths.ROOT / dvcfile.notebook(stage)), name, paths.ROOT)
        out += [(name, dep) for dep in stage.get("deps", []) if dep in closure][:2]  # two per stage
    return out


@pytest.mark.parametrize(("name", "dropped"), _closure_deps())
def test_dropping_a_module_from_a_real_stage_is_reported(name, dropped):
    stage = {**STAGES[name], "deps": [d for d in STAGES[name]["deps"] if d != dropped]}
    problems = stage_problems(name, stage, paths.ROOT)
    assert len(problems) == 1 and problems[0].startswith(f"stage {name}: deps omit ["), problems
    assert repr(dropped) in problems[0]


# --- the checker on a made-up repository -------------------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _notebook(*cells: str) -> str:
    nb = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["import ose.prose\n"]}]
        + [{"cell_type": "code", "metadata": {}, "source": c.splitlines(keepends=True)} for c in cells],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb)


FAKE = {
    "ose/__init__.py": "from ose.boot import start\n",
    "ose/boot.py": "",
    "ose/a.py": "import numpy\n\ndef f():\n    from ose.b import thing\n    return thing\n",
    "ose/b.py": "import ose.c\nthing = 1\n",
    "ose/c.py": "from .d import value\n",
    "ose/d.py": "value = 2\n",
    "ose/pkg/__init__.py": "from . import inner\n",
    "ose/pkg/inner.py": "from ..e import x\n",
    "ose/pkg/leaf.py": "",
    "ose/e.py": "x = 3\n",
    "ose/unused.py": "",
    "notebooks/n.ipynb": _notebook(
        "from ose import a, __version__\n", "from ose.pkg import leaf, inner\nimport ose.a as again\n"
    ),
}
CLOSURE = ["ose/__init__.py", "ose/boot.py"]  # the package's __init__ runs on any import, and what it imports
CLOSURE += ["ose/a.py", "ose/b.py", "ose/c.py", "ose/d.py", "ose/e.py"]
CLOSURE += ["ose/pkg/__init__.py", "ose/pkg/inner.py", "ose/pkg/leaf.py"]


def _stage(deps: list[str]) -> dict:
    return {
        "cmd": "scripts/stage notebooks/n.ipynb reports/n.ipynb -p x 1",
        "deps": ["notebooks/n.ipynb", *deps],
    }


def test_closure_follows_functions_relative_imports_and_submodules(tmp_path):
    _write(tmp_path, FAKE)
    closure, unresolved = import_closure(notebook_code(tmp_path / "notebooks/n.ipynb"), "n", tmp_path)
    assert sorted(closure) == sorted(CLOSURE) and unresolved == []
    assert stage_problems("fake", _stage(CLOSURE), tmp_path) == []


@pytest.mark.parametrize("dropped", CLOSURE)
def test_a_stage_missing_a_module_is_reported(tmp_path, dropped):
    _write(tmp_path, FAKE)
    problems = stage_problems("fake", _stage([d for d in CLOSURE if d != dropped]), tmp_path)
    assert problems == [
        f"stage fake: deps omit [{dropped!r}] (imported by notebooks/n.ipynb, directly or not)"
    ]


def test_absent_deps_and_imports_of_absent_modules_are_reported(tmp_path):
    _write(tmp_path, {**FAKE, "notebooks/n.ipynb": _notebook("import ose.a\nfrom ose.gone import y\n")})
    problems = stage_problems("fake", _stage([*CLOSURE, "ose/removed.py", "ose/extra.txt"]), tmp_path)
    assert problems == [
        "stage fake: imports of modules that do not exist: ['notebooks/n.ipynb: ose.gone']",
        "stage fake: deps name files that do not exist: ['ose/removed.py']",
        "stage fake: deps name modules it never imports (a needless re-run): "
        "['ose/e.py', 'ose/pkg/__init__.py', 'ose/pkg/inner.py', 'ose/pkg/leaf.py']",
    ]


def test_foreach_is_expanded_from_params_or_a_literal_list():
    dvc = {
        "stages": {
            "one": {"cmd": "x notebooks/a.ipynb"},
            "each": {
                "foreach": "${group.items}",
                "do": {"cmd": "x notebooks/b.ipynb ${item}", "deps": ["d/${item}"]},
            },
            "lit": {"foreach": ["p", "q"], "do": {"cmd": "x notebooks/c.ipynb", "deps": []}},
        }
    }
    stages = dvcfile.expand_stages(dvc, {"group": {"items": ["u", "v"]}})
    assert list(stages) == ["one", "each@u", "each@v", "lit@p", "lit@q"]
    assert stages["each@v"] == {"cmd": "x notebooks/b.ipynb v", "deps": ["d/v"]}
