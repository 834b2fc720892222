import copy
import subprocess
import sys

import pytest
import yaml

from ose.params import (
    ParamsError,
    from_dict,
    load,
    profile_names,
    read_yaml,
    render_profile,
    use_profile,
)
from ose.params.__main__ import main
from ose.pipeline import paths
from ose.preflight import check_environment


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


# --- bad inputs that used to pass `check` and failed deep inside a stage ---------------------


@pytest.mark.parametrize(
    "group,key,value,message",
    [
        ("pretrain", "lr", float("nan"), r"pretrain\.lr: must be a finite number, got nan"),
        ("distill", "temperature", float("inf"), r"distill\.temperature: must be a finite number, got inf"),
        ("extract", "exponents", [1.0, float("-inf"), 1.0], r"extract\.exponents\[1\]: must be a finite"),
    ],
)
def test_non_finite_numbers_are_named(default, group, key, value, message):
    default[group][key] = value
    with pytest.raises(ParamsError, match=message):
        from_dict(default)


@pytest.mark.parametrize(
    "where,value,message",
    [
        ("seed", 2**70, r"^seed: must be an integer in \[0, 4294967295\], got 1180591620717411303424$"),
        ("seed", -1, r"^seed: must be an integer in \[0, 4294967295\], got -1$"),
        ("seeds", [-1], r"^finetune\.seeds\[0\]: must be an integer in \[0, 4294967295\], got -1$"),
        ("seeds", [0, 2**32], r"^finetune\.seeds\[1\]: must be an integer in \[0, 4294967295\]"),
    ],
)
def test_seeds_must_fit_in_32_bits(default, where, value, message):
    if where == "seed":
        default["seed"] = value
    else:
        default["finetune"]["seeds"] = value
    with pytest.raises(ParamsError, match=message):
        from_dict(default)
    default["seed"], default["finetune"]["seeds"] = 2**32 - 1, [0, 2**32 - 1]
    assert from_dict(default).seed == 2**32 - 1


def test_duplicate_yaml_key_names_the_key_and_its_line(tmp_path, default):
    text = paths.PARAMS.read_text().replace("  lr: 0.001\n", "  lr: 0.001\n  lr: 0.002\n", 1)
    bad = tmp_path / "params.yaml"
    bad.write_text(text)
    line = text.splitlines().index("  lr: 0.002") + 1
    with pytest.raises(
        ParamsError, match=rf"params\.yaml:{line}: duplicate key 'lr' \(first at line {line - 1}\)"
    ):
        read_yaml(bad)
    with pytest.raises(ParamsError, match="duplicate key 'lr'"):
        load(bad)


def test_duplicate_key_in_a_profile_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "default.yaml").write_text((paths.PROFILES / "default.yaml").read_text())
    (tmp_path / "dup.yaml").write_text("costs:\n  repeats: 3\ncosts:\n  warmup: 1\n")
    monkeypatch.setattr(paths, "PROFILES", tmp_path)
    with pytest.raises(ParamsError, match=r"dup\.yaml:3: duplicate key 'costs' \(first at line 1\)"):
        render_profile("dup")


def test_fractions_must_leave_a_train_split(default):
    default["data"]["dev_fraction"] = default["data"]["test_fraction"] = 0.5
    with pytest.raises(ParamsError, match=r"data\.test_fraction: .*leave no train split"):
        from_dict(default)


def _cli_check(tmp_path, capsys, text: str) -> tuple[int, str]:
    bad = tmp_path / "params.yaml"
    bad.write_text(text)
    code = main(["check", str(bad)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("  lr: 0.001\n", "  lr: .nan\n", "pretrain.lr: must be a finite number, got nan"),
        (
            "  seeds: [0, 1, 2, 3, 4, 5, 6]\n",
            "  seeds: [-1]\n",
            "finetune.seeds[0]: must be an integer in [0, 4294967295]",
        ),
        ("seed: 0\n", "seed: 1180591620717411303424\n", "seed: must be an integer in [0, 4294967295]"),
        ("  lr: 0.001\n", "  lr: 0.001\n  lr: 0.002\n", "duplicate key 'lr'"),
        ("  test_fraction: 0.1\n", "  test_fraction: 0.5\n", "leave no train split"),
    ],
)
def test_cli_check_prints_one_error_line_and_exits_2(tmp_path, capsys, old, new, message):
    text = paths.PARAMS.read_text()
    text = text.replace("  dev_fraction: 0.1\n", "  dev_fraction: 0.5\n") if "test_fraction" in old else text
    code, err = _cli_check(tmp_path, capsys, text.replace(old, new, 1))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


# --- check_environment: what needs the installed source and corpora --------------------------


def _corpus(name: str, counts: dict[str, int]):
    from ose.data.corpus import Corpus, Provenance

    labels = [label for label, n in counts.items() for _ in range(n)]
    texts = [f"{name} text {i}" for i in range(len(labels))]
    return Corpus(name, texts, labels, Provenance(name, "fake", "0", "-", len(texts), "-", "-"))


def _one_task(default: dict, **data) -> dict:
    default["data"].update(tasks=["rotten_tomatoes"], **data)
    default["finetune"]["tasks"] = ["rotten_tomatoes"]
    default["finetune"]["task_settings"] = {"rotten_tomatoes": {}}
    return default


def test_check_environment_accepts_the_default_and_smoke_profiles():
    check_environment(load())
    check_environment(from_dict(render_profile("smoke")))


def test_check_environment_names_an_unavailable_source(tmp_path, default):
    default["source"]["model"] = str(tmp_path / "missing")
    with pytest.raises(ParamsError, match=r"^source\.model '.*missing': no such directory"):
        check_environment(from_dict(default))
    default["source"]["model"] = "FacebookAI/roberta-large"
    with pytest.raises(ParamsError, match=r"^source\.model 'FacebookAI/roberta-large': .*hf download"):
        check_environment(from_dict(default))


@pytest.mark.parametrize(
    "model_type,positions,usable",
    [("bert", 128, 128), ("roberta", 130, 128), ("xlm-roberta", 66, 64)],
)
def test_block_size_must_fit_the_source_positions(tmp_path, default, model_type, positions, usable):
    from transformers import AutoConfig

    AutoConfig.for_model(model_type, max_position_embeddings=positions, pad_token_id=1).save_pretrained(
        tmp_path
    )
    default["source"]["model"] = str(tmp_path)
    default["data"].update(tasks=[], glue_tasks=["rte"], block_size=usable)  # no corpus to read
    default["finetune"].update(tasks=["rte"], task_settings={"rte": {}}, max_len=16)
    default["benchmark"]["seq_lens"] = [16]
    check_environment(from_dict(default))
    default["data"]["block_size"] = usable + 1
    with pytest.raises(ParamsError, match=rf"^data\.block_size: must be <= {usable}, .*got {usable + 1}$"):
        check_environment(from_dict(default))


def test_max_examples_must_leave_every_split_both_classes(default):
    readers = {"rotten_tomatoes": lambda: _corpus("rotten_tomatoes", {"negative": 50, "positive": 50})}
    params = from_dict(_one_task(default, max_examples=20))
    check_environment(params, readers=readers)  # 10 per class: train 8, dev 1, test 1
    params = from_dict(_one_task(default, max_examples=18))  # 9 per class: dev round(0.9) = 1
    check_environment(params, readers=readers)
    params = from_dict(_one_task(default, max_examples=10))  # 5 per class: dev round(0.5) = 0
    message = (
        r"^data\.max_examples: 10 gives rotten_tomatoes splits of train \[5, 5\], dev \[0, 0\], "
        r"test \[0, 0\] examples per class \(negative, positive\); every split needs"
    )
    with pytest.raises(ParamsError, match=message):
        check_environment(params, readers=readers)


def test_small_fractions_that_empty_a_split_are_named(default):
    readers = {"rotten_tomatoes": lambda: _corpus("rotten_tomatoes", {"negative": 30, "positive": 40})}
    params = from_dict(_one_task(default, dev_fraction=0.01))
    with pytest.raises(ParamsError, match=r"^data\.dev_fraction: 0\.01 gives rotten_tomatoes .*dev \[0, 0\]"):
        check_environment(params, readers=readers)
    params = from_dict(_one_task(default, dev_fraction=0.1, test_fraction=0.016))  # 0.48 → 0, 0.64 → 1
    with pytest.raises(ParamsError, match=r"^data\.test_fraction: .*test \[0, 1\]"):
        check_environment(params, readers=readers)


def test_a_balanced_fine_tuning_sample_too_large_for_a_class_is_named(default):
    readers = {"rotten_tomatoes": lambda: _corpus("rotten_tomatoes", {"negative": 200, "positive": 6})}
    default["finetune"]["train_size"] = 20
    params = from_dict(_one_task(default))
    with pytest.raises(
        ParamsError,
        match=r"^finetune\.train_size: 20 asks a balanced train sample of rotten_tomatoes with 10 rows per "
        r"class; its train split has \{'negative': 160, 'positive': 4\}: set "
        r"finetune\.task_settings\.rotten_tomatoes\.train_size to at most 8",
    ):
        check_environment(params, readers=readers)
    default["finetune"]["train_size"] = None
    check_environment(from_dict(default), readers=readers)


@pytest.mark.parametrize(
    "key,value,message",
    [
        (
            "arms",
            ["kd", "kd_textbook"],
            r"pretrain\.arms: must be distinct names among \['kd', 'kd_released'",
        ),
        ("seeds", [0, 0], r"pretrain\.seeds: must be distinct non-negative integers"),
        ("seeds", [], r"pretrain\.seeds: must be distinct non-negative integers, at least one"),
        ("seeded_arms", ["nope"], r"pretrain\.seeded_arms: must be distinct names among arms \['kd'"),
        ("lr_sweep", {"lrs": [1e-3, 1e-3], "steps": 3}, r"pretrain\.lr_sweep\.lrs: must be distinct"),
        ("lr_sweep", {"lrs": [2.0], "steps": 3}, r"pretrain\.lr_sweep\.lrs\[0\]: must be in \(0, 1\]"),
        ("lr_sweep", {"lrs": [1e-3], "steps": 10_000}, r"pretrain\.lr_sweep: steps must be at most"),
    ],
)
def test_bad_pretrain_values_are_named(default, key, value, message):
    default["pretrain"][key] = value
    with pytest.raises(ParamsError, match=message):
        from_dict(default)
