"""Pipeline parameters: `params.yaml` (the active profile), validated before any work starts.

`profiles/default.yaml` is the embedded default in full; other profiles (`smoke`, `paper`) are
overlays that name only what they change. `python -m ose.params use NAME` writes the merged,
validated profile to `params.yaml`, which is what DVC tracks and what users edit for ablations.
`python -m ose.params check [FILE]` validates a file, then checks it against what is installed
(`check_environment`: the source model and the task corpora).

Validation is strict: an unknown key, a missing key, a wrong type or an invalid value is a
`ParamsError` that names the key path (e.g. `spaces.default.hidden[2]`) and what is allowed.
Each group is the config class of its concept (`ose.configs`: `teacher` is a `Teacher`,
`distill` a `Distill`, ...), validated in its `__post_init__` (`ose.pipeline.checks`); this module
only reads YAML into those classes, checks how the groups fit together, and manages profiles.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ose.configs import (
    Benchmark,
    Costs,
    Data,
    Distill,
    Extract,
    FineTune,
    Pretrain,
    Source,
    Space,
    Teacher,
)
from ose.pipeline import checks, paths
from ose.pipeline.atomic import write_text_atomic


class ParamsError(ValueError):
    """A parameter file that the pipeline cannot run with."""


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ParamsError(f"{path or '<root>'}: {message}")


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

    def __post_init__(self) -> None:
        """What no single group can check: how the groups fit together."""
        checks.seed("seed", self.seed)
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
        known = self.data.task_names()  # built-in, GLUE, SuperGLUE and the user's files
        for k, task in enumerate(self.finetune.tasks):
            if task not in known:
                _fail(
                    f"finetune.tasks[{k}]",
                    f"{task!r} is not prepared by stage data (data.tasks, data.glue_tasks, "
                    f"data.superglue_tasks, data.files); allowed: {known}",
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
    # a class may name keys a user may leave out (`optional_keys`; `UserTask`): their defaults apply
    missing = sorted(fields - set(data) - set(getattr(cls, "optional_keys", ())))
    if missing:
        _fail(f"{prefix}{missing[0]}", "missing key")
    values = {name: _convert(hints[name], data[name], f"{prefix}{name}") for name in fields if name in data}
    try:
        obj = cls(**values)
    except checks.ConfigError as exc:
        _fail(f"{prefix}{exc.field}", exc.message)
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


def load(path: str | Path = paths.PARAMS) -> Params:
    """Read and validate a parameter file (default: the repository's `params.yaml`).

    What a file cannot show (is the source installed? do its positions hold the block size?) is
    `ose.preflight.check_environment`'s, which `python -m ose.params check` and stage data run.
    """
    data = read_yaml(path)
    try:
        return from_dict(data)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


# --- profiles -------------------------------------------------------------------------------


def profile_names() -> list[str]:
    return sorted(p.stem for p in paths.PROFILES.glob("*.yaml"))


WHOLE_MAPPINGS = ("finetune.task_settings",)


def _overlay(base: dict, update: dict, path: str) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in merged:
            _fail(where, f"unknown key in profile; allowed keys here: {sorted(merged)}")
        # a mapping whose keys the user names (spaces, per-task settings) is replaced whole
        if (
            isinstance(value, dict)
            and isinstance(merged[key], dict)
            and where not in WHOLE_MAPPINGS
            and path != "spaces"
        ):
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
    write_text_atomic(target, header + dump(data))
    return params
