"""Content fingerprints: which inputs a resumable state (checkpoint, cache row) was computed from.

A resumed run must be the run that would have been made from scratch, so every resumable state
is keyed by a fingerprint of everything that shapes it: data, starting weights, teacher, tokenizer.
A checkpoint whose key differs is ignored and replaced, never resumed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from types import ModuleType

import torch
from torch import nn


def tensor_digest(tensor: torch.Tensor) -> str:
    """A short content hash of a tensor (its values, dtype and shape)."""
    tensor = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the same bits as int16
        tensor = tensor.view(torch.int16)
    digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def state_digest(model: nn.Module) -> str:
    """A hash of every tensor of a model's state dict, with its name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor_digest(tensor)};".encode())
    return digest.hexdigest()[:16]


def tokenizer_digest(tokenizer) -> str:
    """A hash of a tokenizer's vocabulary and special tokens (what masking and targets depend on)."""
    vocab = sorted(tokenizer.get_vocab().items())
    specials = sorted(set(tokenizer.all_special_ids))
    text = json.dumps([vocab, specials, tokenizer.mask_token_id, tokenizer.pad_token_id])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_digest(*modules: ModuleType) -> str:
    """A hash of the source code of modules: the code that computed a resumable state.

    DVC re-runs a stage when its code changes, but a persisted checkpoint or cache would then hand
    the new code results of the old; keyed by this, they are recomputed instead.
    """
    digest = hashlib.sha256()
    for module in sorted(set(modules), key=lambda m: m.__name__):
        digest.update(f"{module.__name__}\0{inspect.getsource(module)}\0".encode())
    return digest.hexdigest()[:16]


def mapping_digest(values: dict) -> str:
    """A hash of plain values (settings), independent of key order."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
