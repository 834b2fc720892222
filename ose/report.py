"""Stage `report`: every stage's metrics, side by side with the paper's claims, as reports/README.md.

Every number in the report is read from a metrics JSON or a table CSV that a stage wrote; the only
literals are the paper's own claims (`PAPER`), each labelled as the paper's.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ose.io import markdown_table, read_json

# The paper's claims (de Wynter & Perry 2020, abstract and §4-§5), shown as references only.
PAPER = {
    "size": "56M parameters (39M of them embeddings): 16% of BERT-large's net size, 5.5% of its "
    "effective (non-embedding) size",
    "speed": "about 20× faster than BERT-large and 7.9× faster than BERT-base on a CPU",
    "nlu": "better than BERT-large on 20 of 23 NLU tasks (GLUE, SuperGLUE, RACE), by 0.3% to 31% "
    "absolute, after pretraining on 288 GPU hours and fine-tuning with Agora",
    "speedup_vs_bert_large": 20.0,
    "speedup_vs_bert_base": 7.9,
}

# The paper's per-task test-set scores for Bort and BERT-large, as the authors' companion repository
# (github.com/alexa/bort, README) lists them: GLUE and SuperGLUE leaderboard submissions, on 0-100,
# "a/b" where the benchmark reports two metrics. References only: a different scale (RoBERTa-large
# teacher, full pretraining) and a different test set (the leaderboards' hidden test sets; our GLUE
# test split is the official dev set).
PAPER_SOURCE = "de Wynter & Perry (2020), as listed in github.com/alexa/bort README"
PAPER_GLUE = {
    # task: (metric(s) as reported, Bort, BERT-large)
    "cola": ("MCC", "63.9", "60.5"),
    "sst2": ("accuracy", "96.2", "94.9"),
    "mrpc": ("F1/accuracy", "94.1/92.3", "89.3/85.4"),
    "stsb": ("Pearson/Spearman", "89.2/88.3", "87.6/86.5"),
    "qqp": ("F1/accuracy", "66.0/85.9", "72.1/89.3"),
    "mnli": ("accuracy (matched)", "88.1", "86.7"),
    "qnli": ("accuracy", "92.3", "92.7"),
    "rte": ("accuracy", "82.7", "70.1"),
    "wnli": ("accuracy", "71.2", "65.1"),
}
PAPER_SUPERGLUE = {
    "boolq": ("accuracy", "83.7", "77.4"),
    "cb": ("F1/accuracy", "81.9/86.5", "75.7/83.6"),
    "rte (SuperGLUE)": ("accuracy", "81.2", "71.7"),
}
PAPER_AVERAGES = {"GLUE score": ("83.6", "80.5"), "SuperGLUE score": ("74.1", "69.0")}


def read_metrics(metrics_dir: str | Path) -> dict[str, dict]:
    """Every `*.json` under `metrics_dir`, keyed by its path without suffix (e.g. `finetune/imdb`)."""
    root = Path(metrics_dir)
    return {str(p.relative_to(root).with_suffix("")): read_json(p) for p in sorted(root.rglob("*.json"))}


def _value(text: str):
    """A CSV cell back as the bool, int or float it was written from, else the text."""
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_table(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as f:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _produced_by(m: dict | None, *stages: str) -> str:
    """The line under a section's title: which stage(s) wrote its numbers, under which profile."""
    names = " and ".join(f"`{stage}`" for stage in stages)
    profile = (m or {}).get("profile", "n/a")
    return f"*Stage{'s' if len(stages) > 1 else ''} {names}, profile `{profile}`.*\n\n"


def _figure(name: str, caption: str) -> str:
    return f"![{caption}](figures/{name})\n\n*{caption}*\n\n"


def size_section(tables: Path, costs: dict | None = None) -> str:
    rows = read_table(tables / "bort_sizes.csv")
    body = markdown_table(
        rows,
        [
            "shape",
            "arch",
            "total_M",
            "paper_total_M",
            "embedding_M",
            "paper_embedding_M",
            "pct_of_bert_large",
            "paper_pct_of_bert_large",
            "effective_pct_of_bert_large",
            "paper_effective_pct_of_bert_large",
            "matches_all",
        ],
    )
    matching = [r["shape"] for r in rows if r["matches_all"] is True]
    verdict = (
        f"The paper's figures match the **{', '.join(matching)}** shape"
        if matching
        else "Neither shape matches all of the paper's figures"
    )
    return (
        f"## 1. Bort's size\n\n{_produced_by(costs, 'costs')}Paper: {PAPER['size']}. Exact counts:\n\n"
        f"{body}\n"
        f'{verdict} (within 5%); "effective" is everything but the embedding.\n'
    )


def costs_section(m: dict, tables: Path) -> str:
    fits = [
        {
            "space": s,
            "measured": m[f"n_measured_{s}"],
            "MAPE fit (%)": m[f"{s}_space_mape_fit"],
            "MAPE held-out (%)": m[f"{s}_space_mape_heldout"],
        }
        for s in ("default", "paper")
    ]
    abnc = read_table(tables / "abnc.csv")
    settings = m["settings"]
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


def extract_section(m: dict, tables: Path) -> str:
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
            "search": f"FPTAS, ε = {m['epsilon']}",
            "architecture": m["arch"],
            "W": m["w"],
            "trainings": m["n_trainings"],
            "training seconds": m["seconds"],
        },
        {
            "search": "exhaustive (ε = 1)",
            "architecture": m["exhaustive_arch"],
            "W": m["exhaustive_w"],
            "trainings": m["exhaustive_trainings"],
            "training seconds": m["exhaustive_seconds"],
        },
    ]
    return (
        "## 3. Optimal subarchitecture extraction (the FPTAS)\n\n"
        f"{_produced_by(m, 'extract')}"
        f"Space of {m['n_space']} architectures, {m['n_candidates']} candidates at ε = {m['epsilon']}, "
        f"approximation ratio W(ε)/W(ε=1) = **{_fmt(m['approx_ratio'])}**. The extracted architecture "
        f"**{m['arch']}** has {_fmt(m['params'])} parameters ({_fmt(100 * m['params_vs_source'], 1)}% of the "
        f"source) and a predicted latency {_fmt(100 * m['latency_vs_source'], 1)}% of the source's; on the "
        f"Pareto front of the evaluated points: {_fmt(m['chosen_on_pareto_front'])}.\n\n"
        f"{markdown_table(rows, digits=4)}\n"
        f"{exponents}"
        f"{_figure('extract_pareto.png', 'Evaluated architectures: p against i, coloured by ê')}\n"
        f"{_figure('extract_epsilon_sweep.png', 'Approximation ratio and cost against ε')}\n"
    )


def pretraining_section(teacher: dict, m: dict) -> str:
    rows = [
        {
            "model": f"teacher before adaptation ({teacher['arch']})",
            "masked-token accuracy": teacher["masked_acc_before"],
            "masked-LM cross-entropy": teacher["mlm_ce_before"],
        },
        {
            "model": f"teacher after {teacher['steps']} steps",
            "masked-token accuracy": teacher["masked_acc_after"],
            "masked-LM cross-entropy": teacher["mlm_ce_after"],
        },
        {
            "model": f"student {m['arch']}, distilled",
            "masked-token accuracy": m["heldout_masked_acc"],
            "masked-LM cross-entropy": m["heldout_mlm_ce"],
        },
        {
            "model": f"student {m['arch']}, MLM only",
            "masked-token accuracy": m["mlm_only_heldout_masked_acc"],
            "masked-LM cross-entropy": m["mlm_only_heldout_mlm_ce"],
        },
    ]
    verdict = "helps" if m["distillation_helps"] else "does not help"
    return (
        "## 4. Teacher and distillation pretraining\n\n"
        f"{_produced_by(m, 'teacher', 'pretrain')}"
        "Held-out text, the same fixed masking for every row:\n\n"
        f"{markdown_table(rows, digits=4)}\nAt this budget ({m['steps']} steps), distillation **{verdict}** "
        "over masked-LM training alone (masked-token accuracy).\n\n"
        f"{_figure('pretrain_curves.png', 'Pretraining: distilled against MLM-only')}\n"
    )


def paper_reference_table() -> str:
    """The paper's per-task scores (Bort and BERT-large), labelled as the paper's."""
    rows = [
        {"benchmark": bench, "task": task, "metric": metric, "paper: Bort": bort, "paper: BERT-large": large}
        for bench, table in (("GLUE", PAPER_GLUE), ("SuperGLUE", PAPER_SUPERGLUE))
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
        for name, (bort, large) in PAPER_AVERAGES.items()
    ]
    return markdown_table(rows)


def finetune_section(tasks: dict[str, dict], torus: dict | None) -> str:
    rows = []
    for name, m in tasks.items():
        row = {"task": name, "profile": m.get("profile", "n/a"), "metric": m["metric"]}
        for model in ("source", "student_plain", "student_agora"):
            row[model] = f"{m[model]['mean']:.4f} ± {m[model]['std']:.4f}"
        row["seeds"] = len(m["source"]["scores"])
        paper = PAPER_GLUE.get(name)
        row["paper: Bort (GLUE test, 0-100)"] = f"{paper[1]} ({paper[0]})" if paper else "-"
        rows.append(row)
    text = (
        "## 5. Fine-tuning with Agora\n\nTest scores (mean ± std over seeds) on test splits that model "
        "selection and Agora never read. `student_plain` is the best θ on dev without data expansion "
        "(Agora's first round); `student_agora` adds Agora's rounds. The last column is the paper's score "
        "where the task is a GLUE task (none of the embedded default's tasks is).\n\n"
        f"{markdown_table(rows)}\nPaper (a different scale: RoBERTa-large teacher, GLUE/SuperGLUE/RACE, "
        f"full pretraining): {PAPER['nlu']}. Its per-task test scores, for reference only (the "
        f"leaderboards' hidden test sets, 0-100; source: {PAPER_SOURCE}):\n\n{paper_reference_table()}\n"
    )
    text += "".join(_figure(f"finetune_{name}.png", f"{name}: test score per seed") for name in tasks)
    if torus:
        text += (
            f"\nThe blog's toy example: test accuracy {torus['accuracy_without_agora']:.3f} without Agora, "
            f"{torus['accuracy_with_agora']:.3f} with it ({torus['points_added']} points added); trained on "
            f"train and dev with true labels: {torus['accuracy_train_plus_dev_true_labels']:.3f}.\n\n"
            f"{_figure('agora_torus.png', 'Agora on a torus learned from an unrepresentative sample')}"
        )
    return text + "\n"


def speed_section(m: dict) -> str:
    rows = [
        {
            "comparison": "Bort (paper shape) vs BERT-large",
            "ours": m["speedup_bort_paper_vs_bert_large"],
            "paper": PAPER["speedup_vs_bert_large"],
        },
        {
            "comparison": "Bort (paper shape) vs BERT-base",
            "ours": m["speedup_bort_paper_vs_bert_base"],
            "paper": PAPER["speedup_vs_bert_base"],
        },
        {
            "comparison": "Bort (released shape) vs BERT-large",
            "ours": m.get("speedup_bort_released_vs_bert_large"),
            "paper": None,
        },
        {
            "comparison": "extracted student vs source",
            "ours": m["speedup_extracted_vs_source"],
            "paper": None,
        },
        {"comparison": "student, ONNX Runtime vs PyTorch", "ours": m["ort_speedup_extracted"], "paper": None},
        {
            "comparison": "student, ONNX Runtime int8 vs PyTorch",
            "ours": m.get("ort_int8_speedup_extracted"),
            "paper": None,
        },
    ]
    env = m["environment"]
    for row in rows:
        row["ours"], row["paper"] = _fmt(row["ours"], 2), _fmt(row["paper"], 1)
    return (
        f"## 6. CPU speed\n\n{_produced_by(m, 'benchmark')}"
        "Single-request latency ratios (smallest batch measured), every model timed in "
        f"one run on {env['cpu']} ({env['cores']} cores), torch {env['torch']}; GEMM peak "
        f"{m['gemm_peak_gflops']:.1f} GFLOP/s.\n\n{markdown_table(rows)}\n"
        f"{_figure('benchmark_speedups.png', 'Measured speed-ups beside the paper')}\n"
    )


def render(metrics_dir: str | Path, tables_dir: str | Path, profile: str) -> str:
    """The report's Markdown; sections of stages that have not run say so."""
    metrics, tables = read_metrics(metrics_dir), Path(tables_dir)
    parts = [
        "# Bort, reproduced: results\n\n"
        f"Profile **{profile}**. Generated by `dvc repro report` from `reports/metrics/` and "
        "`reports/tables/`; "
        "every number below comes from those files, and each section names the stage that wrote it. "
        "Rendered notebooks with every detail are in `reports/notebooks/`.\n"
    ]
    missing = "*(stage `{}` has not run)*\n"
    parts.append(
        size_section(tables, metrics.get("costs"))
        if (tables / "bort_sizes.csv").exists()
        else missing.format("costs")
    )
    parts.append(costs_section(metrics["costs"], tables) if "costs" in metrics else missing.format("costs"))
    parts.append(
        extract_section(metrics["extract"], tables) if "extract" in metrics else missing.format("extract")
    )
    if "pretrain" in metrics and "teacher" in metrics:
        parts.append(pretraining_section(metrics["teacher"], metrics["pretrain"]))
    else:
        parts.append(missing.format("pretrain"))
    tasks = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("finetune/")}
    parts.append(finetune_section(tasks, metrics.get("agora_torus")) if tasks else missing.format("finetune"))
    parts.append(
        speed_section(metrics["benchmark"]) if "benchmark" in metrics else missing.format("benchmark")
    )
    parts.append(
        "## Reproduce\n\n```bash\nmake reproduce            # the whole pipeline, embedded default profile\n"
        "dvc metrics show          # every metric\ndvc plots show            # every figure\n```\n"
    )
    return "\n".join(parts)
