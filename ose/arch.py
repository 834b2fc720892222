"""The architecture ξ = ⟨D, A, H, I⟩ and the search space Ξ it is drawn from.

D is the number of encoder layers, A the number of attention heads, H the hidden size and I the
intermediate (feed-forward) size. Everything else that fixes a network's size (vocabulary,
positions, token types) belongs to the `Embedding` of the source model, not to ξ: the paper's
search varies only the four encoder numbers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertModel

_NAME = re.compile(r"^D(\d+)-A(\d+)-H(\d+)-I(\d+)$")


class ArchError(ValueError):
    """An architecture or search space that cannot exist."""


@dataclass(frozen=True, order=True)
class Arch:
    """ξ = ⟨D, A, H, I⟩; fails loudly when H is not a multiple of A."""

    depth: int  # D, encoder layers
    heads: int  # A, attention heads
    hidden: int  # H, hidden size
    intermediate: int  # I, feed-forward size

    def __post_init__(self) -> None:
        for field in ("depth", "heads", "hidden", "intermediate"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ArchError(f"{field} must be a positive integer, got {value!r}")
        if self.hidden % self.heads:
            raise ArchError(
                f"hidden size {self.hidden} is not divisible by the number of heads {self.heads} "
                f"(H % A must be 0; valid head counts for H={self.hidden}: "
                f"{[a for a in range(1, 33) if self.hidden % a == 0]})"
            )

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    @property
    def name(self) -> str:
        """The artefact name, e.g. `D4-A8-H768-I1024`."""
        return f"D{self.depth}-A{self.heads}-H{self.hidden}-I{self.intermediate}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> Arch:
        """Inverse of `name`: `Arch.parse("D4-A8-H768-I1024")`."""
        match = _NAME.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ArchError(f"cannot parse {text!r} as an architecture; expected e.g. 'D4-A8-H768-I1024'")
        return cls(*(int(g) for g in match.groups()))

    def as_dict(self) -> dict[str, int]:
        return {
            "depth": self.depth,
            "heads": self.heads,
            "hidden": self.hidden,
            "intermediate": self.intermediate,
        }


@dataclass(frozen=True)
class Embedding:
    """The input side that ξ does not vary: vocabulary, positions and token types.

    `type_vocab_size=0` means the model has no token-type embedding at all (Bort, RoBERTa-style).
    """

    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2

    def __post_init__(self) -> None:
        if self.vocab_size < 1 or self.max_positions < 1 or self.type_vocab_size < 0:
            raise ArchError(f"invalid embedding sizes: {self}")


BERT_EMBEDDING = Embedding(vocab_size=30522, max_positions=512, type_vocab_size=2)
ROBERTA_EMBEDDING = Embedding(vocab_size=50265, max_positions=512, type_vocab_size=0)


@dataclass(frozen=True)
class Preset:
    """A named network: its ξ and its embedding."""

    name: str
    arch: Arch
    embedding: Embedding
    note: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("bert-large", Arch(24, 16, 1024, 4096), BERT_EMBEDDING, "BERT-large, uncased"),
        Preset("bert-base", Arch(12, 12, 768, 3072), BERT_EMBEDDING, "BERT-base, uncased"),
        Preset(
            "bort-released",
            Arch(4, 8, 1024, 768),
            ROBERTA_EMBEDDING,
            "Bort as released by alexa/bort (units 1024, FFN 768), RoBERTa vocabulary",
        ),
        Preset(
            "bort-paper",
            Arch(4, 8, 768, 1024),
            ROBERTA_EMBEDDING,
            "Bort as the paper's size figures imply, RoBERTa vocabulary",
        ),
        Preset(
            "all-MiniLM-L6-v2",
            Arch(6, 12, 384, 1536),
            BERT_EMBEDDING,
            "sentence-transformers/all-MiniLM-L6-v2, the embedded default's source",
        ),
        Preset(
            "roberta-large",
            Arch(24, 16, 1024, 4096),
            Embedding(50265, 514, 1),
            "RoBERTa-large, the paper's teacher",
        ),
    )
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ArchError(f"unknown preset {name!r}; allowed: {sorted(PRESETS)}") from None


def to_bert_config(arch: Arch, embedding: Embedding = BERT_EMBEDDING, **overrides) -> BertConfig:
    """The Hugging Face `BertConfig` of ξ.

    `type_vocab_size=0` is stored as 0: `build_model` (below) then removes the token-type
    embedding, so the built network has exactly the parameters the analytic count says.
    """
    config = BertConfig(
        vocab_size=embedding.vocab_size,
        hidden_size=arch.hidden,
        num_hidden_layers=arch.depth,
        num_attention_heads=arch.heads,
        intermediate_size=arch.intermediate,
        max_position_embeddings=embedding.max_positions,
        type_vocab_size=embedding.type_vocab_size,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def from_bert_config(config) -> tuple[Arch, Embedding]:
    """ξ and embedding of any BERT-like Hugging Face config (BERT, RoBERTa, MiniLM)."""
    arch = Arch(
        config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size
    )
    embedding = Embedding(
        config.vocab_size, config.max_position_embeddings, getattr(config, "type_vocab_size", 0) or 0
    )
    return arch, embedding


def enumerate_space(
    depth: Iterable[int], heads: Iterable[int], hidden: Iterable[int], intermediate: Iterable[int]
) -> list[Arch]:
    """Every valid ξ of the grid, skipping H % A != 0, sorted by (D, A, H, I).

    The paper's space (D ∈ {2..12 step 2}, A ∈ {4,8,12,16}, H ∈ {512,768,1024},
    I ∈ {256,512,768,1024,3072}) has 300 valid points.
    """
    space = [
        Arch(d, a, h, i) for d, a, h, i in itertools.product(depth, heads, hidden, intermediate) if h % a == 0
    ]
    if not space:
        raise ArchError("the search space is empty: no hidden size is divisible by any head count")
    return sorted(set(space))


class NoTokenTypes(nn.Module):
    """Stands in for the token-type embedding of a model that has none (Bort, RoBERTa-style)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, token_type_ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(
            *token_type_ids.shape, self.hidden, dtype=torch.get_default_dtype(), device=token_type_ids.device
        )  # (B, L, H)


def build_model(
    arch: Arch, embedding: Embedding = BERT_EMBEDDING, head: str = "pooler", seed: int | None = None
) -> nn.Module:
    """A freshly initialised PyTorch network of ξ.

    head: "pooler" (`BertModel` with its pooler, the classification-ready encoder), "none"
    (`BertModel` without pooler) or "mlm" (`BertForMaskedLM`, decoder tied to the word embedding).
    """
    heads = ("pooler", "none", "mlm")
    if head not in heads:
        raise ArchError(f"head must be one of {heads}, got {head!r}")
    if seed is not None:
        torch.manual_seed(seed)
    config = to_bert_config(arch, embedding)
    if embedding.type_vocab_size == 0:
        config.type_vocab_size = 1  # built with one row, then replaced by a parameter-free zero
    if head == "mlm":
        model = BertForMaskedLM(config)
        embeddings = model.bert.embeddings
    else:
        model = BertModel(config, add_pooling_layer=head == "pooler")
        embeddings = model.embeddings
    if embedding.type_vocab_size == 0:
        embeddings.token_type_embeddings = NoTokenTypes(arch.hidden)
        model.config.type_vocab_size = 0
    return model.eval()
