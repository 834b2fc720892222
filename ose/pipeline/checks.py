"""Config validation: errors that name the field, and the checks every config class is made of.

Each concept's settings are one frozen dataclass in the module of that concept (`TrainConfig` in
`ose.training.loop`, `KDWeights` in `ose.training.distill`, ...), validated in `__post_init__`; a
`params.yaml` group is that same class, so nothing is defined twice and nothing is copied field by field.
A check raises `ConfigError(field, message)`; `ose.params` prefixes the key path of the group
(`pretrain.lr: must be in (0, 1], got 2.0`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NoReturn

MAX_SEED = 2**32 - 1  # numpy's legacy seeding and the tokenizers' shuffles take 32-bit seeds


class ConfigError(ValueError):
    """An invalid config value: `field` is relative to the config (`lr`, `thetas[1].lr`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def fail(field: str, message: str) -> NoReturn:
    raise ConfigError(field, message)


def in_range(
    field: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        fail(field, f"must be in {lo}{low}, {high}{hi}, got {value}")


def positive(config: object, *fields: str) -> None:
    """Each named field is a positive integer."""
    for name in fields:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            fail(name, f"must be a positive integer, got {value!r}")


def non_negative(config: object, *fields: str) -> None:
    """Each named field is an integer >= 0."""
    for name in fields:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            fail(name, f"must be an integer >= 0, got {value!r}")


def positive_ints(field: str, values: Sequence[int]) -> None:
    """A non-empty list of distinct positive integers."""
    if not values:
        fail(field, "must be a non-empty list of positive integers")
    for k, value in enumerate(values):
        if value < 1:
            fail(f"{field}[{k}]", f"must be a positive integer, got {value}")
    if len(set(values)) != len(values):
        fail(field, f"has duplicates: {list(values)}")


def subset(field: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    """Distinct names, each one of `allowed`."""
    for k, value in enumerate(values):
        if value not in allowed:
            fail(f"{field}[{k}]", f"unknown name {value!r}; allowed: {list(allowed)}")
    if len(set(values)) != len(values):
        fail(field, f"has duplicates: {list(values)}")


def seed(field: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        fail(field, f"must be an integer in [0, {MAX_SEED}], got {value}")


def thetas(field: str, values: Sequence) -> None:
    """Θ: at least one hyperparameter set, distinct names, learning rates in (0, 1]."""
    if not values:
        fail(field, "Θ must hold at least one hyperparameter set")
    names = [t.name for t in values]
    if len(set(names)) != len(names):
        fail(field, f"names must be distinct, got {names}")
    for k, theta in enumerate(values):
        in_range(f"{field}[{k}].lr", theta.lr, 0, 1, low_open=True)
