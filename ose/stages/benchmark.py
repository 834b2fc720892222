"""Stage `benchmark` (notebook 08): CPU latency of BERT-large, BERT-base, Bort, the source and the student.

Every network is timed in one process, in interleaved rounds (`ose.speed.harness.benchmark_models`), at the
(batch, seq) cells of `benchmark.batch_sizes` × `benchmark.seq_lens`; the models of
`benchmark.grid_models` at every cell, the others at the smallest one. Every speed-up is the
geometric mean of per-round ratios with a 95% bootstrap interval over the rounds
(`ose.speed.ratios.speedups`). The paper's two claims (Bort ~20× faster than BERT-large, 7.9× than
BERT-base) are located on that grid: at each cell the claim "holds" (inside the interval), is
"exceeded" or falls "short". With `benchmark.onnx` the student is also exported to ONNX Runtime,
plain and int8-quantised, checked against PyTorch and timed in the same rounds; the int8 ratios
come with their spread across rounds and a split-half stability check (`ose.speed.ratios.stability`).
Without it nothing is exported, and `onnx_dir` holds only a note saying so (DVC still finds the
stage's output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from transformers import AutoModel

from ose import paper, verdicts
from ose.arch import build_model, from_bert_config, preset
from ose.params import Params
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.loading import quietly
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table, write_table
from ose.reporting import figures
from ose.reporting.markdown import claim_row, figure, produced_by
from ose.speed import gemm, harness, onnx, ratios
from ose.training.source_model import resolve_source

# (model, reference) pairs reported, wherever both were timed in the same cell
COMPARISONS = (
    ("bort-paper", "bert-large"),
    ("bort-paper", "bert-base"),
    ("bort-released", "bert-large"),
    ("bort-released", "bert-base"),
    ("bert-base", "bert-large"),
    ("source", "bert-large"),
    ("student", "source"),
    ("student", "bert-large"),
    ("student-onnx", "student"),
    ("student-onnx-int8", "student"),
    ("student-onnx-int8", "student-onnx"),
)
# The paper's claims as (model, reference, claimed speed-up): Bort in the shape its sizes imply.
PAPER_CLAIMS = (
    ("bort-paper", "bert-large", paper.SPEEDUP_VS_BERT_LARGE),
    ("bort-paper", "bert-base", paper.SPEEDUP_VS_BERT_BASE),
)
INT8 = (("student-onnx-int8", "student-onnx"), ("student-onnx-int8", "student"))
# Result field → the comparison it holds, at the headline (smallest) cell
HEADLINES = {
    "speedup_bort_paper_vs_bert_large": ("bort-paper", "bert-large"),
    "speedup_bort_paper_vs_bert_base": ("bort-paper", "bert-base"),
    "speedup_bort_released_vs_bert_large": ("bort-released", "bert-large"),
    "speedup_extracted_vs_source": ("student", "source"),
    "speedup_extracted_vs_bert_large": ("student", "bert-large"),
    "ort_speedup_extracted": ("student-onnx", "student"),
    "ort_int8_speedup_extracted": ("student-onnx-int8", "student"),
    "ort_int8_vs_fp32_extracted": ("student-onnx-int8", "student-onnx"),
}
RATIO_KEYS = ("speedup", "ci_low", "ci_high", "round_min", "round_max", "round_sd_log")
LATENCY_COLUMNS = [
    "model",
    "arch",
    "backend",
    "params",
    "batch",
    "seq",
    "rounds",
    "calls",
    "median_ms",
    "iqr_ms",
    "seq_per_s",
    "gflops_per_s",
    "peak_fraction",
]
LATENCY_SHOWN = ["model", "batch", "seq", "median_ms", "iqr_ms", "seq_per_s", "gflops_per_s", "peak_fraction"]
SPEEDUP_COLUMNS = ["model", "reference", "batch", "seq", "speedup", "ci_low", "ci_high", "round_sd_log"]
METRIC_ROW_KEYS = (
    "model",
    "batch",
    "seq",
    "median_ms",
    "iqr_ms",
    "seq_per_s",
    "gflops_per_s",
    "peak_fraction",
)
CLAIM_COLUMNS = ["model", "reference", "paper", "batch", "seq", "speedup", "ci_low", "ci_high", "status"]
INT8_COLUMNS = [
    "model",
    "reference",
    "batch",
    "seq",
    "speedup",
    "ci_low",
    "ci_high",
    "round_min",
    "round_max",
    "round_sd_log",
    "first_half",
    "second_half",
    "stable",
]
ONNX_FILES = ("student.onnx", "student-int8.onnx")
SKIPPED = "SKIPPED.txt"  # what `onnx_dir` holds when `benchmark.onnx` is false
FIGURE = "benchmark_speedups.png"  # the paper's two claims across the grid


class Paths(paths_class("benchmark")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`)."""


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/benchmark.json. A speed-up is a dict: the cell (batch, seq) and `speedup`,
    `ci_low`, `ci_high` (95% bootstrap over rounds, `ose.speed.ratios.ratio_ci`); the `speedup_*` and
    `ort_*` fields hold the headline cell's (smallest batch and sequence); None when a model was
    not measured."""

    profile: str
    threads: int
    rounds: int
    cells: list[list[int]]  # [batch, seq] of the grid
    rows: list[dict]  # per model and (batch, seq): the keys of METRIC_ROW_KEYS
    speedups: list[dict]  # every COMPARISONS pair at every cell both were timed at
    speedup_bort_paper_vs_bert_large: dict | None
    speedup_bort_paper_vs_bert_base: dict | None
    speedup_bort_released_vs_bert_large: dict | None
    speedup_extracted_vs_source: dict | None
    speedup_extracted_vs_bert_large: dict | None
    ort_speedup_extracted: dict | None  # None without benchmark.onnx
    ort_int8_speedup_extracted: dict | None
    ort_int8_vs_fp32_extracted: dict | None
    paper_claims: list[dict]  # per claim and cell: the speed-up and where the paper's figure sits
    int8_stability: list[dict]  # per int8 comparison and cell: spread across rounds, split halves
    onnx_equivalence: dict  # session name → `ose.speed.onnx.check_equivalence`; empty without benchmark.onnx
    gemm_peak_gflops: float
    paper_speedup_vs_bert_large: float
    paper_speedup_vs_bert_base: float
    environment: dict

    def headline(self) -> dict:
        """The headline-cell speed-ups and the GEMM peak, without the tables and the environment."""
        return {k: v for k, v in vars(self).items() if k.startswith(("speedup_", "ort", "gemm"))}


def load_models(params: Params, student_dir: Path) -> dict:
    """The presets with random weights (speed does not depend on the values), the source and the student."""
    models = {
        name: build_model(preset(name).arch, preset(name).embedding, head="pooler", seed=params.seed)
        for name in params.benchmark.presets
    }
    with quietly():  # the load reports list the pooler and MLM head, unused here
        models["source"] = AutoModel.from_pretrained(resolve_source(params.source.model)).eval()
        models["student"] = AutoModel.from_pretrained(student_dir).eval()
    return models


def onnx_sessions(params: Params, student, onnx_dir: Path) -> tuple[dict, dict]:
    """The student exported to ONNX, plain and int8, as sessions; and each one's equivalence check."""
    threads = params.benchmark.threads
    (onnx_dir / SKIPPED).unlink(missing_ok=True)
    onnx_path = onnx.export_onnx(student, onnx_dir / ONNX_FILES[0])
    int8_path = onnx.quantize_int8(onnx_path, onnx_dir / ONNX_FILES[1])
    sessions = {
        "student-onnx": onnx.ort_session(onnx_path, threads),
        "student-onnx-int8": onnx.ort_session(int8_path, threads),
    }
    equivalence = {
        name: onnx.check_equivalence(student, session, seed=params.seed) for name, session in sessions.items()
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


def time_models(params: Params, models: dict, progress: bool = True) -> harness.Timings:
    """`ose.speed.harness.benchmark_models` with the stage's settings; `grid_models` not loaded are
    dropped."""
    cfg = params.benchmark
    return harness.benchmark_models(
        models,
        cfg.batch_sizes,
        cfg.seq_lens,
        cfg.threads,
        warmup=cfg.warmup,
        rounds=cfg.rounds,
        repeats=cfg.repeats,
        min_round_ms=cfg.min_round_ms,
        grid_models=[m for m in cfg.grid_models if m in models],
        seed=params.seed,
        progress=progress,
    )


def speedup_rows(rounds: list[dict], seed: int = 0) -> list[dict]:
    """Every COMPARISONS pair whose two models were timed, at every cell they share."""
    timed = {r["model"] for r in rounds}
    return [
        row
        for model, reference in COMPARISONS
        if model in timed and reference in timed
        for row in ratios.speedups(rounds, reference, [model], seed=seed)
    ]


def _compact(row: dict) -> dict:
    return {"batch": row["batch"], "seq": row["seq"], **{k: row[k] for k in RATIO_KEYS}}


def paper_claims(speedups: list[dict]) -> list[dict]:
    """Per paper claim and measured cell: our speed-up, its interval, and where the paper's figure
    sits against it (`ose.speed.ratios.claim_status`: holds, exceeded, short)."""
    out = []
    for model, reference, claimed in PAPER_CLAIMS:
        for row in speedups:
            if (row["model"], row["reference"]) == (model, reference):
                out.append(
                    {
                        "model": model,
                        "reference": reference,
                        "paper": claimed,
                        **_compact(row),
                        "status": ratios.claim_status(row, claimed),
                    }
                )
    return out


def int8_stability(rounds: list[dict], speedups: list[dict]) -> list[dict]:
    """The int8 student's ratios (to fp32 ONNX and to PyTorch) at each cell, with the spread across
    rounds and the split-half check (`ose.speed.ratios.stability`)."""
    out = []
    for model, reference in INT8:
        paired = ratios.paired_rounds(rounds, model, reference)
        for row in speedups:
            if (row["model"], row["reference"]) != (model, reference):
                continue
            ref_ms, model_ms = paired[(row["run_id"], row["batch"], row["seq"], row["threads"])]
            out.append(
                {
                    "model": model,
                    "reference": reference,
                    **_compact(row),
                    **ratios.stability(ref_ms, model_ms, row),
                }
            )
    return out


def write_outputs(
    params: Params, timings: harness.Timings, speedups: list[dict], peak: dict, paths: Paths
) -> dict:
    """The three tables (latency, speed-ups, raw rounds) and the two figures; returns what the
    notebook shows."""
    tables, figs, cfg = resolve(paths.tables_dir), resolve(paths.figures_dir), params.benchmark
    setting = f"{cfg.threads} threads, {cfg.rounds} interleaved rounds, profile {params.profile}"
    write_table(
        tables / "benchmark_latency",
        timings.rows,
        columns=LATENCY_COLUMNS,
        title=f"CPU latency (median and IQR over rounds), {setting}; GEMM peak "
        f"{peak['gflops_per_s']:.1f} GFLOP/s",
        digits=3,
    )
    write_table(
        tables / "benchmark_speedups",
        speedups,
        columns=SPEEDUP_COLUMNS,
        title=f"Speed-ups: geometric mean of per-round ratios, 95% bootstrap CI over rounds; {setting}",
        digits=2,
    )
    write_table(
        tables / "benchmark_rounds",
        timings.rounds,
        title=f"Every timed block: its round's median latency (ms); {setting}",
        digits=3,
    )
    shown = {
        "latency": markdown_table(timings.rows, LATENCY_SHOWN, digits=3),
        "speedups": markdown_table(speedups, SPEEDUP_COLUMNS, digits=2),
        FIGURE: _save(figures.speedup_figure(speedups, paper.SPEEDUPS), figs / FIGURE),
        "benchmark_latency.png": _save(figures.latency_figure(timings.rows), figs / "benchmark_latency.png"),
    }
    return shown


def summarise(
    params: Params,
    timings: harness.Timings,
    speedups: list[dict],
    peak: dict,
    equivalence: dict,
) -> Result:
    """The stage's metrics."""
    cfg = params.benchmark
    headlines = {}
    for field, (model, reference) in HEADLINES.items():
        row = ratios.headline_speedup(speedups, model, reference)
        headlines[field] = _compact(row) if row else None
    return Result(
        profile=params.profile,
        threads=cfg.threads,
        rounds=cfg.rounds,
        cells=[[b, s] for b in cfg.batch_sizes for s in cfg.seq_lens],
        rows=[{k: r[k] for k in METRIC_ROW_KEYS} for r in timings.rows],
        speedups=[{"model": r["model"], "reference": r["reference"], **_compact(r)} for r in speedups],
        **headlines,
        paper_claims=paper_claims(speedups),
        int8_stability=int8_stability(timings.rounds, speedups),
        onnx_equivalence=equivalence,
        gemm_peak_gflops=peak["gflops_per_s"],
        paper_speedup_vs_bert_large=paper.SPEEDUP_VS_BERT_LARGE,
        paper_speedup_vs_bert_base=paper.SPEEDUP_VS_BERT_BASE,
        environment=harness.environment_metadata(cfg.threads),
    )


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Load (and, with `benchmark.onnx`, export) every model, time them in interleaved rounds, write
    the tables, figures and metrics.

    Returns the metrics and what the notebook shows: Markdown tables (`latency`, `speedups`, `claims`,
    `int8`) and the figures' PNG paths by file name.
    """
    paths = paths or Paths()
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
    peak = gemm.gemm_peak_gflops(cfg.threads, seed=params.seed)
    timings = time_models(params, models, progress)
    timings = harness.Timings(rows=gemm.peak_fractions(timings.rows, peak), rounds=timings.rounds)
    speedups = speedup_rows(timings.rounds, params.seed)
    shown = write_outputs(params, timings, speedups, peak, paths)
    result = summarise(params, timings, speedups, peak, equivalence)
    result.write(resolve(paths.metrics_file))
    return result, shown | tables_shown(result)


def tables_shown(result: Result) -> dict:
    """The claims grid and the int8 stability table as Markdown, for the notebook."""
    return {
        "claims": markdown_table(result.paper_claims, CLAIM_COLUMNS)
        if result.paper_claims
        else "*(Bort and BERT were not timed together: the paper's claims are not testable here)*\n",
        "int8": markdown_table(result.int8_stability, INT8_COLUMNS)
        if result.int8_stability
        else "*(`benchmark.onnx` is false: no int8 student)*\n",
    }


# --- The report's section and claims rows (`ose.stages.report` assembles the report) ---


def _ratio(r: dict | None) -> str:
    """A speed-up with its 95% interval, e.g. "15.4× [14.9, 16.0]"; "n/a" when not measured."""
    if not r:
        return "n/a"
    return f"{r['speedup']:.2f}× [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


def _cell(r: dict) -> str:
    return f"{r['batch']}×{r['seq']}"


SPEED_CLAIMS = (  # (model, reference, the claim in words, the paper's figure)
    ("bort-paper", "bert-large", "Bort ~20× faster than BERT-large on a CPU", paper.SPEEDUP_VS_BERT_LARGE),
    ("bort-paper", "bert-base", "Bort 7.9× faster than BERT-base on a CPU", paper.SPEEDUP_VS_BERT_BASE),
)


SPEED_LABELS = {  # Result field → what it compares, for the report's table
    "speedup_bort_paper_vs_bert_large": "Bort (paper shape) vs BERT-large",
    "speedup_bort_paper_vs_bert_base": "Bort (paper shape) vs BERT-base",
    "speedup_bort_released_vs_bert_large": "Bort (released shape) vs BERT-large",
    "speedup_extracted_vs_source": "extracted student vs source",
    "speedup_extracted_vs_bert_large": "extracted student vs BERT-large",
    "ort_speedup_extracted": "student, ONNX Runtime fp32 vs PyTorch",
    "ort_int8_speedup_extracted": "student, ONNX Runtime int8 vs PyTorch",
    "ort_int8_vs_fp32_extracted": "student, ONNX Runtime int8 vs fp32",
}


def _claim_cells(m: Result, model: str, reference: str) -> list[dict]:
    return [c for c in m.paper_claims if (c["model"], c["reference"]) == (model, reference)]


def _where(cells: list[dict], status: str) -> str:
    return ", ".join(_cell(c) for c in cells if c["status"] == status)


def speed_claims(m: Result | None) -> list[dict]:
    """One row per paper speed claim for the report's claims table: claim, here (our number with
    its 95% CI, and where on the grid the paper's figure holds), verdict, figure.

    Per cell the paper's figure, at its stated precision ("20×" covers [19.5, 20.5)), "holds" (meets a
    decisive interval), is "exceeded" (our interval lies above it), falls "short" (below) or is
    "undecided" (an interval too wide to tell: `ose.speed.ratios.claim_status`). Verdicts by the
    rules (`ose.verdicts`, rule 2): "reproduced" when it holds at one cell at least (the
    paper names no batch, length or thread count, so a cell where it holds is a setting that
    reproduces it); "reproduced at reduced scale" when that happens only at sequences shorter than
    128 tokens (the smoke profile's); "not reproduced" when it is short or exceeded at some cell and
    holds nowhere; "not testable here" when the benchmark has not run, did not time both models, or
    every interval was too wide to decide.
    """
    out = []
    for model, reference, claim, claimed in SPEED_CLAIMS:
        cells = _claim_cells(m, model, reference) if m else []
        low, high = verdicts.stated_interval(claimed)
        row = {
            "claim": claim,
            "paper": f"{claimed:g}× (no batch, length or threads given): [{low:g}, {high:g})",
            "figure": "figures/benchmark_speedups.png",
        }
        if not cells:
            out.append({**row, "here": "not measured", "verdict": "not testable here"})
            continue
        first = min(cells, key=lambda c: (c["batch"], c["seq"]))
        best = max(cells, key=lambda c: c["speedup"])
        here = f"{_ratio(first)} at {_cell(first)}, {m.threads} threads; best {_ratio(best)} at {_cell(best)}"
        met = [c for c in cells if c["status"] == "holds"]
        if met:
            verdict = "reproduced" if any(c["seq"] >= 128 for c in met) else "reproduced at reduced scale"
        elif any(c["status"] in ("short", "exceeded") for c in cells):
            verdict = "not reproduced"
        else:
            verdict = "not testable here"
        for status, words in (
            ("holds", "inside the interval"),
            ("exceeded", "below the interval"),
            ("short", "above the interval"),
            ("undecided", "inside an interval too wide to decide"),
        ):
            if _where(cells, status):
                here += f"; {claimed:g}× {words} at {_where(cells, status)}"
        out.append({**row, "here": here, "verdict": verdict})
    return out


def _claims_grid(m: Result) -> str:
    """Where the paper's figures hold: one row per cell, each claim's ratio and status."""
    rows = {}
    for model, reference, _, claimed in SPEED_CLAIMS:
        name = f"{model} vs {reference} (paper {claimed:g}×)"
        for c in _claim_cells(m, model, reference):
            row = rows.setdefault((c["batch"], c["seq"]), {"batch × seq": _cell(c)})
            row[name] = f"{_ratio(c)}: {c['status']}"
    return markdown_table(list(rows.values())) if rows else "*(Bort and BERT were not timed together)*\n"


def _int8_sentence(m: Result) -> str:
    """Is the int8 figure stable? Per cell: the ratio with its CI, its spread across rounds and the
    split-half check (`ose.speed.ratios.stability`), then one verdict with the reason."""
    if not m.int8_stability:
        return "The int8 student was not timed (`benchmark.onnx` is false).\n"
    rows = [
        {
            "int8 vs": s["reference"],
            "batch × seq": _cell(s),
            "speed-up (95% CI)": _ratio(s),
            "per-round range": f"{s['round_min']:.2f}–{s['round_max']:.2f}×",
            "sd of log-ratio": f"{s['round_sd_log']:.3f}",
            "halves": f"{s['first_half']:.2f}× / {s['second_half']:.2f}×",
            "stable": s["stable"],
        }
        for s in m.int8_stability
    ]
    unstable = [f"{r['batch × seq']} (vs {r['int8 vs']})" for r in rows if not r["stable"]]
    text = (
        "The int8 student (ONNX Runtime dynamic quantisation) over the rounds; `stable`: the earlier "
        "and the later half of the rounds, two runs in miniature, both fall inside the whole run's "
        f"interval.\n\n{markdown_table(rows)}\n"
    )
    if not unstable:
        return text + "The int8 figure is **stable**: both halves agree within its CI at every cell.\n"
    load = m.environment.get("load_average_1_5_15", [float("nan")])[0]
    cores = m.environment.get("cores", "?")
    return text + (
        f"The int8 figure is **not stable** at {', '.join(unstable)}: the two halves of the run disagree "
        "beyond the interval, so the ratio drifted while the run went on (the 1-minute load average "
        f"was {load:.1f} on {cores} cores when the timing began; it counts the pipeline's own previous "
        "stage as well as any other job). Where the interval also includes 1×, the quantised graph is "
        "not measurably faster than the float one here.\n"
    )


def _peak_table(m: Result) -> str:
    """Each model's achieved GFLOP/s and fraction of the measured GEMM peak, smallest and largest cell."""
    out = []
    for name in dict.fromkeys(r["model"] for r in m.rows):
        mine = sorted((r for r in m.rows if r["model"] == name), key=lambda r: (r["batch"], r["seq"]))
        row = {"model": name}
        for label, r in (("smallest", mine[0]), ("largest", mine[-1])):
            row[f"{label} cell"] = _cell(r)
            row[f"GFLOP/s ({label})"] = f"{r['gflops_per_s']:.1f}"
            row[f"% of GEMM peak ({label})"] = f"{100 * r['peak_fraction']:.1f}"
        out.append(row)
    return markdown_table(out)


def speed_section(m: Result) -> str:
    env = m.environment
    rows = [
        {"comparison": label, "ours (95% CI)": _ratio(getattr(m, field))}
        for field, label in SPEED_LABELS.items()
    ]
    headline = m.speedup_bort_paper_vs_bert_large or m.speedup_extracted_vs_source
    at = f" at batch {headline['batch']} × {headline['seq']} tokens" if headline else ""
    caption = "Bort (paper shape) vs BERT-large and BERT-base across the grid, 95% CIs"
    claims = "\n".join(f"- {c['claim']}: {c['here']} → **{c['verdict']}**." for c in speed_claims(m))
    return (
        f"## 6. CPU speed\n\n{produced_by(m, 'benchmark')}"
        f"Every model timed in one process on {env['cpu']} ({env['cores']} cores), torch {env['torch']}, "
        f"onnxruntime {env.get('onnxruntime', '?')}, {m.threads} threads, in {m.rounds} interleaved rounds "
        "(each round times every model at every cell once, the order rotated per round). A speed-up is "
        "the geometric mean of the per-round ratios, with a 95% percentile-bootstrap interval over the "
        "rounds (rounds, not pooled calls, are resampled: calls within a round are not independent). "
        "The paper names no batch, length or thread count, so its figures are located on the grid "
        "below (`holds`: the paper's figure is inside our interval; `exceeded`: our interval lies "
        "above it; `short`: below it). Other jobs share the CPU during a run: the intervals include "
        "that noise.\n\n"
        f"{claims}\n\n{_claims_grid(m)}\n"
        f"{figure('benchmark_speedups.png', caption)}"
        f"Other comparisons{at} (every comparison at every cell: `tables/benchmark_speedups.md`):\n\n"
        f"{markdown_table(rows)}\n{_int8_sentence(m)}\n"
        f"Achieved work against a float32 GEMM peak of {m.gemm_peak_gflops:.1f} GFLOP/s measured in the same "
        f"run (analytic FLOPs / median latency):\n\n{_peak_table(m)}\n"
    )


def claims(m: Result | None) -> list[dict]:
    """This stage's rows of the report's claims table: `speed_claims`, each pointing at §6."""
    return [
        claim_row(
            r["claim"], r["paper"], r["here"], r["verdict"], f"§6, {r['figure']}, `dvc repro benchmark`"
        )
        for r in speed_claims(m)
    ]
