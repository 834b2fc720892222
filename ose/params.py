"""Pipeline parameters: `params.yaml` (the active profile), validated before any work starts.

`profiles/default.yaml` is the embedded default in full; other profiles (`smoke`, `paper`) are
overlays that name only what they change. `python -m ose.params use NAME` writes the merged,
validated profile to `params.yaml`, which is what DVC tracks and what users edit for ablations.
`python -m ose.params check [FILE]` validates a file, then checks it against what is installed
(`check_environment`: the source model and the task corpora).

Validation is strict: an unknown key, a missing key, a wrong type or an invalid value is a
`ParamsError` that names the key path (e.g. `spaces.default.hidden[2]`) and what is allowed.
Each group is a frozen dataclass; its `validate` method checks values that types cannot.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ose import paths
from ose.arch import PRESETS, Arch, ArchError, enumerate_space


class ParamsError(ValueError):
    """A parameter file that the pipeline cannot run with."""


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ParamsError(f"{path or '<root>'}: {message}")


def _positive_ints(path: str, values: list[int]) -> None:
    if not values:
        _fail(path, "must be a non-empty list of positive integers")
    for k, value in enumerate(values):
        if value < 1:
            _fail(f"{path}[{k}]", f"must be a positive integer, got {value}")
    if len(set(values)) != len(values):
        _fail(path, f"has duplicates: {values}")


MAX_SEED = 2**32 - 1  # numpy's legacy seeding and the tokenizers' shuffles take 32-bit seeds


def _check_seed(path: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        _fail(path, f"must be an integer in [0, {MAX_SEED}], got {value}")


def _in_range(
    path: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        _fail(path, f"must be in {lo}{low}, {high}{hi}, got {value}")


@dataclass(frozen=True)
class Space:
    """A grid Ξ over ⟨D, A, H, I⟩; points with H % A != 0 are skipped."""

    depth: list[int]
    heads: list[int]
    hidden: list[int]
    intermediate: list[int]

    def validate(self, path: str) -> None:
        for name in ("depth", "heads", "hidden", "intermediate"):
            _positive_ints(f"{path}.{name}", getattr(self, name))
        for k, h in enumerate(self.hidden):
            if not any(h % a == 0 for a in self.heads):
                _fail(
                    f"{path}.hidden[{k}]",
                    f"hidden size {h} is not divisible by any head count in {path}.heads "
                    f"{self.heads} (H % A must be 0)",
                )

    def architectures(self) -> list[Arch]:
        return enumerate_space(self.depth, self.heads, self.hidden, self.intermediate)


@dataclass(frozen=True)
class Source:
    """The source (teacher) network the subarchitecture is extracted from."""

    name: str
    model: str  # "package:<pypi name>", a hub id, or a local directory
    arch: str  # ξ of the source, e.g. D6-A12-H384-I1536; checked against the loaded model

    def validate(self, path: str) -> None:
        try:
            Arch.parse(self.arch)
        except ArchError as exc:
            _fail(f"{path}.arch", str(exc))
        if not self.model:
            _fail(f"{path}.model", "must name a package ('package:NAME'), a hub id or a directory")


@dataclass(frozen=True)
class Costs:
    """Stage `costs`: latency measurement and the fitted cost model."""

    batch_size: int
    seq_len: int
    threads: int
    warmup: int
    repeats: int
    n_sample_default: int
    n_sample_paper: int
    heldout_fraction: float

    def validate(self, path: str) -> None:
        for name in ("batch_size", "threads", "repeats", "n_sample_default", "n_sample_paper"):
            if getattr(self, name) < 1:
                _fail(f"{path}.{name}", f"must be a positive integer, got {getattr(self, name)}")
        _in_range(f"{path}.seq_len", self.seq_len, 1, 512)
        if self.warmup < 0:
            _fail(f"{path}.warmup", f"must be >= 0, got {self.warmup}")
        _in_range(f"{path}.heldout_fraction", self.heldout_fraction, 0, 1, low_open=True, high_open=True)


TASKS = ("rotten_tomatoes", "imdb", "bbc")
GLUE = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
CORPORA = ("wikipedia", "bbc", "imdb", "rotten_tomatoes", "bible")


def _subset(path: str, values: list[str], allowed: tuple[str, ...]) -> None:
    for k, value in enumerate(values):
        if value not in allowed:
            _fail(f"{path}[{k}]", f"unknown name {value!r}; allowed: {list(allowed)}")
    if len(set(values)) != len(values):
        _fail(path, f"has duplicates: {values}")


@dataclass(frozen=True)
class Data:
    """Stage `data`: seeded task splits and the pretraining corpus, packed into blocks."""

    tasks: list[str]  # our own tasks, from the packaged corpora
    glue_tasks: list[str]  # GLUE tasks; read from glue_dir when set, else from the hub (cached)
    glue_dir: str
    dev_fraction: float
    test_fraction: float
    max_examples: int | None  # per task, a stratified subsample; null: all
    corpus_sources: list[str]
    corpus_heldout_fraction: float
    block_size: int

    def validate(self, path: str) -> None:
        _subset(f"{path}.tasks", self.tasks, TASKS)
        _subset(f"{path}.glue_tasks", self.glue_tasks, GLUE)
        if not self.tasks and not self.glue_tasks:
            _fail(f"{path}.tasks", "name at least one task (here or in glue_tasks)")
        _subset(f"{path}.corpus_sources", self.corpus_sources, CORPORA)
        if not self.corpus_sources:
            _fail(f"{path}.corpus_sources", f"name at least one of {list(CORPORA)}")
        _in_range(f"{path}.dev_fraction", self.dev_fraction, 0, 0.5, low_open=True)
        _in_range(f"{path}.test_fraction", self.test_fraction, 0, 0.5, low_open=True)
        if self.dev_fraction + self.test_fraction >= 1:
            _fail(
                f"{path}.test_fraction",
                f"{path}.dev_fraction + {path}.test_fraction is "
                f"{self.dev_fraction + self.test_fraction}, which would leave no train split; it must be < 1",
            )
        _in_range(f"{path}.corpus_heldout_fraction", self.corpus_heldout_fraction, 0, 0.5, low_open=True)
        _in_range(f"{path}.block_size", self.block_size, 8, 512)
        if self.max_examples is not None and self.max_examples < 10:
            _fail(f"{path}.max_examples", f"must be null or at least 10, got {self.max_examples}")


@dataclass(frozen=True)
class MaskedLMTraining:
    """What the teacher's adaptation and the student's pretraining share: a masked-LM training run."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    weight_decay: float
    max_grad_norm: float
    eval_blocks: int
    eval_every: int
    checkpoint_every: int

    min_steps = 1  # a class constant, not a parameter

    def validate(self, path: str) -> None:
        if self.steps < self.min_steps:
            _fail(f"{path}.steps", f"must be >= {self.min_steps}, got {self.steps}")
        for name in ("batch_size", "eval_blocks", "checkpoint_every"):
            if getattr(self, name) < 1:
                _fail(f"{path}.{name}", f"must be a positive integer, got {getattr(self, name)}")
        _in_range(f"{path}.warmup_steps", self.warmup_steps, 0, self.steps)
        _in_range(f"{path}.lr", self.lr, 0, 1, low_open=True)
        _in_range(f"{path}.weight_decay", self.weight_decay, 0, 1)
        if self.max_grad_norm <= 0:
            _fail(f"{path}.max_grad_norm", f"must be positive, got {self.max_grad_norm}")
        if self.eval_every < 0:
            _fail(f"{path}.eval_every", f"must be >= 0 (0: only at the end), got {self.eval_every}")


@dataclass(frozen=True)
class Teacher(MaskedLMTraining):
    """Stage `teacher`: masked-LM adaptation of the source (its checkpoint has no MLM head).

    steps: 0 uses the source as it is, for a source whose masked-LM head is trained (RoBERTa-large).
    """

    min_steps = 0


@dataclass(frozen=True)
class Distill:
    """Knowledge-distillation loss weights, shared by the surrogate error and pretraining."""

    alpha: float  # masked-LM cross-entropy against the true tokens
    beta: float  # T²-scaled KL(teacher ‖ student)
    temperature: float

    def validate(self, path: str) -> None:
        for name in ("alpha", "beta"):
            if getattr(self, name) < 0:
                _fail(f"{path}.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.alpha + self.beta == 0:
            _fail(f"{path}.beta", "alpha and beta cannot both be 0")
        if self.temperature <= 0:
            _fail(f"{path}.temperature", f"must be positive, got {self.temperature}")


def _check_thetas(path: str, thetas: list) -> None:
    """Θ: at least one hyperparameter set, distinct names, learning rates in (0, 1]."""
    if not thetas:
        _fail(path, "Θ must hold at least one hyperparameter set")
    names = [t.name for t in thetas]
    if len(set(names)) != len(names):
        _fail(path, f"names must be distinct, got {names}")
    for k, theta in enumerate(thetas):
        _in_range(f"{path}[{k}].lr", theta.lr, 0, 1, low_open=True)


@dataclass(frozen=True)
class Theta:
    """One hyperparameter set θ ∈ Θ of the surrogate-error training."""

    name: str
    lr: float
    warmup_steps: int


@dataclass(frozen=True)
class Extract:
    """Stage `extract`: the FPTAS over a space, with its exhaustive reference."""

    space: str  # a key of `spaces`; its fitted cost model (stage costs) gives i(ξ)
    epsilon: int  # interval size ε of the FPTAS, 1 ≤ ε ≤ |Ξ|
    sweep_epsilons: list[int]
    exponents: list[float]  # of the three factors of W; 1, 1, 1 is the paper's W
    max_steps: int  # s: distillation steps per candidate
    batch_size: int
    seq_len: int
    heldout_batches: int
    thetas: list[Theta]
    nproc: int  # worker processes (torchrun, gloo) for the candidate evaluations
    threads_per_process: int

    def validate(self, path: str) -> None:
        for name in ("max_steps", "batch_size", "heldout_batches", "nproc", "threads_per_process"):
            if getattr(self, name) < 1:
                _fail(f"{path}.{name}", f"must be a positive integer, got {getattr(self, name)}")
        if self.epsilon < 1:
            _fail(f"{path}.epsilon", f"must be an integer >= 1 (and <= the space size), got {self.epsilon}")
        for k, eps in enumerate(self.sweep_epsilons):
            if eps < 1:
                _fail(f"{path}.sweep_epsilons[{k}]", f"must be >= 1, got {eps}")
        if len(self.exponents) != 3 or any(x < 0 for x in self.exponents):
            _fail(f"{path}.exponents", f"must be three non-negative numbers, got {self.exponents}")
        _in_range(f"{path}.seq_len", self.seq_len, 8, 512)
        _check_thetas(f"{path}.thetas", self.thetas)
        for k, theta in enumerate(self.thetas):
            _in_range(f"{path}.thetas[{k}].warmup_steps", theta.warmup_steps, 0, self.max_steps)


@dataclass(frozen=True)
class Pretrain(MaskedLMTraining):
    """Stage `pretrain`: distillation pretraining of the extracted ξ, and an MLM-only baseline.

    batch_size is the global batch, split over `nproc` processes (torchrun; on GPUs one per device).
    """

    nproc: int

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.nproc < 1:
            _fail(f"{path}.nproc", f"must be a positive integer, got {self.nproc}")
        if self.batch_size % self.nproc:
            _fail(
                f"{path}.batch_size",
                f"must be divisible by {path}.nproc ({self.nproc}), got {self.batch_size}",
            )


@dataclass(frozen=True)
class FineTuneTheta:
    """One hyperparameter set θ ∈ Θ of Agora's student fine-tuning."""

    name: str
    lr: float
    epochs: int


@dataclass(frozen=True)
class Generator:
    """Agora's generator g: nearest-neighbour token substitution in the teacher's input embeddings."""

    k: int  # neighbours to choose from
    fraction: float  # of the replaceable tokens of a text
    n_new: int  # new points per dev mistake


@dataclass(frozen=True)
class FineTune:
    """Stage `finetune` (one DVC stage per task): source vs student plain vs student with Agora."""

    tasks: list[str]
    seeds: list[int]
    max_train_examples: int | None  # a seeded sample of each task's train split; null: all
    max_len: int
    batch_size: int
    warmup_fraction: float
    dropout: float
    source_lr: float
    source_epochs: int
    eval_every: int  # student dev evaluations every this many steps (0: each epoch); best state kept
    thetas: list[FineTuneTheta]
    replay: int
    generator: Generator

    def validate(self, path: str) -> None:
        if not self.tasks:
            _fail(f"{path}.tasks", "name at least one task of data.tasks or data.glue_tasks")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            _fail(f"{path}.seeds", f"must be distinct seeds, at least one, got {self.seeds}")
        for k, seed in enumerate(self.seeds):
            _check_seed(f"{path}.seeds[{k}]", seed)
        if self.max_train_examples is not None and self.max_train_examples < 10:
            _fail(f"{path}.max_train_examples", f"must be null or at least 10, got {self.max_train_examples}")
        _in_range(f"{path}.max_len", self.max_len, 8, 512)
        if self.eval_every < 0:
            _fail(f"{path}.eval_every", f"must be >= 0 (0: once an epoch), got {self.eval_every}")
        for name in ("batch_size", "source_epochs"):
            if getattr(self, name) < 1:
                _fail(f"{path}.{name}", f"must be a positive integer, got {getattr(self, name)}")
        _in_range(f"{path}.warmup_fraction", self.warmup_fraction, 0, 1)
        _in_range(f"{path}.dropout", self.dropout, 0, 1, high_open=True)
        _in_range(f"{path}.source_lr", self.source_lr, 0, 1, low_open=True)
        _check_thetas(f"{path}.thetas", self.thetas)
        for k, theta in enumerate(self.thetas):
            if theta.epochs < 1:
                _fail(f"{path}.thetas[{k}].epochs", f"must be a positive integer, got {theta.epochs}")
        if self.replay < 0:
            _fail(f"{path}.replay", f"must be >= 0, got {self.replay}")
        g = self.generator
        if g.k < 1 or g.n_new < 1:
            _fail(f"{path}.generator", f"k and n_new must be positive, got k={g.k}, n_new={g.n_new}")
        _in_range(f"{path}.generator.fraction", g.fraction, 0, 1, low_open=True)


PRESET_NAMES = tuple(PRESETS)


@dataclass(frozen=True)
class Benchmark:
    """Stage `benchmark`: CPU latency of the presets, the source and the student, in one run."""

    presets: list[str]  # random-weight networks of these shapes (ose.arch.PRESETS)
    batch_sizes: list[int]
    seq_lens: list[int]
    threads: int
    warmup: int
    repeats: int
    onnx: bool  # also the student exported to ONNX Runtime, plain and int8

    def validate(self, path: str) -> None:
        _subset(f"{path}.presets", self.presets, PRESET_NAMES)
        _positive_ints(f"{path}.batch_sizes", self.batch_sizes)
        _positive_ints(f"{path}.seq_lens", self.seq_lens)
        for k, seq in enumerate(self.seq_lens):
            _in_range(f"{path}.seq_lens[{k}]", seq, 1, 512)
        for name in ("threads", "repeats"):
            if getattr(self, name) < 1:
                _fail(f"{path}.{name}", f"must be a positive integer, got {getattr(self, name)}")
        if self.warmup < 0:
            _fail(f"{path}.warmup", f"must be >= 0, got {self.warmup}")


@dataclass(frozen=True)
class Params:
    profile: str
    seed: int
    source: Source
    spaces: dict[str, Space]
    costs: Costs
    data: Data
    teacher: Teacher
    distill: Distill
    extract: Extract
    pretrain: Pretrain
    finetune: FineTune
    benchmark: Benchmark

    def validate(self, path: str) -> None:
        _check_seed("seed", self.seed)
        for name in ("default", "paper"):
            if name not in self.spaces:
                _fail("spaces", f"must define the space {name!r}; has {sorted(self.spaces)}")
        for name in ("default", "paper"):
            size = len(self.spaces[name].architectures())
            wanted = getattr(self.costs, f"n_sample_{name}")
            if wanted > size:
                _fail(
                    f"costs.n_sample_{name}",
                    f"asks for {wanted} architectures but spaces.{name} has only {size}",
                )
        if self.extract.space not in self.spaces:
            _fail("extract.space", f"unknown space {self.extract.space!r}; allowed: {sorted(self.spaces)}")
        size = len(self.spaces[self.extract.space].architectures())
        epsilons = [("extract.epsilon", self.extract.epsilon)]
        epsilons += [(f"extract.sweep_epsilons[{k}]", e) for k, e in enumerate(self.extract.sweep_epsilons)]
        for where, eps in epsilons:
            if eps > size:
                _fail(where, f"must be <= the size of spaces.{self.extract.space} ({size}), got {eps}")
        known = set(self.data.tasks) | set(self.data.glue_tasks)
        for k, task in enumerate(self.finetune.tasks):
            if task not in known:
                _fail(
                    f"finetune.tasks[{k}]",
                    f"{task!r} is not prepared by stage data; allowed: {sorted(known)}",
                )
        if self.data.block_size < self.extract.seq_len:
            _fail("extract.seq_len", f"must be <= data.block_size ({self.data.block_size})")


# --- typed loading --------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, path)
            except ParamsError:
                continue
        _fail(path, f"must be one of {[_type_name(o) for o in options]}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            _fail(path, f"must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{path}[{k}]") for k, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            _fail(path, f"must be a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {_convert(key_tp, k, path): _convert(value_tp, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            _fail(path, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter type {tp!r} at {path}")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        _fail(path, f"must be a mapping with keys {[f.name for f in dataclasses.fields(cls)]}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    unknown = sorted(set(data) - fields)
    if unknown:
        _fail(f"{prefix}{unknown[0]}", f"unknown key; allowed keys here: {sorted(fields)}")
    missing = sorted(fields - set(data))
    if missing:
        _fail(f"{prefix}{missing[0]}", "missing key")
    obj = cls(**{name: _convert(hints[name], data[name], f"{prefix}{name}") for name in fields})
    if hasattr(obj, "validate"):
        obj.validate(path)
    return obj


def from_dict(data: dict) -> Params:
    """Validated `Params` from a plain mapping (as read from YAML)."""
    return _build(Params, data, "")


class _DuplicateKey(ValueError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (as for DVC),
    not the silent last-one-wins of PyYAML."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node), key_node.start_mark.line + 1
            if key in first_line:
                raise _DuplicateKey(f"{line}: duplicate key {key!r} (first at line {first_line[key]})")
            first_line[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file; errors name the file (and the line, for a duplicate key)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader
    except FileNotFoundError:
        raise ParamsError(f"parameter file not found: {path}") from None
    except _DuplicateKey as exc:
        raise ParamsError(f"{path}:{exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of parameter groups")
    return data


def load(path: str | Path = paths.PARAMS, environment: bool = False) -> Params:
    """Read and validate a parameter file (default: the repository's `params.yaml`).

    With `environment`, also `check_environment` (the installed source and corpora).
    """
    data = read_yaml(path)
    try:
        params = from_dict(data)
        if environment:
            check_environment(params)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    return params


# --- what validation cannot see: the installed source and corpora ----------------------------

ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert")  # position ids start after the padding index


def check_environment(params: Params, *, readers: Mapping[str, Callable[[], Any]] | None = None) -> None:
    """Check `params` against what is installed; `from_dict` cannot, as it reads no files.

    `source.model` must resolve offline (`ose.teacher.resolve_source`); its positions must hold
    `data.block_size`, `finetune.max_len` and `benchmark.seq_lens`; for each of our own tasks the
    split sizes (`ose.tasks.task_split_sizes`, from the corpus's class counts) must leave every
    split an example of each class (of at least one class, for a multi-class task), and the
    fine-tuning sample of `finetune.max_train_examples` must hold two classes for every seed.
    `readers` (task name → corpus reader) is for tests. Raises `ParamsError`.
    """
    from ose.teacher import SourceUnavailable, resolve_source

    try:
        where = resolve_source(params.source.model)
    except SourceUnavailable as exc:
        raise ParamsError(str(exc)) from None
    _check_positions(params, where)
    for name in params.data.tasks:
        _check_task_splits(params, name, readers)


def _check_positions(params: Params, where: str) -> None:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as exc:
        _fail(
            "source.model", f"cannot read the config of {params.source.model!r}: {str(exc).splitlines()[0]}"
        )
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return
    how = f"max_position_embeddings {limit}"
    if config.model_type in ROBERTA_LIKE:
        offset = (config.pad_token_id or 0) + 1
        limit -= offset
        how += f" minus {offset}, as {config.model_type} position ids start after the padding index"
    lengths = [("data.block_size", params.data.block_size), ("finetune.max_len", params.finetune.max_len)]
    lengths += [(f"benchmark.seq_lens[{k}]", n) for k, n in enumerate(params.benchmark.seq_lens)]
    for path, length in lengths:
        if length > limit:
            _fail(
                path,
                f"must be <= {limit}, the positions source.model {params.source.model!r} can encode "
                f"({how}), got {length}",
            )


def _check_task_splits(params: Params, name: str, readers: Mapping[str, Callable[[], Any]] | None) -> None:
    from ose.tasks import OWN_TASK_READERS, build_task, task_spec, task_split_sizes

    data, spec = params.data, task_spec(name)
    corpus = (OWN_TASK_READERS if readers is None else readers)[name]()
    counts = [corpus.labels.count(label) for label in spec.label_names]
    sizes = task_split_sizes(
        counts,
        dev_fraction=data.dev_fraction,
        test_fraction=data.test_fraction,
        max_examples=data.max_examples,
    )
    binary = len(counts) == 2
    for k, split in enumerate(("train", "dev", "test")):
        per_class = [s[k] for s in sizes]
        if sum(per_class) and (min(per_class) or not binary):
            continue
        if data.max_examples is not None and data.max_examples < len(corpus.labels):
            key, value = "data.max_examples", data.max_examples
        elif split == "train":
            key, value = (
                "data.test_fraction",
                f"{data.test_fraction} (with data.dev_fraction {data.dev_fraction})",
            )
        else:
            key, value = f"data.{split}_fraction", getattr(data, f"{split}_fraction")
        shown = ", ".join(f"{s} {[c[j] for c in sizes]}" for j, s in enumerate(("train", "dev", "test")))
        need = "at least one example of each class" if binary else "at least one example"
        _fail(
            key,
            f"{value} gives {name} splits of {shown} examples per class ({', '.join(spec.label_names)}); "
            f"every split needs {need}",
        )
    limit = params.finetune.max_train_examples
    if name not in params.finetune.tasks or limit is None:
        return
    from ose.finetune import sample_rows

    task = build_task(
        name,
        dev_fraction=data.dev_fraction,
        test_fraction=data.test_fraction,
        seed=params.seed,
        max_examples=data.max_examples,
        readers={name: lambda: corpus},
    )
    for k, seed in enumerate(params.finetune.seeds):
        if sample_rows(task.train, limit, seed)["label"].nunique() < 2:
            _fail(
                "finetune.max_train_examples",
                f"{limit} draws a train sample of one class for {name} with finetune.seeds[{k}] = {seed} "
                f"(from a train split of {len(task.train)}); raise it, or null: the whole train split",
            )


# --- profiles -------------------------------------------------------------------------------


def profile_names() -> list[str]:
    return sorted(p.stem for p in paths.PROFILES.glob("*.yaml"))


def _overlay(base: dict, update: dict, path: str) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in merged:
            _fail(where, f"unknown key in profile; allowed keys here: {sorted(merged)}")
        if isinstance(value, dict) and isinstance(merged[key], dict) and path != "spaces":
            merged[key] = _overlay(merged[key], value, where)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render_profile(name: str) -> dict:
    """The full parameter mapping of a profile: `default.yaml` with the profile's overlay on top.

    Under `spaces` a named space is replaced whole, so a profile can shrink a grid.
    """
    if name not in profile_names():
        raise ParamsError(f"profile: unknown profile {name!r}; allowed: {profile_names()}")
    base = read_yaml(paths.PROFILES / "default.yaml")
    if name == "default":
        return base
    overlay = read_yaml(paths.PROFILES / f"{name}.yaml")
    merged = _overlay(base, overlay, "")
    merged["profile"] = name
    return merged


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists: the layout people edit by hand."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def use_profile(name: str, target: Path = paths.PARAMS) -> Params:
    """Validate a profile and write it, atomically, as the active `params.yaml`."""
    data = render_profile(name)
    params = from_dict(data)
    header = (
        f"# Active parameters: profile '{name}', written by `python -m ose.params use {name}`.\n"
        "# Edit freely for ablations; `python -m ose.params use default` restores the default.\n"
        "# The comments on each key are in profiles/default.yaml.\n"
    )
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(header + dump(data))
    os.replace(tmp, target)
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ose.params", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a parameter file")
    check.add_argument("file", nargs="?", default=str(paths.PARAMS))
    use = sub.add_parser("use", help="write a profile to params.yaml")
    use.add_argument("profile", choices=profile_names())
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            params = load(args.file, environment=True)
            print(f"{args.file}: valid (profile {params.profile!r})")
        else:
            use_profile(args.profile)
            print(f"params.yaml now holds profile {args.profile!r}")
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
