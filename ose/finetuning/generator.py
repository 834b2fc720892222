"""Agora's default generator g for text: nearest-neighbour token substitution.

`NearestNeighbourSubstitution` replaces a fraction of a text's tokens by nearest neighbours in the
teacher's input-embedding space; for a sentence pair it perturbs one side. `ose.finetuning.agora`
calls it as `generate(mistakes, rng) -> unlabelled frame`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

from ose.finetuning.classifier import text_columns_of


def _piece_kind(token: str | None) -> int:
    """0 word (start), 1 WordPiece continuation (##x), 2 BPE word start (Ġx, ▁x); +3 punctuation.

    A token is only replaced by one of the same kind, so word boundaries stay where they were and
    words are not swapped for punctuation.
    """
    if token is None:
        return -1
    kind, body = 0, token
    if token.startswith("##") and len(token) > 2:
        kind, body = 1, token[2:]
    elif token[:1] in ("Ġ", "▁") and len(token) > 1:
        kind, body = 2, token[1:]
    return kind if any(c.isalnum() for c in body) else kind + 3


def _writable(surface: str) -> bool:
    """Whether a token's decoded text can replace a word: not empty, printable, no U+FFFD."""
    text = surface.strip()
    return bool(text) and text.isprintable() and "\ufffd" not in text


class NearestNeighbourSubstitution:
    """Agora's generator g for text: new points near a mistake in the teacher's input-embedding space.

    For each mistake it makes `n_new` points; each one tokenises the text (for a sentence pair, one
    side chosen at random; the other is kept), picks `fraction` of its replaceable tokens (at least
    one) and replaces each by one of its `k` nearest neighbours by cosine similarity in `embeddings`
    (the teacher's `get_input_embeddings().weight`, (V, H)), chosen uniformly. Never replaced, and
    never a neighbour: special tokens, bracketed vocabulary entries such as [unused0] and entries
    that decode to no printable text (a byte-level BPE's lone bytes, `_writable`); the token itself;
    a token of another kind (a ## continuation only by a continuation). The text is edited in place
    through the tokenizer's character offsets, so casing and untouched words survive.
    `max_tokens` limits the choice to the first tokens, those a model truncating there reads.

    Neighbours are computed only for the token ids met, in chunks of `chunk_size` rows against the
    vocabulary, and cached: never a V × V matrix.
    """

    def __init__(
        self,
        tokenizer,
        embeddings: torch.Tensor | np.ndarray,
        k: int = 10,
        fraction: float = 0.15,
        n_new: int = 4,
        max_tokens: int | None = None,
        chunk_size: int = 256,
    ) -> None:
        if k < 1 or n_new < 1 or chunk_size < 1:
            raise ValueError(f"k, n_new and chunk_size must be positive, got {k}, {n_new}, {chunk_size}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.tokenizer = tokenizer
        self.k, self.fraction, self.n_new = k, fraction, n_new
        self.max_tokens, self.chunk_size = max_tokens, chunk_size
        weight = embeddings if torch.is_tensor(embeddings) else torch.as_tensor(np.asarray(embeddings))
        weight = weight.detach().float().cpu()  # (V, H)
        self.unit = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (V, H)
        vocab = weight.shape[0]
        known = min(vocab, len(tokenizer))
        tokens = tokenizer.convert_ids_to_tokens(list(range(known))) + [None] * (vocab - known)
        self.kinds = torch.tensor([_piece_kind(t) for t in tokens])  # (V,)
        blocked = set(tokenizer.all_special_ids)
        blocked.update(
            i for i, t in enumerate(tokens) if t is None or (t.startswith("[") and t.endswith("]"))
        )
        # A byte-level BPE vocabulary (RoBERTa, GPT-2) holds the 256 single bytes: alone, a byte of a
        # multi-byte character decodes to U+FFFD and a control byte to a control character; "Ġ" alone
        # (a space) decodes to nothing. Such a token cannot be written into a text, so it is never a
        # neighbour. (A WordPiece vocabulary has none: every entry decodes to printable text.)
        surfaces = tokenizer.batch_decode([[i] for i in range(known)])
        blocked.update(i for i, s in enumerate(surfaces) if not _writable(s))
        self.blocked = frozenset(blocked)
        self.allowed = torch.ones(vocab, dtype=torch.bool)  # (V,)
        self.allowed[sorted(i for i in blocked if i < vocab)] = False
        self._table: dict[int, np.ndarray] = {}

    def neighbours(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The ≤ k nearest allowed neighbours of each id, nearest first (computed once per id)."""
        ids = [int(i) for i in ids]
        todo = sorted({i for i in ids if i not in self._table})
        for start in range(0, len(todo), self.chunk_size):
            chunk = torch.tensor(todo[start : start + self.chunk_size])
            similarity = self.unit[chunk] @ self.unit.T  # (C, V)
            usable = self.allowed[None, :] & (self.kinds[None, :] == self.kinds[chunk][:, None])  # (C, V)
            usable[torch.arange(len(chunk)), chunk] = False
            similarity = similarity.masked_fill(~usable, -math.inf)
            top = similarity.topk(min(self.k, similarity.shape[1]), dim=1)
            for row, token in enumerate(chunk.tolist()):
                valid = torch.isfinite(top.values[row])
                self._table[token] = top.indices[row][valid].numpy()
        return {i: self._table[i] for i in ids}

    def _surface(self, token_id: int) -> str:
        token = self.tokenizer.convert_ids_to_tokens(token_id)
        if token.startswith("##"):
            return token[2:]
        return self.tokenizer.decode([token_id]).strip()

    def perturb(self, text: str, rng: np.random.Generator) -> tuple[str, list[tuple[int, int, int]]]:
        """`text` with some tokens replaced, and the replacements (token position, old id, new id)."""
        # offsets only, of the whole text: no "longer than the maximum length" warning
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        limit = len(ids) if self.max_tokens is None else min(len(ids), self.max_tokens)
        candidates = [p for p in range(limit) if ids[p] not in self.blocked and offsets[p][1] > offsets[p][0]]
        if not candidates:
            return text, []
        count = min(len(candidates), max(1, round(self.fraction * len(candidates))))
        positions = sorted(rng.choice(candidates, size=count, replace=False).tolist())
        table = self.neighbours(ids[p] for p in positions)
        replacements = []
        for p in positions:
            options = table[ids[p]]
            if len(options):
                replacements.append((p, ids[p], int(options[rng.integers(len(options))])))
        edited, bound, applied = text, len(text) + 1, []
        for p, old, new in reversed(replacements):
            begin, end = offsets[p]
            if end > bound:  # tokens sharing characters (byte-level pieces): keep one edit
                continue
            edited = edited[:begin] + self._surface(new) + edited[end:]
            bound = begin
            applied.append((p, old, new))
        return edited, applied[::-1]

    def __call__(self, mistakes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """`n_new` perturbed copies of each mistake (unlabelled); `source` is the mistake's index.

        A copy in which no token could be replaced is dropped rather than repeated verbatim.
        """
        columns = text_columns_of(mistakes)
        rows = []
        for source, row in zip(mistakes.index, mistakes.itertuples(index=False), strict=True):
            values = {c: str(getattr(row, c)) for c in columns}
            for _ in range(self.n_new):
                side = columns[int(rng.integers(len(columns)))] if len(columns) > 1 else columns[0]
                edited, replaced = self.perturb(values[side], rng)
                if replaced:
                    rows.append({**values, side: edited, "source": source, "side": side})
        return pd.DataFrame(rows, columns=[*columns, "source", "side"])


def input_embeddings(model) -> torch.Tensor:
    """The input-embedding matrix (V, H) of a Hugging Face model, detached, for the generator."""
    return model.get_input_embeddings().weight.detach()
