"""Pipeline parameters: `params.yaml` (the active profile), validated before any work starts.

`profiles/default.yaml` is the embedded default in full; other profiles (`smoke`, `paper`) are
overlays that name only what they change. `python -m ose.params use NAME` writes the merged,
validated profile to `params.yaml`, which is what DVC tracks and what users edit for ablations.
`python -m ose.params check [FILE]` validates a file.

Validation is strict: an unknown key, a missing key, a wrong type or an invalid value is a
`ParamsError` that names the key path (e.g. `spaces.default.hidden[2]`) and what is allowed.
Each group is a frozen dataclass; its `validate` method checks values that types cannot.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ose import paths
from ose.arch import Arch, ArchError, enumerate_space


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


@dataclass(frozen=True)
class Params:
    profile: str
    seed: int
    source: Source
    spaces: dict[str, Space]
    costs: Costs

    def validate(self, path: str) -> None:
        if self.seed < 0:
            _fail("seed", f"must be a non-negative integer, got {self.seed}")
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


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"parameter file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping of parameter groups")
    return data


def load(path: str | Path = paths.PARAMS) -> Params:
    """Read and validate a parameter file (default: the repository's `params.yaml`)."""
    try:
        return from_dict(read_yaml(path))
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


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
            params = load(args.file)
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
