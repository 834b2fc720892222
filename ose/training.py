"""A small resumable training loop: AdamW, linear warm-up and decay, gradient clipping, checkpoints.

Exact resume: the batch of step t and the dropout noise of step t come from generators seeded with
(seed, t), so a run restarted from the checkpoint of step t replays steps t+1… exactly as an
uninterrupted run would. Checkpoints hold model, optimiser and scheduler state and the history,
and are written atomically (temp file, then rename): an interruption never leaves a broken one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ose.atomic import save_torch_atomic

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    lr: float
    warmup_steps: int
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 0  # 0: evaluate only at the end

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}], got {self.warmup_steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for everything random in step `step` (batch choice, masking)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


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
    return torch.optim.AdamW(groups, lr=config.lr)


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch_atomic(state, path)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Generator], torch.Tensor],
    config: TrainConfig,
    checkpoint_dir: str | Path | None = None,
    evaluate: Callable[[nn.Module], dict] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    run_key: dict | None = None,
) -> list[dict]:
    """Train for `config.steps` steps, resuming from `checkpoint_dir` when it holds a checkpoint.

    loss_fn(model, generator) draws its own batch from `generator` and returns the loss.
    evaluate(model) returns a dict of held-out metrics, logged every `eval_every` steps and at the
    end. `stop_after` ends the run early after that step (as an interruption would; for tests).
    A checkpoint is resumed only when it was written with the same config, `run_key` (plain
    values fingerprinting every input: data, starting weights, teacher, tokenizer; `ose.fingerprint`)
    and evaluation (`evaluate.identity`, when it has one); any other is ignored and replaced.
    Returns the history: one dict per step (step, loss, lr, seconds) plus evaluation entries.
    """
    path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(config.warmup_steps, config.steps)
    )
    start, history = 0, []
    identity = {**asdict(config), **(run_key or {}), "evaluation": getattr(evaluate, "identity", None)}
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
                print(f"resuming from {path} at step {start}")
        elif rank == 0:
            changed = sorted(
                k
                for k in identity.keys() | state["identity"].keys()
                if identity.get(k) != state["identity"].get(k)
            )
            print(f"starting over: {path} was written with other inputs ({', '.join(changed)})")
    model.train()
    clock = time.perf_counter()
    elapsed = history[-1]["seconds"] if history else 0.0
    bar = tqdm(
        range(start, config.steps),
        desc="train",
        initial=start,
        total=config.steps,
        disable=not progress or rank != 0,
    )
    for step in bar:
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout noise of this step
        loss = loss_fn(model, step_generator(config.seed, step))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {step + 1}")
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
        last = done == config.steps
        if evaluate is not None and (last or (config.eval_every and done % config.eval_every == 0)):
            history.append({"step": done, "seconds": seconds, **evaluate(model)})
            model.train()
        if path is not None and rank == 0 and (last or done % config.checkpoint_every == 0):
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
        if stop_after is not None and done >= stop_after:
            break
    model.eval()
    return history


def tokens_per_second(history: list[dict], tokens_per_step: int) -> float:
    steps = [h for h in history if "loss" in h]
    if not steps or steps[-1]["seconds"] <= 0:
        return math.nan
    return tokens_per_step * len(steps) / steps[-1]["seconds"]
