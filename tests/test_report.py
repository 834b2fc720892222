"""The report renders from metrics files alone, and says which stages have not run."""

import json

from ose.io import write_json, write_table
from ose.report import PAPER, PAPER_GLUE, read_metrics, render


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
    write_json(
        metrics / "agora_torus.json",
        {
            "accuracy_without_agora": 0.5,
            "accuracy_with_agora": 0.9,
            "points_added": 17,
            "accuracy_train_plus_dev_true_labels": 0.95,
        },
    )
    write_json(
        metrics / "finetune" / "imdb.json",
        {
            "metric": "accuracy",
            **{
                m: {"scores": [0.7, 0.8], "mean": 0.75, "std": 0.0707}
                for m in ("source", "student_plain", "student_agora")
            },
        },
    )
    write_json(
        metrics / "finetune" / "rte.json",
        {
            "profile": "paper",
            "metric": "accuracy",
            **{
                m: {"scores": [0.6, 0.62], "mean": 0.61, "std": 0.0141}
                for m in ("source", "student_plain", "student_agora")
            },
        },
    )
    text = render(metrics, tables, "smoke")
    assert "Profile **smoke**" in text
    assert "The paper's figures match the **bort-paper** shape" in text
    assert "0.500 without Agora, 0.900 with it (17 points added)" in text
    assert "*(stage `extract` has not run)*" in text and "*(stage `benchmark` has not run)*" in text
    assert PAPER["nlu"] in text
    # a GLUE task's row carries the paper's score beside ours, and names the profile that produced it
    assert "| rte | paper | accuracy | 0.6100 ± 0.0141 |" in text
    assert "| 2 | 82.7 (accuracy) |" in text
    assert "| imdb | n/a | accuracy | 0.7500 ± 0.0707 |" in text
    # the paper's per-task reference table, every GLUE task with Bort's and BERT-large's score
    for task, (metric, bort, large) in PAPER_GLUE.items():
        assert f"| GLUE | {task} | {metric} | {bort} | {large} |" in text
    assert set(read_metrics(metrics)) == {"agora_torus", "finetune/imdb", "finetune/rte"}
    json.loads((metrics / "finetune" / "imdb.json").read_text())
