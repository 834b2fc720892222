"""The one training loop of the project: AdamW, linear warm-up and decay, gradient clipping,
per-step seeding, evaluation with optional model selection, checkpoints.

Teacher adaptation (`ose.training.source_model`), the surrogate error ê (`ose.training.distill`),
KD pretraining (`ose.training.pretraining`) and fine-tuning (`ose.finetuning.classifier`) all train
with `train`; they differ only in their loss (`loss_fn(model, step, generator)`), evaluation and
recipe (`TrainConfig`).

Per-step seeding, the project's only copy of the rule: step t (0-based) of a run with seed s seeds
torch's global generator (dropout) and `step_generator(s, t)` (batch choice, masking) with
s·1 000 003 + t. So a run restarted from the checkpoint of step t replays steps t+1… exactly as an
uninterrupted run would. Checkpoints hold model, optimiser and scheduler state and the history,
and are written atomically (temp file, then rename): an interruption never leaves a broken one.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ose.configs import TrainConfig  # noqa: F401 (re-exported)
from ose.pipeline import paths
from ose.pipeline.atomic import save_torch_atomic
from ose.pipeline.fingerprint import source_digest
from ose.pipeline.progress import bar as progress_bar

CHECKPOINT = "checkpoint.pt"


def step_seed(seed: int, step: int) -> int:
    """The seed of step `step` (0-based) of a run seeded with `seed`: dropout and `step_generator`."""
    return seed * 1_000_003 + step


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for everything random in step `step` (batch choice, masking)."""
    return torch.Generator().manual_seed(step_seed(seed, step))


def linear_schedule(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights, as BERT trains."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel per parameter group instead of a loop over tensors (3x faster steps of the
    # optimiser on these CPUs, deterministic); a float32 feature of CPU and CUDA builds
    fused = all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=config.lr, fused=fused)


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch_atomic(state, path)


def better(candidate: float, best: float) -> bool:
    """Whether `candidate` beats `best` (higher is better); NaN never counts as an improvement."""
    return not math.isnan(candidate) and (math.isnan(best) or candidate > best)


class KeepBest:
    """`on_evaluate` for `train`: keeps the state with the best `metric`, stops when it goes stale.

    After each evaluation, a strictly better (higher, non-NaN) `metric` makes the model's current
    state the best (ties: the earliest); otherwise the evaluation is stale, and `patience` stale
    evaluations in a row stop the run (patience 0 never stops it). After `train` returns,
    `restore(model)` loads the best state; `best_step`, `best_score` and `stopped` say what happened.
    The states are copies held in memory, not in `train`'s checkpoints.
    """

    def __init__(self, metric: str, patience: int = 0) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.metric, self.patience = metric, patience
        self.best_score, self.best_step, self.best_state = math.nan, 0, None
        self.stale, self.stopped = 0, False

    def __call__(self, model: nn.Module, entry: dict) -> bool:
        current = entry[self.metric]
        if better(current, self.best_score):
            self.best_score, self.best_step, self.stale = current, entry["step"], 0
            core = getattr(model, "module", model)
            self.best_state = {k: v.detach().clone() for k, v in core.state_dict().items()}
        else:
            self.stale += 1
            if self.patience and self.stale >= self.patience:
                self.stopped = True
        return self.stopped

    def restore(self, model: nn.Module) -> None:
        """Load the best state into `model` (nothing when no evaluation was ever better than NaN)."""
        if self.best_state is not None:
            getattr(model, "module", model).load_state_dict(self.best_state)


LossFn = Callable[[nn.Module, int, torch.Generator], torch.Tensor]


def train(
    model: nn.Module,
    loss_fn: LossFn,
    config: TrainConfig,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    evaluate: Callable[[nn.Module], dict] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    run_key: dict | None = None,
    *,
    on_evaluate: Callable[[nn.Module, dict], bool] | None = None,
    desc: str = "train",
) -> list[dict]:
    """Train for `config.steps` steps, resuming from `checkpoint_dir` when it holds a checkpoint.

    loss_fn(model, step, generator) returns the loss of step `step` (0-based): it either draws its
    batch from `generator` (`step_generator(seed, step)`), or picks a fixed one by `step` (a fixed
    sample, a precomputed epoch order). Before it runs, torch's global generator is seeded for the
    step's dropout. The optimiser is `make_optimizer`'s, the schedule `linear_schedule`'s; gradients
    are clipped to `config.max_grad_norm`.

    evaluate(model) returns a dict of held-out metrics, logged every `eval_every` steps and at the
    end as an entry {step, seconds, **metrics}. on_evaluate(model, entry), when given, sees each
    such entry right after it is logged and returns True to stop the run there (model selection
    and early stopping: `KeepBest`); its state is not checkpointed, so it cannot be combined with
    `checkpoint_dir`. `stop_after` ends the run early after that step (as an interruption would;
    for tests). `desc` labels the progress bar and errors.

    A checkpoint is resumed only when it was written with the same config, `run_key` (plain
    values fingerprinting every input: data, starting weights, teacher, tokenizer; `ose.pipeline.fingerprint`)
    and evaluation (`evaluate.identity`, when it has one); any other is ignored and replaced.
    Returns the history: one dict per step (step, loss, lr, seconds) plus evaluation entries.
    The model is left in eval mode.
    """
    if on_evaluate is not None and (evaluate is None or checkpoint_dir):
        raise ValueError("on_evaluate needs evaluate, and cannot be combined with checkpoint_dir")
    path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(config.warmup_steps, config.steps)
    )
    start, history = 0, []
    identity = {
        **asdict(config),
        "seed": seed,
        "code": source_digest(sys.modules[__name__], inspect.getmodule(loss_fn)),
        **(run_key or {}),
        "evaluation": getattr(evaluate, "identity", None),
    }
    core = getattr(model, "module", model)  # the model inside a DistributedDataParallel wrapper
    rank = dist.get_rank() if dist.is_initialized() else 0
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        if state["identity"] == identity:
            core.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start, history = state["step"], state["history"]
            if rank == 0:
                print(f"resuming from {paths.shown(path)} at step {start}")
        elif rank == 0:
            changed = sorted(
                k
                for k in identity.keys() | state["identity"].keys()
                if identity.get(k) != state["identity"].get(k)
            )
            print(f"starting over: {paths.shown(path)} was written with other inputs ({', '.join(changed)})")
    model.train()
    clock = time.perf_counter()
    elapsed = history[-1]["seconds"] if history else 0.0
    bar = progress_bar(
        total=config.steps, desc=desc, unit="step", initial=start, disable=not progress or rank != 0
    )
    for step in range(start, config.steps):
        torch.manual_seed(step_seed(seed, step))  # dropout noise of this step
        loss = loss_fn(model, step, step_generator(seed, step))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {float(loss)} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        done = step + 1
        seconds = elapsed + time.perf_counter() - clock
        history.append({"step": done, "loss": loss.item(), "lr": lr, "seconds": seconds})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        bar.update(1)
        last = done == config.steps
        stop = False
        if evaluate is not None and (last or (config.eval_every and done % config.eval_every == 0)):
            history.append({"step": done, "seconds": seconds, **evaluate(model)})
            if on_evaluate is not None:
                stop = bool(on_evaluate(model, history[-1]))
            model.train()
        if (
            path is not None
            and rank == 0
            and (last or (config.checkpoint_every and done % config.checkpoint_every == 0))
        ):
            save_checkpoint(
                path,
                {
                    "model": core.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": done,
                    "history": history,
                    "identity": identity,
                },
            )
        if stop or (stop_after is not None and done >= stop_after):
            break
    bar.close()
    model.eval()
    return history


def tokens_per_second(history: list[dict], tokens_per_step: int) -> float:
    steps = [h for h in history if "loss" in h]
    if not steps or steps[-1]["seconds"] <= 0:
        return math.nan
    return tokens_per_step * len(steps) / steps[-1]["seconds"]
