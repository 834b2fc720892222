"""Stage `teacher`: the source model with a working masked-LM head.

The source is adapted (encoder and head) by masked-LM training on the corpus
(`ose.training.source_model.adapt`, resumable from `checkpoint_dir`), unless `teacher.steps` is 0
(a source whose head is trained is used as is). Held-out masked-token accuracy and cross-entropy
are measured before and after, on the same fixed masking.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from ose.data.prepare import load_blocks
from ose.params import Params
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.machine import machine_info
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult
from ose.reporting import figures
from ose.training.loop import tokens_per_second
from ose.training.source_model import (
    adapt,
    check_architecture,
    heldout_evaluator,
    load_masked_lm,
    save_pretrained,
)


class Paths(paths_class("teacher")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`)."""


@dataclass(frozen=True)
class Result(StageResult):
    profile: str
    source: str
    arch: str
    steps: int
    masked_acc_before: float
    masked_acc_after: float
    mlm_ce_before: float
    mlm_ce_after: float
    heldout_masked_tokens: int
    train_seconds: float
    tokens_per_second: float | None  # None (NaN) when nothing was trained
    machine: dict


def train_seconds(history: list[dict]) -> float:
    """Wall-clock seconds of the training steps of a history (0 when there are none)."""
    steps = [h for h in history if "loss" in h]
    return steps[-1]["seconds"] if steps else 0.0


def curves_title(source: str, history: list[dict]) -> str:
    if history:
        return f"teacher: masked-LM adaptation of {source}"
    return f"teacher: {source} used as is (teacher.steps = 0)"


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Adapt the source (unless teacher.steps is 0), save it as the teacher, write figure and metrics.

    Returns the metrics and what the notebook shows: the training figure's path.
    """
    paths = paths or Paths()
    cfg = params.teacher
    torch.manual_seed(params.seed)  # the fresh masked-LM head
    model, tokenizer = load_masked_lm(params.source.model)
    arch = check_architecture(model, params.source.arch)
    blocks, _ = load_blocks(resolve(paths.corpus_dir))
    heldout = blocks["heldout"][: cfg.eval_blocks]
    print(
        f"profile {params.profile!r}: source {params.source.name} {arch.name}; "
        f"{len(blocks['train']):,} train blocks, "
        f"{len(heldout):,} held-out blocks of {heldout.shape[1]} tokens"
    )
    evaluate = heldout_evaluator(heldout, tokenizer, cfg.batch_size, params.seed)
    before = evaluate(model)
    print("before:", before)
    history = (
        adapt(
            model,
            tokenizer,
            blocks["train"],
            cfg,
            params.seed,
            resolve(paths.checkpoint_dir),
            evaluate,
            progress,
        )
        if cfg.steps
        else []
    )
    after = evaluate(model)
    print("after:", after)
    save_pretrained(model, tokenizer, resolve(paths.teacher_dir))

    figure = resolve(paths.figures_dir) / "teacher_training.png"
    fig = figures.training_curves(history, curves_title(params.source.name, history))
    figures.save(fig, figure)
    plt.close(fig)

    result = Result(
        profile=params.profile,
        source=params.source.name,
        arch=arch.name,
        steps=cfg.steps,
        masked_acc_before=before["masked_acc"],
        masked_acc_after=after["masked_acc"],
        mlm_ce_before=before["mlm_ce"],
        mlm_ce_after=after["mlm_ce"],
        heldout_masked_tokens=after["masked_tokens"],
        train_seconds=train_seconds(history),
        tokens_per_second=tokens_per_second(history, cfg.batch_size * heldout.shape[1]),
        machine=machine_info(),
    )
    result.write(resolve(paths.metrics_file))
    return result, {"teacher_training.png": figure}
