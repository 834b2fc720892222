"""The paper's claims (`ose.paper`): consistent with our exact counts of its Bort shape, and written
nowhere else in the code."""

import ast
import json

import pytest

from ose import paper
from ose.arch import preset
from ose.pipeline import paths
from ose.search import objectives as costs
from ose.search.objectives import param_count


def _ours() -> dict[str, float]:
    bort, large = preset("bort-paper"), preset("bert-large")
    p, ref = param_count(bort.arch, bort.embedding), param_count(large.arch, large.embedding)
    return {
        "total_M": p.total / 1e6,
        "embedding_M": p.embedding / 1e6,
        "pct_of_bert_large": 100 * p.total / ref.total,
        "effective_pct_of_bert_large": 100 * (p.total - p.embedding) / (ref.total - ref.embedding),
    }


@pytest.mark.parametrize("claim", list(paper.BORT_SIZE))
def test_bort_size_claims_match_the_paper_shape_within_rounding(claim):
    assert _ours()[claim] == pytest.approx(paper.BORT_SIZE[claim], rel=0.05)


def test_size_claims_are_the_ones_the_costs_stage_checks():
    assert costs.PAPER_BORT_CLAIMS is paper.BORT_SIZE
    rows = costs.bort_size_claims(
        {"bort-paper": (preset("bort-paper").arch, preset("bort-paper").embedding)},
        (preset("bert-large").arch, preset("bert-large").embedding),
    )
    assert rows[0]["matches_all"] and rows[0]["paper_total_M"] == paper.BORT_SIZE["total_M"]


def test_speed_up_labels_name_presets():
    for label in paper.SPEEDUPS:
        model, _, reference = label.partition(" vs ")
        preset(model), preset(reference)


def _paper_literals() -> set:
    """Numbers and strings distinctive of the paper's claims (not e.g. a figure width of 5.5)."""
    speeds = {paper.SPEEDUP_VS_BERT_LARGE, paper.SPEEDUP_VS_BERT_BASE}
    sizes = {paper.BORT_SIZE["total_M"], paper.BORT_SIZE["embedding_M"], paper.BORT_SIZE["pct_of_bert_large"]}
    scores = {
        s
        for table in (paper.GLUE, paper.SUPERGLUE)
        for _, bort, large in table.values()
        for s in (bort, large)
    }
    scores |= {s for pair in paper.AVERAGES.values() for s in pair}
    return speeds | sizes | scores


def _code() -> list[tuple[str, str]]:
    modules = [
        (str(p.relative_to(paths.ROOT)), p.read_text()) for p in sorted((paths.ROOT / "ose").rglob("*.py"))
    ]
    notebooks = [
        (f"{p.name} cell {k}", "".join(cell["source"]))
        for p in sorted(paths.NOTEBOOKS.glob("*.ipynb"))
        for k, cell in enumerate(json.loads(p.read_text())["cells"])
        if cell["cell_type"] == "code"
    ]
    return [(where, source) for where, source in modules + notebooks if where != "ose/paper.py"]


def test_the_paper_numbers_are_written_only_in_ose_paper():
    literals = _paper_literals()
    found = [
        f"{where}:{node.lineno} {node.value!r}"
        for where, source in _code()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, float | str)
        and not isinstance(node.value, bool)
        and node.value in literals
    ]
    assert not found, f"the paper's figures belong in ose/paper.py: {found}"
