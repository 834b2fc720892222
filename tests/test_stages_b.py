"""Stages finetune, agora_torus, benchmark and report (`ose.stages`): their results keep the metrics
files' keys, in order; the benchmark exports nothing without `benchmark.onnx`; the report stage
writes what `ose.stages.report.render` renders."""

import dataclasses
import json
import re
import shutil

import pandas as pd
import pytest

from ose import paper
from ose.arch import Arch, Embedding, build_model
from ose.finetuning.effects import CONCLUSIONS
from ose.params import load
from ose.pipeline import paths
from ose.stages import agora_torus as torus
from ose.stages import benchmark, finetune, report

METRICS = paths.ROOT / "reports" / "metrics"
TABLES = paths.ROOT / "reports" / "tables"
COMMITTED = [
    (torus.Result, METRICS / "agora_torus.json"),
    (benchmark.Result, METRICS / "benchmark.json"),
    *[(finetune.Result, p) for p in sorted((METRICS / "finetune").glob("*.json"))],
]


@pytest.mark.parametrize(
    ("cls", "path"), COMMITTED, ids=lambda x: getattr(x, "name", None) or x.__module__.rsplit(".", 1)[-1]
)
def test_results_keep_the_committed_metrics_keys_and_values(cls, path, tmp_path):
    if not path.exists():
        pytest.skip(f"{path.name}: stage not run")
    assert [f.name for f in dataclasses.fields(cls)] == list(json.loads(path.read_text()))
    cls.read(path).write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()


def test_finetune_paths_are_per_task():
    p = finetune.Paths()
    assert p.metrics("imdb") == paths.ROOT / "reports/metrics/finetune/imdb.json"
    assert finetune.Paths(metrics_file="out/bbc.json").metrics("bbc") == paths.ROOT / "out/bbc.json"
    assert p.scores_table("imdb").name == "finetune_imdb.md"
    assert p.arms_table("imdb").name == "finetune_imdb_arms.md"
    assert p.rounds_table("imdb").name == "finetune_imdb_agora_rounds.md"
    assert p.task_dir("imdb") == paths.ROOT / "data/tasks/imdb"
    assert p.cache("imdb") == paths.ROOT / "data/finetune/imdb"
    assert [p.student(s).name for s in ("kd", "mlm", "inherited_kd")] == [
        "student", "student_mlm_only", "student_inherited"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="finetune.students"):
        p.student("big")


def _comparison(seeds, students=("kd", "inherited_kd"), gain=0.02):
    """compare_on_task's shape: per (seed, student) a record; Agora gains `gain` over plain on every
    seed, and the control is Agora ± 0.01, alternating (a paired difference of mean 0)."""
    records = []
    for k, seed in enumerate(seeds):
        for student in students:
            plain = 0.6 + 0.01 * k
            control = plain + gain + 0.01 * (-1) ** k
            arms = {
                arm: {"score": score, "test_accuracy": score, "dev_score": 0.6, "theta": "lr-a",
                      "best_round": 1 if arm == "plain" else 2, "points_added": 0 if arm == "plain" else 10,
                      "dev_majority_share": 0.55, "dev_test_gap": 0.6 - score}
                for arm, score in (("plain", plain), ("agora", plain + gain), ("control", control))
            }  # fmt: skip
            rounds = [
                {"arm": arm, "round": r, "replay": False, "scores": {"lr-a": 0.5, "lr-b": 0.6},
                 "best_theta": "lr-b",
                 "constant_predictor": r == 2 and arm == "control", "added": 10 if r == 1 else 0,
                 "anchor_agreement": 0.9 if r == 1 else None, "removed": ["lr-a"],
                 "remaining": ["lr-b"] if r == 1 else [],
                 **({"stop": "one θ left and its round done"} if r == 2 else {})}
                for arm in ("agora", "control") for r in (1, 2)
            ]  # fmt: skip
            records.append(
                {"seed": seed, "student": student, "task": "imdb", "train_size": 100, "dev_size": 40,
                 "labeller": {"score": 0.75, "test_accuracy": 0.75, "dev_score": 0.7}, "arms": arms,
                 "rounds": rounds, "examples": [{"arm": "agora", "text": "a", "label": 1, "round": 1}],
                 "seconds": {"labeller": 1.0, "student": 2.0}}
            )  # fmt: skip
    return {"task": "imdb", "metric": "accuracy", "train_size": 100, "dev_size": 40, "test_size": 20,
            "chance": 0.5, "seeds": list(seeds), "students": list(students), "records": records}  # fmt: skip


def test_finetune_summary_pairs_arms_by_seed():
    params = load()
    seeds = params.finetune.seeds
    result = finetune.summarise_comparison(_comparison(seeds), params, "imdb")
    assert result.task == "imdb" and result.students == ["kd", "inherited_kd"] and result.seeds == seeds
    assert result.labeller["mean"] == pytest.approx(0.75)
    effect = result.effects["kd"]["agora_vs_plain"]
    assert effect["mean"] == pytest.approx(0.02) and effect["n"] == len(seeds)
    assert effect["sign_flip_p"] == pytest.approx(2 / 2 ** len(seeds)), "every seed gains: the exact floor"
    assert result.best_round["kd"] == {"agora": [2] * len(seeds), "control": [2] * len(seeds)}
    assert result.collapsed_rounds == {"kd": len(seeds), "inherited_kd": len(seeds)}
    assert result.anchor_agreement["kd"]["agora"] == pytest.approx(0.9)
    assert result.thetas == [dataclasses.asdict(t) for t in params.finetune.thetas]
    rows = finetune.round_rows(_comparison(seeds[:1], ("kd",)))
    assert rows[0] == {
        "seed": seeds[0], "student": "kd", "arm": "agora", "round": 1, "replay": False, "best_theta": "lr-b",
        "constant_predictor": False, "added": 10, "anchor_agreement": 0.9, "dev lr-a": 0.5, "dev lr-b": 0.6,
        "|Θ| left": 1, "stop": "",
    }  # fmt: skip
    assert [(r["student"], r["arm"]) for r in finetune.summary_rows(result)][:4] == [
        ("-", "labeller"), ("kd", "plain"), ("kd", "agora"), ("kd", "control")
    ]  # fmt: skip


def test_finetune_run_writes_tables_figure_and_metrics(tmp_path, monkeypatch):
    from PIL import Image

    params = load()
    comparison = _comparison(params.finetune.seeds)
    monkeypatch.setattr(
        finetune,
        "compare",
        lambda params, task, paths, progress: {size: comparison for size in params.finetune.train_sizes()},
    )
    out = finetune.Paths(
        metrics_file=str(tmp_path / "metrics" / "{task}.json"),
        tables_dir=tmp_path / "tables",
        figures_dir=tmp_path / "figures",
    )
    result, shown = finetune.run(params, "imdb", out, progress=False)
    assert finetune.Result.read(tmp_path / "metrics" / "imdb.json") == result
    for name in ("finetune_imdb", "finetune_imdb_arms", "finetune_imdb_agora_rounds"):
        assert (tmp_path / "tables" / f"{name}.csv").exists()
        assert (tmp_path / "tables" / f"{name}.md").exists()
    scores = pd.read_csv(tmp_path / "tables" / "finetune_imdb.csv")
    assert list(scores.columns)[:5] == ["seed", "labeller", "kd plain", "kd agora", "kd control"]
    assert len(scores) == len(params.finetune.seeds)
    assert shown["figure"] == tmp_path / "figures" / "finetune_imdb.png" and shown["figure"].exists()
    assert Image.open(shown["figure"]).size[0] <= 2400
    assert "agora − plain" in shown["effects"] and "dev lr-a" in shown["agora_rounds"]
    assert "| a |" in shown["added"] and "student s" in shown["seconds"]


def test_finetune_report_section_corrects_across_tasks_and_gives_verdicts(tmp_path):
    params = load()
    seeds = params.finetune.seeds
    results = {
        task: finetune.summarise_comparison({**_comparison(seeds, gain=gain), "task": task}, params, task)
        for task, gain in (("rotten_tomatoes", 0.02), ("imdb", 0.0))
    }
    corrected = finetune.agora_holm(results)
    raw = results["rotten_tomatoes"].effects["kd"]["agora_vs_plain"]["sign_flip_p"]
    assert corrected["rotten_tomatoes", "100", "kd", "agora_vs_plain"]["sign_flip_p"] == pytest.approx(
        2 * raw
    )
    assert corrected["imdb", "100", "kd", "agora_vs_plain"]["sign_flip_p"] == 1.0
    text = finetune.finetune_section(results)
    assert "### rotten_tomatoes" in text and "### imdb" in text and "Holm sign-flip p" in text
    assert CONCLUSIONS[1, 0] in text, "rotten_tomatoes: Agora beats plain, not the alternating control"
    assert CONCLUSIONS[0, 0] in text, "imdb: an effect of zero is a result"
    assert "finetune_rotten_tomatoes.png" in text


def _tiny_models(params, student_dir):
    arch, embedding = Arch(1, 2, 16, 32), Embedding(vocab_size=50, max_positions=16, type_vocab_size=2)
    return {name: build_model(arch, embedding, seed=k) for k, name in enumerate(("source", "student"))}


def _benchmark(tmp_path, monkeypatch, onnx: bool):
    params = load()
    cfg = dataclasses.replace(
        params.benchmark,
        presets=[],
        batch_sizes=[1, 3],
        seq_lens=[8],
        grid_models=["student", "student-onnx-int8"] if onnx else ["student"],
        warmup=0,
        rounds=3,
        repeats=1,
        min_round_ms=0.0,
        onnx=onnx,
        threads=1,
    )
    params = dataclasses.replace(params, benchmark=cfg)
    monkeypatch.setattr(benchmark, "load_models", _tiny_models)
    monkeypatch.setattr(benchmark.gemm, "gemm_peak_gflops", lambda threads, seed: {"gflops_per_s": 1.0})
    out = benchmark.Paths(
        student_dir="unused",
        onnx_dir=tmp_path / "onnx",
        metrics_file=tmp_path / "benchmark.json",
        tables_dir=tmp_path / "tables",
        figures_dir=tmp_path / "figures",
    )
    return benchmark.run(params, out, progress=False)


def test_benchmark_without_onnx_exports_nothing(tmp_path, monkeypatch):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "student.onnx").write_text("stale")
    result, shown = _benchmark(tmp_path, monkeypatch, onnx=False)
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [benchmark.SKIPPED]
    assert result.onnx_equivalence == {} and result.int8_stability == []
    assert result.ort_speedup_extracted is None and result.ort_int8_speedup_extracted is None
    headline = result.speedup_extracted_vs_source
    assert (headline["batch"], headline["seq"]) == (1, 8)  # the smallest cell
    assert 0 < headline["ci_low"] <= headline["speedup"] <= headline["ci_high"]
    # the source is not a grid model: timed at the smallest cell only; the student at both
    assert {(r["model"], r["batch"]) for r in result.rows} == {("source", 1), ("student", 1), ("student", 3)}
    assert result.cells == [[1, 8], [3, 8]] and result.rounds == 3
    assert result.paper_claims == []  # no Bort, no BERT: the paper's claims are not testable
    assert (result.paper_speedup_vs_bert_large, result.paper_speedup_vs_bert_base) == (
        paper.SPEEDUP_VS_BERT_LARGE,
        paper.SPEEDUP_VS_BERT_BASE,
    )
    assert benchmark.Result.read(tmp_path / "benchmark.json") == result
    for name in ("benchmark_latency", "benchmark_speedups", "benchmark_rounds"):
        assert all((tmp_path / "tables" / f"{name}.{ext}").exists() for ext in ("csv", "md"))
    rounds = pd.read_csv(tmp_path / "tables" / "benchmark_rounds.csv")
    assert len(rounds) == 3 * 3  # rounds × timed blocks
    assert shown["benchmark_speedups.png"].exists() and shown["benchmark_latency.png"].exists()
    assert "| source |" in shown["latency"]
    assert set(result.headline()) == {
        k
        for k in json.loads((tmp_path / "benchmark.json").read_text())
        if k.startswith(("speedup_", "ort", "gemm"))
    }


def test_benchmark_with_onnx_exports_checks_and_times_the_student(tmp_path, monkeypatch):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / benchmark.SKIPPED).write_text("stale")
    result, _ = _benchmark(tmp_path, monkeypatch, onnx=True)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(benchmark.ONNX_FILES)
    assert set(result.onnx_equivalence) == {"student-onnx", "student-onnx-int8"}
    assert result.ort_speedup_extracted["speedup"] > 0 and result.ort_int8_speedup_extracted["speedup"] > 0
    assert {r["model"] for r in result.rows} == {"source", "student", "student-onnx", "student-onnx-int8"}
    # int8 against fp32 ONNX at the smallest cell only (fp32 ONNX is not a grid model), and against
    # PyTorch at both cells; each with its spread over rounds and the split-half check
    cells = {(s["reference"], s["batch"]) for s in result.int8_stability}
    assert cells == {("student-onnx", 1), ("student", 1), ("student", 3)}
    for s in result.int8_stability:
        assert s["round_min"] <= s["speedup"] <= s["round_max"] and isinstance(s["stable"], bool)
        assert {"first_half", "second_half", "round_sd_log", "ci_low", "ci_high"} <= set(s)


def _claims(statuses: dict[tuple[int, int], tuple[float, float, float]], claimed: float) -> list[dict]:
    """`Result.paper_claims` rows of Bort vs BERT-large at the given cells: (speedup, low, high)."""
    return [
        {
            "model": "bort-paper",
            "reference": "bert-large",
            "paper": claimed,
            "batch": b,
            "seq": s,
            "speedup": x,
            "ci_low": lo,
            "ci_high": hi,
            "round_min": lo,
            "round_max": hi,
            "round_sd_log": 0.01,
            "status": benchmark.ratios.claim_status({"ci_low": lo, "ci_high": hi}, claimed),
        }
        for (b, s), (x, lo, hi) in statuses.items()
    ]


def test_speed_claims_verdicts_and_the_section_give_every_ratio_an_interval(tmp_path, monkeypatch):
    from ose.stages.benchmark import speed_claims, speed_section

    result, _ = _benchmark(tmp_path, monkeypatch, onnx=True)
    assert [c["verdict"] for c in speed_claims(result)] == ["not testable here"] * 2
    assert [c["verdict"] for c in speed_claims(None)] == ["not testable here"] * 2
    short = dataclasses.replace(
        result, paper_claims=_claims({(1, 128): (15.4, 14.9, 16.0), (8, 512): (18.1, 17.0, 19.2)}, 20.0)
    )
    (large, base) = speed_claims(short)
    assert large["verdict"] == "not reproduced" and base["verdict"] == "not testable here"
    assert "15.40× [14.90, 16.00] at 1×128" in large["here"] and "best 18.10×" in large["here"]
    assert large["figure"] == "figures/benchmark_speedups.png"
    holds = dataclasses.replace(
        result, paper_claims=_claims({(1, 128): (15.4, 14.9, 16.0), (8, 512): (19.6, 18.8, 20.4)}, 20.0)
    )
    (large, _) = speed_claims(holds)
    assert large["verdict"] == "reproduced" and "20× inside the interval at 8×512" in large["here"]
    tiny = dataclasses.replace(result, paper_claims=_claims({(1, 16): (20.6, 20.4, 22.0)}, 20.0))
    assert speed_claims(tiny)[0]["verdict"] == "reproduced at reduced scale"  # meets [19.5, 20.5)
    above = dataclasses.replace(result, paper_claims=_claims({(1, 128): (21.0, 20.5, 22.0)}, 20.0))
    (large, _) = speed_claims(above)  # the verdict rules: above the figure's precision is not 20×
    assert large["verdict"] == "not reproduced" and "20× below the interval at 1×128" in large["here"]
    wide = dataclasses.replace(result, paper_claims=_claims({(1, 128): (14.4, 9.1, 21.5)}, 20.0))
    (large, _) = speed_claims(wide)  # 20× inside [9.1, 21.5]: too wide to confirm anything
    assert large["verdict"] == "not testable here" and "too wide to decide at 1×128" in large["here"]

    text = speed_section(holds)
    assert "| 8×512 | 19.60× [18.80, 20.40]: holds |" in text
    assert "int8" in text and ("**stable**" in text or "**not stable**" in text)
    assert "benchmark_speedups.png" in text and "% of GEMM peak" in text
    # every speed-up in the section's tables carries its interval
    ratios, header = [], []
    for line in text.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not header:
            header = cells
        elif not line.startswith("|---"):
            ratio_columns = [k for k, h in enumerate(header) if "95% CI" in h or "(paper " in h]
            ratios += [cells[k] for k in ratio_columns if cells[k] != "n/a"]
    assert len(ratios) >= 8  # both claims, four comparisons of the tiny run, three int8 rows
    assert all(re.match(r"\d+\.\d+× \[\d+\.\d+, \d+\.\d+\]", c) for c in ratios), ratios


def test_report_stage_writes_the_rendered_report(tmp_path):
    metrics, tables = tmp_path / "metrics", tmp_path / "tables"
    shutil.copytree(METRICS, metrics)
    shutil.copytree(TABLES, tables)
    params = load()
    out = report.Paths(metrics_dir=metrics, tables_dir=tables, report_file=tmp_path / "README.md")
    result, shown = report.run(params, out)
    assert (
        shown["report"]
        == (tmp_path / "README.md").read_text()
        == report.render(metrics, tables, params.profile)
    )
    assert result.profile == params.profile
    empty = report.Paths(
        metrics_dir=tmp_path / "none", tables_dir=tmp_path / "none", report_file=tmp_path / "r.md"
    )
    result, shown = report.run(params, empty)
    assert result.stages_not_run == ["costs", "extract", "pretrain", "finetune", "benchmark"]
    assert "*(stage `benchmark` has not run)*" in shown["report"]


def test_torus_result_from_an_experiment():
    params = load()
    experiment = {
        "seed": params.seed,
        "accuracy_without_agora": 0.5,
        "accuracy_with_agora": 0.9,
        "accuracy_train_plus_dev": 0.95,
        "added": pd.DataFrame({"x": range(7)}),
        "labeller_calls": 2,
        "rounds": [{}, {}, {}],
    }
    result = torus.summarise(experiment, params)
    assert result.accuracy_train_plus_dev_true_labels == 0.95
    assert (result.points_added, result.rounds, result.labeller_calls) == (7, 3, 2)
