"""Stages costs, data, teacher, extract and pretrain: their metrics contract and pure helpers."""

import json
from dataclasses import asdict, fields, replace

import pandas as pd
import pytest

from ose.arch import BERT_EMBEDDING, Arch
from ose.configs import LrSweep
from ose.data.tasks import TaskData
from ose.params import from_dict, render_profile
from ose.search import fptas
from ose.search.cost_model import CostModel, Costs, LatencySettings, SpaceFit
from ose.search.extraction import EXPONENT_ABLATION
from ose.stages import costs, data, extract, pretrain, teacher
from ose.training.distill import MLM_ONLY, KDWeights

MACHINE = ["machine"]
# The metrics keys, in order, as the notebooks wrote them before the stages moved into ose.stages:
# stages downstream (finetune, report) read these names. Later keys may only be appended.
KEYS = {
    costs: ["profile", "settings", "n_measured_default", "n_measured_paper", "default_space_mape_fit"]
    + ["default_space_mape_heldout", "paper_space_mape_fit", "paper_space_mape_heldout", "abnc"]
    + ["abnc_share_of_space", "bort_shape_matching_paper"]
    + MACHINE,
    data: ["profile", "tasks", "corpus_train_blocks", "corpus_heldout_blocks", "corpus_train_tokens"]
    + ["block_size", "excluded_eval_documents"],
    teacher: ["profile", "source", "arch", "steps", "masked_acc_before", "masked_acc_after", "mlm_ce_before"]
    + ["mlm_ce_after", "heldout_masked_tokens", "train_seconds", "tokens_per_second"]
    + MACHINE,
    extract: ["profile", "arch", "w", "surrogate_error", "theta", "epsilon", "n_space", "n_candidates"]
    + ["n_trainings", "approx_ratio", "exhaustive_arch", "exhaustive_w", "exhaustive_trainings", "seconds"]
    + ["exhaustive_seconds", "table_wall_seconds", "nproc", "params", "params_vs_source"]
    + ["predicted_latency_ms", "latency_vs_source", "smaller_and_faster_than_source", "pareto_front_size"]
    + ["chosen_on_pareto_front"]
    + MACHINE,
    pretrain: ["profile", "arch", "params", "steps", "arms", "teacher_heldout_mlm_ce"]
    + ["teacher_heldout_masked_acc", "nproc", "kd_weights", "mask_prob", "bf16", "inherit"]
    + ["distillation_helps", "seconds"]
    + MACHINE,
}
STAGES = list(KEYS)


@pytest.mark.parametrize("stage", STAGES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_result_fields_are_the_metrics_keys(stage):
    assert [f.name for f in fields(stage.Result)][: len(KEYS[stage])] == KEYS[stage]


@pytest.mark.parametrize("stage", STAGES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_result_round_trips(stage, tmp_path):
    names = [f.name for f in fields(stage.Result)]
    result = stage.Result(**{name: k for k, name in enumerate(names)})
    path = result.write(tmp_path / "m.json")
    assert stage.Result.read(path) == result
    assert list(json.loads(path.read_text())) == names


# --- costs -----------------------------------------------------------------------------------


def test_latency_settings_are_only_the_measurement_settings():
    settings = Costs(1, 32, 1, 2, 3, n_sample_default=5, n_sample_paper=4, heldout_fraction=0.25)
    out = costs.latency_settings(settings)
    assert out == {"batch_size": 1, "seq_len": 32, "threads": 1, "warmup": 2, "repeats": 3}
    assert out == vars(LatencySettings(1, 32, 1, 2, 3))


def test_fit_summary_and_verdict_rows():
    model = CostModel((0.5, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0), seq_len=8, batch_size=1, threads=1)
    fit = SpaceFit("default", model, [{"arch": "x"}] * 3, mape_fit=1.5, mape_heldout=2.5)
    (row,) = costs.fit_summary({"default": fit})
    assert row["space"] == "default" and row["measured"] == 3
    assert row["MAPE fit (%)"] == 1.5 and row["MAPE held-out (%)"] == 2.5
    assert row["1"] == 0.5 and row["D·A·L²"] == 2.0
    fraction = {
        "a": dict.fromkeys(costs.abnc.CONDITIONS, 1.0),
        "b": dict.fromkeys(costs.abnc.CONDITIONS, 0.5),
    }
    verdict = {
        "a": dict.fromkeys(costs.abnc.CONDITIONS, True),
        "b": dict.fromkeys(costs.abnc.CONDITIONS, False),
    }
    rows = costs.verdict_rows(fraction, verdict)
    assert [r["condition"] for r in rows] == list(costs.abnc.CONDITIONS)
    assert list(rows[0]) == ["condition", "a: share of space", "b: share of space", "a: holds", "b: holds"]
    assert rows[0]["b: share of space"] == 0.5 and rows[0]["a: holds"] is True


def test_marks_only_inside_the_space():
    source = Arch(2, 2, 8, 16)
    assert costs.marks(source, [source], "default") == {f"source {source.name}": source}
    assert costs.marks(source, [Arch(1, 1, 8, 8)], "default") == {}
    assert costs.marks(source, [source], "other") == {}


# --- data ------------------------------------------------------------------------------------


def test_task_rows_and_metrics():
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    task = TaskData("t", frame, frame[:1], frame[:2], 2, ("accuracy",), "accuracy", False, ("text",))
    rows = data.task_rows([task])
    assert rows == [{"task": "t", "metric": "accuracy", "labels": 2, "train": 3, "dev": 1, "test": 2}]
    assert data.task_metrics(rows) == {
        "t": {"metric": "accuracy", "labels": 2, "train": 3, "dev": 1, "test": 2}
    }


def test_source_rows_keep_the_shown_columns():
    source = {key: k for k, key in enumerate(data.SOURCE_COLUMNS)} | {"extra": "dropped"}
    assert data.source_rows({"sources": [source]}) == [{key: k for k, key in enumerate(data.SOURCE_COLUMNS)}]


# --- teacher ---------------------------------------------------------------------------------


def test_teacher_train_seconds_and_title():
    history = [{"step": 1, "loss": 2.0, "seconds": 1.5}, {"step": 1, "masked_acc": 0.1}]
    assert teacher.train_seconds(history) == 1.5
    assert teacher.train_seconds([]) == 0.0
    assert "used as is" in teacher.curves_title("src", [])
    assert "adaptation of src" in teacher.curves_title("src", history)


# --- extract ---------------------------------------------------------------------------------


def _points_and_table():
    archs = [Arch(1, 1, 8, 8), Arch(1, 1, 8, 16), Arch(2, 1, 8, 16), Arch(2, 2, 16, 16)]
    points = [fptas.Point(a, 10 * (k + 1), float(k + 1)) for k, a in enumerate(archs)]
    errors = {archs[0].name: 4.0, archs[1].name: 1.0, archs[2].name: 1.5, archs[3].name: 0.5}
    table = [{"arch": name, "theta": "t", "error": e, "seconds": 1.0} for name, e in errors.items()]
    return points, table, (100, 10.0)


def test_sweep_epsilons_adds_one_and_the_chosen():
    assert extract.sweep_epsilons([4, 2, 2], 3) == [1, 2, 3, 4]


def test_exponent_rows_match_the_selections():
    points, table, max_point = _points_and_table()
    rows = extract.exponent_rows(points, table, 2, max_point, [(1.0, 1.0, 1.0), (1.0, 1.0, 4.0)])
    for row, triple in zip(rows, [(1.0, 1.0, 1.0), (1.0, 1.0, 4.0)], strict=True):
        best = fptas.select_from_table(points, table, 1, triple, max_point).best
        at_eps = fptas.select_from_table(points, table, 2, triple, max_point).best
        assert row == {
            "exponents (p, i, ê)": str(triple),
            "optimum": best.arch.name,
            "optimum ê": best.error,
            "FPTAS at ε = 2": at_eps.arch.name,
            "ratio": at_eps.w / best.w,
        }


def test_exponent_rows_guard_w_zero():
    """Every ξ of one size, the maximum point's: every W is 0, and the ratio is 1, not 0 / 0."""
    points, table, _ = _points_and_table()
    same_size = [fptas.Point(pt.arch, 10, pt.i) for pt in points]
    (row,) = extract.exponent_rows(same_size, table, 2, None, [(1.0, 1.0, 1.0)])
    assert row["ratio"] == 1.0


def test_candidate_rows_and_comparison():
    points, table, max_point = _points_and_table()
    optimum = fptas.select_from_table(points, table, 1, (1.0, 1.0, 1.0), max_point)
    chosen = fptas.select_from_table(points, table, 2, (1.0, 1.0, 1.0), max_point)
    rows = extract.candidate_rows(optimum, chosen)
    assert [r["arch"] for r in rows] == [p.name for p in points]
    assert [r["fptas_candidate"] for r in rows] == [True, False, True, False]
    assert [r["pareto"] for r in rows] == fptas.pareto_front(fptas.best_per_candidate(optimum.rows))
    search = [r["search"] for r in extract.comparison_rows(chosen, optimum)]
    assert search == ["FPTAS, ε = 2", "exhaustive (ε = 1)"]


def test_exponent_ablation_starts_with_the_papers_w():
    assert EXPONENT_ABLATION[0] == fptas.DEFAULT_EXPONENTS


# --- pretrain --------------------------------------------------------------------------------


def _paths(tmp_path):
    return pretrain.Paths(
        teacher_dir=tmp_path / "t",
        corpus_dir=tmp_path / "c",
        student_dir=tmp_path / "s",
        baseline_dir=tmp_path / "b",
        inherited_dir=tmp_path / "i",
        inherited_mlm_dir=tmp_path / "j",
        arms_dir=tmp_path / "a",
        checkpoint_dir=tmp_path / "k",
    )


def test_pretrain_jobs(tmp_path):
    params = from_dict(render_profile("smoke"))
    jobs = pretrain.jobs(params, "D2-A2-H128-I256", BERT_EMBEDDING, _paths(tmp_path), {"inherited": 3e-3})
    arms = ["kd", "kd_released", "mlm", "inherited_kd", "inherited_kd_released", "inherited_mlm"]
    assert params.pretrain.arms == arms and params.pretrain.seeds == [0, 1]
    assert list(jobs) == [*arms, "inherited_kd_seed1", "inherited_mlm_seed1"]
    kd, released, mlm, inherited, inherited_released, inherited_mlm = (jobs[a] for a in arms)
    assert inherited_mlm.init == "inherited" and inherited_mlm.weights == mlm.weights
    assert inherited_mlm.uses_teacher  # its init is sliced from the teacher
    assert kd.weights == inherited.weights == asdict(params.distill.textbook()) and kd.uses_teacher
    assert released.weights == inherited_released.weights == asdict(params.distill.released.weights())
    assert released.weights == {"alpha": 0.1, "beta": 0.5, "temperature": 2.0, "form": "released"}
    assert mlm.weights == asdict(MLM_ONLY) and not mlm.uses_teacher
    assert (kd.init, mlm.init, inherited.init) == ("random", "random", "inherited")
    assert inherited.inherit == asdict(params.pretrain.inherit) and kd.inherit is None
    folders = [jobs[a].out_dir for a in ("kd", "mlm", "inherited_kd", "inherited_mlm")]
    assert folders == [str(tmp_path / d) for d in ("s", "b", "i", "j")]
    assert released.out_dir == str(tmp_path / "a" / "kd_released")
    assert jobs["inherited_kd_seed1"].out_dir == str(tmp_path / "a" / "inherited_kd_seed1")
    assert mlm.checkpoint_dir == str(tmp_path / "k" / "mlm")
    # paired seeds: same arm, other seed; every run scored on the one held-out masking of `seed`
    assert [jobs[n].seed for n in jobs] == [0] * 6 + [1, 1]
    assert {job.heldout_seed for job in jobs.values()} == {params.seed}
    # the sweep's choice per init; an init not swept trains with pretrain.lr
    assert {jobs[n].config["lr"] for n in jobs if jobs[n].init == "inherited"} == {3e-3}
    assert kd.config["lr"] == params.pretrain.lr
    for job in jobs.values():
        assert job.config == asdict(replace(params.pretrain.recipe(), lr=job.config["lr"]))
        assert "arms" not in job.config and job.embedding == asdict(BERT_EMBEDDING)


def test_pretrain_jobs_follow_the_arms_and_seeds_params():
    params = from_dict(render_profile("smoke"))
    cfg = replace(params.pretrain, arms=["inherited_kd", "kd"], seeds=[3, 1, 2], seeded_arms=["kd"])
    params = replace(params, pretrain=cfg)
    runs = list(pretrain.jobs(params, "D2-A2-H128-I256", BERT_EMBEDDING, pretrain.Paths()))
    assert runs == ["inherited_kd", "kd", "kd_seed1", "kd_seed2"]


def test_lr_sweep_jobs_shorten_each_inits_kd_arm(tmp_path):
    params = from_dict(render_profile("smoke"))
    cfg = replace(params.pretrain, steps=10, warmup_steps=4, lr_sweep=LrSweep(lrs=[1e-3, 3e-3], steps=5))
    sweep = pretrain.sweep_jobs(
        replace(params, pretrain=cfg), "D2-A2-H128-I256", BERT_EMBEDDING, _paths(tmp_path)
    )
    assert list(sweep) == [("random", 1e-3), ("random", 3e-3), ("inherited", 1e-3), ("inherited", 3e-3)]
    job = sweep[("inherited", 3e-3)]
    assert job.init == "inherited" and job.weights == asdict(params.distill.textbook())
    assert (job.config["steps"], job.config["warmup_steps"], job.config["lr"]) == (5, 2, 3e-3)
    assert job.checkpoint_dir == str(tmp_path / "k" / "lr_sweep" / "inherited_lr0.003")
    assert job.seed == cfg.seeds[0]
    assert (
        pretrain.sweep_jobs(
            replace(params, pretrain=replace(cfg, lr_sweep=LrSweep(lrs=[], steps=5))),
            "D2-A2-H128-I256",
            BERT_EMBEDDING,
            _paths(tmp_path),
        )
        == {}
    )


def test_sweep_chooses_the_lowest_heldout_cross_entropy():
    rows = [{"lr": 1e-3, "mlm_ce": 7.1}, {"lr": 3e-3, "mlm_ce": 6.9}, {"lr": 3e-4, "mlm_ce": 7.5}]
    assert pretrain.choose_lr(rows) == 3e-3
    assert pretrain.choose_lr([{"lr": 2e-3, "mlm_ce": 7.0}, {"lr": 1e-3, "mlm_ce": 7.0}]) == 1e-3


def _arm(arm, seed_scores):
    runs = {
        f"{arm}{s}": {
            "arm": arm,
            "seed": s,
            "masked_acc": a,
            "mlm_ce": c,
            "grad_norm_ratio": 0.0,
            "seconds": 1.0,
        }
        for s, (a, c) in seed_scores.items()
    }
    return runs


def test_seed_noise_is_the_largest_spread_across_seeds_of_one_arm():
    runs = _arm("inherited_kd", {0: (0.10, 7.0), 1: (0.13, 6.9)}) | _arm(
        "inherited_mlm", {0: (0.2, 6.5), 1: (0.21, 6.0)}
    )
    runs |= _arm("kd", {0: (0.5, 1.0)})
    arms = pretrain.arm_summaries(runs, 0)
    assert arms["inherited_kd"]["masked_acc"] == 0.10 and arms["inherited_kd"][
        "mean_masked_acc"
    ] == pytest.approx(0.115)
    assert list(arms["inherited_kd"]["by_seed"]) == ["0", "1"]
    noise = pretrain.seed_noise(arms)
    assert noise["masked_acc"] == pytest.approx(0.03) and noise["mlm_ce"] == pytest.approx(0.5)
    assert pretrain.seed_noise({"kd": arms["kd"]}) == {"mlm_ce": None, "masked_acc": None}


def test_verdicts_read_both_measures_and_say_within_seed_noise():
    noise = {"masked_acc": 0.01, "mlm_ce": 0.05}

    def arm(acc, ce):
        return {"mean_masked_acc": acc, "mean_mlm_ce": ce}

    v = pretrain.distillation_verdict(arm(0.20, 6.0), arm(0.10, 7.0), noise)
    assert (v["masked_acc"]["reading"], v["mlm_ce"]["reading"], v["verdict"]) == ("better", "better", "helps")
    v = pretrain.distillation_verdict(arm(0.095, 6.0), arm(0.10, 7.0), noise)
    assert v["masked_acc"]["reading"] == "within seed noise" and v["verdict"] == "helps"
    assert pretrain.distillation_verdict(arm(0.05, 6.0), arm(0.10, 7.0), noise)["verdict"] == "mixed"
    assert pretrain.distillation_verdict(arm(0.05, 7.5), arm(0.10, 7.0), noise)["verdict"] == "hurts"
    assert (
        pretrain.distillation_verdict(arm(0.1, 7.01), arm(0.1, 7.0), noise)["verdict"] == "within seed noise"
    )
    assert pretrain.distillation_verdict(arm(0.1, 7.01), arm(0.1, 7.0), {})["mlm_ce"]["reading"] == "worse"


def test_distillation_verdicts_per_init_and_kd_form_need_both_arms():
    a = {"mean_masked_acc": 0.2, "mean_mlm_ce": 6.0}
    b = {"mean_masked_acc": 0.1, "mean_mlm_ce": 7.0}
    verdicts = pretrain.distillation_verdicts({"kd": a, "mlm": b, "inherited_kd": a}, {})
    assert list(verdicts) == ["random"] and list(verdicts["random"]) == ["kd"]
    verdicts = pretrain.distillation_verdicts(
        {"kd": b, "kd_released": a, "mlm": b, "inherited_kd": a, "inherited_mlm": b}, {}
    )
    assert (
        verdicts["random"]["kd_released"]["verdict"] == "helps"
        and verdicts["inherited"]["kd"]["verdict"] == "helps"
    )
    assert verdicts["random"]["kd"]["verdict"] == "within seed noise"  # a tie, no noise measured


def test_mlm_only_weights():
    assert MLM_ONLY == KDWeights(alpha=1.0, beta=0.0, temperature=1.0)


def test_pretrain_train_seconds():
    assert (
        pretrain.train_seconds([{"loss": 1.0, "seconds": 1.0}, {"loss": 1.0, "seconds": 2.5}, {"mlm_ce": 3}])
        == 2.5
    )
