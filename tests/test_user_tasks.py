"""ose.data.user_tasks: the user's own CSV/TSV/JSONL task through params, stage data and fine-tuning."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from transformers import BertTokenizer

from ose.configs import UserTask
from ose.data import tasks as tasks_module
from ose.data.metrics import score
from ose.data.tasks import load_task, main_metric, save_task, task_spec
from ose.data.user_tasks import UserTaskError, label_order, read_user_task
from ose.params import ParamsError, from_dict, render_profile

GOOD = ["great", "lovely", "superb", "fine", "moving", "witty", "bright"]
BAD = ["awful", "dull", "tedious", "bland", "clumsy", "muddled", "flat"]
NEUTRAL = ["the", "film", "plot", "cast", "was", "and"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = {t: i for i, t in enumerate([*SPECIALS, *GOOD, *BAD, *NEUTRAL])}  # 25 entries


def reviews(n: int, seed: int) -> pd.DataFrame:
    """`n` short reviews, `sentiment` "pos" or "neg" (balanced), and an unused `stars` column."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = list(rng.choice(GOOD if positive else BAD, int(rng.integers(2, 5))))
        words += list(rng.choice(NEUTRAL, int(rng.integers(1, 3))))
        rng.shuffle(words)
        rows.append((" ".join(words), "pos" if positive else "neg", 5 if positive else 1))
    return pd.DataFrame(rows, columns=["review", "sentiment", "stars"])


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def clean_registry(monkeypatch):
    """A registry of user task specs as a fresh process has it (empty)."""
    monkeypatch.setattr(tasks_module, "_USER_SPECS", {})


def params_with(data: dict, finetune_tasks: list[str]):
    raw = render_profile("default")
    raw["data"].update(data)
    raw["finetune"]["tasks"] = finetune_tasks
    raw["finetune"]["task_settings"] = {task: {} for task in finetune_tasks}
    return from_dict(raw)


# --- the acceptance test: a CSV with string labels through data → finetune --------------------


@pytest.mark.slow
def test_csv_with_string_labels_runs_through_stage_data_and_fine_tuning(tmp_path, clean_registry):
    from ose.arch import Arch, Embedding, build_model
    from ose.finetuning.classifier import FineTuneConfig, fine_tune, predict
    from ose.stages.data import Paths, run

    reviews(48, seed=0).to_csv(tmp_path / "my_reviews.csv", index=False)
    entry = {"name": "my_reviews", "path": str(tmp_path / "my_reviews.csv"), "text": ["review"]}
    params = params_with(
        {
            "tasks": [],
            "files": [{**entry, "label": "sentiment"}],
            "dev_fraction": 0.2,
            "test_fraction": 0.2,
            "corpus_sources": ["wikipedia"],
            "block_size": 32,
        },
        ["my_reviews"],
    )
    paths = Paths(
        tasks_dir=tmp_path / "tasks",
        corpus_dir=tmp_path / "corpus",
        metrics_file=tmp_path / "data.json",
        tables_dir=tmp_path / "tables",
    )
    result, shown = run(params, paths, progress=False)
    assert result.tasks == {
        "my_reviews": {"metric": "accuracy", "labels": 2, "train": 28, "dev": 10, "test": 10}
    }
    assert "my_reviews" in shown["data_tasks"]

    tasks_module._USER_SPECS.clear()  # stage finetune runs in a new process
    task = load_task(tmp_path / "tasks" / "my_reviews")
    assert task.label_names == ("neg", "pos") and task.text_columns == ("text",)
    assert main_metric("my_reviews") == "accuracy"
    assert task.provenance["files"]["all"]["rows"] == 48

    tokenizer = BertTokenizer(vocab=VOCAB)
    encoder = build_model(Arch(1, 2, 18, 20), Embedding(len(VOCAB), 19, 2), head="pooler", seed=0)
    config = FineTuneConfig(epochs=10, batch_size=8, lr=5e-3, max_len=16, dropout=0.05)
    model, log = fine_tune(encoder, tokenizer, task, config=config, seed=1, progress=False)
    test_scores = score("my_reviews", predict(model, tokenizer, task.test, 16), task.test["label"].to_numpy())
    assert log["best_score"] >= 0.8, log["history"]
    assert test_scores["accuracy"] >= 0.8, test_scores


# --- reading, labels and splits -----------------------------------------------------------


def test_seeded_split_is_stratified_reproducible_and_round_trips(tmp_path, clean_registry):
    reviews(40, seed=1).to_csv(tmp_path / "r.csv", index=False)
    cfg = UserTask(name="r", text=["review"], label="sentiment", path=str(tmp_path / "r.csv"))
    task = read_user_task(cfg, dev_fraction=0.1, test_fraction=0.2, seed=3)
    assert (len(task.train), len(task.dev), len(task.test)) == (28, 4, 8)
    for frame in (task.train, task.dev, task.test):
        assert frame["label"].value_counts().tolist() == [len(frame) // 2] * 2  # stratified
    again = read_user_task(cfg, dev_fraction=0.1, test_fraction=0.2, seed=3)
    pd.testing.assert_frame_equal(task.test, again.test)
    other = read_user_task(cfg, dev_fraction=0.1, test_fraction=0.2, seed=4)
    assert not task.test["text"].equals(other.test["text"])
    save_task(task, tmp_path / "saved")
    tasks_module._USER_SPECS.clear()
    loaded = load_task(tmp_path / "saved")
    assert loaded.label_names == ("neg", "pos") and task_spec("r").metric_names == ("accuracy",)
    pd.testing.assert_frame_equal(loaded.dev, task.dev)


def test_jsonl_pairs_with_integer_labels_and_given_train_and_test_files(tmp_path):
    rows = [{"q": f"question {i}", "a": f"answer {i}", "y": [1, 2, 10][i % 3]} for i in range(30)]
    write_jsonl(tmp_path / "train.jsonl", rows[:24])
    write_jsonl(tmp_path / "test.jsonl", rows[24:])
    cfg = UserTask(
        name="qa",
        text=["q", "a"],
        label="y",
        train=str(tmp_path / "train.jsonl"),
        test=str(tmp_path / "test.jsonl"),
        metric="macro_f1",
    )
    task = read_user_task(cfg, dev_fraction=0.25, test_fraction=0.1, seed=0)
    assert task.label_names == ("1", "2", "10"), "integer labels sort numerically"
    assert task.text_columns == ("text_a", "text_b") and task.metric_names == ("macro_f1", "accuracy")
    assert (len(task.train), len(task.dev), len(task.test)) == (18, 6, 6), "dev carved from train only"
    assert task.test["text_a"].tolist() == [f"question {i}" for i in range(24, 30)]
    assert task.test["label"].tolist() == [0, 1, 2] * 2
    assert task.provenance["given_splits"] == ["test", "train"]


def test_split_column_and_label_order_from_params(tmp_path):
    frame = reviews(30, seed=2)
    frame["part"] = ["train"] * 20 + ["dev"] * 5 + ["test"] * 5
    frame.to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    cfg = UserTask(
        name="r",
        text=["review"],
        label="sentiment",
        path=str(tmp_path / "r.tsv"),
        split="part",
        labels=["pos", "neg"],
        metric="f1",
    )
    task = read_user_task(cfg)
    assert (len(task.train), len(task.dev), len(task.test)) == (20, 5, 5)
    assert task.label_names == ("pos", "neg") and task.main_metric == "f1"
    expected = (frame["sentiment"][25:] == "neg").astype(int).tolist()  # "neg" is id 1 here
    assert task.test["label"].tolist() == expected


def test_label_order_sorts_integers_numerically():
    assert label_order(["10", "2", "2", "-1"]) == ("-1", "2", "10")
    assert label_order(["b", "a", "10"]) == ("10", "a", "b")


# --- clear errors ---------------------------------------------------------------------------


def entry(path, **changes) -> UserTask:
    return UserTask(
        **{"name": "mine", "text": ["review"], "label": "sentiment", "path": str(path), **changes}
    )


def test_missing_column_names_the_file_the_column_and_the_columns(tmp_path):
    reviews(10, seed=0).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(UserTaskError, match=r"r\.csv: no column 'stance' \(label\); its columns: \['review'"):
        read_user_task(entry(tmp_path / "r.csv", label="stance"))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", "", r"empty\.csv: empty file"),
        ("header.csv", "review,sentiment\n", r"header\.csv: a header but no rows"),
        ("blank.jsonl", "\n\n", r"blank\.jsonl: empty file"),
        ("bad.jsonl", '{"review": "ok", "sentiment": "pos"}\n[1]\n', r"bad\.jsonl:2: not a JSON object"),
        ("r.txt", "review,sentiment\na,pos\n", r"unknown file type '\.txt'; allowed: \['\.csv'"),
    ],
)
def test_unreadable_files_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(UserTaskError, match=message):
        read_user_task(entry(tmp_path / name))


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(UserTaskError, match=r"no such file: .*nothing\.csv \(path\)"):
        read_user_task(entry(tmp_path / "nothing.csv"))


def test_label_outside_labels_names_file_column_rows_and_allowed(tmp_path):
    frame = reviews(10, seed=0)
    frame.loc[[3, 7], "sentiment"] = "meh"
    frame.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(
        UserTaskError,
        match=r"r\.csv: column 'sentiment' has labels \['meh'\] at data rows \[4, 8\] that are not in "
        r"labels \['neg', 'pos'\]",
    ):
        read_user_task(entry(tmp_path / "r.csv", labels=["neg", "pos"]))


def test_one_class_and_empty_values_are_errors(tmp_path):
    frame = reviews(10, seed=0).assign(sentiment="pos")
    frame.to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(UserTaskError, match=r"one\.csv: column 'sentiment' holds one class \('pos'\)"):
        read_user_task(entry(tmp_path / "one.csv"))
    write_jsonl(
        tmp_path / "gap.jsonl", [{"review": "fine", "sentiment": "pos"}, {"review": None, "sentiment": "neg"}]
    )
    with pytest.raises(UserTaskError, match=r"column 'review' \(text\[0\]\) is empty at lines \[2\]"):
        read_user_task(entry(tmp_path / "gap.jsonl"))


def test_unknown_split_value_and_too_few_rows_are_named(tmp_path):
    frame = reviews(10, seed=0).assign(part="train")
    frame.loc[2, "part"] = "validation"
    frame.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(
        UserTaskError,
        match=r"column 'part' \(split\) has values \['validation'\] at data rows \[3\]; allowed",
    ):
        read_user_task(entry(tmp_path / "r.csv", split="part"))
    reviews(4, seed=0).to_csv(tmp_path / "tiny.csv", index=False)
    with pytest.raises(UserTaskError, match=r"the dev split is empty .* or raise data\.dev_fraction"):
        read_user_task(entry(tmp_path / "tiny.csv"), dev_fraction=0.1, test_fraction=0.1)


def test_f1_on_three_classes_is_refused_with_the_entry(tmp_path):
    write_jsonl(tmp_path / "r.jsonl", [{"review": f"t{i}", "sentiment": "abc"[i % 3]} for i in range(30)])
    with pytest.raises(UserTaskError, match=r"data\.files \(mine\): mine: metric f1 .* two labels"):
        read_user_task(entry(tmp_path / "r.jsonl", metric="f1"))


# --- params ---------------------------------------------------------------------------------


def test_params_accept_a_user_task_with_optional_keys_left_out():
    params = params_with(
        {"files": [{"name": "my_reviews", "path": "data/my_reviews.csv", "text": ["review"], "label": "y"}]},
        ["rotten_tomatoes", "my_reviews"],
    )
    (cfg,) = params.data.files
    assert cfg.labels == [] and cfg.split == "" and cfg.metric == "accuracy" and cfg.train == ""
    assert params.data.task_names() == ["rotten_tomatoes", "imdb", "bbc", "my_reviews"]


@pytest.mark.parametrize(
    "files, finetune, message",
    [
        ([], ["my_reviews"], r"^finetune\.tasks\[0\]: 'my_reviews' is not prepared by stage data"),
        (
            [{"name": "rte", "path": "a.csv", "text": ["t"], "label": "y"}],
            ["imdb"],
            r"^data\.files\[0\]\.name: 'rte' clashes with a built-in task",
        ),
        (
            [{"name": "mine", "path": "a.csv", "text": ["t"]}],
            ["imdb"],
            r"^data\.files\[0\]\.label: missing key",
        ),
        (
            [{"name": "mine", "path": "a.csv", "text": ["t"], "label": "y", "column": "x"}],
            ["imdb"],
            r"^data\.files\[0\]\.column: unknown key",
        ),
        (
            [{"name": "mine", "text": ["t"], "label": "y"}],
            ["imdb"],
            r"^data\.files\[0\]\.path: give either path",
        ),
        (
            [{"name": "mine", "path": "a.csv", "text": ["t"], "label": "y", "labels": ["a"]}],
            ["imdb"],
            r"^data\.files\[0\]\.labels: must be at least two distinct labels",
        ),
        (
            [{"name": "mine", "path": "a.csv", "text": ["a", "b", "c"], "label": "y"}],
            ["imdb"],
            r"^data\.files\[0\]\.text: must name one text column or two",
        ),
        (
            [{"name": "Mine!", "path": "a.csv", "text": ["t"], "label": "y"}],
            ["imdb"],
            r"^data\.files\[0\]\.name: must match",
        ),
        (
            [{"name": "m", "path": "a.csv", "text": ["t"], "label": "y"}] * 2,
            ["imdb"],
            r"^data\.files\[1\]\.name: 'm' names two entries",
        ),
        (
            [{"name": "m", "path": "a.csv", "text": ["t"], "label": "y", "metric": "auc"}],
            ["imdb"],
            r"^data\.files\[0\]\.metric: unknown metric 'auc'; allowed: \['accuracy', 'f1', 'macro_f1'",
        ),
    ],
)
def test_params_errors_name_the_key(files, finetune, message):
    with pytest.raises(ParamsError, match=message):
        params_with({"files": files}, finetune)


def test_integer_labels_in_params_are_the_files_strings():
    cfg = UserTask(name="m", text=["t"], label="y", path="a.csv", labels=[0, 1])
    assert cfg.label_names == ("0", "1")
