"""Masked-language-model data and evaluation, shared by teacher adaptation and distillation.

BERT's recipe: choose 15% of the non-special tokens; of those, 80% become [MASK], 10% a random
token, 10% stay. Loss and accuracy are computed on the chosen positions only, and the vocabulary
projection is applied to those positions only (the largest matrix product of a small model).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ose.configs import MaskedLMTraining  # noqa: F401 (re-exported)

IGNORE = -100
EVAL_BATCH_SIZE = 32  # held-out evaluation; the masking does not depend on it, only the speed


def mask_tokens(
    ids: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    generator: torch.Generator,
    mask_prob: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for ids (B, L); labels are IGNORE except at the chosen positions."""
    if not 0 < mask_prob < 1:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
    maskable = ~torch.isin(ids, torch.tensor(list(special_ids), dtype=ids.dtype))  # (B, L)
    chosen = (torch.rand(ids.shape, generator=generator) < mask_prob) & maskable
    if not chosen.any():  # a batch with no target would give a NaN loss
        flat = maskable.flatten().nonzero().squeeze(1)
        pick = flat[torch.randint(len(flat), (1,), generator=generator)]
        chosen.view(-1)[pick] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = mask_id
    randomise = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[randomise] = torch.randint(vocab_size, (int(randomise.sum()),), generator=generator)
    return inputs, labels


def mlm_parts(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(encoder, vocabulary head) of a Hugging Face masked-LM model (BERT or RoBERTa style)."""
    head = getattr(model, "cls", None)
    if head is None:
        head = getattr(model, "lm_head", None)
    if head is None:
        raise TypeError(f"{type(model).__name__} has no masked-LM head (cls or lm_head)")
    return model.base_model, head


def masked_logits(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits at the masked positions only: (N_masked, V)."""
    encoder, head = mlm_parts(model)
    device = next(model.parameters()).device
    hidden = encoder(input_ids=inputs.to(device)).last_hidden_state  # (B, L, H)
    return head(hidden[(labels != IGNORE).to(device)])  # (N, V)


def autocast(model: nn.Module, bf16: bool):
    """bf16 autocast on the model's device when `bf16` (matrix products in bf16, weights and the
    optimiser in fp32); a no-op context otherwise. On a CPU with AVX512-BF16 a training step of
    the teacher takes about 0.7× the fp32 time."""
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)


def mlm_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = masked_logits(model, inputs, labels)  # (N, V)
    return F.cross_entropy(logits, labels[labels != IGNORE].to(logits.device))


@torch.no_grad()
def evaluate_mlm(
    model: nn.Module,
    blocks: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out masked-token accuracy and cross-entropy, with one fixed masking of all the blocks.

    The blocks (N, L) are masked once, with one generator seeded by `seed` (same seed, same mask),
    then scored `batch_size` blocks at a time: the batch size changes the speed, not the metrics.
    """
    was_training = model.training
    model.eval()
    inputs, labels = mask_tokens(
        blocks, mask_id, vocab_size, special_ids, torch.Generator().manual_seed(seed)
    )  # (N, L) each
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, len(blocks), batch_size):
        batch_labels = labels[start : start + batch_size]
        if not (batch_labels != IGNORE).any():
            continue  # no masked token in these blocks
        logits = masked_logits(model, inputs[start : start + batch_size], batch_labels)  # (N_b, V)
        targets = batch_labels[batch_labels != IGNORE].to(logits.device)
        total_loss += float(F.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(-1) == targets).sum())
        count += len(targets)
    model.train(was_training)
    return {"masked_acc": correct / count, "mlm_ce": total_loss / count, "masked_tokens": count}


class MaskedLogits(nn.Module):
    """Wraps a masked-LM model so its forward returns logits at the masked positions only.

    DistributedDataParallel synchronises gradients through the forward of the module it wraps,
    so the masked-position shortcut must live inside a forward, not beside it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return masked_logits(self.model, inputs, labels)  # (N, V)
