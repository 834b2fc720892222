"""The set-up files agree with each other and with what is installed."""

import configparser
import re
from importlib.metadata import version

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ose.pipeline import paths


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: pin exactly with =="
            out[canonicalize_name(req.name)] = spec.version
    return out


def requirements() -> dict[str, str]:
    return pins((paths.ROOT / "requirements.txt").read_text().splitlines())


def test_environment_yml_matches_requirements_txt():
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == requirements()
    assert "python=3.11" in env["dependencies"]


def test_torch_is_the_cpu_pin():
    assert requirements()["torch"] == "2.13.0"


def test_installed_versions_match_the_pins():
    wanted = requirements() | pins((paths.ROOT / "requirements-nodeps.txt").read_text().splitlines())
    for name, pinned in wanted.items():
        installed = version(name).split("+")[0]  # torch reports 2.13.0+cpu
        assert installed == pinned, f"{name}: installed {installed}, pinned {pinned}"


def test_dvc_analytics_and_update_checks_are_off():
    config = configparser.ConfigParser()
    config.read(paths.ROOT / ".dvc" / "config")
    assert config.get("core", "analytics") == "false"
    assert config.get("core", "check_update") == "false"


def test_readme_quick_start_and_ci_use_the_makefile_targets():
    readme = (paths.ROOT / "README.md").read_text()
    makefile = (paths.ROOT / "Makefile").read_text()
    ci = (paths.ROOT / ".ci" / "run").read_text()
    for target in ("reproduce", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"
        assert f"make {target}" in readme
    assert "make test" in ci
    assert "--no-deps -r requirements-nodeps.txt" in makefile


def test_python3_kernel_is_this_environment():
    """papermill runs kernel `python3`: it must be the interpreter that has `ose` installed."""
    import sys
    from pathlib import Path

    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    executable = spec.argv[0]
    if executable in ("python", "python3"):
        return  # ipykernel's built-in spec: runs the same interpreter papermill runs in
    assert Path(executable).absolute().parent == Path(sys.executable).absolute().parent
