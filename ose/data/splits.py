"""Seeded, label-stratified splits of a task's rows (train/dev/test), the sizes they come to
(`split_sizes`; `task_split_sizes` for one of our own tasks, after the optional subsample of
`max_examples`), and a dev split carved from train for benchmarks whose test labels are hidden
(GLUE, SuperGLUE).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------
# Seeded splits


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes of the parts `stratified_split` makes of a group of `n` (one class).

    Each later part gets `round(fraction * n)` (Python rounds halves to even: 0.5 → 0) while rows
    last; the first part gets the rest.
    """
    sizes, left = [], n
    for fraction in fractions[1:]:
        size = min(int(round(fraction * n)), left)
        sizes.append(size)
        left -= size
    return [left, *sizes]


def stratified_split(
    labels: Sequence[Any] | None, n: int, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split indices 0..n-1 into parts of the given fractions; the first part takes the rest.

    `fractions[1:]` are the sizes of the later parts (e.g. `(train, dev, test)` → dev and test);
    `fractions[0]` is implied by them and is only checked. With `labels`, each class is split on
    its own (rounded per class, see `split_sizes`), so every part keeps the label mix; with
    `labels=None` the split is plain random (regression). Indices inside each part are sorted.
    """
    fractions = list(fractions)
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries, expected {n}")
    groups: list[np.ndarray]
    if labels is None:
        groups = [np.arange(n)]
    else:
        label_array = np.asarray(labels)
        groups = [np.flatnonzero(label_array == c) for c in sorted(set(label_array.tolist()))]
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for group in groups:
        order = group[rng.permutation(len(group))]
        _, *sizes = split_sizes(len(group), fractions)
        start = 0
        for k, size in enumerate(sizes, start=1):
            parts[k].append(order[start : start + size])
            start += size
        parts[0].append(order[start:])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=int) for p in parts]


def split_off_dev(
    train: pd.DataFrame, dev_fraction: float, rng: np.random.Generator, *, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded (train, dev) from an official train set; GLUE's own dev set is our test split."""
    labels = train["label"].tolist() if stratify else None
    keep, dev = stratified_split(labels, len(train), (1 - dev_fraction, dev_fraction), rng)
    return train.iloc[keep].reset_index(drop=True), train.iloc[dev].reset_index(drop=True)


def subsample_fractions(n: int, max_examples: int | None) -> tuple[float, float] | None:
    """(dropped, kept) fractions of `ose.data.tasks.build_task`'s stratified subsample; None: all
    rows kept."""
    if max_examples is None or max_examples >= n:
        return None
    rest = 1 - max_examples / n
    return rest, 1 - rest


def task_split_sizes(
    class_counts: Sequence[int], *, dev_fraction: float, test_fraction: float, max_examples: int | None
) -> list[list[int]]:
    """Per class, the [train, dev, test] sizes `ose.data.tasks.build_task` gives a corpus with
    these class counts."""
    subsample = subsample_fractions(sum(class_counts), max_examples)
    kept = [split_sizes(n, subsample)[1] if subsample else n for n in class_counts]
    fractions = (1 - dev_fraction - test_fraction, dev_fraction, test_fraction)
    return [split_sizes(n, fractions) for n in kept]
