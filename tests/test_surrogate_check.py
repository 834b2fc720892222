"""The extraction's geometry, T and p options, the live FPTAS, and the surrogate check's rules."""

import pytest

from ose.arch import Arch, Embedding
from ose.search import fptas
from ose.search.extraction import reference_point, size_of, space_geometry
from ose.search.fptas import Point
from ose.search.objectives import op_count, param_count
from ose.search.surrogate_check import check_table, recommend_steps

EMB = Embedding(vocab_size=99, max_positions=17, type_vocab_size=2)


def test_effective_size_is_everything_but_the_embedding():
    arch = Arch(2, 3, 15, 7)
    counts = param_count(arch, EMB)
    assert size_of(arch, EMB, "net") == counts.total
    assert size_of(arch, EMB, "effective") == counts.total - counts.embedding
    with pytest.raises(ValueError, match="size must be"):
        size_of(arch, EMB, "gross")


def test_space_geometry_is_computed_exactly():
    reference, small, large = Arch(4, 4, 32, 64), Arch(1, 2, 16, 8), Arch(2, 4, 32, 24)
    geometry = space_geometry([small, large], reference, EMB, seq_len=9)
    ref = param_count(reference, EMB)
    effective = [size_of(a, EMB) / (ref.total - ref.embedding) for a in (small, large)]
    flops = [op_count(a, 9, EMB).total / op_count(reference, 9, EMB).total for a in (small, large)]
    assert geometry["n"] == 2
    assert geometry["effective_size_min"] == min(effective) and geometry["effective_size_max"] == max(
        effective
    )
    assert geometry["flops_min"] == min(flops) and geometry["flops_max"] == max(flops)
    assert geometry["size_factor_min"] == 1 - max(effective)
    assert geometry["net_size_max"] == param_count(large, EMB).total / ref.total


def test_reference_point_source_or_space_max():
    points = [Point(Arch(1, 2, 16, 8), 100, 1.0), Point(Arch(2, 2, 16, 8), 200, 3.0)]
    source = Point(Arch(6, 2, 16, 8), 1000, 10.0)
    assert reference_point(points, source, "source") == (1000, 10.0)
    assert reference_point(points, source, "space_max") == (200, 3.0)
    inside = Point(Arch(3, 2, 16, 8), 150, 2.0)
    with pytest.raises(ValueError, match="must be larger than every ξ"):
        reference_point(points, inside, "source")


def test_live_fptas_on_its_candidates_agrees_with_the_exhaustive_table():
    """The stage trains only the candidates at ε, then the whole space: both readings agree."""
    archs = [Arch(d, 2, h, i) for d in (1, 2, 3) for h in (8, 16) for i in (5, 9)]
    points = [Point(a, a.depth * a.hidden * (a.hidden + a.intermediate), a.depth * a.hidden) for a in archs]
    error = {a.name: 1 + ((a.depth * 7 + a.hidden * 3 + a.intermediate) % 5) / 10 for a in archs}
    table = [{"arch": a.name, "theta": "t", "error": error[a.name]} for a in archs]
    for epsilon in (1, 2, 3, 5, 12):
        candidates = {pt.name for pt in fptas.fptas_candidates(fptas.order_space(points), epsilon)}
        live = fptas.select_from_table(points, [r for r in table if r["arch"] in candidates], epsilon)
        assert live.best == fptas.select_from_table(points, table, epsilon).best
        assert live.n_trainings == len(candidates)


RUNS = [
    {"arch": "a", "losses": {2: 5.0, 4: 3.0}, "final": 1.0},
    {"arch": "b", "losses": {2: 4.0, 4: 3.5}, "final": 2.0},
    {"arch": "c", "losses": {2: 3.0, 4: 4.0}, "final": 3.0},
]


def test_check_table_on_hand_made_runs():
    def w_of(arch, error):
        return 1 / error

    rows = check_table(RUNS, [2, 4], w_of, n_boot=200, seed=0)
    assert [r["s"] for r in rows] == [2, 4]
    assert rows[0]["tau_b"] == pytest.approx(-1.0) and rows[1]["tau_b"] == pytest.approx(1.0)
    assert rows[0]["pick"] == "c" and rows[0]["best"] == "a"
    assert rows[0]["w_regret"] == pytest.approx(1 - (1 / 3) / 1)
    assert rows[1]["pick"] == "a" and rows[1]["w_regret"] == 0.0


def test_recommended_steps_follow_the_rule():
    rows = [
        {"s": 8, "tau_b": 0.5, "w_regret": 0.0, "pick": "x"},
        {"s": 16, "tau_b": 0.85, "w_regret": 0.1, "pick": "y"},
        {"s": 32, "tau_b": 0.9, "w_regret": 0.0, "pick": "z"},
        {"s": 64, "tau_b": 0.95, "w_regret": 0.0, "pick": "z"},
    ]
    assert recommend_steps(rows, 0.8, 64)[0] == 32
    steps, reason = recommend_steps(rows, 0.8, 16)
    assert steps == 16 and "largest allowed" in reason
    with pytest.raises(ValueError, match="no logged s"):
        recommend_steps(rows, 0.8, 4)
