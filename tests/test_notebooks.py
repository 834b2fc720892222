"""The notebook conventions (docs/science.md, "The pipeline's conventions"), and dvc.yaml checked
against each notebook.

papermill only warns when the `parameters` tag is missing; these tests fail instead.
"""

import ast
import shlex

import nbformat
import pytest
import yaml

from ose.pipeline import paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("*.ipynb"))
DVC = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())
RUNNER = "scripts/stage"  # papermill, offline, in the repository's environment whatever PATH holds
VARS = {k: v for entry in DVC.get("vars", []) if isinstance(entry, dict) for k, v in entry.items()}


def expand(cmd: str) -> str:
    for key, value in VARS.items():
        cmd = cmd.replace("${" + key + "}", value)
    return cmd


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def parameters_cell(nb):
    tagged = [c for c in code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"needs exactly one code cell tagged 'parameters', has {len(tagged)}"
    return tagged[0]


def declared_parameters(nb) -> dict[str, object]:
    out = {}
    for node in ast.parse(parameters_cell(nb).source).body:
        assert (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ), f"parameters cell: only `name = literal`, got {ast.dump(node)}"
        out[node.targets[0].id] = ast.literal_eval(node.value)  # raises unless a literal
    return out


def stage_modules(nb) -> list:
    """The files of the `ose.stages` modules a notebook imports from (`from ose.stages.x import run`)."""
    return [
        paths.ROOT / (node.module.replace(".", "/") + ".py")
        for cell in code_cells(nb)
        for node in ast.walk(ast.parse(cell.source))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ose.stages.")
    ]


def papermill_stages():
    """(stage name, notebook path, -p names, tracked params) for every papermill stage."""
    out = []
    for name, stage in DVC["stages"].items():
        stage = stage.get("do", stage)  # a foreach stage: one stage per item
        tokens = shlex.split(expand(stage["cmd"]))
        assert tokens[0] == RUNNER, f"stage {name} does not run its notebook with {RUNNER}"
        notebook = tokens[1]
        assert notebook.startswith("notebooks/") and notebook.endswith(".ipynb"), f"stage {name}: {notebook}"
        passed = [tokens[k + 1] for k, t in enumerate(tokens) if t == "-p"]
        out.append((name, notebook, passed, stage.get("params", []), stage))
    return out


def test_there_are_notebooks_and_stages():
    assert NOTEBOOKS, "no notebooks found"
    assert papermill_stages(), "no papermill stages in dvc.yaml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in code_cells(nb):
        assert not cell.get("outputs"), f"{path.name}: committed with outputs"
        assert cell.get("execution_count") is None, f"{path.name}: committed with execution counts"
        tree = ast.parse(cell.source)  # also rejects IPython magics, which are not plain Python
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda), (
                f"{path.name}: define functions in `ose`, not here"
            )
    declared_parameters(nb)


@pytest.mark.parametrize("stage", papermill_stages(), ids=lambda s: s[0])
def test_dvc_stage_matches_its_notebook(stage):
    name, notebook, passed, tracked, spec = stage
    nb = nbformat.read(paths.ROOT / notebook, as_version=4)
    declared = declared_parameters(nb)
    assert sorted(passed) == sorted(set(passed)), f"{name}: a parameter is passed twice"
    assert set(passed) <= set(declared), f"{name}: passes unknown {set(passed) - set(declared)}"
    assert set(declared) <= set(passed), f"{name}: does not pass {set(declared) - set(passed)}"
    # params.yaml groups: tracked exactly when read as `params.<group>` in the notebook or in the
    # stage module (`ose.stages.<stage>`) that it runs.
    sources = [cell.source for cell in code_cells(nb)]
    sources += [module.read_text(encoding="utf-8") for module in stage_modules(nb)]
    read = {
        node.attr
        for source in sources
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "params"
    }
    read -= {"profile"}  # the profile name labels outputs; it changes no result
    assert {key.split(".")[0] for key in tracked} == read, f"{name}: tracked {tracked}, reads {read}"
    assert notebook in spec["deps"], f"{name}: does not depend on its notebook"
    stem = notebook.split("/")[-1].removesuffix(".ipynb")
    rendered = shlex.split(expand(spec["cmd"]))[2]
    assert rendered.startswith(f"reports/notebooks/{stem}") and rendered.endswith(".ipynb"), name
    outs = [next(iter(o)) for o in spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", [])]
    assert rendered not in outs, f"{name}: a rendered notebook (timestamps) cannot be a reproducible output"


def test_stage_runner_offline_and_independent_of_path():
    text = (paths.ROOT / RUNNER).read_text()
    assert "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1" in text
    assert (paths.ROOT / RUNNER).stat().st_mode & 0o111, f"{RUNNER} must be executable"


def test_stage_runner_keeps_the_record_readable():
    """Rendered notebooks are reports: library bars off or slowed, the one tqdm.auto warning (which
    transformers triggers in a kernel without ipywidgets) filtered by its message and nothing else,
    and each rendered notebook stamped with its wall time and stripped of absolute paths."""
    text = (paths.ROOT / RUNNER).read_text()
    assert "HF_HUB_DISABLE_PROGRESS_BARS=1" in text and "TQDM_MININTERVAL=" in text
    filters = [line for line in text.splitlines() if "PYTHONWARNINGS=" in line]
    assert filters and all("ignore:IProgress not found" in line for line in filters)
    assert not any(f in text for f in ('ignore"', "PYTHONWARNINGS=ignore", "-W ignore")), "a blanket filter"
    assert "-m ose.pipeline.rendered" in text


def test_report_outputs_survive_a_stage_that_fails_to_start():
    """DVC deletes a stage's outputs before running it, unless they persist: a stage that cannot
    start (once: `papermill: command not found`) must not delete committed results."""
    for name, stage in DVC["stages"].items():
        stage = stage.get("do", stage)
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path, flags = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            if flags.get("cache") is False:
                assert flags.get("persist") is True, f"stage {name}: {path} must be `persist: true`"


def test_every_notebook_is_a_stage():
    used = {notebook for _, notebook, *_ in papermill_stages()}
    assert {f"notebooks/{p.name}" for p in NOTEBOOKS} == used


def test_rendered_notebooks_are_never_a_dependency():
    for name, stage in DVC["stages"].items():
        for dep in stage.get("do", stage).get("deps", []):
            assert not dep.startswith("reports/notebooks"), (
                f"stage {name} depends on a rendered notebook: {dep}"
            )
            assert not dep.endswith(".ipynb") or dep.startswith("notebooks/"), f"stage {name}: {dep}"


def test_no_parameters_tag_is_caught(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(AssertionError, match="exactly one code cell tagged 'parameters'"):
        parameters_cell(nb)
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.cells[0].source = "x = len('a')"
    with pytest.raises(ValueError):
        declared_parameters(nb)
