"""Stage finetune's #25 pieces: S's floor, the plain arm at chance, Θ's size per round, the
dose-response over train sizes, the settings that make the Agora test fair, and their checks."""

import dataclasses
import math

import pytest
from test_stages_b import _comparison

from ose.configs import FineTune, TaskSettings
from ose.finetuning.effects import (
    LABELLER_FLOOR,
    at_chance,
    labeller_below_floor,
    theta_sizes,
)
from ose.params import load
from ose.pipeline import checks
from ose.stages import finetune


def test_labeller_floor_marks_the_seeds_under_two_thirds():
    comparison = _comparison([0, 1, 2], students=("kd",))
    for record, score in zip(comparison["records"], (0.70, 0.66, 2 / 3), strict=True):
        record["labeller"]["score"] = score
    assert LABELLER_FLOOR == pytest.approx(2 / 3)
    assert labeller_below_floor(comparison) == [1]  # exactly 2/3 is on the floor, not under it


def test_at_chance_is_a_t_interval_that_reaches_the_majority_rate():
    assert at_chance([0.50, 0.51, 0.49, 0.50], 0.5)
    assert not at_chance([0.60, 0.62, 0.61, 0.63], 0.5)
    assert at_chance([0.45, 0.47, 0.46], 0.5)  # below chance is at chance too
    assert at_chance([0.505], 0.5) and not at_chance([0.55], 0.5)  # one seed: within a point
    assert at_chance([float("nan")], 0.5)  # nothing learned to show


def test_theta_sizes_read_each_rounds_remaining_set():
    comparison = _comparison([3, 4], students=("kd",))
    assert theta_sizes(comparison, "kd", "agora") == [[1, 0], [1, 0]]


def _sizes_comparisons(params, gains):
    """compare's result at each train size: Agora's gain over plain shrinks with the size."""
    out = {}
    for size, gain in gains.items():
        c = _comparison(params.finetune.seeds, students=("inherited_kd",), gain=gain)
        out[size] = {**c, "train_size": size}
    return out


def test_run_at_several_train_sizes_writes_the_dose_response(tmp_path, monkeypatch):
    params = load()
    cfg = dataclasses.replace(
        params.finetune, train_size=300, dose_sizes=[1000, 100, 300], students=["inherited_kd"]
    )
    params = dataclasses.replace(params, finetune=cfg)
    comparisons = _sizes_comparisons(params, {100: 0.04, 300: 0.02, 1000: 0.0})
    asked = []

    def compare(params, task, paths, progress):
        asked.extend(params.finetune.train_sizes())
        return {size: comparisons[size] for size in params.finetune.train_sizes()}

    monkeypatch.setattr(finetune, "compare", compare)
    monkeypatch.setattr(
        finetune.FineTune, "for_task", lambda self, task: self
    )  # the test's settings, whatever params.yaml's task entries say
    out = finetune.Paths(
        metrics_file=str(tmp_path / "metrics" / "{task}.json"),
        tables_dir=tmp_path / "tables",
        figures_dir=tmp_path / "figures",
    )
    result, shown = finetune.run(params, "rotten_tomatoes", out, progress=False)
    assert asked == [300, 100, 1000], "the main size first, then the curve's"
    assert result.train_size == 300 and sorted(result.sizes, key=int) == ["100", "300", "1000"]
    rows = finetune.dose_rows(result)
    assert [r["train size"] for r in rows] == [100, 300, 1000]
    assert [round(r["agora − plain (points)"], 6) for r in rows] == [4.0, 2.0, 0.0]
    assert (tmp_path / "tables" / "finetune_rotten_tomatoes_dose.csv").exists()
    assert shown["dose_figure"].exists() and "agora − control" in shown["dose"]
    text = finetune.finetune_section({"rotten_tomatoes": result})
    assert "Does Agora's gain shrink as data grow?" in text and "(1000 train)" in text
    corrected = finetune.dose_holm("rotten_tomatoes", result)
    assert {key[1] for key in corrected} == {"100", "300", "1000"}, "one Holm family over the sizes"
    raw = result.sizes["100"]["effects"]["inherited_kd"]["agora_vs_plain"]["sign_flip_p"]
    n = len(params.finetune.seeds)
    assert raw == pytest.approx(2 / 2**n)  # every seed gains at 100: the floor, ×3 still under 0.05
    assert corrected["rotten_tomatoes", "100", "inherited_kd", "agora_vs_plain"]["sign_flip_p"] < 0.05
    assert {key[1] for key in finetune.agora_holm({"rotten_tomatoes": result})} == {"300"}  # the main table


def test_no_agora_verdict_for_a_student_whose_plain_arm_is_at_chance():
    params = load()
    comparison = _comparison(params.finetune.seeds, students=("kd",), gain=0.02)
    for record in comparison["records"]:  # plain arm around 0.5 on a balanced test: chance
        record["arms"]["plain"]["score"] = 0.5 + 0.001 * (2 * (record["seed"] % 2) - 1)
    result = finetune.summarise_comparison(comparison, params, "imdb")
    assert result.plain_at_chance == {"kd": True}
    text = finetune.finetune_section({"imdb": result})
    assert "its plain arm is at chance" in text
    (row, _) = finetune.claims({"imdb": result})
    assert row["verdict"] == "not testable here" and "at chance: imdb/100/kd" in row["here"]


def test_fairness_names_what_remains_and_nothing_when_the_test_is_fair():
    params = load()
    comparison = _comparison(params.finetune.seeds, students=("kd",))
    result = finetune.summarise_comparison(comparison, params, "imdb")
    fair = dataclasses.replace(
        result,
        control_anchor="random_dev",
        thetas=[{"name": "a", "lr": 1e-4, "epochs": 10}, {"name": "b", "lr": 1e-3, "epochs": 10}],
    )
    assert finetune.fairness({"imdb": fair}) == "no gap known"
    unfair = dataclasses.replace(
        fair, control_anchor="random_train", thetas=[{"name": "a", "lr": 2e-3, "epochs": 3}]
    )
    text = finetune.fairness({"imdb": unfair})
    assert "train rows S was fine-tuned on" in text and "2e-3" in text.replace("0.002", "2e-3")
    assert "fewer than 5 epochs" in text
    weak = dataclasses.replace(
        fair, labeller={**fair.labeller, "scores": [0.6] + fair.labeller["scores"][1:]}
    )
    assert f"on 1 of {len(params.finetune.seeds)}" in finetune.fairness({"imdb": weak})


def test_finetune_settings_are_checked_and_sizes_ordered():
    cfg = load().finetune
    with pytest.raises(checks.ConfigError, match=r"pooling: must be one of \['cls', 'mean'\]"):
        dataclasses.replace(cfg, pooling="max")
    with pytest.raises(checks.ConfigError, match="control_anchor: must be one of"):
        dataclasses.replace(cfg, control_anchor="dev_mistakes")
    with pytest.raises(checks.ConfigError, match=r"dose_sizes\[1\]: must be an integer >= 10"):
        dataclasses.replace(cfg, dose_sizes=[100, 5])
    sized = dataclasses.replace(cfg, train_size=300, dose_sizes=[1000, 100, 300])
    assert sized.train_sizes() == [300, 100, 1000]
    per_task = dataclasses.replace(
        cfg, task_settings={**cfg.task_settings, "imdb": TaskSettings(dose_sizes=[50])}
    )
    assert per_task.for_task("imdb").dose_sizes == [50]
    assert isinstance(FineTune.CONTROL_ANCHORS, tuple) and not math.isnan(LABELLER_FLOOR)
