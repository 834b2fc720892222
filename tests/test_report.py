"""The report renders from the stages' typed results alone, and says which stages have not run."""

from ose import paper
from ose.report import read_metrics, read_table, render
from ose.results import write_table
from ose.stages import finetune, torus


def _finetune(task: str, profile: str, scores: list[float], mean: float, std: float) -> finetune.Result:
    models = {
        m: {"scores": scores, "mean": mean, "std": std} for m in ("source", "student_plain", "student_agora")
    }
    return finetune.Result(
        profile=profile,
        task=task,
        metric="accuracy",
        **models,
        train_size=100,
        test_size=20,
        points_added_per_seed={},
        agora_rounds_per_seed={},
        thetas=[],
        machine={},
    )


def test_report_renders_from_metrics(tmp_path):
    metrics, tables = tmp_path / "metrics", tmp_path / "tables"
    write_table(
        tables / "bort_sizes",
        [
            {
                "shape": "bort-paper",
                "arch": "D4-A8-H768-I1024",
                "total_M": 55.35,
                "paper_total_M": 56.0,
                "embedding_M": 39.0,
                "paper_embedding_M": 39.0,
                "pct_of_bert_large": 16.52,
                "paper_pct_of_bert_large": 16.0,
                "effective_pct_of_bert_large": 5.39,
                "paper_effective_pct_of_bert_large": 5.5,
                "matches_all": True,
            }
        ],
    )
    torus.Result(
        profile="smoke",
        seed=0,
        accuracy_without_agora=0.5,
        accuracy_with_agora=0.9,
        accuracy_train_plus_dev_true_labels=0.95,
        points_added=17,
        labeller_calls=2,
        rounds=3,
    ).write(metrics / "agora_torus.json")
    _finetune("imdb", "default", [0.7, 0.8], 0.75, 0.0707).write(metrics / "finetune" / "imdb.json")
    _finetune("rte", "paper", [0.6, 0.62], 0.61, 0.0141).write(metrics / "finetune" / "rte.json")
    text = render(metrics, tables, "smoke")
    assert "Profile **smoke**" in text
    assert "The paper's figures match the **bort-paper** shape" in text
    assert "0.500 without Agora, 0.900 with it (17 points added)" in text
    assert "*(stage `extract` has not run)*" in text and "*(stage `benchmark` has not run)*" in text
    assert paper.NLU in text and paper.SIZE in text
    # a GLUE task's row carries the paper's score beside ours, and names the profile that produced it
    assert "| rte | paper | accuracy | 0.6100 ± 0.0141 |" in text
    assert "| 2 | 82.7 (accuracy) |" in text
    assert "| imdb | default | accuracy | 0.7500 ± 0.0707 |" in text
    # the paper's per-task reference table, every GLUE task with Bort's and BERT-large's score
    for task, (metric, bort, large) in paper.GLUE.items():
        assert f"| GLUE | {task} | {metric} | {bort} | {large} |" in text
    found = read_metrics(metrics)
    assert list(found.finetune) == ["imdb", "rte"] and found.finetune["rte"].profile == "paper"
    assert found.agora_torus.points_added == 17
    assert found.costs is None and found.benchmark is None


def test_tables_read_back_typed(tmp_path):
    rows = [
        {"name": "a", "count": 3, "share": 0.5, "holds": True, "note": "x"},
        {"name": "b|c", "count": 40_000, "share": 1.0, "holds": False, "note": None},
    ]
    write_table(tmp_path / "t", rows)
    back = read_table(tmp_path / "t.csv")
    assert back == [{**rows[0]}, {**rows[1], "note": ""}]  # an empty cell reads back empty
    assert [type(v) for v in back[1].values()] == [str, int, float, bool, str]


def test_why_the_smallest_architecture_is_explained_with_numbers(tmp_path):
    from ose.report import _why_smallest
    from ose.stages.extract import Result

    geometry = {
        "space": {
            "size_factor_min": 0.58,
            "size_factor_max": 0.99,
            "cost_factor_min": 0.5,
            "cost_factor_max": 0.9,
        }
    }
    values = {f.name: None for f in __import__("dataclasses").fields(Result)}
    m = Result(**{**values, "position": 1, "geometry": geometry})
    write_table(tmp_path / "extract_candidates", [{"arch": "a", "error": 2.0}, {"arch": "b", "error": 2.1}])
    text = _why_smallest(m, tmp_path)
    assert "2.000–2.100" in text and "5.0% spread" in text and "0.58–0.99" in text
    assert _why_smallest(Result(**{**values, "position": 2, "geometry": geometry}), tmp_path) == ""
