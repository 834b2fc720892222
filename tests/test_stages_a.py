"""Stages costs, data, teacher, extract and pretrain: their metrics contract and pure helpers."""

import json
from dataclasses import asdict, fields, replace

import pandas as pd
import pytest

from ose.arch import BERT_EMBEDDING, Arch
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


def test_pretrain_jobs(tmp_path):
    params = from_dict(render_profile("smoke"))
    paths = pretrain.Paths(
        teacher_dir=tmp_path / "t",
        corpus_dir=tmp_path / "c",
        student_dir=tmp_path / "s",
        baseline_dir=tmp_path / "b",
        inherited_dir=tmp_path / "i",
        inherited_mlm_dir=tmp_path / "j",
        checkpoint_dir=tmp_path / "k",
    )
    jobs = pretrain.jobs(params, "D2-A2-H128-I256", BERT_EMBEDDING, paths)
    assert list(jobs) == params.pretrain.arms == ["kd", "mlm", "inherited_kd", "inherited_mlm"]
    kd, mlm, inherited, inherited_mlm = jobs.values()
    assert inherited_mlm.init == "inherited" and inherited_mlm.weights == mlm.weights
    assert inherited_mlm.uses_teacher  # its init is sliced from the teacher
    assert kd.weights == inherited.weights == asdict(params.distill) and kd.uses_teacher
    assert mlm.weights == {"alpha": 1.0, "beta": 0.0, "temperature": 1.0} and not mlm.uses_teacher
    assert (kd.init, mlm.init, inherited.init) == ("random", "random", "inherited")
    assert inherited.inherit == asdict(params.pretrain.inherit) and kd.inherit is None
    assert [j.out_dir for j in jobs.values()] == [str(tmp_path / d) for d in ("s", "b", "i", "j")]
    assert mlm.checkpoint_dir == str(tmp_path / "k" / "mlm")
    for job in jobs.values():
        assert job.config == asdict(params.pretrain.recipe()) and job.seed == params.seed
        assert "arms" not in job.config and job.embedding == asdict(BERT_EMBEDDING)


def test_pretrain_jobs_follow_the_arms_param(tmp_path):
    params = from_dict(render_profile("smoke"))
    params = replace(params, pretrain=replace(params.pretrain, arms=["inherited_kd", "kd"]))
    assert list(pretrain.jobs(params, "D2-A2-H128-I256", BERT_EMBEDDING, pretrain.Paths())) == [
        "inherited_kd",
        "kd",
    ]


def test_distillation_verdict_per_init_needs_both_arms():
    arms = {"kd": {"masked_acc": 0.2}, "mlm": {"masked_acc": 0.1}, "inherited_kd": {"masked_acc": 0.3}}
    assert pretrain.distillation_verdicts(arms) == {"random": True}
    arms["inherited_mlm"] = {"masked_acc": 0.31}
    assert pretrain.distillation_verdicts(arms) == {"random": True, "inherited": False}
    assert pretrain.distillation_verdicts({"kd": {"masked_acc": 0.2}}) == {}


def test_mlm_only_weights():
    assert MLM_ONLY == KDWeights(alpha=1.0, beta=0.0, temperature=1.0)


def test_pretrain_train_seconds():
    assert (
        pretrain.train_seconds([{"loss": 1.0, "seconds": 1.0}, {"loss": 1.0, "seconds": 2.5}, {"mlm_ce": 3}])
        == 2.5
    )
