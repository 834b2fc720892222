"""The extraction's geometry, T and p options, the live FPTAS, and the surrogate check's rules."""

import copy
from dataclasses import asdict, replace

import pytest
import torch
from test_distill import ToyTokenizer, toy_blocks

from ose.arch import Arch, Embedding, build_model
from ose.configs import KDWeights, SurrogateCheck
from ose.search import fptas
from ose.search.extraction import reference_point, size_of, space_geometry
from ose.search.fptas import Point
from ose.search.objectives import op_count, param_count
from ose.search.surrogate import Sample, SurrogateJob, evaluated
from ose.search.surrogate_check import (
    check_table,
    noise_rows,
    recommend_steps,
    reference_runs,
    seed_errors,
)
from ose.training.distill import fixed_sample, surrogate_error
from ose.training.inherit import inherit

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
    {"arch": "a", "theta": "t1", "losses": {2: 5.0, 4: 3.0}, "final": 1.0},
    {"arch": "b", "theta": "t1", "losses": {2: 4.0, 4: 3.5}, "final": 2.0},
    {"arch": "c", "theta": "t1", "losses": {2: 3.0, 4: 4.0}, "final": 3.0},
    {"arch": "a", "theta": "t2", "losses": {2: 1.0, 4: 1.0}, "final": 1.0},
    {"arch": "b", "theta": "t2", "losses": {2: 2.0, 4: 2.0}, "final": 2.0},
    {"arch": "c", "theta": "t2", "losses": {2: 3.0, 4: 3.0}, "final": 3.0},
]


def test_check_table_on_hand_made_runs_per_theta():
    def w_of(arch, error):
        return 1 / error

    rows = check_table(RUNS, [2, 4], w_of, n_boot=200, seed=0, same_point=lambda a, b: {a, b} == {"a", "c"})
    assert [(r["theta"], r["s"]) for r in rows] == [("t1", 2), ("t1", 4), ("t2", 2), ("t2", 4)]
    assert rows[0]["tau_b"] == pytest.approx(-1.0) and rows[1]["tau_b"] == pytest.approx(1.0)
    assert rows[0]["pick"] == "c" and rows[0]["best"] == "a" and rows[0]["tie"]  # a and c: one point
    assert rows[0]["w_regret"] == pytest.approx(1 - (1 / 3) / 1)
    assert rows[1]["pick"] == "a" and rows[1]["w_regret"] == 0.0 and not rows[1]["tie"]
    assert all(r["tau_b"] == pytest.approx(1.0) and r["w_regret"] == 0 for r in rows[2:])


def test_noise_rows_say_whether_the_spread_clears_twice_the_noise():
    errors = {
        ("t", 8): {"a": [1.0, 1.2], "b": [2.0, 2.2], "c": [3.0, 3.2]},  # spread 1, noise 0.14: clears
        ("t", 16): {"a": [1.0, 1.6], "b": [1.2, 1.8], "c": [1.4, 2.0]},  # spread 0.2, noise 0.42: no
    }
    rows = {r["s"]: r for r in noise_rows(errors)}
    assert rows[8]["mean_std_over_seeds"] == pytest.approx(0.2 / 2**0.5)
    assert rows[8]["std_across_archs"] == pytest.approx(1.0) and rows[8]["qualifies"]
    assert rows[16]["qualifies"] is False
    # the boundary: noise 1/√2 per ξ, means 1.5 apart ± 0.01 (spread √2 ∓ …): just below / above 2×
    for gap, expected in ((1.99, False), (2.01, True)):
        (row,) = noise_rows({("t", 4): {"a": [0.0, 1.0], "b": [gap, gap + 1.0]}})
        assert row["mean_std_over_seeds"] == pytest.approx(2**-0.5)
        assert row["qualifies"] is expected


def _noise(qualifying: set[int], thetas=("t",), steps=(8, 16, 32, 64)) -> list[dict]:
    return [{"theta": t, "s": s, "qualifies": s in qualifying} for t in thetas for s in steps]


def test_recommended_steps_follow_the_rule():
    rows = [
        {"theta": "t", "s": 8, "tau_b": 0.5, "w_regret": 0.0, "pick": "x"},
        {"theta": "t", "s": 16, "tau_b": 0.85, "w_regret": 0.1, "pick": "y"},
        {"theta": "t", "s": 32, "tau_b": 0.9, "w_regret": 0.0, "pick": "z"},
        {"theta": "t", "s": 64, "tau_b": 0.95, "w_regret": 0.0, "pick": "z"},
    ]
    everything = _noise({8, 16, 32, 64})
    assert recommend_steps(rows, everything, 0.8, 64)[0] == 32
    steps, reason = recommend_steps(rows, everything, 0.8, 16)
    assert steps == 16 and "largest qualifying" in reason
    with pytest.raises(ValueError, match="no logged s"):
        recommend_steps(rows, everything, 0.8, 4)


def test_recommended_steps_never_take_an_s_within_twice_its_noise():
    rows = [
        {"theta": t, "s": s, "tau_b": 0.9, "w_regret": 0.0, "pick": "z"}
        for t in ("t1", "t2")
        for s in (8, 16, 32, 64)
    ]
    noise = _noise({8, 16, 32, 64}, thetas=("t1", "t2"))
    assert recommend_steps(rows, noise, 0.8, 64)[0] == 8
    # s = 8 drowns in noise under one θ: the next s that clears it under every θ
    noise = [dict(n, qualifies=not (n["s"] == 8 and n["theta"] == "t2")) for n in noise]
    steps, reason = recommend_steps(rows, noise, 0.8, 64)
    assert steps == 16 and "[8] excluded" in reason
    # none qualifies: no s at all (the stage then stops, or the other init is used)
    steps, reason = recommend_steps(rows, _noise(set(), thetas=("t1", "t2")), 0.8, 64)
    assert steps is None and "2× its seed noise" in reason
    # only s beyond the cap qualify: none
    assert recommend_steps(rows, _noise({64}, thetas=("t1", "t2")), 0.8, 32)[0] is None


# --- the check's runs on a toy teacher: per θ, cached, and the inherited init ---

TOY = Embedding(
    vocab_size=99, max_positions=19, type_vocab_size=2
)  # the vocabulary of test_distill.toy_blocks


@pytest.fixture(scope="module")
def toy_teacher(tmp_path_factory):
    teacher = build_model(Arch(2, 4, 36, 37), TOY, head="mlm", seed=1).eval()
    folder = tmp_path_factory.mktemp("teacher")
    teacher.save_pretrained(folder)
    return teacher, folder


def _sample(teacher, calibration=None) -> Sample:
    train = fixed_sample(toy_blocks(), 6, 4, 9, teacher, ToyTokenizer(), seed=0)
    heldout = fixed_sample(toy_blocks(seed=1), 2, 5, 9, teacher, ToyTokenizer(), seed=1)
    return Sample(train, heldout, calibration, "toy" if calibration is None else "toy-inherited")


def _base(init="random", folder=None) -> SurrogateJob:
    return SurrogateJob(
        archs=[],
        thetas=[{"name": "a", "lr": 3e-3, "warmup_steps": 1}, {"name": "b", "lr": 1e-3, "warmup_steps": 1}],
        sample_path="",
        embedding=asdict(TOY),
        steps=0,
        weights=asdict(KDWeights()),
        seed=0,
        shard_dir="",
        init=init,
        inherit=None if init == "random" else {"teacher_dir": str(folder), "layers": "bottom", "every": None},
    )


ARCHS = [Arch.parse("D1-A2-H16-I23"), Arch.parse("D1-A3-H15-I7")]


def test_reference_runs_per_theta_log_each_s_and_resume_without_the_sample(
    tmp_path, toy_teacher, monkeypatch
):
    """Every θ's long run, ê_s at every logged s, the last equal to a plain ê of the same length; a
    second call reads the shards and writes no sample."""
    teacher, _ = toy_teacher
    sample = _sample(teacher)
    check = SurrogateCheck(
        archs=3, steps=6, log_steps=[2, 4], seeds=[0, 1], noise_archs=2, n_boot=10, tau=0.8,
        max_auto_steps=4, inits=["random"],
    )  # fmt: skip
    runs = reference_runs(ARCHS, sample, check, _base(), tmp_path / "reference", progress=False)
    assert [(r["arch"], r["theta"]) for r in runs] == [(a.name, t) for a in ARCHS for t in ("a", "b")]
    assert all(sorted(r["losses"]) == [2, 4] for r in runs)
    plain = surrogate_error(ARCHS[1], TOY, sample.train, sample.heldout, 6, 1e-3, 1, KDWeights(), 0)
    assert runs[3]["final"] == plain["error"]
    monkeypatch.setattr(torch, "save", lambda *a, **k: pytest.fail("the sample was written again"))
    assert reference_runs(ARCHS, sample, check, _base(), tmp_path / "reference", progress=False) == runs


def test_seed_errors_run_at_every_s_as_the_fptas_measures_them(tmp_path, toy_teacher):
    teacher, _ = toy_teacher
    sample = _sample(teacher)
    errors, table = seed_errors(ARCHS, sample, [2, 4], [0, 1], _base(), tmp_path / "noise", progress=False)
    assert len(table) == len(ARCHS) * 2 * 2 * len(_base().thetas), "one training per (ξ, θ, s, seed)"
    assert sorted(errors) == [("a", 2), ("a", 4), ("b", 2), ("b", 4)]
    by_hand = surrogate_error(ARCHS[0], TOY, sample.train.head(4), sample.heldout, 4, 1e-3, 1, KDWeights(), 1)
    assert errors[("b", 4)][ARCHS[0].name][1] == by_hand["error"]  # seed 1, s = 4, θ b
    assert all(len(v) == 2 for by_arch in errors.values() for v in by_arch.values())


def test_inherited_error_is_the_error_of_the_sliced_model_trained_by_hand(tmp_path, toy_teacher):
    teacher, folder = toy_teacher
    calibration = toy_blocks(n=7, seed=3)
    sample = _sample(teacher, calibration)
    job = replace(_base("inherited", folder), archs=[a.name for a in ARCHS], steps=3, shard_dir=str(tmp_path))
    rows = evaluated(job, sample.head(3), progress=False)
    for arch in ARCHS:
        sliced = inherit(teacher, arch, calibration)  # the pretraining arm's slice
        for theta in job.thetas:
            by_hand = surrogate_error(
                arch, TOY, sample.train.head(3), sample.heldout, 3, theta["lr"], 1, KDWeights(), 0,
                initial=copy.deepcopy(sliced),
            )  # fmt: skip
            row = next(r for r in rows if (r["arch"], r["theta"]) == (arch.name, theta["name"]))
            assert row["error"] == pytest.approx(by_hand["error"], rel=1e-6)
            fresh = surrogate_error(
                arch, TOY, sample.train.head(3), sample.heldout, 3, theta["lr"], 1, KDWeights(), 0
            )
            assert row["error"] != pytest.approx(fresh["error"], rel=1e-4)  # not a random init
    keyed = replace(job, sample_key="k")
    assert replace(keyed, init="random", inherit=None).settings_key() != keyed.settings_key()


# --- the stage's choice of init and its fairness line ---


def _search(init, ci_low, steps=8, theta="a"):
    from ose.stages.extract import InitSearch

    used = (
        None
        if ci_low is None
        else {"theta": theta, "s": steps, "tau_b": 0.5, "ci_low": ci_low, "ci_high": 0.9}
    )
    chosen = None if steps is None else object()
    return InitSearch(init, [], [], [], [], steps, f"{init} reason", [], chosen, used)


def test_auto_init_takes_the_higher_lower_bound_of_tau_at_its_fptas_theta_and_s():
    from ose.stages.extract import choose_init

    assert choose_init("auto", {"random": _search("random", -0.2), "inherited": _search("inherited", 0.1)})[
        0
    ] == ("inherited")
    assert (
        choose_init("auto", {"random": _search("random", 0.3), "inherited": _search("inherited", 0.1)})[0]
        == "random"
    )
    equal = {"random": _search("random", 0.1), "inherited": _search("inherited", 0.1)}
    init, reason = choose_init("auto", equal)
    assert init == "random" and "random 0.10, inherited 0.10" in reason  # equal: the first listed
    # an init without a validated s cannot win; with none at all the stage stops
    no_s = {"random": _search("random", None, steps=None), "inherited": _search("inherited", -0.5)}
    assert choose_init("auto", no_s)[0] == "inherited"
    none = {
        "random": _search("random", None, steps=None),
        "inherited": _search("inherited", None, steps=None),
    }
    with pytest.raises(ValueError, match="no init has a validated s"):
        choose_init("auto", none)
    assert choose_init("random", equal) == ("random", "extract.init: random in params.yaml")
    with pytest.raises(ValueError, match="extract.init: random"):
        choose_init("random", none)


def test_fairness_reads_the_check_at_the_fptas_theta_and_s():
    from ose.stages.extract import Result, fairness

    def result(qualifies=True, tokens=1190, used=True):
        row = {"theta": "a", "s": 8, "tau_b": 0.5, "ci_low": 0.1, "ci_high": 0.9}
        noise = [
            {
                "theta": "a",
                "s": 8,
                "mean_std_over_seeds": 0.01,
                "std_across_archs": 0.05,
                "qualifies": qualifies,
            }
        ]
        inits = {"random": {"check_at_fptas": row if used else None, "seed_noise": noise}}
        fields = {f: None for f in Result.__dataclass_fields__}
        return Result(**{**fields, "theta": "a", "max_steps": 8, "init": "random", "inits": inits,
                         "heldout_masked_tokens": tokens})  # fmt: skip

    assert fairness(result()) == "no gap known"
    assert "within twice its seed noise" in fairness(result(qualifies=False))
    assert "< 1,000" in fairness(result(tokens=144))
    assert "logged no s = 8 under a" in fairness(result(used=False))


def test_the_inherited_space_holds_the_architectures_the_source_can_fill():
    from ose.stages.extract import init_spaces
    from ose.training.inherit import fits

    source = Arch.parse("D6-A12-H384-I1536")  # heads of size 32
    fine, too_many_heads = Arch.parse("D2-A4-H384-I768"), Arch.parse("D2-A8-H384-I768")  # 12 vs 16 heads
    assert fits(fine, source) and not fits(too_many_heads, source)
    assert not fits(Arch.parse("D7-A4-H128-I96"), source)  # deeper than the source
    spaces = init_spaces([fine, too_many_heads], source)
    assert spaces == {"random": [fine, too_many_heads], "inherited": [fine]}
