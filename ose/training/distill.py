"""Knowledge distillation: the losses, ê's fixed sample, and ê itself.

Loss on masked positions only: α·CE(student, true tokens) + β·T²·term(teacher, student), where the
distillation term has two forms (`KDWeights.form`):

- "kl", textbook KD (Hinton et al. 2015): KL(p_t ‖ p_s) with p = softmax(logits / T), summed over
  the vocabulary and averaged over masked tokens; with β = 1 − α (params `distill.alpha`, T);
- "released", the term exactly as alexa/bort's released pretraining code computes it
  (`utils/pretraining_distillation_utils.forward` with `mx.gluon.loss.KLDivLoss(from_logits=False)`):
  the student's *probabilities* softmax(s / T) go into a loss that applies log_softmax to its input
  again, and the elementwise p_t·(log(p_t + 1e-12) − log_softmax(p_s)) is averaged (not summed) over
  the vocabulary, then summed over masked tokens and divided by their count, ×T². Its gradient is tiny
  (`grad_norm_ratio` measures it), so with the script's weights (α 0.1, β 0.5) that loss is close to
  0.1 × masked-LM. Both forms are run (`ose.stages.pretrain`'s arms): Bort as released and as intended.

For the FPTAS's surrogate error the data sample B is fixed, so its masking and the teacher's
logits at the masked positions are computed once (`fixed_sample`) and shared by every candidate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ose.arch import Arch, Embedding, build_model
from ose.configs import KDWeights, SurrogateTheta  # noqa: F401 (re-exported)
from ose.training.loop import TrainConfig
from ose.training.loop import train as train_loop
from ose.training.mlm import IGNORE, mask_tokens, masked_logits

# The masked-LM loss alone (no teacher): the baseline arm of stage `pretrain`, same code path.
MLM_ONLY = KDWeights(alpha=1.0, beta=0.0, temperature=1.0)


def kl_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher_T ‖ student_T), summed over the vocabulary, mean over the N masked tokens (N, V)."""
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits.float() / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    )


def released_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """alexa/bort's distillation term as its code computes it (before ×T²): mean over masked tokens of
    mean over the vocabulary of p_t·(log(p_t + 1e-12) − log_softmax(p_s)), p = softmax(logits / T)."""
    p_student = F.softmax(student_logits / t, dim=-1)
    p_teacher = F.softmax(teacher_logits.float() / t, dim=-1)
    elementwise = p_teacher * (torch.log(p_teacher + 1e-12) - F.log_softmax(p_student, dim=-1))
    return elementwise.mean(dim=-1).mean()


TERMS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "kl": kl_term,
    "released": released_term,
}


def kd_terms(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, w: KDWeights
) -> tuple[torch.Tensor, torch.Tensor]:
    """(α·CE, β·T²·term) over masked tokens: logits (N, V), targets (N,). Their sum is `kd_loss`."""
    ce = F.cross_entropy(student_logits, targets)
    if w.beta == 0:
        return w.alpha * ce, ce.new_zeros(())
    t = w.temperature
    return w.alpha * ce, w.beta * t * t * TERMS[w.form](student_logits, teacher_logits, t)


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor, w: KDWeights
) -> torch.Tensor:
    """α·CE + β·T²·term over masked tokens: logits (N, V), targets (N,)."""
    ce, kd = kd_terms(student_logits, teacher_logits, targets, w)
    return ce + kd


def grad_norm_ratio(model: nn.Module, loss_terms: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> float:
    """‖∇ of the weighted distillation term‖ / ‖∇ of the weighted CE term‖ over the model's parameters.

    `loss_terms()` returns (α·CE, β·T²·term) from one forward pass (`kd_terms`); the model's own
    gradients are left untouched. 0 when the distillation term is absent (β = 0).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    ce, kd = loss_terms()
    if not kd.requires_grad:
        return 0.0

    def norm(term: torch.Tensor) -> float:
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))

    ce_norm = norm(ce)
    return norm(kd) / ce_norm if ce_norm > 0 else math.inf


@dataclass
class FixedSample:
    """Masked batches with the teacher's logits at their masked positions, computed once."""

    inputs: torch.Tensor  # (n, B, L)
    labels: torch.Tensor  # (n, B, L), IGNORE where not masked
    teacher_logits: list[torch.Tensor]  # n tensors (N_k, V), float16

    def __len__(self) -> int:
        return len(self.inputs)

    def batch(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, labels, teacher logits, targets) of batch k."""
        labels = self.labels[k]
        return self.inputs[k], labels, self.teacher_logits[k], labels[labels != IGNORE]

    def head(self, n: int) -> FixedSample:
        """The first n batches."""
        return FixedSample(self.inputs[:n], self.labels[:n], self.teacher_logits[:n])

    def to(self, device: torch.device | str) -> FixedSample:
        """The same sample on `device` (the candidates train where their sample is)."""
        return FixedSample(
            self.inputs.to(device), self.labels.to(device), [t.to(device) for t in self.teacher_logits]
        )

    def to_dict(self) -> dict:
        return {"inputs": self.inputs, "labels": self.labels, "teacher_logits": self.teacher_logits}

    @classmethod
    def from_dict(cls, data: dict) -> FixedSample:
        return cls(data["inputs"], data["labels"], data["teacher_logits"])


@torch.no_grad()
def fixed_sample(
    blocks: torch.Tensor,
    n_batches: int,
    batch_size: int,
    seq_len: int,
    teacher: nn.Module,
    tokenizer,
    seed: int,
) -> FixedSample:
    """B: n_batches seeded batches of `seq_len`-token windows, masked once, with teacher logits."""
    if n_batches * batch_size > len(blocks):
        raise ValueError(f"asked for {n_batches}×{batch_size} blocks, only {len(blocks)} available")
    if not 3 <= seq_len <= blocks.shape[1]:
        raise ValueError(f"seq_len must be in [3, {blocks.shape[1]}], got {seq_len}")
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(blocks), generator=generator)[: n_batches * batch_size]
    windows = blocks[rows, :seq_len].clone()  # (n·B, L)
    windows[:, -1] = tokenizer.sep_token_id
    specials = sorted(set(tokenizer.all_special_ids))
    inputs, labels = mask_tokens(
        windows, tokenizer.mask_token_id, teacher.config.vocab_size, specials, generator
    )
    inputs = inputs.view(n_batches, batch_size, seq_len)
    labels = labels.view(n_batches, batch_size, seq_len)
    teacher.eval()
    logits = [masked_logits(teacher, inputs[k], labels[k]).half() for k in range(n_batches)]
    return FixedSample(inputs, labels, logits)


@torch.no_grad()
def heldout_kd_loss(model: nn.Module, sample: FixedSample, w: KDWeights) -> float:
    """Mean distillation loss over the batches of a fixed sample."""
    was_training = model.training
    model.eval()
    losses = []
    for k in range(len(sample)):
        inputs, labels, teacher_logits, targets = sample.batch(k)
        losses.append(float(kd_loss(masked_logits(model, inputs, labels), teacher_logits, targets, w)))
    model.train(was_training)
    return sum(losses) / len(losses)


def surrogate_error(
    arch: Arch,
    embedding: Embedding,
    train: FixedSample,
    heldout: FixedSample,
    steps: int,
    lr: float,
    warmup_steps: int,
    weights: KDWeights,
    seed: int,
    eval_steps: Sequence[int] = (),
    initial: nn.Module | None = None,
) -> dict:
    """ê(ξ): held-out distillation loss of a freshly initialised ξ after `steps` steps on B.

    `initial`: the model to start from instead of a random init of ξ (stage extract's `inherited`
    init: ξ sliced from the teacher, `ose.training.inherit`); it is trained in place.

    With `eval_steps` (a long reference run of the surrogate check), "losses" holds the held-out
    loss at each of those steps and the last ({step: loss}).

    It trains with the project's one loop (`ose.training.loop.train`) and pretraining's recipe: AdamW
    without weight decay on biases and LayerNorm (decay 0.01 elsewhere), linear warm-up and decay,
    clipping at 1, dropout seeded per step. Step t trains on batch t mod |B| of the fixed sample.
    Same (ξ, θ, seed) ⇒ same ê: initialisation, batch order and dropout are all seeded. The model
    trains on the device of the samples (`FixedSample.to`); it is initialised on the CPU, so its
    starting weights do not depend on the device.
    """
    start = time.perf_counter()
    model, history = distill_on_sample(
        arch, embedding, train, heldout, steps, lr, warmup_steps, weights, seed, eval_steps, initial
    )
    error = heldout_kd_loss(model, heldout, weights)
    result = {
        "error": error,
        "train_loss": [h for h in history if "loss" in h][-1]["loss"],
        "seconds": time.perf_counter() - start,
    }
    if eval_steps:
        result["losses"] = {h["step"]: h["kd_loss"] for h in history if "kd_loss" in h}
    return result


def distill_on_sample(
    arch: Arch,
    embedding: Embedding,
    train: FixedSample,
    heldout: FixedSample,
    steps: int,
    lr: float,
    warmup_steps: int,
    weights: KDWeights,
    seed: int,
    eval_steps: Sequence[int] = (),
    initial: nn.Module | None = None,
) -> tuple[nn.Module, list[dict]]:
    """A freshly initialised ξ (or `initial`) distilled for `steps` steps on B (step t: batch t mod |B|).

    With `eval_steps`, the history also holds the held-out distillation loss (`kd_loss`) at each
    of those steps and at the end: the surrogate check's ê_s at several s, in one run. The model is
    evaluated there only (evaluation draws no random numbers, so it changes no training step).
    """
    device = train.inputs.device
    if heldout.inputs.device != device:
        raise ValueError(f"train sample on {device}, held-out sample on {heldout.inputs.device}")
    if initial is None:
        model = build_model(arch, embedding, head="mlm", seed=seed)
    else:
        model = initial
    model = model.to(device).train()
    config = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=warmup_steps,
        batch_size=train.inputs.shape[1],
        weight_decay=0.01,
        max_grad_norm=1.0,
        checkpoint_every=0,
        eval_every=math.gcd(*eval_steps, steps) if eval_steps else 0,
    )
    wanted = {*eval_steps, steps}
    calls = 0

    def loss_fn(model: nn.Module, step: int, _: torch.Generator) -> torch.Tensor:
        inputs, labels, teacher_logits, targets = train.batch(step % len(train))
        return kd_loss(masked_logits(model, inputs, labels), teacher_logits, targets, weights)

    def evaluate(model: nn.Module) -> dict:  # called every `eval_every` steps and at the end
        nonlocal calls
        calls += 1
        step = min(calls * config.eval_every, steps)
        return {"kd_loss": heldout_kd_loss(model, heldout, weights)} if step in wanted else {}

    history = train_loop(
        model,
        loss_fn,
        config,
        seed,
        evaluate=evaluate if eval_steps else None,
        progress=False,
        desc=f"ê({arch.name})",
    )
    return model, history
