"""The FPTAS for optimal subarchitecture extraction (de Wynter, arXiv 2010.08512), as pure functions.

The search space Ξ is a list of `Point`s: an architecture ξ with its parameter size p(ξ) and its
inference cost i(ξ) (predicted latency or operation count). The surrogate error ê(ξ) is supplied by
the caller as a function `evaluate(arch, theta)`, so this module never trains anything.

The algorithm (interval size ε, 1 ≤ ε ≤ |Ξ|; hyperparameter sets Θ):

1. find the maximum point T over the whole space Ξ (not over the candidates, so T, and therefore
   every W, is the same for every ε);
2. sort Ξ by p, then by i; architectures with equal p and i are ONE point of that order (a tie
   group); the candidates are the points at positions 0, ε, 2ε, … of the order, every member of a
   tie group included (⌈|points|/ε⌉ points; ⌈|Ξ|/ε⌉ architectures when there are no ties);
3. for each θ ∈ Θ and each candidate, measure ê and compute
   W(ξ) = ((p(T) − p(ξ)) / p(T))^a · ((i(T) − i(ξ)) / i(T))^b · (1 / ê(ξ))^c;
4. return the candidate with the largest W over candidates and over θ, plus every evaluated row.

Ties are ties: inside a tie group W differs only through ê, so ê decides between its members (a
name never decides which of them is a candidate or the answer; exact equality of ê too falls back
to the order by name, and `same_point` lets a report say that two answers differ only inside a
tie). Between θs of one candidate with equal W the first θ of Θ wins; between candidates of equal
W the first in the order (the smaller one) wins.

Because ê of a candidate is deterministic for a fixed seed, one exhaustive table (ε = 1) yields the
FPTAS answer for every ε without retraining: `select_from_table` and `epsilon_sweep`.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ose.arch import Arch

Theta = str | Mapping[str, Any]  # a hyperparameter set θ: a name or a dict
Exponents = tuple[float, float, float]
Evaluation = float | Mapping[str, Any]  # ê, or {"error": ê, **extras}

DEFAULT_EXPONENTS: Exponents = (1.0, 1.0, 1.0)
ROW_COLUMNS = ("arch", "D", "A", "H", "I", "p", "i", "theta", "error", "w")


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_exponents(exponents: Sequence[float]) -> Exponents:
    if isinstance(exponents, (str, bytes)) or len(exponents) != 3:
        raise ValueError(f"exponents must be three numbers (a, b, c) for p, i and ê, got {exponents!r}")
    for value in exponents:
        if not _is_real(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"exponents must be finite and non-negative, got {exponents!r}")
    a, b, c = (float(v) for v in exponents)
    return a, b, c


def w_coefficient(
    p: float,
    i: float,
    e: float,
    p_max: float,
    i_max: float,
    exponents: Sequence[float] = DEFAULT_EXPONENTS,
) -> float:
    """W(ξ) = ((p(T) − p(ξ)) / p(T))^a · ((i(T) − i(ξ)) / i(T))^b · (1 / ê(ξ))^c, to be maximised.

    p, i: the size and inference cost of ξ; e: its surrogate error ê(ξ) (must be > 0);
    p_max, i_max: p(T) and i(T) of the maximum point T (must be > 0, and ≥ p and i).

    W is the product of the relative savings in size and in cost, rewarded by a low error. At
    ξ = T (or any ξ with the largest p or the largest i) a saving is zero, so W = 0 whatever ê is:
    the maximum point can only be chosen when no candidate saves anything. An exponent of 0 drops
    its objective (0^0 = 1), which is how the ablations switch an objective off.
    """
    a, b, c = _check_exponents(exponents)
    for name, value in (("p", p), ("i", i), ("e", e), ("p_max", p_max), ("i_max", i_max)):
        if not _is_real(value) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if e <= 0:
        raise ValueError(f"the surrogate error e must be > 0 (W has 1/ê), got {e!r}")
    if p_max <= 0 or i_max <= 0:
        raise ValueError(f"the maximum point T must have p_max > 0 and i_max > 0, got {p_max!r}, {i_max!r}")
    if not 0 <= p <= p_max:
        raise ValueError(f"p must be in [0, p_max={p_max!r}] (T is the maximum point), got {p!r}")
    if not 0 <= i <= i_max:
        raise ValueError(f"i must be in [0, i_max={i_max!r}] (T is the maximum point), got {i!r}")
    size_saving = (p_max - p) / p_max
    cost_saving = (i_max - i) / i_max
    return float(size_saving**a * cost_saving**b * (1.0 / e) ** c)


@dataclass(frozen=True)
class Point:
    """One ξ of the search space with its objectives p(ξ) (parameters) and i(ξ) (cost)."""

    arch: Arch
    p: int  # parameters
    i: float  # predicted latency (ms) or operation count

    def __post_init__(self) -> None:
        if not isinstance(self.arch, Arch):
            raise ValueError(f"arch must be an ose.arch.Arch, got {self.arch!r}")
        if not _is_integer(self.p) or self.p < 0:
            raise ValueError(f"p of {self.arch.name} must be a non-negative integer, got {self.p!r}")
        if not _is_real(self.i) or not math.isfinite(self.i) or self.i < 0:
            raise ValueError(f"i of {self.arch.name} must be a finite non-negative number, got {self.i!r}")
        object.__setattr__(self, "p", int(self.p))
        object.__setattr__(self, "i", float(self.i))

    @property
    def name(self) -> str:
        return self.arch.name


def space_points(
    archs: Iterable[Arch], params: Callable[[Arch], int], cost: Callable[[Arch], float]
) -> list[Point]:
    """Step 1: p and i for every ξ.

    E.g. `space_points(space, lambda a: param_count(a, embedding).total, cost_model.predict)`.
    """
    return [Point(arch, params(arch), cost(arch)) for arch in archs]


def order_space(points: Iterable[Point]) -> list[Point]:
    """Ξ sorted by p, ties by i, then by architecture name, so the order never depends on the input's."""
    ordered = sorted(points, key=lambda pt: (pt.p, pt.i, pt.name))
    if not ordered:
        raise ValueError("points: the search space is empty")
    names = [pt.name for pt in ordered]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"points: the search space lists these architectures more than once: {duplicates}")
    return ordered


def _check_epsilon(epsilon: object, size: int) -> int:
    if not _is_integer(epsilon) or not 1 <= epsilon <= size:
        raise ValueError(
            f"epsilon must be an integer interval size with 1 <= epsilon <= |Ξ| = {size}, got {epsilon!r}"
        )
    return int(epsilon)


def tie_groups(ordered: Sequence[Point]) -> list[list[Point]]:
    """The points of the order: runs of architectures with equal p and i (one member when no tie)."""
    groups: list[list[Point]] = []
    for point in ordered:
        if groups and (groups[-1][0].p, groups[-1][0].i) == (point.p, point.i):
            groups[-1].append(point)
        else:
            groups.append([point])
    return groups


def same_point(a: Point, b: Point) -> bool:
    """Whether two architectures are one point of the order (equal p and i): a tie."""
    return (a.p, a.i) == (b.p, b.i)


def fptas_candidates(ordered: Sequence[Point], epsilon: int) -> list[Point]:
    """Every ε-th point (tie group) of the ordered space, starting with the first, all its members.

    ⌈|points|/ε⌉ points; without ties that is ⌈|Ξ|/ε⌉ architectures. `ordered` must already be in
    `order_space` order; it is not re-sorted here. ε is checked against |Ξ| (the sweep's range).
    """
    if len(ordered) == 0:
        raise ValueError("ordered: the search space is empty")
    _check_epsilon(epsilon, len(ordered))
    groups = tie_groups(ordered)
    return [point for group in groups[:: int(epsilon)] for point in group]


def n_candidates(n_space: int, epsilon: int) -> int:
    """⌈|Ξ|/ε⌉, the number of candidates (and trainings per θ) of the FPTAS in a space without ties
    (with ties: `len(fptas_candidates(...))`)."""
    return -(-n_space // _check_epsilon(epsilon, n_space))


def theta_key(theta: Theta) -> str:
    """The name a hyperparameter set is recorded under: a string itself, a dict's "name" if it has
    one, otherwise the dict as canonical JSON."""
    if isinstance(theta, str):
        return theta
    if isinstance(theta, Mapping):
        if "name" in theta:
            return str(theta["name"])
        return json.dumps(dict(theta), sort_keys=True, default=str)
    raise ValueError(f"thetas: each hyperparameter set must be a name or a dict, got {theta!r}")


def _check_thetas(thetas: Sequence[Theta]) -> list[Theta]:
    if isinstance(thetas, (str, Mapping)) or not isinstance(thetas, Iterable):
        raise ValueError(f"thetas must be a sequence of hyperparameter-set names or dicts, got {thetas!r}")
    thetas = list(thetas)
    if not thetas:
        raise ValueError("thetas: the set of hyperparameter sets Θ is empty")
    keys = [theta_key(t) for t in thetas]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"thetas: these hyperparameter sets appear more than once: {duplicates}")
    return thetas


def maximum_point(
    points: Iterable[Point], source: Point | tuple[float, float] | None = None
) -> tuple[int, float]:
    """T = (p(T), i(T)): the largest p and the largest i of the space, or of the source if larger.

    T is taken component-wise, so it need not be an architecture of Ξ.
    """
    points = list(points)
    if not points:
        raise ValueError("points: the search space is empty")
    p_max, i_max = max(pt.p for pt in points), max(pt.i for pt in points)
    if source is not None:
        p_src, i_src = (source.p, source.i) if isinstance(source, Point) else source
        if not _is_real(p_src) or not _is_real(i_src) or not (math.isfinite(p_src) and math.isfinite(i_src)):
            raise ValueError(f"max_point must be a Point or a (p, i) pair of finite numbers, got {source!r}")
        p_max, i_max = max(p_max, p_src), max(i_max, float(i_src))
    if p_max <= 0 or i_max <= 0:
        raise ValueError(f"the maximum point T must have p > 0 and i > 0, got ({p_max!r}, {i_max!r})")
    return p_max, float(i_max)


@dataclass(frozen=True)
class Choice:
    """The FPTAS answer: an untrained architecture and the θ under which it scored best."""

    arch: Arch
    p: int
    i: float
    error: float
    w: float
    theta: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.name,
            **self.arch.as_dict(),
            "p": self.p,
            "i": self.i,
            "error": self.error,
            "w": self.w,
            "theta": self.theta,
        }


@dataclass(frozen=True)
class FptasResult:
    """Everything one FPTAS run decided and measured.

    rows: one dict per (candidate, θ) evaluated, in evaluation order (θ outer, candidates in
    (p, i) order inner), with the columns of `ROW_COLUMNS` plus any extras `evaluate` returned.
    n_trainings: ⌈|Ξ|/ε⌉ · |Θ| (for `select_from_table`, the number the FPTAS at ε would train).
    """

    best: Choice
    rows: list[dict[str, Any]]
    epsilon: int
    n_space: int
    n_candidates: int
    n_trainings: int
    thetas: tuple[str, ...]
    exponents: Exponents
    max_point: tuple[int, float]
    candidates: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The run in plain values, for a JSON metrics file (rows excluded)."""
        return {
            "best": self.best.as_dict(),
            "epsilon": self.epsilon,
            "n_space": self.n_space,
            "n_candidates": self.n_candidates,
            "n_trainings": self.n_trainings,
            "thetas": list(self.thetas),
            "exponents": list(self.exponents),
            "max_point": {"p": self.max_point[0], "i": self.max_point[1]},
        }


def _split_evaluation(value: Evaluation, where: str) -> tuple[float, dict[str, Any]]:
    if isinstance(value, Mapping):
        if "error" not in value:
            raise ValueError(f"evaluate returned a dict without an 'error' key for {where}: {dict(value)!r}")
        extras = {k: v for k, v in value.items() if k != "error"}
        clash = sorted(set(extras) & set(ROW_COLUMNS))
        if clash:
            raise ValueError(f"evaluate's extras for {where} reuse reserved column names {clash}")
        error = value["error"]
    else:
        error, extras = value, {}
    if not _is_real(error) or not math.isfinite(error) or error <= 0:
        raise ValueError(f"the surrogate error must be a finite number > 0, got {error!r} for {where}")
    return float(error), extras


def run_fptas(
    points: Iterable[Point],
    evaluate: Callable[[Arch, Theta], Evaluation],
    thetas: Sequence[Theta],
    epsilon: int,
    exponents: Sequence[float] = DEFAULT_EXPONENTS,
    max_point: Point | tuple[float, float] | None = None,
) -> FptasResult:
    """The FPTAS: evaluate ê on every ε-th architecture of Ξ for every θ ∈ Θ; return the largest W.

    evaluate(arch, theta) returns ê as a float, or a dict with key "error" and any extras (e.g.
    "seconds"), which are kept in the rows. It is called exactly ⌈|Ξ|/ε⌉ · |Θ| times, θ outer and
    candidates in (p, i) order inner. max_point: the source network (a Point or (p, i)), used for T
    where it is larger than the space's own maximum.
    """
    ordered = order_space(points)
    thetas = _check_thetas(thetas)
    exponents = _check_exponents(exponents)
    candidates = fptas_candidates(ordered, epsilon)
    p_max, i_max = maximum_point(ordered, max_point)

    rows: list[dict[str, Any]] = []
    ranks: list[tuple[float, int, int]] = []  # (−W, candidate index, θ index): min is the answer
    for t, theta in enumerate(thetas):
        key = theta_key(theta)
        for c, point in enumerate(candidates):
            error, extras = _split_evaluation(evaluate(point.arch, theta), f"{point.name}, theta {key!r}")
            w = w_coefficient(point.p, point.i, error, p_max, i_max, exponents)
            arch = point.arch
            rows.append(
                {
                    "arch": arch.name,
                    "D": arch.depth,
                    "A": arch.heads,
                    "H": arch.hidden,
                    "I": arch.intermediate,
                    "p": point.p,
                    "i": point.i,
                    "theta": key,
                    "error": error,
                    "w": w,
                    **extras,
                }
            )
            ranks.append((-w, c, t))
    winner = rows[ranks.index(min(ranks))]
    best_point = candidates[min(ranks)[1]]
    return FptasResult(
        best=Choice(
            best_point.arch, best_point.p, best_point.i, winner["error"], winner["w"], winner["theta"]
        ),
        rows=rows,
        epsilon=int(epsilon),
        n_space=len(ordered),
        n_candidates=len(candidates),
        n_trainings=len(rows),
        thetas=tuple(theta_key(t) for t in thetas),
        exponents=exponents,
        max_point=(p_max, i_max),
        candidates=tuple(pt.name for pt in candidates),
    )


def exhaustive(
    points: Iterable[Point],
    evaluate: Callable[[Arch, Theta], Evaluation],
    thetas: Sequence[Theta],
    exponents: Sequence[float] = DEFAULT_EXPONENTS,
    max_point: Point | tuple[float, float] | None = None,
) -> FptasResult:
    """The FPTAS at ε = 1: every architecture of Ξ under every θ, the exact optimum of W."""
    return run_fptas(points, evaluate, thetas, 1, exponents, max_point)


Table = FptasResult | Sequence[Mapping[str, Any]] | Mapping[tuple[str, str], Evaluation]


def _table_lookup(table: Table) -> tuple[dict[tuple[str, str], Evaluation], list[str]]:
    """(arch name, θ key) → evaluation, and Θ in order of first appearance."""
    if isinstance(table, FptasResult):
        table = table.rows
    lookup: dict[tuple[str, str], Evaluation] = {}
    if isinstance(table, Mapping):
        for key, value in table.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"table keys must be (arch name, theta key) pairs, got {key!r}")
            lookup[(str(key[0]), str(key[1]))] = value
    else:
        for row in table:
            key = (str(row["arch"]), str(row["theta"]))
            if key in lookup:
                raise ValueError(f"table: ({key[0]}, theta {key[1]!r}) appears more than once")
            # Recomputed columns are dropped; what evaluate measured (ê and extras) is kept.
            lookup[key] = {k: v for k, v in row.items() if k not in ROW_COLUMNS or k == "error"}
    if not lookup:
        raise ValueError("table: no evaluated (architecture, theta) pairs")
    thetas = list(dict.fromkeys(theta for _, theta in lookup))
    return lookup, thetas


def select_from_table(
    points: Iterable[Point],
    table: Table,
    epsilon: int,
    exponents: Sequence[float] = DEFAULT_EXPONENTS,
    max_point: Point | tuple[float, float] | None = None,
) -> FptasResult:
    """The FPTAS answer for ε read from already-evaluated ê, without evaluating anything again.

    table: an exhaustive `FptasResult`, its rows, or a mapping (arch name, θ key) → ê (a float, or a
    dict with "error" and extras). Θ is the table's θs in order of first appearance. Valid because ê
    of a candidate is deterministic for a fixed seed: the answer is the one `run_fptas` gives with the
    same ε. Raises ValueError if a candidate at this ε is missing from the table for some θ.
    """
    lookup, thetas = _table_lookup(table)

    def evaluate(arch: Arch, theta: Theta) -> Evaluation:
        try:
            return lookup[(arch.name, theta)]
        except KeyError:
            raise ValueError(
                f"table has no error for {arch.name} under theta {theta!r}: it does not cover the "
                f"candidates at epsilon={epsilon}; run the exhaustive search (epsilon=1) first"
            ) from None

    return run_fptas(points, evaluate, thetas, epsilon, exponents, max_point)


def epsilon_sweep(
    points: Iterable[Point],
    exhaustive_result: Table,
    epsilons: Iterable[int],
    exponents: Sequence[float] = DEFAULT_EXPONENTS,
    max_point: Point | tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Per ε: what the FPTAS would choose, its W, W(ε)/W(ε = 1), and what it would have cost.

    approx_ratio is 1 when both Ws are 0 (every point is the maximum point in some objective).
    seconds: the sum of the "seconds" extras of the (candidate, θ) rows the FPTAS at ε would have
    trained, or None if some of those rows have no "seconds".
    """
    points = list(points)
    optimum = select_from_table(points, exhaustive_result, 1, exponents, max_point)
    sweep = []
    for epsilon in epsilons:
        result = select_from_table(points, exhaustive_result, epsilon, exponents, max_point)
        seconds = [row.get("seconds") for row in result.rows]
        if optimum.best.w > 0:
            ratio = result.best.w / optimum.best.w
        else:
            ratio = 1.0
        sweep.append(
            {
                "epsilon": result.epsilon,
                "n_candidates": result.n_candidates,
                "n_trainings": result.n_trainings,
                "arch": result.best.arch.name,
                "theta": result.best.theta,
                "p": result.best.p,
                "i": result.best.i,
                "error": result.best.error,
                "w": result.best.w,
                "w_optimum": optimum.best.w,
                "approx_ratio": ratio,
                "seconds": None if any(s is None for s in seconds) else float(sum(seconds)),
            }
        )
    return sweep


def best_per_candidate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per architecture: the θ with the largest W (first θ on ties), in first-seen order."""
    best: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        current = best.get(row["arch"])
        if current is None or row["w"] > current["w"]:
            best[row["arch"]] = row
    return [dict(row) for row in best.values()]


def pareto_front(
    rows: Sequence[Mapping[str, Any]], objectives: Sequence[str] = ("p", "i", "error")
) -> list[bool]:
    """Which rows are non-dominated when every objective is minimised.

    A row dominates another if it is ≤ in every objective and < in at least one, so identical rows
    do not dominate each other: duplicates are on the front together or off it together.
    """
    objectives = list(objectives)
    if not objectives:
        raise ValueError("objectives: need at least one objective to minimise")
    if len(rows) == 0:
        return []
    for row in rows:
        missing = [k for k in objectives if k not in row]
        if missing:
            raise ValueError(f"objectives {missing} missing from row {dict(row)!r}")
    values = np.array([[float(row[k]) for k in objectives] for row in rows])  # (N, K)
    if not np.isfinite(values).all():
        raise ValueError(f"objectives {objectives} must be finite in every row")
    no_worse = (values[:, None, :] <= values[None, :, :]).all(axis=2)  # (N, N): j no worse than i? [j, i]
    better = (values[:, None, :] < values[None, :, :]).any(axis=2)  # (N, N)
    dominated = (no_worse & better).any(axis=0)  # (N,)
    return [not d for d in dominated]
