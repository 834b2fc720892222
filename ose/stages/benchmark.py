"""Stage `benchmark` (notebook 08): CPU latency of BERT-large, BERT-base, Bort, the source and the student.

Every network is timed in one process, in one run (`ose.bench.benchmark_models`); speed-ups are
ratios of medians of that run. With `benchmark.onnx` the student is also exported to ONNX Runtime,
plain and int8-quantised, checked against PyTorch and timed beside the others; without it nothing is
exported, and `onnx_dir` holds only a note saying so (DVC still finds the stage's output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from transformers import AutoModel

from ose import bench, figures, paper
from ose.arch import build_model, from_bert_config, preset
from ose.atomic import write_text_atomic
from ose.params import Params
from ose.paths import resolve
from ose.results import StageResult, markdown_table, write_table
from ose.teacher import resolve_source

REFERENCES = ("bert-large", "bert-base", "source")  # speed-ups are reported over these, when measured
LATENCY_COLUMNS = [
    "model",
    "arch",
    "backend",
    "params",
    "batch",
    "seq",
    "median_ms",
    "iqr_ms",
    "seq_per_s",
    "gflops_per_s",
    "peak_fraction",
]
LATENCY_SHOWN = ["model", "batch", "seq", "median_ms", "iqr_ms", "seq_per_s", "gflops_per_s", "peak_fraction"]
SPEEDUP_COLUMNS = ["model", "reference", "batch", "seq", "speedup", "speedup_low", "speedup_high"]
METRIC_ROW_KEYS = ("model", "batch", "seq", "median_ms", "iqr_ms", "seq_per_s", "gflops_per_s")
ONNX_FILES = ("student.onnx", "student-int8.onnx")
SKIPPED = "SKIPPED.txt"  # what `onnx_dir` holds when `benchmark.onnx` is false


@dataclass(frozen=True)
class Paths:
    """The notebook's path parameters (defaults: dvc.yaml's)."""

    student_dir: str | Path = "models/student"
    onnx_dir: str | Path = "models/onnx"
    metrics_file: str | Path = "reports/metrics/benchmark.json"
    tables_dir: str | Path = "reports/tables"
    figures_dir: str | Path = "reports/figures"


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/benchmark.json. A speed-up is the single-request latency ratio (smallest batch
    measured, `ose.bench.headline_speedup`); None when a model was not measured."""

    profile: str
    rows: list[dict]  # per model and (batch, seq): the keys of METRIC_ROW_KEYS
    speedup_bort_paper_vs_bert_large: float | None
    speedup_bort_paper_vs_bert_base: float | None
    speedup_bort_released_vs_bert_large: float | None
    speedup_extracted_vs_source: float | None
    speedup_extracted_vs_bert_large: float | None
    ort_speedup_extracted: float | None  # None without benchmark.onnx
    ort_int8_speedup_extracted: float | None
    onnx_equivalence: dict  # session name → `ose.bench.check_equivalence`; empty without benchmark.onnx
    gemm_peak_gflops: float
    paper_speedup_vs_bert_large: float
    paper_speedup_vs_bert_base: float
    environment: dict

    def headline(self) -> dict:
        """The speed-ups and the GEMM peak, without the rows and the environment."""
        return {k: v for k, v in vars(self).items() if k.startswith(("speedup", "ort", "gemm"))}


def load_models(params: Params, student_dir: Path) -> dict:
    """The presets with random weights (speed does not depend on the values), the source and the student."""
    models = {
        name: build_model(preset(name).arch, preset(name).embedding, head="pooler", seed=params.seed)
        for name in params.benchmark.presets
    }
    models["source"] = AutoModel.from_pretrained(resolve_source(params.source.model)).eval()
    models["student"] = AutoModel.from_pretrained(student_dir).eval()
    return models


def onnx_sessions(params: Params, student, onnx_dir: Path) -> tuple[dict, dict]:
    """The student exported to ONNX, plain and int8, as sessions; and each one's equivalence check."""
    threads = params.benchmark.threads
    (onnx_dir / SKIPPED).unlink(missing_ok=True)
    onnx_path = bench.export_onnx(student, onnx_dir / ONNX_FILES[0])
    int8_path = bench.quantize_int8(onnx_path, onnx_dir / ONNX_FILES[1])
    sessions = {
        "student-onnx": bench.ort_session(onnx_path, threads),
        "student-onnx-int8": bench.ort_session(int8_path, threads),
    }
    equivalence = {
        name: bench.check_equivalence(student, session, seed=params.seed)
        for name, session in sessions.items()
    }
    return sessions, equivalence


def skip_onnx(onnx_dir: Path) -> None:
    """No export: `onnx_dir` (a DVC output) holds a note, and no stale model of an earlier run."""
    for name in ONNX_FILES:
        (onnx_dir / name).unlink(missing_ok=True)
    write_text_atomic(
        onnx_dir / SKIPPED, "benchmark.onnx is false: the student was not exported to ONNX Runtime.\n"
    )


def _save(fig, path: Path) -> Path:
    figures.save(fig, path)
    plt.close(fig)
    return path


def speedup_rows(rows: list[dict], models: dict) -> list[dict]:
    return [row for reference in REFERENCES if reference in models for row in bench.speedups(rows, reference)]


def write_outputs(params: Params, rows: list[dict], speedups: list[dict], peak: dict, paths: Paths) -> dict:
    """The two tables and the two figures; returns what the notebook shows."""
    tables, figs, profile = resolve(paths.tables_dir), resolve(paths.figures_dir), params.profile
    write_table(
        tables / "benchmark_latency",
        rows,
        columns=LATENCY_COLUMNS,
        title=f"CPU latency, {params.benchmark.threads} threads, GEMM peak "
        f"{peak['gflops_per_s']:.1f} GFLOP/s (profile {profile})",
        digits=3,
    )
    write_table(
        tables / "benchmark_speedups",
        speedups,
        columns=SPEEDUP_COLUMNS,
        title=f"Speed-ups measured in one run (profile {profile})",
        digits=2,
    )
    shown = {
        "latency": markdown_table(rows, LATENCY_SHOWN, digits=3),
        "speedups": markdown_table(speedups, SPEEDUP_COLUMNS, digits=2),
    }
    pairs = [r for r in speedups if r["model"] != r["reference"]]
    shown["benchmark_speedups.png"] = _save(
        figures.speedup_figure(pairs, paper.SPEEDUPS), figs / "benchmark_speedups.png"
    )
    shown["benchmark_latency.png"] = _save(figures.latency_figure(rows), figs / "benchmark_latency.png")
    return shown


def summarise(
    params: Params, rows: list[dict], speedups: list[dict], peak: dict, equivalence: dict
) -> Result:
    """The stage's metrics."""
    over_student = bench.speedups(rows, "student") if params.benchmark.onnx else []  # None without ONNX
    return Result(
        profile=params.profile,
        rows=[{k: r[k] for k in METRIC_ROW_KEYS} for r in rows],
        speedup_bort_paper_vs_bert_large=bench.headline_speedup(speedups, "bort-paper", "bert-large"),
        speedup_bort_paper_vs_bert_base=bench.headline_speedup(speedups, "bort-paper", "bert-base"),
        speedup_bort_released_vs_bert_large=bench.headline_speedup(speedups, "bort-released", "bert-large"),
        speedup_extracted_vs_source=bench.headline_speedup(speedups, "student", "source"),
        speedup_extracted_vs_bert_large=bench.headline_speedup(speedups, "student", "bert-large"),
        ort_speedup_extracted=bench.headline_speedup(over_student, "student-onnx", "student"),
        ort_int8_speedup_extracted=bench.headline_speedup(over_student, "student-onnx-int8", "student"),
        onnx_equivalence=equivalence,
        gemm_peak_gflops=peak["gflops_per_s"],
        paper_speedup_vs_bert_large=paper.SPEEDUP_VS_BERT_LARGE,
        paper_speedup_vs_bert_base=paper.SPEEDUP_VS_BERT_BASE,
        environment=bench.environment_metadata(params.benchmark.threads),
    )


def run(params: Params, paths: Paths = Paths(), progress: bool = True) -> tuple[Result, dict]:
    """Load (and, with `benchmark.onnx`, export) every model, time them in one run, write the tables,
    figures and metrics.

    Returns the metrics and what the notebook shows: Markdown tables (`latency`, `speedups`) and the
    figures' PNG paths by file name.
    """
    cfg, onnx_dir = params.benchmark, resolve(paths.onnx_dir)
    models = load_models(params, resolve(paths.student_dir))
    student_arch, _ = from_bert_config(models["student"].config)
    print(f"profile {params.profile!r}; student {student_arch.name}; threads {cfg.threads}")
    if cfg.onnx:
        sessions, equivalence = onnx_sessions(params, models["student"], onnx_dir)
        models |= sessions
    else:
        skip_onnx(onnx_dir)
        equivalence = {}
    peak = bench.gemm_peak_gflops(cfg.threads, seed=params.seed)
    rows = bench.benchmark_models(
        models, cfg.batch_sizes, cfg.seq_lens, cfg.threads, cfg.warmup, cfg.repeats, params.seed, progress
    )
    rows = bench.peak_fractions(rows, peak)
    speedups = speedup_rows(rows, models)
    shown = write_outputs(params, rows, speedups, peak, paths)
    result = summarise(params, rows, speedups, peak, equivalence)
    result.write(resolve(paths.metrics_file))
    return result, shown
