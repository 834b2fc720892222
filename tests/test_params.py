import copy
import subprocess
import sys

import pytest
import yaml

from ose import paths
from ose.params import (
    ParamsError,
    from_dict,
    load,
    profile_names,
    read_yaml,
    render_profile,
    use_profile,
)


@pytest.fixture
def default() -> dict:
    return copy.deepcopy(render_profile("default"))


def test_committed_params_yaml_is_the_default_profile():
    assert read_yaml(paths.PARAMS) == render_profile("default")
    assert load().profile == "default"


@pytest.mark.parametrize("name", ["default", "smoke", "paper"])
def test_every_profile_is_valid(name):
    assert name in profile_names()
    assert from_dict(render_profile(name)).profile == name


def test_paper_profile_uses_the_papers_space_and_teacher():
    params = from_dict(render_profile("paper"))
    assert len(params.spaces["paper"].architectures()) == 300
    assert params.source.arch == "D24-A16-H1024-I4096"


def test_unknown_key_is_named(default):
    default["costs"]["seq_length"] = 128
    with pytest.raises(ParamsError, match=r"costs\.seq_length: unknown key; allowed keys here: "):
        from_dict(default)


def test_missing_key_is_named(default):
    del default["costs"]["repeats"]
    with pytest.raises(ParamsError, match=r"costs\.repeats: missing key"):
        from_dict(default)


def test_hidden_not_divisible_by_heads_is_named(default):
    default["spaces"]["default"]["hidden"] = [128, 100]
    default["spaces"]["default"]["heads"] = [8]
    with pytest.raises(
        ParamsError,
        match=r"spaces\.default\.hidden\[1\]: hidden size 100 is not "
        r"divisible by any head count",
    ):
        from_dict(default)


def test_invalid_source_arch_is_named(default):
    default["source"]["arch"] = "D4-A8-H100-I512"
    with pytest.raises(ParamsError, match=r"source\.arch: hidden size 100 is not divisible"):
        from_dict(default)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("seq_len", "128", r"costs\.seq_len: must be an integer"),
        ("seq_len", 1024, r"costs\.seq_len: must be in \[1, 512\]"),
        ("repeats", 0, r"costs\.repeats: must be a positive integer"),
        ("heldout_fraction", 1.0, r"costs\.heldout_fraction: must be in \(0, 1\)"),
        ("threads", True, r"costs\.threads: must be an integer"),
        ("n_sample_default", 10_000, r"costs\.n_sample_default: asks for 10000 architectures"),
    ],
)
def test_bad_values_are_named(default, key, value, message):
    default["costs"][key] = value
    with pytest.raises(ParamsError, match=message):
        from_dict(default)


def test_list_items_are_typed(default):
    default["spaces"]["paper"]["depth"] = [2, "four"]
    with pytest.raises(ParamsError, match=r"spaces\.paper\.depth\[1\]: must be an integer"):
        from_dict(default)


def test_profile_overlay_rejects_unknown_keys(tmp_path, monkeypatch):
    (tmp_path / "default.yaml").write_text((paths.PROFILES / "default.yaml").read_text())
    (tmp_path / "typo.yaml").write_text("costs:\n  repeat: 3\n")
    monkeypatch.setattr(paths, "PROFILES", tmp_path)
    with pytest.raises(ParamsError, match=r"costs\.repeat: unknown key in profile"):
        render_profile("typo")
    with pytest.raises(ParamsError, match="unknown profile 'nope'"):
        render_profile("nope")


def test_use_profile_writes_a_valid_file(tmp_path):
    target = tmp_path / "params.yaml"
    params = use_profile("smoke", target)
    assert load(target) == params
    assert yaml.safe_load(target.read_text())["profile"] == "smoke"
    assert not list(tmp_path.glob("*.tmp"))


def test_cli_check_reports_the_key(tmp_path, default):
    default["spaces"]["default"]["heads"] = [8]
    default["spaces"]["default"]["hidden"] = [100]
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(default))
    result = subprocess.run(
        [sys.executable, "-m", "ose.params", "check", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "spaces.default.hidden[0]" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "ose.params", "check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
