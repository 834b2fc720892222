"""The report renders from the stages' typed results alone, and says which stages have not run."""

from ose import paper
from ose.pipeline.results import write_table
from ose.reporting.markdown import read_table
from ose.stages import agora_torus as torus
from ose.stages import finetune
from ose.stages.report import read_metrics, render


def _finetune(task: str, profile: str, plain: list[float], gain: float) -> finetune.Result:
    """A finetune result: Agora adds `gain` over plain on every seed; the control adds nothing."""
    from ose.stats import paired_effect

    agora = [x + gain for x in plain]

    def summary(scores: list[float]) -> dict:
        return {"scores": scores, "mean": sum(scores) / len(scores), "std": 0.0}

    return finetune.Result(
        profile=profile,
        task=task,
        metric="accuracy",
        train_size=200,
        dev_size=300,
        test_size=852,
        seeds=list(range(len(plain))),
        students=["inherited_kd"],
        labeller=summary([0.8] * len(plain)),
        arms={"inherited_kd": {"plain": summary(plain), "agora": summary(agora), "control": summary(plain)}},
        effects={
            "inherited_kd": {
                "agora_vs_plain": paired_effect(agora, plain).as_dict(),
                "agora_vs_control": paired_effect(agora, plain).as_dict(),
            }
        },
        best_round={"inherited_kd": {"agora": [2] * len(plain), "control": [1] * len(plain)}},
        points_added={"inherited_kd": {"agora": [10] * len(plain), "control": [10] * len(plain)}},
        anchor_agreement={"inherited_kd": {"agora": 0.6, "control": 0.9}},
        collapsed_rounds={"inherited_kd": 0},
        thetas=[{"name": "lr-1e-3", "lr": 1e-3, "epochs": 3}],
        tie_tolerance=0.0,
        replay=0,
        generator={"k": 10, "fraction": 0.15, "n_new": 1},
    )


def test_report_renders_from_metrics(tmp_path):
    metrics, tables = tmp_path / "metrics", tmp_path / "tables"
    write_table(
        tables / "bort_sizes",
        [
            {
                "shape": "bort-paper",
                "arch": "D4-A8-H768-I1024",
                "total_M": 55.35,
                "paper_total_M": 56.0,
                "embedding_M": 39.0,
                "paper_embedding_M": 39.0,
                "pct_of_bert_large": 16.52,
                "paper_pct_of_bert_large": 16.0,
                "effective_pct_of_bert_large": 5.39,
                "paper_effective_pct_of_bert_large": 5.5,
                "matches_all": True,
            }
        ],
    )
    torus.Result(
        profile="smoke",
        seed=0,
        accuracy_without_agora=0.5,
        accuracy_with_agora=0.9,
        accuracy_train_plus_dev_true_labels=0.95,
        points_added=17,
        labeller_calls=2,
        rounds=3,
    ).write(metrics / "agora_torus.json")
    plain = [0.70, 0.71, 0.69, 0.72, 0.70, 0.68, 0.73]
    _finetune("imdb", "default", plain, 0.02).write(metrics / "finetune" / "imdb.json")
    _finetune("rte", "paper", plain, 0.0).write(metrics / "finetune" / "rte.json")
    text = render(metrics, tables, "smoke")
    assert "Profile **smoke**" in text
    assert "The paper's figures match the **bort-paper** shape" in text
    assert "0.500 without Agora, 0.900 with it (17 points added)" in text
    assert "*(stage `extract` has not run)*" in text and "*(stage `benchmark` has not run)*" in text
    assert paper.NLU in text and paper.SIZE in text
    # each task's Agora part: its verdict line follows from the paired, Holm-corrected numbers
    assert "### imdb" in text and "### rte" in text
    assert "Agora helps" in text and "Agora − plain +2.0 points" in text and "n = 7 seeds" in text
    # a GLUE task names the paper's score for it
    assert "Paper's GLUE test scores for these tasks (0-100): rte 82.7 (accuracy)" in text
    # the paper's per-task reference table, every GLUE task with Bort's and BERT-large's score
    for task, (metric, bort, large) in paper.GLUE.items():
        assert f"| GLUE | {task} | {metric} | {bort} | {large} |" in text
    found = read_metrics(metrics)
    assert list(found.finetune) == ["imdb", "rte"] and found.finetune["rte"].profile == "paper"
    assert found.agora_torus.points_added == 17
    assert found.costs is None and found.benchmark is None


def test_tables_read_back_typed(tmp_path):
    rows = [
        {"name": "a", "count": 3, "share": 0.5, "holds": True, "note": "x"},
        {"name": "b|c", "count": 40_000, "share": 1.0, "holds": False, "note": None},
    ]
    write_table(tmp_path / "t", rows)
    back = read_table(tmp_path / "t.csv")
    assert back == [{**rows[0]}, {**rows[1], "note": ""}]  # an empty cell reads back empty
    assert [type(v) for v in back[1].values()] == [str, int, float, bool, str]


def test_why_the_smallest_architecture_is_explained_with_numbers(tmp_path):
    from ose.stages.extract import Result, _why_smallest

    geometry = {
        "space": {
            "size_factor_min": 0.58,
            "size_factor_max": 0.99,
            "cost_factor_min": 0.5,
            "cost_factor_max": 0.9,
        }
    }
    values = {f.name: None for f in __import__("dataclasses").fields(Result)}
    m = Result(**{**values, "position": 1, "geometry": geometry})
    write_table(tmp_path / "extract_candidates", [{"arch": "a", "error": 2.0}, {"arch": "b", "error": 2.1}])
    text = _why_smallest(m, tmp_path)
    assert "2.000–2.100" in text and "5.0% spread" in text and "0.58–0.99" in text
    assert _why_smallest(Result(**{**values, "position": 2, "geometry": geometry}), tmp_path) == ""


def _pretrain_result(kd: float, mlm: float, inherited: float):
    from ose.stages import pretrain

    def arm(name: str, acc: float) -> dict:
        seeds = {"0": {"masked_acc": acc, "mlm_ce": 5.0, "grad_norm_ratio": 0.0, "seconds": 2.0}}
        return {"arm": name, "masked_acc": acc, "mlm_ce": 5.0, "fraction_of_teacher_acc": acc / 0.3} | {
            "steps": 7,
            "seconds": 2.0,
            "lr": 1e-3,
            "grad_norm_ratio": 0.5,
            "by_seed": seeds,
            "mean_masked_acc": acc,
            "mean_mlm_ce": 5.0,
        }

    arms = {"kd": arm("kd", kd), "mlm": arm("mlm", mlm), "inherited_kd": arm("inherited_kd", inherited)}
    noise = pretrain.seed_noise(arms)
    verdicts = pretrain.distillation_verdicts(arms, noise)
    return pretrain.Result(
        profile="smoke",
        arch="D1-A3-H15-I7",
        params=1,
        steps=7,
        arms=arms,
        teacher_heldout_mlm_ce=4.0,
        teacher_heldout_masked_acc=0.3,
        nproc=1,
        kd_weights={"kd": {"alpha": 0.5, "beta": 0.5, "temperature": 2.0, "form": "kl"}},
        mask_prob=0.15,
        bf16=False,
        inherit={},
        distillation_helps={init: v["kd"]["verdict"] == "helps" for init, v in verdicts.items()},
        seconds=1.0,
        machine={},
        seeds=[0],
        seeded_arms=[],
        lr_sweep={},
        seed_noise=noise,
        verdicts=verdicts,
    )


def test_claims_table_has_one_row_per_claim_with_an_allowed_verdict(tmp_path):
    from ose.reporting.markdown import VERDICTS
    from ose.stages.report import Metrics, claims

    rows = claims(Metrics(), tmp_path)  # nothing has run
    assert len(rows) == 9 and {r["verdict"] for r in rows} == {"not testable here"}
    assert "as accurate as its source" in rows[0]["claim"], "the paper's headline, at our scale, first"
    assert any("20" in r["claim"] for r in rows) and any("7.9" in r["claim"] for r in rows)
    helps = claims(Metrics(pretrain=_pretrain_result(0.12, 0.09, 0.2)), tmp_path)
    kd_row = next(r for r in helps if "knowledge distillation" in r["claim"])
    assert kd_row["verdict"] == "reproduced at reduced scale"
    assert "textbook KD: helps, masked-token accuracy 0.120 against 0.090 (better)" in kd_row["here"]
    hurts = claims(Metrics(pretrain=_pretrain_result(0.08, 0.09, 0.2)), tmp_path)
    assert next(r for r in hurts if "knowledge distillation" in r["claim"])["verdict"] == "not reproduced"
    assert all(r["verdict"] in VERDICTS for r in helps + hurts)


def test_pretraining_section_states_the_kd_verdict_and_the_inherited_fraction():
    from ose.stages import teacher
    from ose.stages.pretrain import pretraining_section

    t = teacher.Result(
        profile="smoke",
        source="s",
        arch="D2-A4-H16-I23",
        steps=5,
        masked_acc_before=0.01,
        masked_acc_after=0.3,
        mlm_ce_before=9.0,
        mlm_ce_after=4.0,
        heldout_masked_tokens=10,
        train_seconds=3.0,
        tokens_per_second=1.0,
        machine={},
    )
    text = pretraining_section(t, _pretrain_result(0.12, 0.09, 0.2))
    assert "from random init, textbook distillation → **helps**" in text
    assert "cross-entropy 5.000 against 5.000 (within seed noise)" in text
    assert "No arm ran two seeds" in text and "not swept" in text
    assert "reaches **67%** of the teacher's" in text


def test_report_reads_only_the_tasks_it_is_given(tmp_path):
    """The metrics of a task dropped from params (written by older code) do not break the report."""
    metrics = tmp_path / "metrics"
    _finetune("imdb", "default", [0.7, 0.71, 0.69], 0.01).write(metrics / "finetune" / "imdb.json")
    (metrics / "finetune" / "bbc.json").write_text('{"old": "format"}')
    assert list(read_metrics(metrics, ["imdb"]).finetune) == ["imdb"]
    assert "### imdb" in render(metrics, tmp_path / "tables", "default", ["imdb"])


def test_a_t_interval_excluding_zero_is_stated_beside_the_corrected_verdict():
    from ose.stages.finetune import _uncorrected

    effects = {
        "agora_vs_plain": {"mean": 0.038, "ci_low": 0.009, "ci_high": 0.066, "t_p": 0.018},
        "agora_vs_control": {"mean": -0.004, "ci_low": -0.027, "ci_high": 0.019, "t_p": 0.67},
    }
    note = _uncorrected(effects, {"agora_vs_plain": 0.094, "agora_vs_control": 0.69})
    assert "agora − plain's 95% t interval excludes 0 (t-test p = 0.018" in note
    assert "0.094" in note and "control" not in note
    assert _uncorrected(effects, {"agora_vs_plain": 0.01, "agora_vs_control": 0.69}) == ""


def test_every_verdict_says_whether_the_test_was_fair_to_the_method(tmp_path):
    """A comparison whose arms differ in more than the claim says so beside its verdict, with the
    numbers that show it; a claim not tested says nothing; a fair one says so."""
    from dataclasses import replace

    from ose.stages.report import CLAIM_COLUMNS, Metrics, claims, fairness

    rt = _finetune("rotten_tomatoes", "default", [0.5, 0.55, 0.6], 0.02)
    rt = replace(rt, labeller={"scores": [0.6, 0.7, 0.65], "mean": 0.65, "std": 0.05})
    pretrain = _pretrain_result(0.08, 0.09, 0.2)
    m = Metrics(finetune={"rotten_tomatoes": rt}, pretrain=pretrain)
    gaps = fairness(m)
    assert "90% of the control's points, 60% of Agora's" in gaps["finetune"]
    assert "on 2 of 3 (task, size, seed) runs" in gaps["finetune"]
    assert "one seed per arm" in gaps["pretrain"] and "not swept at this ξ" in gaps["pretrain"]
    assert "extract" not in gaps
    rows = claims(m, tmp_path)
    assert all(set(CLAIM_COLUMNS) <= set(r) for r in rows)
    agora = next(r for r in rows if r["claim"].startswith("Agora"))
    assert agora["fair test?"] == gaps["finetune"]
    assert {r["fair test?"] for r in rows if r["verdict"] == "not testable here"} == {"—"}
    nothing_added = replace(rt, anchor_agreement={"inherited_kd": {"agora": None, "control": None}})
    assert "90%" not in fairness(Metrics(finetune={"rotten_tomatoes": nothing_added}))["finetune"]
    placed_at_random_dev = replace(rt, control_anchor="random_dev")
    assert "anchors" not in fairness(Metrics(finetune={"rotten_tomatoes": placed_at_random_dev}))["finetune"]
    seeded = {**pretrain.arms["kd"], "by_seed": {"0": {}, "1": {}}}
    fairer = replace(
        pretrain,
        arms={"kd": seeded},
        seed_noise={"masked_acc": 0.01, "mlm_ce": 0.1},
        lr_sweep={"random": {"steps": 3, "rows": [], "chosen": 1e-3}},
        kd_weights={},
    )
    assert fairness(Metrics(pretrain=fairer))["pretrain"] == "no gap known"
    rows = [{"lr": lr} for lr in (3e-4, 1e-3, 3e-3)]
    inside = replace(fairer, lr_sweep={"random": {"steps": 3, "rows": rows, "chosen": 1e-3}})
    assert fairness(Metrics(pretrain=inside))["pretrain"] == "no gap known"
    edge = replace(fairer, lr_sweep={"random": {"steps": 3, "rows": rows, "chosen": 3e-3}})
    assert "lr 0.003 is the edge of the swept grid" in fairness(Metrics(pretrain=edge))["pretrain"]
    with_mlm = replace(inside, arms={"kd": seeded, "mlm": {**seeded, "loss": "mlm"}})
    assert "the MLM arm trains with it" in fairness(Metrics(pretrain=with_mlm))["pretrain"]
    released = {**seeded, "loss": "kd_released", "grad_norm_ratio": 1e-9}
    inert = replace(inside, arms={"kd": seeded, "kd_released": released})
    gap = fairness(Metrics(pretrain=inert))["pretrain"]
    assert "kd_released: the KD term's gradient is under 1e-06" in gap
    working = replace(inside, arms={"kd": seeded, "kd_released": {**released, "grad_norm_ratio": 0.2}})
    assert fairness(Metrics(pretrain=working))["pretrain"] == "no gap known"
