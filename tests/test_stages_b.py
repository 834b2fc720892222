"""Stages finetune, agora_torus, benchmark and report (`ose.stages`): their results keep the metrics
files' keys, in order; the benchmark exports nothing without `benchmark.onnx`; the report stage
writes what `ose.report.render` renders."""

import dataclasses
import json
import shutil

import pandas as pd
import pytest

from ose import paper, paths
from ose.arch import Arch, Embedding, build_model
from ose.params import load
from ose.report import render
from ose.stages import benchmark, finetune, report, torus

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
    assert p.rounds_table("imdb").name == "finetune_imdb_agora_rounds.md"
    assert p.task_dir("imdb") == paths.ROOT / "data/tasks/imdb"


def _comparison(seeds):
    scores = {"scores": [0.5, 0.7], "mean": 0.6, "std": 0.1414}
    rounds = [
        {"seed": s, "round": r, "scores": {"lr-a": 0.5, "lr-b": 0.6}, "best_theta": "lr-b"}
        for s in seeds
        for r in (1, 2)
    ]
    return {
        "task": "imdb",
        "metric": "accuracy",
        "train_size": 100,
        "test_size": 20,
        "source": scores,
        "student_plain": scores,
        "student_agora": scores,
        "rounds": rounds,
        "added": pd.DataFrame({"text": ["a", "b", "c"], "seed": [seeds[0], seeds[0], seeds[-1]]}),
    }


def test_finetune_summary_counts_points_and_rounds_per_seed():
    params = load()
    seeds = params.finetune.seeds
    result = finetune.summarise(_comparison(seeds), params, "imdb")
    assert result.task == "imdb" and result.metric == "accuracy" and result.student_agora["mean"] == 0.6
    assert result.agora_rounds_per_seed == {str(s): 2 for s in seeds}
    assert sum(result.points_added_per_seed.values()) == 3
    assert result.thetas == [dataclasses.asdict(t) for t in params.finetune.thetas]
    rows = finetune.round_rows(_comparison(seeds))
    assert rows[0] == {"seed": seeds[0], "round": 1, "best_theta": "lr-b", "dev lr-a": 0.5, "dev lr-b": 0.6}
    assert [r["model"] for r in finetune.summary_rows(result)] == ["source", "student_plain", "student_agora"]


def test_finetune_run_writes_tables_figure_and_metrics(tmp_path, monkeypatch):
    params = load()
    comparison = _comparison(params.finetune.seeds)
    comparison["rows"] = [
        {"task": "imdb", "seed": s, "model": "source", "score": 0.5} for s in params.finetune.seeds
    ]
    monkeypatch.setattr(finetune, "compare", lambda params, task, paths, progress: comparison)
    out = finetune.Paths(
        metrics_file=str(tmp_path / "metrics" / "{task}.json"),
        tables_dir=tmp_path / "tables",
        figures_dir=tmp_path / "figures",
    )
    result, shown = finetune.run(params, "imdb", out, progress=False)
    assert finetune.Result.read(tmp_path / "metrics" / "imdb.json") == result
    for name in ("finetune_imdb", "finetune_imdb_agora_rounds"):
        assert (tmp_path / "tables" / f"{name}.csv").exists() and (
            tmp_path / "tables" / f"{name}.md"
        ).exists()
    assert shown["figure"] == tmp_path / "figures" / "finetune_imdb.png" and shown["figure"].exists()
    assert "| student_agora | 0.6000 |" in shown["scores"] and "dev lr-a" in shown["agora_rounds"]
    assert "| a |" in shown["added"]


def _tiny_models(params, student_dir):
    arch, embedding = Arch(1, 2, 16, 32), Embedding(vocab_size=50, max_positions=16, type_vocab_size=2)
    return {name: build_model(arch, embedding, seed=k) for k, name in enumerate(("source", "student"))}


def _benchmark(tmp_path, monkeypatch, onnx: bool):
    params = load()
    cfg = dataclasses.replace(
        params.benchmark, presets=[], batch_sizes=[1], seq_lens=[8], warmup=0, repeats=2, onnx=onnx, threads=1
    )
    params = dataclasses.replace(params, benchmark=cfg)
    monkeypatch.setattr(benchmark, "load_models", _tiny_models)
    monkeypatch.setattr(benchmark.bench, "gemm_peak_gflops", lambda threads, seed: {"gflops_per_s": 1.0})
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
    assert result.onnx_equivalence == {}
    assert result.ort_speedup_extracted is None and result.ort_int8_speedup_extracted is None
    assert result.speedup_extracted_vs_source > 0
    assert {r["model"] for r in result.rows} == {"source", "student"}
    assert (result.paper_speedup_vs_bert_large, result.paper_speedup_vs_bert_base) == (
        paper.SPEEDUP_VS_BERT_LARGE,
        paper.SPEEDUP_VS_BERT_BASE,
    )
    assert benchmark.Result.read(tmp_path / "benchmark.json") == result
    for name in ("benchmark_latency.csv", "benchmark_latency.md", "benchmark_speedups.csv"):
        assert (tmp_path / "tables" / name).exists()
    assert shown["benchmark_speedups.png"].exists() and shown["benchmark_latency.png"].exists()
    assert "| source |" in shown["latency"]
    assert set(result.headline()) == {
        k
        for k in json.loads((tmp_path / "benchmark.json").read_text())
        if k.startswith(("speedup", "ort", "gemm"))
    }


def test_benchmark_with_onnx_exports_checks_and_times_the_student(tmp_path, monkeypatch):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / benchmark.SKIPPED).write_text("stale")
    result, _ = _benchmark(tmp_path, monkeypatch, onnx=True)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(benchmark.ONNX_FILES)
    assert set(result.onnx_equivalence) == {"student-onnx", "student-onnx-int8"}
    assert result.ort_speedup_extracted > 0 and result.ort_int8_speedup_extracted > 0
    assert {r["model"] for r in result.rows} == {"source", "student", "student-onnx", "student-onnx-int8"}


def test_report_stage_writes_the_rendered_report(tmp_path):
    metrics, tables = tmp_path / "metrics", tmp_path / "tables"
    shutil.copytree(METRICS, metrics)
    shutil.copytree(TABLES, tables)
    params = load()
    out = report.Paths(metrics_dir=metrics, tables_dir=tables, report_file=tmp_path / "README.md")
    result, shown = report.run(params, out)
    assert shown["report"] == (tmp_path / "README.md").read_text() == render(metrics, tables, params.profile)
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
