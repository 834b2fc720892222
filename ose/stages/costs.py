"""Stage `costs`: p(ξ) counted, i(ξ) measured and fitted, the AB^nC property, Bort's size claims.

For each space (`default`, `paper`) a seeded sample of ξ is timed (cached row by row in
`latency_cache`, so an interrupted run resumes), a polynomial cost model is fitted and scored on
held-out ξ (`ose.search.cost_model`), and written to `cost_model_dir/<space>.json` for stage `extract`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import matplotlib.pyplot as plt

from ose import paper, verdicts
from ose.arch import BERT_EMBEDDING, Arch, preset
from ose.params import Params
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.machine import machine_info
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult, markdown_table, write_table
from ose.reporting import figures
from ose.reporting.markdown import claim_row, figure, produced_by, read_table
from ose.search import abnc
from ose.search.cost_model import LatencySettings, SpaceFit, fit_space
from ose.search.objectives import bort_size_claims

SPACES = ("default", "paper")  # the spaces that get a cost model, in this order
BORT_SHAPES = ("bort-paper", "bort-released")  # the shapes of Bort we count against BERT-large
LATENCY_COLUMNS = ["space", "arch", "median_ms", "iqr_ms", "predicted_ms", "split"]
PART_COLUMNS = ["space", "arch", "part", "params", "gflops", "median_ms"]
BORT_COLUMNS = [
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
    "encoder_pct_of_bert_large_encoder",
    "matches_all",
]
BORT_SHOWN_COLUMNS = [
    "shape",
    "arch",
    "total_M",
    "embedding_M",
    "pct_of_bert_large",
    "effective_pct_of_bert_large",
    "matches_all",
]


class Paths(paths_class("costs")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`)."""


@dataclass(frozen=True)
class Result(StageResult):
    profile: str
    settings: dict  # the LatencySettings fields of params.costs
    n_measured_default: int
    n_measured_paper: int
    default_space_mape_fit: float
    default_space_mape_heldout: float
    paper_space_mape_fit: float
    paper_space_mape_heldout: float
    abnc: dict  # space → condition → holds
    abnc_share_of_space: dict  # space → condition → share of the space where it holds exactly
    bort_shape_matching_paper: list
    machine: dict


def latency_settings(settings: LatencySettings) -> dict:
    """The measurement settings alone (params.costs also says how many ξ to time)."""
    return {f.name: getattr(settings, f.name) for f in fields(LatencySettings)}


def fit_summary(fits: dict[str, SpaceFit]) -> list[dict]:
    """One row per space: how many ξ were timed, the fit's errors and the model's coefficients."""
    return [
        {
            "space": name,
            "measured": len(fit.rows),
            "MAPE fit (%)": fit.mape_fit,
            "MAPE held-out (%)": fit.mape_heldout,
            **dict(zip(fit.model.features, fit.model.coefficients, strict=True)),
        }
        for name, fit in fits.items()
    ]


def verdict_rows(fraction: dict[str, dict], verdict: dict[str, dict]) -> list[dict]:
    """One row per AB^nC condition: its share of each space, and whether it holds there."""
    return [
        {
            "condition": c,
            **{f"{n}: share of space": fraction[n][c] for n in fraction},
            **{f"{n}: holds": verdict[n][c] for n in verdict},
        }
        for c in abnc.CONDITIONS
    ]


def marks(source: Arch, space: list[Arch], name: str) -> dict[str, Arch]:
    """The reference points drawn on a space's p-against-i plane (those inside the space)."""
    wanted = {
        "default": {f"source {source.name}": source},
        "paper": {"Bort (paper shape)": preset("bort-paper").arch},
    }
    return {label: arch for label, arch in wanted.get(name, {}).items() if arch in space}


def _save(fig, path: Path) -> Path:
    figures.save(fig, path)
    plt.close(fig)
    return path


def fit_spaces(
    params: Params, spaces: dict[str, list[Arch]], cache: Path, progress: bool
) -> dict[str, SpaceFit]:
    """Sample, time (resuming from the cache), fit and score the cost model of each space."""
    costs = params.costs
    return {
        name: fit_space(
            name,
            space,
            getattr(costs, f"n_sample_{name}"),
            costs,
            costs.heldout_fraction,
            params.seed,
            cache,
            progress,
        )
        for name, space in spaces.items()
    }


def check_abnc(
    params: Params, spaces: dict[str, list[Arch]], cache: Path
) -> tuple[list[dict], dict[str, dict], dict[str, dict]]:
    """(rows of the timed parts, verdict per space, share of each space where each condition holds)."""
    rows, verdict, fraction = [], {}, {}
    for name, space in spaces.items():
        parts = abnc.part_table(
            name, abnc.representatives(space), params.costs, seed=params.seed, cache_path=cache
        )
        rows += parts
        fraction[name] = abnc.fraction_holding(space, params.costs.seq_len)
        verdict[name] = abnc.verdict(fraction[name], abnc.measured_conditions(parts))
    return rows, verdict, fraction


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Time, fit and write every cost model, table and figure of the stage, then its metrics.

    Returns the metrics and what the notebook shows: Markdown tables and PNG paths by name.
    """
    paths = paths or Paths()
    tables, figs, cache = resolve(paths.tables_dir), resolve(paths.figures_dir), resolve(paths.latency_cache)
    costs = params.costs
    spaces = {name: params.spaces[name].architectures() for name in SPACES}
    source = Arch.parse(params.source.arch)
    print(f"profile {params.profile!r}: {LatencySettings(**latency_settings(costs))}")
    print({name: len(space) for name, space in spaces.items()}, "architectures per space")

    fits = fit_spaces(params, spaces, cache, progress)
    for name, fit in fits.items():
        fit.model.to_json(resolve(paths.cost_model_dir) / f"{name}.json")
    write_table(
        tables / "latencies",
        [row for fit in fits.values() for row in fit.rows],
        columns=LATENCY_COLUMNS,
        title=f"Measured and predicted latency, batch {costs.batch_size} × length "
        f"{costs.seq_len}, {costs.threads} thread(s), profile {params.profile}",
    )
    shown = {
        "fit_summary": markdown_table(fit_summary(fits), digits=3),
        "costs_predicted_vs_measured.png": _save(
            figures.predicted_vs_measured(list(fits.values())), figs / "costs_predicted_vs_measured.png"
        ),
        "costs_latency_vs_dimensions.png": _save(
            figures.latency_vs_dimensions(list(fits.values())), figs / "costs_latency_vs_dimensions.png"
        ),
    }
    for name, fit in fits.items():
        fig = figures.size_vs_cost(
            name, spaces[name], fit.model, BERT_EMBEDDING, marks(source, spaces[name], name)
        )
        shown[f"costs_p_vs_i_{name}.png"] = _save(fig, figs / f"costs_p_vs_i_{name}.png")

    part_rows, verdict, fraction = check_abnc(params, spaces, cache)
    write_table(
        tables / "abnc_parts",
        part_rows,
        columns=PART_COLUMNS,
        title=f"Parts of f = C ∘ B^D ∘ A: parameters, GFLOPs and latency (profile {params.profile})",
    )
    conditions = verdict_rows(fraction, verdict)
    write_table(
        tables / "abnc",
        conditions,
        title="AB^nC conditions (p: parameters, i: inference cost; C: pooler, Cmlm: masked-LM head)",
    )
    shown["abnc"] = markdown_table(conditions)
    shown["abnc_parts"] = markdown_table(part_rows, PART_COLUMNS, digits=3)

    shapes = {name: (preset(name).arch, preset(name).embedding) for name in BORT_SHAPES}
    bert_large = preset("bert-large")
    claims = bort_size_claims(shapes, (bert_large.arch, bert_large.embedding))
    write_table(
        tables / "bort_sizes",
        claims,
        columns=BORT_COLUMNS,
        title="Bort's size claims against our exact counts (M = millions of parameters; %: of BERT-large)",
    )
    shown["bort_sizes"] = markdown_table(claims, BORT_SHOWN_COLUMNS)

    result = Result(
        profile=params.profile,
        settings=latency_settings(costs),
        n_measured_default=len(fits["default"].rows),
        n_measured_paper=len(fits["paper"].rows),
        default_space_mape_fit=fits["default"].mape_fit,
        default_space_mape_heldout=fits["default"].mape_heldout,
        paper_space_mape_fit=fits["paper"].mape_fit,
        paper_space_mape_heldout=fits["paper"].mape_heldout,
        abnc=verdict,
        abnc_share_of_space=fraction,
        bort_shape_matching_paper=[row["shape"] for row in claims if row["matches_all"]],
        machine=machine_info(),
    )
    result.write(resolve(paths.metrics_file))
    return result, shown


# --- The report's section and claims rows (`ose.stages.report` assembles the report) ---


def size_section(tables: Path, costs: Result | None = None) -> str:
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
        f"## 1. Bort's size\n\n{produced_by(costs, 'costs')}Paper: {paper.SIZE}. Exact counts:\n\n"
        f"{body}\n"
        f'{verdict} (within 5%); "effective" is everything but the embedding.\n'
    )


def costs_section(m: Result, tables: Path) -> str:
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
        f"{produced_by(m, 'costs')}"
        f"p(ξ) is counted exactly. i(ξ) is CPU latency (batch {settings['batch_size']}, length "
        f"{settings['seq_len']}, {settings['threads']} thread(s)) fitted by a non-negative polynomial in the "
        "operation-count monomials and scored on architectures left out of the fit:\n\n"
        f"{markdown_table(fits)}\n"
        f"{figure('costs_predicted_vs_measured.png', 'Predicted against measured latency')}\n"
        "The AB^nC property (A: embeddings, B: one layer, C: pooler or masked-LM head; share of each space "
        "where the condition holds exactly, and whether it holds everywhere and on the measured parts):\n\n"
        f"{markdown_table(abnc)}\n"
    )


def _size_claim(tables: Path) -> dict:
    """Bort's size by the verdict rules (`ose.verdicts`, rule 2): each of the paper's four
    figures against our exact count of the shape they imply, at the figure's stated precision."""
    claim, paper_says = "Bort's size", paper.SIZE
    if not (tables / "bort_sizes.csv").exists():
        return claim_row(claim, paper_says, "not computed", "not testable here", "§1, `dvc repro costs`")
    row = next(r for r in read_table(tables / "bort_sizes.csv") if r["shape"] == "bort-paper")
    here = (
        f"{float(row['total_M']):.2f}M = {float(row['pct_of_bert_large']):.2f}% of BERT-large net, "
        f"{float(row['effective_pct_of_bert_large']):.2f}% effective (exact counts of ⟨4, 8, 768, 1024⟩)"
    )
    missed = []
    for key, stated in paper.BORT_SIZE.items():
        ours = float(row[key])
        if verdicts.quantity_verdict(ours, stated) != verdicts.REPRODUCED:
            low, high = verdicts.stated_interval(stated)
            where = verdicts.side(ours, stated)
            missed.append(f"{SIZE_WORDS[key]} {ours:.2f} is {where} [{low:g}, {high:g})")
    if missed:
        here += "; at the paper's precision: " + "; ".join(missed)
    verdict = verdicts.REPRODUCED if not missed else verdicts.NOT_REPRODUCED
    return claim_row(claim, paper_says, here, verdict, "§1 table, `dvc repro costs`")


SIZE_WORDS = {
    "total_M": "total (M)",
    "embedding_M": "embedding (M)",
    "pct_of_bert_large": "% of BERT-large",
    "effective_pct_of_bert_large": "effective %",
}


def _abnc_claim(m: Result | None) -> dict:
    claim = "BERT's cost functions have the AB^nC property (the FPTAS's precondition)"
    if not m:
        return claim_row(claim, "holds", "not measured", "not testable here", "§2, `dvc repro costs`")
    failing = sorted({c for space in m.abnc.values() for c, holds in space.items() if not holds})
    here = "every condition holds" if not failing else f"fails: {', '.join(failing)} (in the measured spaces)"
    return claim_row(
        claim,
        "holds (assumed for p, i and ê)",
        here,
        "reproduced" if not failing else "not reproduced",
        "§2 AB^nC table, `dvc repro costs`",
    )


def claims(m: Result | None, tables: Path) -> list[dict]:
    """This stage's rows of the report's claims table: Bort's size, the AB^nC property."""
    return [_size_claim(tables), _abnc_claim(m)]
