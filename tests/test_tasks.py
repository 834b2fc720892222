"""ose.data.tasks, .splits, .metrics: task specs, seeded stratified splits, saving/loading, metrics."""

import math

import numpy as np
import pandas as pd
import pytest

from ose.data.corpus import Corpus, Provenance
from ose.data.metrics import score
from ose.data.splits import split_off_dev, split_sizes, stratified_split, task_split_sizes
from ose.data.tasks import (
    TASK_NAMES,
    TaskData,
    build_task,
    classification_spec,
    eval_texts,
    load_task,
    main_metric,
    make_task_data,
    save_task,
    task_spec,
)

TOPICS = ("business", "entertainment", "politics", "sports", "tech")
TOPIC_COUNTS = (9, 7, 5, 11, 6)  # 38 documents, deliberately uneven


def fake_bbc() -> Corpus:
    texts, labels = [], []
    for topic, count in zip(TOPICS, TOPIC_COUNTS, strict=True):
        texts += [f"{topic} story number {i}" for i in range(count)]
        labels += [topic] * count
    return Corpus("bbc", texts, labels, Provenance("bbc", "fake", "0", "-", 38, "-", "-"))


FAKE = {"bbc": fake_bbc}


def test_stratified_split_sizes_cover_and_keep_the_label_mix():
    labels = [0] * 13 + [1] * 7 + [2] * 3
    rng = np.random.default_rng(0)
    train, dev, test = stratified_split(labels, 23, (0.6, 0.2, 0.2), rng)
    assert sorted(np.concatenate([train, dev, test]).tolist()) == list(range(23))
    for part in (train, dev, test):
        assert (np.diff(part) > 0).all()  # sorted, no repeats
    per_class = [[int(np.sum(np.asarray(labels)[part] == c)) for c in range(3)] for part in (dev,)]
    assert per_class == [[round(0.2 * 13), round(0.2 * 7), round(0.2 * 3)]]


def test_stratified_split_same_seed_same_split_other_seed_other_split():
    labels = [i % 3 for i in range(41)]

    def run(seed):
        return [
            p.tolist() for p in stratified_split(labels, 41, (0.5, 0.25, 0.25), np.random.default_rng(seed))
        ]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_stratified_split_without_labels_and_bad_fractions():
    a, b = stratified_split(None, 9, (2 / 3, 1 / 3), np.random.default_rng(1))
    assert len(a) == 6 and len(b) == 3
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(None, 9, (0.5, 0.4), np.random.default_rng(1))


@pytest.mark.parametrize(
    "fractions", [(0.6, 0.2, 0.2), (0.0, 0.5, 0.5), (0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (2 / 3, 1 / 3)]
)
def test_split_sizes_are_the_sizes_stratified_split_makes(fractions):
    for n in range(30):
        parts = stratified_split(None, n, fractions, np.random.default_rng(n))
        assert split_sizes(n, fractions) == [len(p) for p in parts]
    assert split_sizes(5, (0.8, 0.1, 0.1)) == [5, 0, 0]  # round(0.5) == 0: Python rounds half to even
    assert split_sizes(3, (0.0, 0.5, 0.5)) == [0, 2, 1]  # the last part gets what is left


@pytest.mark.parametrize("max_examples", [None, 19, 12, 100])
def test_task_split_sizes_are_the_sizes_build_task_makes(max_examples):
    task = build_task(
        "bbc", dev_fraction=0.2, test_fraction=0.1, seed=1, max_examples=max_examples, readers=FAKE
    )
    sizes = task_split_sizes(TOPIC_COUNTS, dev_fraction=0.2, test_fraction=0.1, max_examples=max_examples)
    built = [
        [int((split["label"] == c).sum()) for split in (task.train, task.dev, task.test)] for c in range(5)
    ]
    assert sizes == built


def test_build_task_is_seeded_stratified_and_disjoint():
    task = build_task("bbc", dev_fraction=0.2, test_fraction=0.2, seed=3, readers=FAKE)
    again = build_task("bbc", dev_fraction=0.2, test_fraction=0.2, seed=3, readers=FAKE)
    other = build_task("bbc", dev_fraction=0.2, test_fraction=0.2, seed=4, readers=FAKE)
    for split in ("train", "dev", "test"):
        pd.testing.assert_frame_equal(getattr(task, split), getattr(again, split))
    assert not task.test.equals(other.test)
    texts = [set(getattr(task, s)["text"]) for s in ("train", "dev", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert sum(map(len, texts)) == 38
    expected_dev = sum(round(0.2 * n) for n in TOPIC_COUNTS)
    assert len(task.dev) == len(task.test) == expected_dev
    assert task.dev["label"].value_counts().sort_index().tolist() == [round(0.2 * n) for n in TOPIC_COUNTS]
    assert task.num_labels == 5 and task.label_names == TOPICS and task.text_columns == ("text",)
    assert task.metric_names == ("accuracy", "macro_f1") and not task.is_regression


def test_build_task_max_examples_subsamples_before_splitting():
    task = build_task("bbc", seed=0, max_examples=19, readers=FAKE)
    total = len(task.train) + len(task.dev) + len(task.test)
    assert abs(total - 19) <= 2 and set(task.train["label"]) == set(range(5))


def test_build_task_real_rotten_tomatoes_sizes():
    task = build_task("rotten_tomatoes", seed=0)
    assert (len(task.train), len(task.dev), len(task.test)) == (6824, 852, 852)
    assert task.test["label"].value_counts().tolist() == [426, 426]


def test_unknown_task_names_the_parameter_and_choices():
    own = r"name must be one of \['rotten_tomatoes', 'imdb', 'bbc'\], got 'sst2'"
    with pytest.raises(ValueError, match=own):
        build_task("sst2")
    with pytest.raises(ValueError, match=r"task must be one of \[.*'cola'.*\], got 'colla'"):
        score("colla", [1], [1])


def _pair_task(name: str, labels: list, extra: bool = False) -> TaskData:
    frame = pd.DataFrame(
        {
            "text_a": [
                "tab\there",
                'quote " unbalanced',
                "new\nline",
                "ünïcødé ✓",
                "line\u2028separator\x85",
            ],
            "text_b": ["b0", "b1", "b2", "b3", "b4"],
            "label": labels,
        }
    )
    tests = {"test_mismatched": frame.iloc[:2]} if extra else None
    return make_task_data(
        name,
        frame.iloc[:3],
        frame.iloc[3:4],
        frame.iloc[4:],
        extra_tests=tests,
        provenance={"seed": 9},
    )


@pytest.mark.parametrize(
    ("name", "labels", "extra"),
    [("mnli", [0, 1, 2, 1, 0], True), ("stsb", [0.0, 1.25, 5.0, 3.5, 2.2], False)],
)
def test_save_and_load_task_round_trip(tmp_path, name, labels, extra):
    task = _pair_task(name, labels, extra)
    save_task(task, tmp_path)
    loaded = load_task(tmp_path)
    assert loaded.splits().keys() == task.splits().keys()
    for split, frame in task.splits().items():
        pd.testing.assert_frame_equal(loaded.splits()[split], frame, check_dtype=False)
    assert loaded.provenance == {"seed": 9} and loaded.is_regression == (name == "stsb")
    assert loaded.label_names == task.label_names
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_make_task_data_checks_columns_and_labels():
    with pytest.raises(ValueError, match="out|outside"):
        _pair_task("rte", [0, 1, 2, 0, 1])
    frame = pd.DataFrame({"text": ["x"], "label": [0]})
    with pytest.raises(ValueError, match="lacks columns"):
        make_task_data("rte", frame, frame, frame)


def test_eval_texts_are_dev_and_test_texts_only():
    task = _pair_task("mnli", [0, 1, 2, 1, 0], extra=True)
    assert eval_texts(task) == {
        "ünïcødé ✓",
        "b3",
        "line\u2028separator\x85",
        "b4",
        "tab\there",
        'quote " unbalanced',
        "b0",
        "b1",
    }


# Metrics, against values computed by hand.
# Binary: TP=3 (0, 2, 6), FN=1 (1), FP=1 (4), TN=2 (3, 5).
Y = [1, 1, 1, 0, 0, 0, 1]
P = [1, 0, 1, 0, 1, 0, 1]


def test_binary_metrics_by_hand():
    assert score("mrpc", P, Y) == pytest.approx({"f1": 6 / 8, "accuracy": 5 / 7})
    assert score("cola", P, Y) == pytest.approx({"mcc": (3 * 2 - 1 * 1) / math.sqrt(4 * 4 * 3 * 3)})
    assert score("sst2", P, Y) == pytest.approx({"accuracy": 5 / 7})


def test_predictions_may_be_logits():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0], [1.0, 0.0], [0.2, 0.3], [5, 1], [0, 1]])
    assert score("qqp", logits, Y) == score("qqp", P, Y)


def test_multiclass_macro_f1_by_hand():
    # class 0: F1 1; class 1: tp 1, fn 1 → 2/3; class 2: tp 2, fp 1 → 4/5.
    result = score("bbc", [0, 2, 2, 2, 1], [0, 1, 2, 2, 1])
    assert result == pytest.approx({"accuracy": 4 / 5, "macro_f1": (1 + 2 / 3 + 4 / 5) / 3})


def test_regression_metrics_by_hand():
    predictions, labels = [0.5, 2.0, 1.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    # centred: x = (-1.375, .125, -.875, 2.125), y = (-1.5, .5, -.5, 1.5); same ranks.
    expected = {"pearson": 5.75 / math.sqrt(7.1875 * 5.0), "spearman": 1.0}
    assert score("stsb", predictions, labels) == pytest.approx(expected)
    column = [[1.0], [2.0], [3.0], [4.0]]  # (N, 1), as a regression head outputs
    assert score("stsb", column, [1, 3, 2, 4])["spearman"] == pytest.approx(0.8)


def test_degenerate_and_mismatched_inputs():
    assert score("cola", [1, 1, 1], [1, 0, 1])["mcc"] == 0.0
    assert score("mrpc", [0, 0], [0, 0])["f1"] == 0.0
    with pytest.raises(ValueError, match="match"):
        score("rte", [0, 1], [0, 1, 1])


def test_main_metrics_follow_bert_reporting():
    assert {t: main_metric(t) for t in ("cola", "mrpc", "qqp", "stsb", "rte", "bbc")} == {
        "cola": "mcc",
        "mrpc": "f1",
        "qqp": "f1",
        "stsb": "spearman",
        "rte": "accuracy",
        "bbc": "accuracy",
    }
    for name in TASK_NAMES:
        spec = task_spec(name)
        assert spec.main_metric in spec.metric_names
        assert spec.is_regression == (name == "stsb")


def test_split_off_dev_for_regression_is_plain_random():
    frame = pd.DataFrame(
        {
            "text_a": list("abcdefghijk"),
            "text_b": list("ABCDEFGHIJK"),
            "label": np.linspace(0, 5, 11),
        }
    )
    train, dev = split_off_dev(frame, 3 / 11, np.random.default_rng(2), stratify=False)
    assert len(dev) == 3 and len(train) == 8
    assert sorted(train["text_a"].tolist() + dev["text_a"].tolist()) == list("abcdefghijk")


@pytest.mark.parametrize(
    "line,message",
    [
        ("", r"dev\.jsonl:1: empty file"),
        ('{"text_a": "a", "text_b": "b", "label": "abc"}\n', r"dev\.jsonl:1: label 'abc' is not a number"),
        ('{"text_a": "a", "text_b": "b", "label": NaN}\n', r"dev\.jsonl:1: label nan is not a finite number"),
        ('{"text_a": "a", "text_b": "b", "label": 1.0\n', r"dev\.jsonl:1: not a JSON object"),
    ],
)
def test_load_task_names_the_bad_line(tmp_path, line, message):
    save_task(_pair_task("stsb", [0.0, 1.25, 5.0, 3.5, 2.2]), tmp_path)
    (tmp_path / "dev.jsonl").write_text(line)
    with pytest.raises(ValueError, match=message):
        load_task(tmp_path)


def test_make_task_data_rejects_non_finite_regression_labels():
    with pytest.raises(ValueError, match="stsb train split has non-finite labels"):
        _pair_task("stsb", [0.0, float("nan"), 5.0, 3.5, 2.2])


# --- the user's own tasks: a spec that travels with the task -------------------------------------


def test_builtin_task_names_agree_with_the_config_constants():
    from ose.configs import BUILTIN_TASKS, SUPERGLUE_TASKS

    assert set(BUILTIN_TASKS) == set(TASK_NAMES) and set(SUPERGLUE_TASKS) <= set(TASK_NAMES)


def test_a_user_spec_is_known_by_name_after_make_task_data_and_after_load_task(tmp_path, monkeypatch):
    import ose.data.tasks

    monkeypatch.setattr(ose.data.tasks, "_USER_SPECS", {})
    spec = classification_spec("stance", 2, ["against", "neutral", "for"], "macro_f1")
    assert spec.text_columns == ("text_a", "text_b") and spec.metric_names == ("macro_f1", "accuracy")
    frame = pd.DataFrame({"text_a": list("abcdef"), "text_b": list("ABCDEF"), "label": [0, 1, 2, 0, 1, 2]})
    task = make_task_data("stance", frame, frame[:3], frame[3:], spec=spec)
    assert task.label_names == ("against", "neutral", "for") and main_metric("stance") == "macro_f1"
    save_task(task, tmp_path)
    monkeypatch.setattr(ose.data.tasks, "_USER_SPECS", {})  # a new process
    with pytest.raises(ValueError, match=r"task must be one of \[.*'copa'\], got 'stance'"):
        task_spec("stance")
    loaded = load_task(tmp_path)
    assert loaded.label_names == task.label_names and loaded.metric_names == task.metric_names
    assert score("stance", [0, 1, 1], [0, 1, 2]) == {"macro_f1": pytest.approx(5 / 9), "accuracy": 2 / 3}
    with pytest.raises(ValueError, match=r"stance test split has labels outside 0\.\.2: \[3\]"):
        make_task_data("stance", frame, frame, frame.assign(label=3), spec=spec)


def test_a_user_spec_cannot_take_a_builtin_name_or_be_degenerate():
    with pytest.raises(ValueError, match="'rte' clashes with a built-in task"):
        classification_spec("rte", 2, ["yes", "no"])
    with pytest.raises(ValueError, match="at least two distinct labels"):
        classification_spec("mine", 1, ["yes", "yes"])
    with pytest.raises(ValueError, match="metric must be one of"):
        classification_spec("mine", 1, ["yes", "no"], "spearman")
    with pytest.raises(ValueError, match="spec of task 'other' given for task 'mine'"):
        make_task_data(
            "mine",
            *[pd.DataFrame({"text": ["a"], "label": [0]})] * 3,
            spec=classification_spec("other", 1, ["a", "b"]),
        )
