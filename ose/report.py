"""Stage `report`: every stage's metrics, side by side with the paper's claims, as reports/README.md.

Every number in the report is read from a stage's typed result (`ose.stages.<stage>.Result`, read
back from `reports/metrics/`) or a table CSV that a stage wrote; the only other numbers are the
paper's own claims (`ose.paper`), each labelled as the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ose import paper
from ose.results import markdown_table
from ose.stages.benchmark import Result as BenchmarkResult
from ose.stages.costs import BORT_COLUMNS
from ose.stages.costs import Result as CostsResult
from ose.stages.extract import Result as ExtractResult
from ose.stages.finetune import Result as FinetuneResult
from ose.stages.pretrain import Result as PretrainResult
from ose.stages.teacher import Result as TeacherResult
from ose.stages.torus import Result as TorusResult


@dataclass(frozen=True)
class Metrics:
    """The stages' results the report reads; None (no task, for `finetune`) where a stage has not run."""

    costs: CostsResult | None = None
    teacher: TeacherResult | None = None
    extract: ExtractResult | None = None
    pretrain: PretrainResult | None = None
    finetune: dict[str, FinetuneResult] = field(default_factory=dict)  # task → its result
    agora_torus: TorusResult | None = None
    benchmark: BenchmarkResult | None = None


def _read(cls, path: Path):
    return cls.read(path) if path.exists() else None


def read_metrics(metrics_dir: str | Path) -> Metrics:
    """Every stage's `reports/metrics/<stage>.json` (and `finetune/<task>.json`) that exists."""
    root = Path(metrics_dir)
    return Metrics(
        costs=_read(CostsResult, root / "costs.json"),
        teacher=_read(TeacherResult, root / "teacher.json"),
        extract=_read(ExtractResult, root / "extract.json"),
        pretrain=_read(PretrainResult, root / "pretrain.json"),
        finetune={p.stem: FinetuneResult.read(p) for p in sorted((root / "finetune").glob("*.json"))},
        agora_torus=_read(TorusResult, root / "agora_torus.json"),
        benchmark=_read(BenchmarkResult, root / "benchmark.json"),
    )


def read_table(path: str | Path) -> list[dict]:
    """A table CSV that a stage wrote (`ose.results.write_table`), its cells typed by pandas; an empty
    cell reads back as an empty string."""
    frame = pd.read_csv(path)
    return frame.astype(object).where(frame.notna(), "").to_dict(orient="records")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _produced_by(
    m: CostsResult | ExtractResult | PretrainResult | BenchmarkResult | None, *stages: str
) -> str:
    """The line under a section's title: which stage(s) wrote its numbers, under which profile."""
    names = " and ".join(f"`{stage}`" for stage in stages)
    profile = m.profile if m else "n/a"
    return f"*Stage{'s' if len(stages) > 1 else ''} {names}, profile `{profile}`.*\n\n"


def _figure(name: str, caption: str) -> str:
    return f"![{caption}](figures/{name})\n\n*{caption}*\n\n"


def size_section(tables: Path, costs: CostsResult | None = None) -> str:
    rows = read_table(tables / "bort_sizes.csv")
    body = markdown_table(
        rows,
        [c for c in BORT_COLUMNS if c != "encoder_pct_of_bert_large_encoder"],
    )
    matching = [r["shape"] for r in rows if r["matches_all"] is True]
    verdict = (
        f"The paper's figures match the **{', '.join(matching)}** shape"
        if matching
        else "Neither shape matches all of the paper's figures"
    )
    return (
        f"## 1. Bort's size\n\n{_produced_by(costs, 'costs')}Paper: {paper.SIZE}. Exact counts:\n\n"
        f"{body}\n"
        f'{verdict} (within 5%); "effective" is everything but the embedding.\n'
    )


def costs_section(m: CostsResult, tables: Path) -> str:
    fits = [
        {
            "space": s,
            "measured": getattr(m, f"n_measured_{s}"),
            "MAPE fit (%)": getattr(m, f"{s}_space_mape_fit"),
            "MAPE held-out (%)": getattr(m, f"{s}_space_mape_heldout"),
        }
        for s in ("default", "paper")
    ]
    abnc = read_table(tables / "abnc.csv")
    settings = m.settings
    return (
        "## 2. Cost functions: are p and i polynomial in ⟨D, A, H, I⟩?\n\n"
        f"{_produced_by(m, 'costs')}"
        f"p(ξ) is counted exactly. i(ξ) is CPU latency (batch {settings['batch_size']}, length "
        f"{settings['seq_len']}, {settings['threads']} thread(s)) fitted by a non-negative polynomial in the "
        "operation-count monomials and scored on architectures left out of the fit:\n\n"
        f"{markdown_table(fits)}\n"
        f"{_figure('costs_predicted_vs_measured.png', 'Predicted against measured latency')}\n"
        "The AB^nC property (A: embeddings, B: one layer, C: pooler or masked-LM head; share of each space "
        "where the condition holds exactly, and whether it holds everywhere and on the measured parts):\n\n"
        f"{markdown_table(abnc)}\n"
    )


def _geometry_paragraph(m: ExtractResult) -> str:
    if not m.geometry:
        return ""

    def span(g: dict, key: str) -> str:
        return f"{100 * g[key + '_min']:.1f}–{100 * g[key + '_max']:.1f}"

    rows = [
        {
            "space": name,
            "ξ": g["n"],
            "effective size (% of reference)": span(g, "effective_size"),
            "FLOPs (% of reference)": span(g, "flops"),
            "net size (% of reference)": span(g, "net_size"),
        }
        for name, g in m.geometry.items()
    ]
    return (
        f"W uses the **{m.size}** size and T = the **{m.reference}**. Where each space sits relative to "
        f"its reference network (the paper's T is BERT-large, outside its space):\n\n"
        f"{markdown_table(rows)}\n"
    )


def _surrogate_check_paragraph(m: ExtractResult) -> str:
    if not m.surrogate_check:
        return ""
    rows = [
        {
            "s": r["s"],
            "Kendall τ_b (95% CI)": f"{r['tau_b']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            "pick": r["pick"],
            "W-regret": r["w_regret"],
        }
        for r in m.surrogate_check
    ]
    noise = m.seed_noise or {}
    return (
        "**Is ê a valid ranking?** Each architecture of a stratified sample was trained for a long run "
        "with ê's recipe; ê_s is its held-out loss after s steps. τ_b compares ê_s with the final loss; "
        "the W-regret is what choosing with ê_s loses (0: the same pick as the long runs).\n\n"
        f"{markdown_table(rows, digits=3)}\n"
        f"The FPTAS trained each candidate for **s = {m.max_steps}** steps ({m.max_steps_reason}). "
        f"Seed noise of ê at s = {noise.get('s')}: mean std over seeds "
        f"{_fmt(noise.get('mean_std_over_seeds'))}, {_fmt(noise.get('ratio'), 2)}× the spread across "
        "architectures.\n\n"
        f"{_figure('extract_surrogate_tau.png', 'Kendall τ_b and W-regret of ê_s against s')}\n"
    )


def _position(m: ExtractResult) -> str:
    if m.position is None:
        return ""
    return f" (number {m.position} of {m.n_space} in the order by p, then i)"


def _why_smallest(m: ExtractResult, tables: Path) -> str:
    """When the answer is the space's smallest ξ, the numbers that decided it."""
    path = tables / "extract_candidates.csv"
    if m.position != 1 or not m.geometry or not path.exists():
        return ""
    errors = [float(row["error"]) for row in read_table(path)]
    low, high = min(errors), max(errors)
    space = next(iter(m.geometry.values()))
    return (
        f"**Why the smallest architecture.** Across the space, ê (best θ) ranges over {low:.3f}–{high:.3f}, "
        f"a {100 * (high - low) / low:.1f}% spread of 1/ê, while W's size factor ranges over "
        f"{space['size_factor_min']:.2f}–{space['size_factor_max']:.2f} (the FLOPs saving over "
        f"{space['cost_factor_min']:.2f}–{space['cost_factor_max']:.2f}): at this training budget ê hardly "
        "separates architectures, so W is decided by size, and the smallest ξ, a candidate at every ε, "
        "wins.\n\n"
    )


def _sweep_sentence(m: ExtractResult) -> str:
    if m.sweep_differs_at is None:
        return ""
    live = (
        f"The FPTAS at ε = {m.epsilon} trained {m.fptas_trainings} (ξ, θ) pairs itself "
        f"({_fmt(m.fptas_seconds, 0)} s of training); the exhaustive reference reused them. "
    )
    if m.sweep_differs_at:
        return live + f"Its answer differs from the exhaustive optimum at ε ∈ {m.sweep_differs_at}.\n\n"
    return live + (
        "At every ε of the sweep the FPTAS returns the exhaustive optimum: the optimum is among the "
        "candidates of every ε (see the ε-sweep table).\n\n"
    )


def extract_section(m: ExtractResult, tables: Path) -> str:
    exponents = ""
    if (tables / "extract_exponents.csv").exists():
        table = markdown_table(read_table(tables / "extract_exponents.csv"))
        exponents = (
            "With W = size factors × 1/ê, a space where ê varies less than p and i makes the smallest "
            "architecture the answer whatever ê says. The same table under other exponents of W "
            f"(p, i, ê), no training needed:\n\n{table}\n"
        )
    rows = [
        {
            "search": f"FPTAS, ε = {m.epsilon}",
            "architecture": m.arch,
            "W": m.w,
            "trainings": m.n_trainings,
            "training seconds": m.seconds,
        },
        {
            "search": "exhaustive (ε = 1)",
            "architecture": m.exhaustive_arch,
            "W": m.exhaustive_w,
            "trainings": m.exhaustive_trainings,
            "training seconds": m.exhaustive_seconds,
        },
    ]
    return (
        "## 3. Optimal subarchitecture extraction (the FPTAS)\n\n"
        f"{_produced_by(m, 'extract')}"
        f"{_geometry_paragraph(m)}"
        f"{_surrogate_check_paragraph(m)}"
        f"Space of {m.n_space} architectures, {m.n_candidates} candidates at ε = {m.epsilon}, "
        f"approximation ratio W(ε)/W(ε=1) = **{_fmt(m.approx_ratio)}**. The extracted architecture "
        f"**{m.arch}**{_position(m)} has {_fmt(m.params)} parameters "
        f"({_fmt(100 * m.params_vs_source, 1)}% of the source) and a predicted latency "
        f"{_fmt(100 * m.latency_vs_source, 1)}% of the source's; on the Pareto front of the "
        f"evaluated points: {_fmt(m.chosen_on_pareto_front)}.\n\n"
        f"{markdown_table(rows, digits=4)}\n"
        f"{_why_smallest(m, tables)}"
        f"{_sweep_sentence(m)}"
        f"{exponents}"
        f"{_figure('extract_pareto.png', 'Evaluated architectures: p against i, coloured by ê')}\n"
        f"{_figure('extract_epsilon_sweep.png', 'Approximation ratio and cost against ε')}\n"
    )


def pretraining_section(teacher: TeacherResult, m: PretrainResult) -> str:
    rows = [
        {
            "model": f"teacher before adaptation ({teacher.arch})",
            "masked-token accuracy": teacher.masked_acc_before,
            "masked-LM cross-entropy": teacher.mlm_ce_before,
        },
        {
            "model": f"teacher after {teacher.steps} steps",
            "masked-token accuracy": teacher.masked_acc_after,
            "masked-LM cross-entropy": teacher.mlm_ce_after,
        },
        {
            "model": f"student {m.arch}, distilled",
            "masked-token accuracy": m.heldout_masked_acc,
            "masked-LM cross-entropy": m.heldout_mlm_ce,
        },
        {
            "model": f"student {m.arch}, MLM only",
            "masked-token accuracy": m.mlm_only_heldout_masked_acc,
            "masked-LM cross-entropy": m.mlm_only_heldout_mlm_ce,
        },
    ]
    verdict = "helps" if m.distillation_helps else "does not help"
    return (
        "## 4. Teacher and distillation pretraining\n\n"
        f"{_produced_by(m, 'teacher', 'pretrain')}"
        "Held-out text, the same fixed masking for every row:\n\n"
        f"{markdown_table(rows, digits=4)}\nAt this budget ({m.steps} steps), distillation **{verdict}** "
        "over masked-LM training alone (masked-token accuracy).\n\n"
        f"{_figure('pretrain_curves.png', 'Pretraining: distilled against MLM-only')}\n"
    )


def paper_reference_table() -> str:
    """The paper's per-task scores (Bort and BERT-large), labelled as the paper's."""
    rows = [
        {"benchmark": bench, "task": task, "metric": metric, "paper: Bort": bort, "paper: BERT-large": large}
        for bench, table in (("GLUE", paper.GLUE), ("SuperGLUE", paper.SUPERGLUE))
        for task, (metric, bort, large) in table.items()
    ]
    rows += [
        {
            "benchmark": name.split()[0],
            "task": "average",
            "metric": name,
            "paper: Bort": bort,
            "paper: BERT-large": large,
        }
        for name, (bort, large) in paper.AVERAGES.items()
    ]
    return markdown_table(rows)


def finetune_section(tasks: dict[str, FinetuneResult], torus: TorusResult | None) -> str:
    rows = []
    for name, m in tasks.items():
        row = {"task": name, "profile": m.profile, "metric": m.metric}
        for model in ("source", "student_plain", "student_agora"):
            scores = getattr(m, model)
            row[model] = f"{scores['mean']:.4f} ± {scores['std']:.4f}"
        row["seeds"] = len(m.source["scores"])
        claim = paper.GLUE.get(name)
        row["paper: Bort (GLUE test, 0-100)"] = f"{claim[1]} ({claim[0]})" if claim else "-"
        rows.append(row)
    text = (
        "## 5. Fine-tuning with Agora\n\nTest scores (mean ± std over seeds) on test splits that model "
        "selection and Agora never read. `student_plain` is the best θ on dev without data expansion "
        "(Agora's first round); `student_agora` adds Agora's rounds. The last column is the paper's score "
        "where the task is a GLUE task (none of the embedded default's tasks is).\n\n"
        f"{markdown_table(rows)}\nPaper (a different scale: RoBERTa-large teacher, GLUE/SuperGLUE/RACE, "
        f"full pretraining): {paper.NLU}. Its per-task test scores, for reference only (the "
        f"leaderboards' hidden test sets, 0-100; source: {paper.SCORES_SOURCE}):\n\n"
        f"{paper_reference_table()}\n"
    )
    text += "".join(_figure(f"finetune_{name}.png", f"{name}: test score per seed") for name in tasks)
    if torus:
        text += (
            f"\nThe blog's toy example: test accuracy {torus.accuracy_without_agora:.3f} without Agora, "
            f"{torus.accuracy_with_agora:.3f} with it ({torus.points_added} points added); trained on "
            f"train and dev with true labels: {torus.accuracy_train_plus_dev_true_labels:.3f}.\n\n"
            f"{_figure('agora_torus.png', 'Agora on a torus learned from an unrepresentative sample')}"
        )
    return text + "\n"


def speed_section(m: BenchmarkResult) -> str:
    rows = [
        {
            "comparison": "Bort (paper shape) vs BERT-large",
            "ours": m.speedup_bort_paper_vs_bert_large,
            "paper": paper.SPEEDUP_VS_BERT_LARGE,
        },
        {
            "comparison": "Bort (paper shape) vs BERT-base",
            "ours": m.speedup_bort_paper_vs_bert_base,
            "paper": paper.SPEEDUP_VS_BERT_BASE,
        },
        {
            "comparison": "Bort (released shape) vs BERT-large",
            "ours": m.speedup_bort_released_vs_bert_large,
            "paper": None,
        },
        {"comparison": "extracted student vs source", "ours": m.speedup_extracted_vs_source, "paper": None},
        {"comparison": "student, ONNX Runtime vs PyTorch", "ours": m.ort_speedup_extracted, "paper": None},
        {
            "comparison": "student, ONNX Runtime int8 vs PyTorch",
            "ours": m.ort_int8_speedup_extracted,
            "paper": None,
        },
    ]
    env = m.environment
    for row in rows:
        row["ours"], row["paper"] = _fmt(row["ours"], 2), _fmt(row["paper"], 1)
    return (
        f"## 6. CPU speed\n\n{_produced_by(m, 'benchmark')}"
        "Single-request latency ratios (smallest batch measured), every model timed in "
        f"one run on {env['cpu']} ({env['cores']} cores), torch {env['torch']}; GEMM peak "
        f"{m.gemm_peak_gflops:.1f} GFLOP/s.\n\n{markdown_table(rows)}\n"
        f"{_figure('benchmark_speedups.png', 'Measured speed-ups beside the paper')}\n"
    )


def _sections(metrics: Metrics, tables: Path) -> list[tuple[str, str | None]]:
    """(stage, its section's Markdown or None when the stage has not run), in the report's order."""
    m = metrics
    return [
        ("costs", size_section(tables, m.costs) if (tables / "bort_sizes.csv").exists() else None),
        ("costs", costs_section(m.costs, tables) if m.costs else None),
        ("extract", extract_section(m.extract, tables) if m.extract else None),
        ("pretrain", pretraining_section(m.teacher, m.pretrain) if m.pretrain and m.teacher else None),
        ("finetune", finetune_section(m.finetune, m.agora_torus) if m.finetune else None),
        ("benchmark", speed_section(m.benchmark) if m.benchmark else None),
    ]


def not_run(metrics_dir: str | Path, tables_dir: str | Path) -> list[str]:
    """The stages whose section says "has not run", once each."""
    sections = _sections(read_metrics(metrics_dir), Path(tables_dir))
    return list(dict.fromkeys(stage for stage, text in sections if text is None))


def render(metrics_dir: str | Path, tables_dir: str | Path, profile: str) -> str:
    """The report's Markdown; sections of stages that have not run say so."""
    parts = [
        "# Bort, reproduced: results\n\n"
        f"Profile **{profile}**. Generated by `dvc repro report` from `reports/metrics/` and "
        "`reports/tables/`; "
        "every number below comes from those files, and each section names the stage that wrote it. "
        "Rendered notebooks with every detail are in `reports/notebooks/`.\n"
    ]
    for stage, text in _sections(read_metrics(metrics_dir), Path(tables_dir)):
        parts.append(text if text is not None else f"*(stage `{stage}` has not run)*\n")
    parts.append(
        "## Reproduce\n\n```bash\nmake reproduce            # the whole pipeline, embedded default profile\n"
        "dvc metrics show          # every metric\ndvc plots show            # every figure\n```\n"
    )
    return "\n".join(parts)
