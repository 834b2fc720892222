"""The verdict rules on made-up numbers, boundaries included, and the claims rows that apply them."""

from types import SimpleNamespace

import pytest
from test_report import _finetune

from ose import verdicts as v
from ose.speed.ratios import claim_status
from ose.stages import benchmark, extract
from ose.stages.report import HEADLINE_MARGIN, Metrics, headline_claim


@pytest.mark.parametrize(
    "figure,interval",
    [
        (20.0, (19.5, 20.5)),
        ("20", (19.5, 20.5)),
        (7.9, (7.85, 7.95)),
        (16.0, (15.5, 16.5)),
        (5.5, (5.45, 5.55)),
        (56, (55.5, 56.5)),
        ("0.30", (0.295, 0.305)),  # a stated trailing zero is a stated digit
    ],
)
def test_a_figure_covers_half_a_unit_of_its_last_digit(figure, interval):
    assert v.stated_interval(figure) == pytest.approx(interval)


def test_the_stated_interval_is_closed_below_and_open_above():
    assert v.side(19.5, 20) == "inside" and v.side(20.5, 20) == "above"
    assert v.side(19.49, 20) == "below" and v.side(20.49, 20) == "inside"
    assert v.side((18.0, 19.5), 20) == "inside", "an interval touching the figure's meets it"
    assert v.side((18.0, 19.49), 20) == "below" and v.side((20.5, 21.0), 20) == "above"
    assert v.quantity_verdict((19.27, 19.66), 20) == v.REPRODUCED  # the 19.49× [19.27, 19.66]
    assert v.quantity_verdict(16.52, 16) == v.NOT_REPRODUCED
    with pytest.raises(ValueError, match="ordered interval"):
        v.side((2.0, 1.0), 20)
    with pytest.raises(ValueError, match="finite"):
        v.stated_interval("nan")


def test_a_claim_of_several_figures_needs_all_of_them():
    assert v.combined([v.REPRODUCED, v.REPRODUCED]) == v.REPRODUCED
    assert v.combined([v.REPRODUCED, v.NOT_REPRODUCED]) == v.NOT_REPRODUCED
    assert v.combined([v.NOT_TESTABLE]) == v.combined([]) == v.NOT_TESTABLE


def test_an_effect_is_established_contradicted_or_inconclusive():
    assert v.effect_reading(0.03, 0.01, 0.05, p=0.01) == v.ESTABLISHED
    assert v.effect_reading(0.03, 0.01, 0.05, p=0.05) == v.INCONCLUSIVE, "p must be under 0.05"
    assert v.effect_reading(0.03, -0.01, 0.07, p=0.2) == v.INCONCLUSIVE
    assert v.effect_reading(-0.03, -0.05, -0.01, p=0.01) == v.CONTRADICTED
    assert v.effect_reading(-0.03, -0.05, 0.0, p=0.2) == v.INCONCLUSIVE, "touching 0 decides nothing"
    assert v.effect_reading(-0.03, -0.05, -0.01, p=0.01, direction=-1) == v.ESTABLISHED
    assert v.effect_reading(float("nan"), 0.0, 1.0, p=0.01) == v.INCONCLUSIVE
    assert v.effect_verdict(v.ESTABLISHED) == v.REDUCED
    assert v.effect_verdict(v.CONTRADICTED) == v.effect_verdict(v.INCONCLUSIVE) == v.NOT_REPRODUCED


def test_a_margin_claim_reads_the_interval_against_the_margin():
    assert v.effect_reading(0.0, -0.01, 0.01, margin=0.01) == v.ESTABLISHED  # the bound on the margin
    assert v.effect_reading(0.0, -0.0101, 0.01, margin=0.01) == v.INCONCLUSIVE
    assert v.effect_reading(-0.05, -0.07, -0.0101, margin=0.01) == v.CONTRADICTED
    with pytest.raises(ValueError, match="margin"):
        v.effect_reading(0.0, -0.01, 0.01, margin=-0.01)


def test_several_effects_need_one_established_and_none_contradicted():
    assert v.combined_effects([v.ESTABLISHED, v.INCONCLUSIVE]) == v.REDUCED
    assert v.combined_effects([v.ESTABLISHED, v.CONTRADICTED]) == v.NOT_REPRODUCED
    assert v.combined_effects([v.INCONCLUSIVE]) == v.NOT_REPRODUCED
    assert v.combined_effects([]) == v.NOT_TESTABLE


def test_within_seed_noise_is_no_larger_than_the_spread():
    assert v.within_noise(0.01, 0.01) and v.within_noise(-0.005, 0.01)
    assert not v.within_noise(0.011, 0.01) and not v.within_noise(0.0, None)


def test_a_speed_claim_holds_where_our_interval_meets_its_stated_precision():
    assert claim_status({"ci_low": 19.27, "ci_high": 19.66}, 20.0) == "holds"
    assert claim_status({"ci_low": 17.8, "ci_high": 19.45}, 20.0) == "short"
    assert claim_status({"ci_low": 20.5, "ci_high": 21.0}, 20.0) == "exceeded"
    assert claim_status({"ci_low": 5.0, "ci_high": 40.0}, 20.0) == "undecided"


def _speed_result(cells):
    claims = [
        {"model": "bort-paper", "reference": reference, "batch": b, "seq": s, "speedup": x, "ci_low": lo,
         "ci_high": hi, "status": claim_status({"ci_low": lo, "ci_high": hi}, claimed)}
        for reference, claimed, (b, s, x, lo, hi) in cells
    ]  # fmt: skip
    return SimpleNamespace(paper_claims=claims, threads=2)


def test_speed_verdicts_follow_the_rules():
    met = _speed_result(
        [("bert-large", 20.0, (8, 128, 19.3, 19.1, 19.5)), ("bert-base", 7.9, (1, 128, 8.1, 7.96, 8.2))]
    )
    rows = {r["claim"]: r["verdict"] for r in benchmark.speed_claims(met)}
    assert list(rows.values()) == [v.REPRODUCED, v.NOT_REPRODUCED]  # 7.96 is above [7.85, 7.95)


def _extract(ratio, ci_low):
    used = {"s": 32, "theta": "lr-1e-3", "tau_b": 0.5, "ci_low": ci_low, "ci_high": 0.9}
    return SimpleNamespace(
        inits={"inherited": {"check_at_fptas": used, "fptas": {"arch": "D1-A4-H128-I96"}}},
        init="inherited", optimum_tied=False, arch="D1-A4-H128-I96", epsilon=4,
        exhaustive_arch="D1-A4-H128-I96", approx_ratio=ratio, n_trainings=42, exhaustive_trainings=168,
        chosen_on_pareto_front=True,
    )  # fmt: skip


def test_the_fptas_claim_needs_the_bound_and_a_surrogate_that_ranks():
    assert extract.claims(_extract(1.0, 0.2))[0]["verdict"] == v.REDUCED
    assert extract.claims(_extract(1.0, -0.1))[0]["verdict"] == v.NOT_REPRODUCED
    assert extract.claims(_extract(0.1, 0.2))[0]["verdict"] == v.NOT_REPRODUCED  # 0.1 < 1 / (1 + 4)


def _headline(student_scores, speed_low=10.0, params=0.18):
    result = _finetune("rotten_tomatoes", "default", student_scores, 0.0)  # S at 0.8 on every seed
    return Metrics(
        extract=SimpleNamespace(arch="D1-A4-H128-I96", params_vs_source=params),
        finetune={"rotten_tomatoes": result},
        benchmark=SimpleNamespace(
            speedup_extracted_vs_source={"speedup": 12.0, "ci_low": speed_low, "ci_high": 14.0, "batch": 1,
                                         "seq": 128}
        ),
    )  # fmt: skip


def test_the_headline_claim_at_our_scale():
    as_good = [0.8 + d for d in (0.002, -0.003, 0.004, 0.0, 0.001, -0.002, 0.003)]
    row = headline_claim(_headline(as_good))
    assert row["verdict"] == v.REDUCED and "18% of the source's parameters" in row["here"]
    assert "established" in row["here"] and "over 7 seeds" in row["here"]
    worse = [0.7 + d for d in (0.002, -0.003, 0.004, 0.0, 0.001, -0.002, 0.003)]
    row = headline_claim(_headline(worse))
    assert (
        row["verdict"] == v.NOT_REPRODUCED
        and "contradicted" in row["here"]
        and "-9.9 pts [-10.2, -9.7]" in row["here"]
    )
    assert headline_claim(_headline(as_good, speed_low=0.9))["verdict"] == v.NOT_REPRODUCED, "not faster"
    assert headline_claim(_headline(as_good, params=1.2))["verdict"] == v.NOT_REPRODUCED, "not smaller"
    assert headline_claim(Metrics())["verdict"] == v.NOT_TESTABLE
    assert HEADLINE_MARGIN == 0.01
