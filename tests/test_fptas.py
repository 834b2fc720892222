"""The FPTAS on synthetic spaces where ê is a known function: counts, order, W, and the ε = 1 optimum."""

import math
import random

import numpy as np
import pytest

from ose.arch import Arch
from ose.search.fptas import (
    Point,
    epsilon_sweep,
    exhaustive,
    fptas_candidates,
    n_candidates,
    order_space,
    pareto_front,
    run_fptas,
    same_point,
    select_from_table,
    theta_key,
    tie_groups,
    w_coefficient,
)

THETAS = ["lr-low", {"name": "lr-high", "lr": 1e-3}, "lr-mid"]


def _space() -> list[Point]:
    """11 points (odd, prime): several share p (A does not change the size) and one shares (p, i)."""
    archs = [
        Arch(1, 1, 8, 12),
        Arch(1, 2, 8, 12),
        Arch(1, 4, 8, 12),
        Arch(2, 1, 8, 12),
        Arch(2, 2, 8, 20),
        Arch(1, 1, 16, 12),
        Arch(3, 1, 8, 12),
        Arch(2, 4, 16, 20),
        Arch(3, 2, 16, 12),
        Arch(3, 4, 16, 20),
        Arch(2, 2, 16, 12),
    ]
    points = []
    for a in archs:
        p = a.depth * (4 * a.hidden**2 + 2 * a.hidden * a.intermediate) + 100 * a.hidden
        i = a.depth * (a.hidden + a.intermediate + {1: 3, 2: 1, 4: 1}[a.heads]) / 10
        points.append(Point(a, p, i))
    return points


SPACE = _space()
RNG = random.Random(7)
ERRORS = {
    (pt.name, theta_key(t)): 1.0 + 1.0 / (pt.arch.depth * pt.arch.hidden) + RNG.random()
    for pt in SPACE
    for t in THETAS
}
SECONDS = {key: 1.0 + k for k, key in enumerate(ERRORS)}


def lookup(arch: Arch, theta) -> float:
    return ERRORS[(arch.name, theta_key(theta))]


def lookup_with_seconds(arch: Arch, theta) -> dict:
    key = (arch.name, theta_key(theta))
    return {"error": ERRORS[key], "seconds": SECONDS[key], "train_loss": 2 * ERRORS[key]}


def brute_force_w(point: Point, error: float, p_max: float, i_max: float) -> float:
    return (p_max - point.p) / p_max * (i_max - point.i) / i_max / error


def test_w_coefficient_by_hand():
    # ((100 - 30) / 100) · ((8 - 2) / 8) · (1 / 0.5) = 0.7 · 0.75 · 2
    assert w_coefficient(30, 2.0, 0.5, 100, 8.0) == pytest.approx(1.05)
    # exponents (2, 1, 0.5): 0.7² · 0.75 · √2
    assert w_coefficient(30, 2.0, 0.5, 100, 8.0, (2, 1, 0.5)) == pytest.approx(0.49 * 0.75 * math.sqrt(2))
    # an exponent of 0 drops its objective, even when that saving is zero
    assert w_coefficient(100, 2.0, 0.5, 100, 8.0, (0, 1, 1)) == pytest.approx(1.5)
    # the maximum point itself saves nothing
    assert w_coefficient(100, 8.0, 0.01, 100, 8.0) == 0.0


@pytest.mark.parametrize(
    "args, name",
    [
        ((30, 2.0, 0.0, 100, 8.0), "surrogate error"),
        ((30, 2.0, -1.0, 100, 8.0), "surrogate error"),
        ((30, 2.0, float("nan"), 100, 8.0), "e must be"),
        ((30, 2.0, 0.5, 0, 8.0), "p_max"),
        ((30, 2.0, 0.5, 100, 0.0), "i_max"),
        ((101, 2.0, 0.5, 100, 8.0), "p must be"),
        ((30, 9.0, 0.5, 100, 8.0), "i must be"),
    ],
)
def test_w_coefficient_rejects_invalid_inputs(args, name):
    with pytest.raises(ValueError, match=name):
        w_coefficient(*args)


def test_w_coefficient_rejects_negative_exponent():
    with pytest.raises(ValueError, match="exponents"):
        w_coefficient(30, 2.0, 0.5, 100, 8.0, (1, -1, 1))


def test_order_space_is_by_p_then_i_then_name_whatever_the_input_order():
    shuffled = SPACE[:]
    random.Random(1).shuffle(shuffled)
    ordered = order_space(shuffled)
    assert ordered == order_space(SPACE)
    keys = [(pt.p, pt.i, pt.name) for pt in ordered]
    assert keys == sorted(keys)
    # The first three share p: i decides, then the name for the two that share (p, i).
    assert [pt.name for pt in ordered[:3]] == ["D1-A2-H8-I12", "D1-A4-H8-I12", "D1-A1-H8-I12"]


def test_order_space_rejects_duplicates_and_empty():
    with pytest.raises(ValueError, match="more than once"):
        order_space(SPACE + SPACE[:1])
    with pytest.raises(ValueError, match="points"):
        order_space([])


@pytest.mark.parametrize("epsilon", [1, 2, 3, 4, 5, 10, 11])
def test_candidates_are_every_epsilon_th_point_from_the_first_with_whole_ties(epsilon):
    ordered = order_space(SPACE)
    groups = tie_groups(ordered)
    assert [len(g) for g in groups].count(2) == 1 and len(groups) == len(ordered) - 1  # one tie
    candidates = fptas_candidates(ordered, epsilon)
    assert candidates == [pt for k in range(0, len(groups), epsilon) for pt in groups[k]]
    assert len({(pt.p, pt.i) for pt in candidates}) == math.ceil(len(groups) / epsilon)
    untied = [g[0] for g in groups]  # the same space without its tie: ⌈|Ξ|/ε⌉ candidates
    if epsilon <= len(untied):
        assert len(fptas_candidates(untied, epsilon)) == n_candidates(len(untied), epsilon)


def test_ties_are_broken_by_the_error_never_by_the_name():
    tie = [pt for group in tie_groups(order_space(SPACE)) if len(group) == 2 for pt in group]
    first, second = tie  # in name order
    assert same_point(first, second) and not same_point(
        first, SPACE[-1] if SPACE[-1] not in tie else SPACE[0]
    )
    for worse, better in ((first, second), (second, first)):

        def evaluate(arch, theta, worse=worse, better=better):
            if arch.name in (worse.name, better.name):
                return 1.0 if arch.name == better.name else 1.5
            return 50.0  # every other ξ far behind

        for epsilon in (1, 2, 3):
            result = run_fptas(SPACE, evaluate, ["t"], epsilon)
            candidates = set(result.candidates)
            if better.name in candidates:  # a tie group is a candidate whole, or not at all
                assert worse.name in candidates and result.best.arch == better.arch


@pytest.mark.parametrize("epsilon", [0, -1, 12, 1.5, True, 2.0, "2", None])
def test_invalid_epsilon_is_a_value_error(epsilon):
    ordered = order_space(SPACE)
    with pytest.raises(ValueError, match="epsilon"):
        fptas_candidates(ordered, epsilon)
    with pytest.raises(ValueError, match="epsilon"):
        run_fptas(SPACE, lookup, THETAS, epsilon)


def test_empty_space_and_empty_thetas_are_value_errors():
    with pytest.raises(ValueError, match="points"):
        run_fptas([], lookup, THETAS, 1)
    with pytest.raises(ValueError, match="ordered"):
        fptas_candidates([], 1)
    with pytest.raises(ValueError, match="thetas"):
        run_fptas(SPACE, lookup, [], 1)
    with pytest.raises(ValueError, match="thetas"):
        run_fptas(SPACE, lookup, "lr-low", 1)  # a bare name is not a set of names
    with pytest.raises(ValueError, match="thetas"):
        run_fptas(SPACE, lookup, ["a", {"name": "a"}], 1)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), {"loss": 1.0}])
def test_non_positive_or_missing_error_is_a_value_error(bad):
    with pytest.raises(ValueError, match="error"):
        run_fptas(SPACE, lambda arch, theta: bad, THETAS, 3)


@pytest.mark.parametrize("epsilon", [1, 2, 3, 4, 6, 11])
def test_number_and_order_of_trainings(epsilon):
    calls = []

    def evaluate(arch, theta):
        calls.append((arch.name, theta_key(theta)))
        return lookup(arch, theta)

    result = run_fptas(SPACE, evaluate, THETAS, epsilon)
    expected = len(fptas_candidates(order_space(SPACE), epsilon)) * len(THETAS)
    assert len(calls) == result.n_trainings == len(result.rows) == expected
    names = [pt.name for pt in fptas_candidates(order_space(SPACE), epsilon)]
    assert calls == [(n, theta_key(t)) for t in THETAS for n in names]  # θ outer, (p, i) order inner
    assert result.epsilon == epsilon and result.n_space == len(SPACE)
    assert result.n_candidates == len(names) and list(result.candidates) == names


def test_evaluate_receives_the_theta_as_given():
    seen = []
    run_fptas(SPACE, lambda arch, theta: seen.append(theta) or 1.5, THETAS, 10)
    per_theta = len(fptas_candidates(order_space(SPACE), 10))
    assert seen[::per_theta] == THETAS and len(seen) == per_theta * len(THETAS)


def test_epsilon_one_is_the_brute_force_optimum():
    result = exhaustive(SPACE, lookup, THETAS)
    p_max, i_max = max(pt.p for pt in SPACE), max(pt.i for pt in SPACE)
    scores = {
        (pt.name, theta_key(t)): brute_force_w(pt, ERRORS[(pt.name, theta_key(t))], p_max, i_max)
        for pt in SPACE
        for t in THETAS
    }
    (name, theta), w = max(scores.items(), key=lambda kv: kv[1])
    assert result.best.arch.name == name and result.best.theta == theta
    assert result.best.w == pytest.approx(w)
    assert result.best.error == ERRORS[(name, theta)]
    assert result.max_point == (p_max, i_max)
    for row in result.rows:
        assert row["w"] == pytest.approx(scores[(row["arch"], row["theta"])])


def test_w_is_maximised_over_theta():
    ordered = order_space(SPACE)
    winner = ordered[2]
    errors = {(pt.name, "plain"): 1.0 for pt in SPACE}
    errors.update({(pt.name, "tuned"): 1.0 for pt in SPACE})
    errors[(winner.name, "plain")] = 50.0  # hopeless under one θ ...
    errors[(winner.name, "tuned")] = 0.01  # ... excellent under the other

    def evaluate(arch, theta):
        return errors[(arch.name, theta)]

    alone = run_fptas(SPACE, evaluate, ["plain"], 1)
    both = run_fptas(SPACE, evaluate, ["plain", "tuned"], 1)
    assert alone.best.arch != winner.arch
    assert both.best.arch == winner.arch and both.best.theta == "tuned"
    assert both.best.w == max(r["w"] for r in both.rows if r["arch"] == winner.name)


def test_source_as_maximum_point_when_larger():
    p_max, i_max = max(pt.p for pt in SPACE), max(pt.i for pt in SPACE)
    larger = run_fptas(SPACE, lookup, THETAS, 1, max_point=(2 * p_max, i_max / 2))
    assert larger.max_point == (2 * p_max, i_max)  # component-wise: the space's i is larger
    row = larger.rows[0]
    point = next(pt for pt in SPACE if pt.name == row["arch"])
    assert row["w"] == pytest.approx(brute_force_w(point, row["error"], 2 * p_max, i_max))
    smaller = run_fptas(SPACE, lookup, THETAS, 1, max_point=Point(Arch(1, 1, 8, 8), 1, 0.1))
    assert smaller.max_point == (p_max, i_max)


def test_rows_keep_the_extras_of_evaluate():
    result = run_fptas(SPACE, lookup_with_seconds, THETAS, 4)
    row = result.rows[0]
    assert list(row)[:10] == ["arch", "D", "A", "H", "I", "p", "i", "theta", "error", "w"]
    assert row["seconds"] == SECONDS[(row["arch"], row["theta"])]
    assert row["train_loss"] == 2 * row["error"]
    assert Arch.parse(row["arch"]) == Arch(row["D"], row["A"], row["H"], row["I"])
    assert result.summary()["best"]["arch"] == result.best.arch.name


@pytest.mark.parametrize("epsilon", range(1, len(SPACE) + 1))
def test_select_from_table_equals_run_fptas(epsilon):
    table = exhaustive(SPACE, lookup_with_seconds, THETAS)
    direct = run_fptas(SPACE, lookup_with_seconds, THETAS, epsilon)
    for source in (table, table.rows):
        selected = select_from_table(SPACE, source, epsilon)
        assert selected.best == direct.best
        assert selected.rows == direct.rows
        assert selected.n_trainings == direct.n_trainings
        assert selected.candidates == direct.candidates
    by_key = select_from_table(SPACE, dict(ERRORS), epsilon)
    assert by_key.best == run_fptas(SPACE, lookup, THETAS, epsilon).best


def test_select_from_table_needs_every_candidate():
    partial = run_fptas(SPACE, lookup, THETAS, 2)
    assert select_from_table(SPACE, partial, 4).best == run_fptas(SPACE, lookup, THETAS, 4).best
    with pytest.raises(ValueError, match="does not cover"):
        select_from_table(SPACE, partial, 3)


def test_epsilon_sweep():
    table = exhaustive(SPACE, lookup_with_seconds, THETAS)
    epsilons = list(range(1, len(SPACE) + 1))
    sweep = epsilon_sweep(SPACE, table, epsilons, (1, 1, 1))
    assert [r["epsilon"] for r in sweep] == epsilons
    assert sweep[0]["approx_ratio"] == 1.0 and sweep[0]["arch"] == table.best.arch.name
    assert all(0 <= r["approx_ratio"] <= 1 for r in sweep)
    # Only ê in W: this space punishes coarse intervals. (With W = 1, 1, 1 it lost only inside its
    # tie while names broke ties; whole tie groups as candidates keep the optimum at every ε.)
    assert any(r["approx_ratio"] < 1 for r in epsilon_sweep(SPACE, table, epsilons, (0, 0, 1)))
    ordered = order_space(SPACE)
    for r in sweep:
        run = run_fptas(SPACE, lookup, THETAS, r["epsilon"])
        assert r["arch"] == run.best.arch.name
        assert r["approx_ratio"] == pytest.approx(run.best.w / table.best.w)
        trained = fptas_candidates(ordered, r["epsilon"])
        assert r["n_trainings"] == len(trained) * len(THETAS)
        assert r["seconds"] == pytest.approx(
            sum(SECONDS[(pt.name, theta_key(t))] for pt in trained for t in THETAS)
        )
    without_seconds = epsilon_sweep(SPACE, exhaustive(SPACE, lookup, THETAS), [2], (1, 1, 1))
    assert without_seconds[0]["seconds"] is None


def test_pareto_front_of_a_hand_made_set():
    rows = [
        {"p": 1, "i": 1.0, "error": 1.0},  # on the front
        {"p": 2, "i": 2.0, "error": 2.0},  # dominated by every (1, 1, 1)
        {"p": 1, "i": 1.0, "error": 1.0},  # duplicate of the first: neither dominates the other
        {"p": 0, "i": 5.0, "error": 1.0},  # smallest p
        {"p": 1, "i": 1.0, "error": 2.0},  # ties the first in p and i, worse ê: dominated
        {"p": 3, "i": 0.0, "error": 3.0},  # smallest i
        {"p": 2, "i": 2.0, "error": 2.0},  # duplicate of a dominated point: still dominated
        {"p": 5, "i": 5.0, "error": 0.5},  # smallest ê
    ]
    assert pareto_front(rows) == [True, False, True, True, False, True, False, True]
    # in (p, i) alone the fifth row duplicates the first, and the last is dominated by them
    assert pareto_front(rows, ("p", "i")) == [True, False, True, True, True, True, False, False]
    assert pareto_front([]) == []
    with pytest.raises(ValueError, match="objectives"):
        pareto_front(rows, ("p", "latency"))


def test_pareto_front_matches_brute_force_on_random_points():
    values = np.random.default_rng(0).integers(0, 4, size=(40, 3))
    rows = [{"p": int(a), "i": float(b), "error": float(c)} for a, b, c in values]

    def dominates(u, v):
        return all(x <= y for x, y in zip(u, v, strict=True)) and any(
            x < y for x, y in zip(u, v, strict=True)
        )

    expected = [not any(dominates(u, v) for u in values.tolist()) for v in values.tolist()]
    assert pareto_front(rows) == expected
    assert 0 < sum(expected) < len(rows)


def test_figures_smoke():
    import matplotlib.pyplot as plt

    from ose.reporting.figures import epsilon_sweep_plot, pareto_plot, w_plot

    table = exhaustive(SPACE, lookup_with_seconds, THETAS)
    chosen = table.best.arch.name
    figures = [
        (pareto_plot(table.rows, pareto_front(table.rows), chosen, SPACE[-1]), 2),
        (pareto_plot(table.rows, pareto_front(table.rows), chosen, ("source", 5000, 3.0)), 2),
        (w_plot(table.rows, chosen), 1),
        (epsilon_sweep_plot(epsilon_sweep(SPACE, table, [1, 2, 5], (1, 1, 1))), 3),
        (epsilon_sweep_plot(epsilon_sweep(SPACE, exhaustive(SPACE, lookup, THETAS), [1, 3], (1, 1, 1))), 2),
    ]
    try:
        for fig, n_axes in figures:
            assert len(fig.axes) == n_axes
        with pytest.raises(ValueError, match="chosen_name"):
            w_plot(table.rows, "D9-A1-H8-I8")
    finally:
        for fig, _ in figures:
            plt.close(fig)
