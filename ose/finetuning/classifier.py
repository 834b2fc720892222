"""Fine-tuning an encoder on one task: Bort's classification head, AdamW, best-on-dev selection.

The classifier is the head Bort fine-tunes with (gluonnlp's `RoBERTaClassifier`, which alexa/bort
uses): the encoder's first-token ([CLS] / <s>) hidden state → dropout → dense(H→H) + tanh → dropout
→ linear(H→num_labels). The encoder's own pooler is never used, even when it has one: Bort's head is
trained from scratch and the masked-LM students of this project have no trained pooler. A regression
task (STS-B) gets one output and a mean-squared-error loss. `pooling="mean"` reads the mean of the
last hidden states over the non-padding tokens instead of the first token's: the sentence vector
sentence-transformers' all-MiniLM-L6-v2 was trained to give.

`fine_tune` trains with the project's one loop (`ose.training.loop.train`): AdamW (no decay on biases
and LayerNorm), linear warm-up and decay, gradient clipping, per-step dropout seeding. It scores the
dev split every epoch (or every `eval_every` steps), keeps the state with the best main metric of the
task (`ose.data.tasks.main_metric`; `ose.training.loop.KeepBest`) and stops after `patience` evaluations
without improvement. Each evaluation also records the dev loss (`dev_loss`: mean cross-entropy of the
dev logits, or their mean squared error for regression), which Agora uses to break ties between θ.
The test split is never read. Same seed ⇒ same head initialisation, batch order and dropout noise ⇒
same model.

`make_fit`, `make_predict` and `make_labeller` wrap these for `ose.finetuning.agora`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ose.arch import NoTokenTypes
from ose.configs import THETA_NAME, FineTuneConfig, FineTuneTheta  # noqa: F401 (re-exported)
from ose.data.metrics import score
from ose.data.tasks import PAIR, SINGLE, TaskData
from ose.pipeline.loading import quietly
from ose.training.loop import KeepBest, TrainConfig, train
from ose.training.mlm import autocast

# ---------------------------------------------------------------------------------------------
# The classifier


def load_encoder(encoder: str | Path | nn.Module) -> nn.Module:
    """The bare encoder (no pooler, no task head) of a `save_pretrained` directory or a model.

    A directory is loaded with `AutoModel` without its pooler; a model is deep-copied (so one
    pretrained encoder can start many runs), and a model with a head (e.g. `BertForMaskedLM`) gives
    its `base_model`. A saved config with `type_vocab_size` 0 (no token types) gets `NoTokenTypes`.
    """
    if isinstance(encoder, str | Path):
        from transformers import AutoModel

        with quietly():  # its load report lists the unused pooler / MLM head
            model = AutoModel.from_pretrained(encoder, add_pooling_layer=False)
    else:
        model = copy.deepcopy(getattr(encoder, "base_model", encoder))
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # unused by Bort's head: drop it so it gets no optimiser state
    embeddings = getattr(model, "embeddings", None)
    if getattr(model.config, "type_vocab_size", 1) == 0 and embeddings is not None:
        if not isinstance(embeddings.token_type_embeddings, NoTokenTypes):
            embeddings.token_type_embeddings = NoTokenTypes(model.config.hidden_size)
    return model


class Classifier(nn.Module):
    """encoder → pooled state → dropout → dense(H→H) + tanh → dropout → linear(H→num_labels).

    pooling: "cls" pools the first token's state (Bort's head); "mean" the mean of the last hidden
    states over the tokens the attention mask marks as real (all of them when the mask is None), as
    sentence-transformers' all-MiniLM-L6-v2 was trained (`pool`). The encoder's pooler is not used
    (Bort's head is its own; see the module docstring). For regression `num_labels` is 1 and the
    single output is the prediction. With `bf16` the forward pass runs under bf16 autocast
    (`ose.training.mlm.autocast`) and returns fp32 outputs.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        dropout: float = 0.1,
        generator: torch.Generator | None = None,
        is_regression: bool = False,
        bf16: bool = False,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        self.bf16 = bf16
        if is_regression and num_labels != 1:
            raise ValueError(f"a regression head has one output, got num_labels={num_labels}")
        if pooling not in FineTuneConfig.POOLINGS:
            raise ValueError(f"pooling must be one of {list(FineTuneConfig.POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.is_regression = is_regression
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, num_labels)
        std = getattr(encoder.config, "initializer_range", 0.02)
        for layer in (self.dense, self.out):  # BERT's initialisation, from the run's own generator
            nn.init.normal_(layer.weight, std=std, generator=generator)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with autocast(self, self.bf16):
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state  # (B, L, H)
            pooled = self.dropout(self.pool(states, attention_mask))  # (B, H)
            return self.out(self.dropout(torch.tanh(self.dense(pooled)))).float()  # (B, num_labels)

    def pool(self, states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The sentence vector (B, H) of last hidden states (B, L, H), before the head's dropout."""
        if self.pooling == "cls":
            return states[:, 0]
        if attention_mask is None:
            return states.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, L, 1)
        return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # (B, H)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.is_regression:
            return nn.functional.mse_loss(logits[:, 0], labels.float())
        return nn.functional.cross_entropy(logits, labels.long())


# ---------------------------------------------------------------------------------------------
# Tokenisation and batches


def text_columns_of(frame: pd.DataFrame) -> tuple[str, ...]:
    """`("text",)` for single sentences, `("text_a", "text_b")` for pairs."""
    if all(c in frame.columns for c in PAIR):
        return PAIR
    if all(c in frame.columns for c in SINGLE):
        return SINGLE
    raise ValueError(
        f"a task frame needs a 'text' column or 'text_a' and 'text_b'; has {list(frame.columns)}"
    )


@dataclass(frozen=True)
class Encoded:
    """Token ids of a frame's rows, unpadded (padding is per batch)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, rows: Sequence[int], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Rows `rows`, padded to the longest of them."""
        length = max(len(self.input_ids[r]) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)  # (B, L)
        mask = torch.zeros((len(rows), length), dtype=torch.long)  # (B, L)
        types = torch.zeros((len(rows), length), dtype=torch.long)  # (B, L)
        for i, r in enumerate(rows):
            n = len(self.input_ids[r])
            ids[i, :n] = torch.tensor(self.input_ids[r])
            mask[i, :n] = 1
            if self.token_type_ids is not None:
                types[i, :n] = torch.tensor(self.token_type_ids[r])
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.token_type_ids is not None:
            batch["token_type_ids"] = types
        return {k: v.to(device) for k, v in batch.items()}


def encode_frame(tokenizer, frame: pd.DataFrame, max_len: int) -> Encoded:
    """Tokenise a frame's texts (single or pairs), truncated to `max_len` tokens, not padded.

    Pairs are truncated longest-first, as BERT does. Token types are kept when the tokenizer makes
    them (BERT-style vocabularies); a RoBERTa-style tokenizer makes none.
    """
    columns = text_columns_of(frame)
    texts = [frame[c].astype(str).tolist() for c in columns]
    if len(frame) == 0:
        return Encoded([], None, tokenizer.pad_token_id)
    encoding = tokenizer(*texts, truncation=True, max_length=max_len, padding=False)
    types = encoding.get("token_type_ids")
    return Encoded(
        list(encoding["input_ids"]), None if types is None else list(types), tokenizer.pad_token_id
    )


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _uses_token_types(model: Classifier) -> bool:
    return getattr(model.encoder.config, "type_vocab_size", 0) > 1


@torch.no_grad()
def predict_encoded(model: Classifier, encoded: Encoded, batch_size: int = 64) -> np.ndarray:
    """Outputs (N, num_labels) of the model in eval mode, batches ordered by length (less padding)."""
    was_training = model.training
    model.eval()
    device = _model_device(model)
    order = np.argsort([len(ids) for ids in encoded.input_ids], kind="stable")
    outputs = np.zeros((len(encoded), model.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size].tolist()
        batch = encoded.batch(rows, device)
        if not _uses_token_types(model):
            batch.pop("token_type_ids", None)
        outputs[rows] = model(**batch).float().cpu().numpy()
    model.train(was_training)
    return outputs


def _decisions(model: Classifier, outputs: np.ndarray) -> np.ndarray:
    return outputs[:, 0].astype(np.float64) if model.is_regression else outputs.argmax(axis=1)


def predict(
    model: Classifier, tokenizer, frame: pd.DataFrame, max_len: int = 128, batch_size: int = 64
) -> np.ndarray:
    """Class ids (N,) or, for a regression model, real numbers (N,) for the rows of `frame`."""
    return _decisions(model, predict_encoded(model, encode_frame(tokenizer, frame, max_len), batch_size))


def evaluate(
    model: Classifier,
    tokenizer,
    task_name: str,
    frame: pd.DataFrame,
    max_len: int = 128,
    batch_size: int = 64,
) -> dict[str, float]:
    """Every metric of the task (`ose.data.metrics.score`) on the labelled rows of `frame`."""
    encoded = encode_frame(tokenizer, frame, max_len)
    return evaluate_encoded(model, task_name, encoded, frame["label"].to_numpy(), batch_size)


def evaluate_encoded(
    model: Classifier, task_name: str, encoded: Encoded, labels: np.ndarray, batch_size: int = 64
) -> dict[str, float]:
    """`evaluate` on rows tokenised once (`encode_frame`), for a split scored many times."""
    return score(task_name, _decisions(model, predict_encoded(model, encoded, batch_size)), labels)


# ---------------------------------------------------------------------------------------------
# Training


def sample_rows(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """A seeded random sample of at most `limit` rows (original order kept), or the whole frame."""
    if limit is None or len(frame) <= limit:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=limit, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to `weights` summing to `total` (ties: the earlier class)."""
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _per_class_sample(frame: pd.DataFrame, counts: dict, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keep = []
    for label, count in counts.items():
        rows = np.flatnonzero(frame["label"].to_numpy() == label)
        keep.append(rng.choice(rows, size=count, replace=False))
    return frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def balanced_sample(
    frame: pd.DataFrame, size: int | None, seed: int, name: str = "train_size"
) -> pd.DataFrame:
    """A seeded sample of `size` rows with every class equally often (original order kept).

    Agora's regime: a scarce train set whose class balance does not follow the dev set's. With k
    classes each gets size // k rows, and the first size % k classes (sorted) one more. None or a
    size of at least the frame: the whole frame. A regression frame gets a plain random sample.
    Raises when a class has too few rows, naming `name` (the parameter that asked for the size).
    """
    if size is None or len(frame) <= size:
        return frame
    if frame["label"].dtype.kind == "f":
        return sample_rows(frame, size, seed)
    classes = np.sort(frame["label"].unique())
    if size < len(classes):
        raise ValueError(f"{name}: {size} cannot hold each of the {len(classes)} classes once")
    share, extra = divmod(size, len(classes))
    counts = {c: share + (k < extra) for k, c in enumerate(classes)}
    available = frame["label"].value_counts()
    short = {str(c): int(available[c]) for c, n in counts.items() if available[c] < n}
    if short:
        raise ValueError(
            f"{name}: a balanced sample of {size} needs {share + (extra > 0)} rows per class; "
            f"the split has only {short}"
        )
    return _per_class_sample(frame, counts, seed)


def stratified_sample(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of `size` rows keeping the class proportions (largest remainder), or all rows.

    Agora's dev set stands for the population, so it keeps the split's class balance. Regression:
    a plain random sample.
    """
    if size is None or len(frame) <= size:
        return frame
    if frame["label"].dtype.kind == "f":
        return sample_rows(frame, size, seed)
    available = frame["label"].value_counts().sort_index()
    counts = _largest_remainder(available.to_numpy(dtype=np.float64), size)
    return _per_class_sample(frame, dict(zip(available.index, counts, strict=True)), seed)


def fine_tune(
    encoder: str | Path | nn.Module,
    tokenizer,
    task: TaskData,
    train_frame: pd.DataFrame | None = None,
    config: FineTuneConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> tuple[Classifier, dict]:
    """Fine-tune a fresh copy of `encoder` with Bort's head on `train_frame` (default `task.train`).

    Only `task.dev` (for model selection) and the task's spec are read, never `task.test`. The
    returned model is in eval mode and holds the state of the best dev evaluation (ties: the
    earliest). The log is a plain dict: `history` (one entry per evaluation: step, epoch, mean
    training loss since the previous one, every dev metric and `dev_loss`), `best_step`,
    `best_score`, `best_loss` (the dev loss at the best evaluation; NaN when none was best),
    `main_metric`, `steps`, `stopped_early`, `train_size`.
    """
    config = config or FineTuneConfig()
    train_frame = task.train if train_frame is None else train_frame
    if len(train_frame) == 0:
        raise ValueError(f"{task.name}: the train frame is empty")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # the run seeds torch's global generator (dropout); the caller's generator state is restored
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else None):
        return _fine_tune(encoder, tokenizer, task, train_frame, config, seed, progress, device)


def _fine_tune(encoder, tokenizer, task, train_frame, config, seed, progress, device):
    generator = torch.Generator().manual_seed(seed)  # the head's initialisation, then the batch order
    model = Classifier(
        load_encoder(encoder),
        task.num_labels,
        config.dropout,
        generator,
        task.is_regression,
        config.bf16,
        config.pooling,
    ).to(device)
    train_data = encode_frame(tokenizer, train_frame, config.max_len)
    dev_data = encode_frame(tokenizer, task.dev, config.max_len)
    labels = torch.tensor(
        train_frame["label"].to_numpy(), dtype=torch.float if task.is_regression else torch.long
    )
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps is not None:  # the capped run's batches are the uncapped run's first ones
        total = min(total, config.max_steps)
    train_config = TrainConfig(
        steps=total,
        lr=config.lr,
        warmup_steps=round(config.warmup_fraction * total),
        batch_size=config.batch_size,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        eval_every=config.eval_every or steps_per_epoch,
        checkpoint_every=0,
    )
    # one permutation per epoch, drawn up front: nothing else draws from the generator in between
    orders = [torch.randperm(len(train_data), generator=generator) for _ in range(config.epochs)]
    token_types = _uses_token_types(model)

    def loss_fn(model: Classifier, step: int, _: torch.Generator) -> torch.Tensor:
        epoch, start = divmod(step, steps_per_epoch)
        rows = orders[epoch][start * config.batch_size : (start + 1) * config.batch_size].tolist()
        batch = train_data.batch(rows, device)
        if not token_types:
            batch.pop("token_type_ids", None)
        return model.loss(model(**batch), labels[rows].to(device))

    dev_labels = task.dev["label"].to_numpy()
    dev_targets = torch.tensor(dev_labels, dtype=labels.dtype)

    def evaluate_dev(model: Classifier) -> dict[str, float]:
        outputs = predict_encoded(model, dev_data, config.eval_batch_size)
        loss = float(model.loss(torch.from_numpy(outputs), dev_targets)) if len(outputs) else math.nan
        return {**score(task.name, _decisions(model, outputs), dev_labels), "dev_loss": loss}

    selector = KeepBest(task.main_metric, config.patience)
    history = train(
        model,
        loss_fn,
        train_config,
        seed,
        evaluate=evaluate_dev,
        progress=progress,
        on_evaluate=selector,
        desc=f"fine-tune {task.name}",
    )
    selector.restore(model)
    model.eval()
    evaluations = _evaluation_log(history, steps_per_epoch)
    at_best = [e["dev_loss"] for e in evaluations if e["step"] == selector.best_step]
    log = {
        "history": evaluations,
        "best_step": selector.best_step,
        "best_score": selector.best_score,
        "best_loss": at_best[-1] if at_best else math.nan,
        "main_metric": task.main_metric,
        "steps": history[-1]["step"],
        "stopped_early": selector.stopped,
        "train_size": len(train_frame),
    }
    return model, log


def _evaluation_log(history: list[dict], steps_per_epoch: int) -> list[dict]:
    """One entry per dev evaluation of `train`'s history: step, epoch, mean training loss since the
    previous evaluation, every dev metric (`seconds` dropped: the log is reproducible)."""
    entries, losses = [], []
    for entry in history:
        if "loss" in entry:
            losses.append(entry["loss"])
            continue
        metrics = {k: v for k, v in entry.items() if k not in ("step", "seconds")}
        epoch = (entry["step"] - 1) // steps_per_epoch + 1
        entries.append(
            {"step": entry["step"], "epoch": epoch, "train_loss": float(np.mean(losses)), **metrics}
        )
        losses = []
    return entries


# ---------------------------------------------------------------------------------------------
# The callables Agora takes


def without_test(task: TaskData) -> TaskData:
    """The task with its test splits replaced by an empty frame: what model selection and Agora may see.

    The test splits are not even read (the empty frame is cut from the dev split).
    """
    return dataclasses.replace(task, test=task.dev.iloc[:0], extra_tests={})


def make_fit(
    encoder: str | Path | nn.Module,
    tokenizer,
    task: TaskData,
    config: FineTuneConfig,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> Callable[[pd.DataFrame, Mapping[str, Any], int], tuple[Classifier, float, float]]:
    """`fit(train_frame, theta, seed) -> (model, dev score, dev loss)` for `ose.finetuning.agora.agora`.

    The score and the loss are those of the best dev evaluation (`fine_tune`'s `best_score` and
    `best_loss`); Agora breaks ties in score by the loss.

    θ overrides fields of `config` (`FineTuneConfig.with_theta`). The encoder is loaded once; each
    call fine-tunes a fresh copy. The test split is dropped here, so no fit can read it.
    """
    base = load_encoder(encoder)
    visible = without_test(task)

    def fit(
        train_frame: pd.DataFrame, theta: Mapping[str, Any], seed: int
    ) -> tuple[Classifier, float, float]:
        model, log = fine_tune(
            base, tokenizer, visible, train_frame, config.with_theta(theta), seed, progress, device
        )
        return model, log["best_score"], log["best_loss"]

    return fit


def make_predict(
    tokenizer, max_len: int = 128, batch_size: int = 64
) -> Callable[[Classifier, pd.DataFrame], np.ndarray]:
    """`predict(model, frame)` for `ose.finetuning.agora.agora`."""

    def predict_frame(model: Classifier, frame: pd.DataFrame) -> np.ndarray:
        return predict(model, tokenizer, frame, max_len, batch_size)

    return predict_frame


def make_labeller(
    model: Classifier, tokenizer, max_len: int = 128, batch_size: int = 64
) -> Callable[[pd.DataFrame], np.ndarray]:
    """The labeller S of Agora: `label(frame)` → the predictions of a fine-tuned (source) model."""

    def label(frame: pd.DataFrame) -> np.ndarray:
        return predict(model, tokenizer, frame, max_len, batch_size)

    return label
