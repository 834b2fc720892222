"""The package's layers: every import goes down (or sideways without a cycle), never up.

Bottom to top: the plumbing (`ose.pipeline`), the shared vocabulary (ξ, configs, params, the
paper's numbers, paired statistics), then the phases in pipeline order, the checks before work,
the stages, and the command line. A module may import from its own layer or any layer below;
imports among modules of one layer must not close a circle. Every import counts, also one inside a
function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ose.pipeline import dvcfile, paths

PACKAGE = paths.ROOT / "ose"
LAYERS = (  # bottom first; a module belongs to the first entry that is its name or a package of it
    ("ose.pipeline",),
    ("ose.arch", "ose.paper", "ose.stats", "ose.verdicts", "ose.configs", "ose.params"),
    ("ose.data",),
    ("ose.training",),
    ("ose.search",),
    ("ose.finetuning",),
    ("ose.speed",),
    ("ose.reporting",),
    ("ose.preflight",),
    ("ose.stages",),
    ("ose.params.__main__", "ose"),  # the command line, and the package's own __init__
)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer)
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), level)
    if best is None:
        raise KeyError(f"{module} is in no layer of LAYERS: add it")
    return best[1]


def imports_of(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The `ose` modules a file imports (a `from X import y` counts y when y is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = module_name(path, root)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return {m for m in found if m in modules and m != own}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    return {name: imports_of(path, set(files), root) for name, path in files.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(b) > layer_of(a) and not a.startswith(b + ".")  # a submodule runs its package
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles (each once), by depth-first search; package `__init__` edges included."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


GRAPH = import_graph()


def test_every_module_has_a_layer():
    for name in GRAPH:
        layer_of(name)


def test_imports_only_go_down():
    assert upward_imports(GRAPH) == []


def test_no_import_circles():
    assert cycles(GRAPH) == []


def test_no_library_module_is_named_after_a_stage():
    """`ose/search/extract.py` beside `ose/stages/extract.py` hides which one a name means. A phase
    folder may share its stage's name (`ose/data/` holds what stage `data` runs)."""
    stage_names = {name.split("@")[0] for name in dvcfile.stages()} | {
        p.stem for p in (PACKAGE / "stages").glob("[!_]*.py")
    }
    library = [p for p in PACKAGE.rglob("*.py") if "stages" not in p.relative_to(PACKAGE).parts[:1]]
    clashes = sorted(str(p.relative_to(PACKAGE)) for p in library if p.stem in stage_names)
    assert clashes == [], "library modules share their names with stages"


# --- the checker on a made-up package ----------------------------------------------------------


@pytest.fixture
def fake(tmp_path):
    files = {
        "ose/__init__.py": "",
        "ose/pipeline/__init__.py": "",
        "ose/pipeline/paths.py": "",
        "ose/pipeline/atomic.py": "from ose.pipeline import paths\n",
        "ose/arch.py": "from ose.pipeline.atomic import x\n",
        "ose/data/__init__.py": "",
        "ose/data/corpus.py": "def f():\n    from ..arch import Arch\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path / "ose"


def test_a_clean_made_up_package_passes(fake):
    graph = import_graph(fake)
    assert upward_imports(graph) == [] and cycles(graph) == []
    assert graph["ose.data.corpus"] == {"ose.arch"}  # relative, inside a function


def test_an_upward_import_and_a_circle_are_reported(fake):
    (fake / "pipeline/paths.py").write_text("import ose.data.corpus\n")
    (fake / "data/corpus.py").write_text("from ose.data import helper\n")
    (fake / "data/helper.py").write_text("from ose.data.corpus import f\n")
    graph = import_graph(fake)
    assert upward_imports(graph) == ["ose.pipeline.paths (layer 0) imports ose.data.corpus (layer 2)"]
    assert ["ose.data.corpus", "ose.data.helper", "ose.data.corpus"] in cycles(graph)
