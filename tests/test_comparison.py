"""The finetune stage's experiment on a tiny toy task: paired arms, the control's budget, the test
split kept apart, the cache, and a verdict that follows from the numbers."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertTokenizer

from ose.arch import Arch, Embedding, build_model
from ose.data.tasks import make_task_data
from ose.finetuning.classifier import FineTuneConfig
from ose.finetuning.comparison import MemoFit, compare_on_sizes, compare_on_task, frame_digest, seed_sample
from ose.finetuning.effects import (
    ARMS,
    CONCLUSIONS,
    arm_rows,
    arm_scores,
    paired_effects,
    round_rows,
    score_rows,
    summarise,
    verdict,
)
from ose.finetuning.generator import NearestNeighbourSubstitution

WORDS = {1: [f"good{i}" for i in range(9)], 0: [f"bad{i}" for i in range(9)]}
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS[1], *WORDS[0]])}
EMB = Embedding(vocab_size=len(VOCAB), max_positions=17, type_vocab_size=2)


def frame(n, seed, positive_share=0.5):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < positive_share).astype(int)
    texts = [" ".join(rng.choice(WORDS[int(y)], 3)) for y in labels]
    return pd.DataFrame({"text": texts, "label": labels})


def test_summary_statistics():
    s = summarise([0.5, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summarise([0.4])["std"] == 0.0


def test_seed_sample_is_balanced_stratified_and_hides_the_test_split():
    task = make_task_data("rotten_tomatoes", frame(200, 0, 0.8), frame(101, 1, 0.7), frame(31, 2))
    sample = seed_sample(task, 20, 50, seed=3)
    assert sample.train["label"].value_counts().to_dict() == {0: 10, 1: 10}
    dev_share = task.dev["label"].mean()
    assert len(sample.dev) == 50 and abs(sample.dev["label"].mean() - dev_share) <= 1 / 50
    assert len(sample.test) == 0 and not sample.extra_tests
    again = seed_sample(task, 20, 50, seed=3)
    pd.testing.assert_frame_equal(again.train, sample.train)
    assert frame_digest(seed_sample(task, 20, 50, seed=4).train) != frame_digest(sample.train)
    with pytest.raises(ValueError, match="finetune.train_size"):
        seed_sample(task, 150, None, seed=0)  # 75 negatives needed, about 40 exist


def test_memo_fit_fits_each_frame_theta_and_seed_once():
    calls = []

    def fit(train, theta, seed):
        calls.append((len(train), theta["name"], seed))
        return object(), 0.5

    memo = MemoFit(fit)
    a = memo(frame(5, 0), {"name": "x"}, 1)
    assert memo(frame(5, 0), {"name": "x"}, 1) is a
    memo(frame(5, 0), {"name": "x"}, 2)
    memo(frame(6, 0), {"name": "x"}, 1)
    assert len(calls) == memo.calls == 3


@pytest.fixture(scope="module")
def toy():
    tokenizer = BertTokenizer(vocab=VOCAB)
    task = make_task_data("rotten_tomatoes", frame(60, 0, 0.7), frame(23, 1), frame(31, 2))
    source = build_model(Arch(1, 2, 16, 19), EMB, head="none", seed=0)
    students = {
        "kd": build_model(Arch(1, 2, 8, 11), EMB, head="none", seed=1),
        "mlm": build_model(Arch(1, 2, 8, 11), EMB, head="none", seed=2),
    }
    generator = NearestNeighbourSubstitution(tokenizer, source.get_input_embeddings().weight, k=3, n_new=2)
    return tokenizer, task, source, students, generator


CONFIG = FineTuneConfig(epochs=2, batch_size=8, lr=3e-3, max_len=8)
THETAS = [{"name": "slow", "lr": 1e-3}, {"name": "mid", "lr": 2e-3}, {"name": "fast", "lr": 5e-3}]


def compare(toy, seeds, cache_dir=None, nproc=1, size=20):
    tokenizer, task, source, students, generator = toy
    return compare_on_task(
        task, tokenizer, source, students, CONFIG, CONFIG, THETAS, generator, seeds, size, 20,
        cache_dir=cache_dir, nproc=nproc, progress=False,
    )  # fmt: skip


def test_comparison_pairs_the_arms_and_matches_the_controls_budget(toy, tmp_path):
    result = compare(toy, [3, 4], tmp_path)
    assert (result["train_size"], result["dev_size"], result["test_size"]) == (20, 20, 31)
    assert [(r["seed"], r["student"]) for r in result["records"]] == [
        (3, "kd"),
        (3, "mlm"),
        (4, "kd"),
        (4, "mlm"),
    ]
    for record in result["records"]:
        assert set(record["arms"]) == set(ARMS)
        assert all(0.0 <= record["arms"][arm]["score"] <= 1.0 for arm in ARMS)
        agora_rounds = [e for e in record["rounds"] if e["arm"] == "agora"]
        control_rounds = [e for e in record["rounds"] if e["arm"] == "control"]
        assert 1 <= len(agora_rounds) <= len(THETAS) and 1 <= len(control_rounds) <= len(THETAS)
        assert agora_rounds[0]["scores"] == control_rounds[0]["scores"], "round 1 is shared"
        assert agora_rounds[-1]["added"] == control_rounds[-1]["added"] == 0, "the last round adds nothing"
        for a, c in zip(agora_rounds[:-1], control_rounds[:-1], strict=False):
            assert c["added"] == a["added"], "the control adds exactly as many points per round"
            assert c["train_size"] == a["train_size"]
        assert all("test_score" in e and "constant_predictor" in e for e in record["rounds"])
        fits = sum(len(e["scores"]) for e in record["rounds"])
        assert record["student_fits"] == fits - len(THETAS), "round 1 is fitted once for both loops"
        assert record["arms"]["plain"]["best_round"] == 1
    # S is fitted once per seed and shared by the students
    assert result["records"][0]["labeller"] == result["records"][1]["labeller"]
    assert len(score_rows(result)) == 2 and "mlm control" in score_rows(result)[0]
    assert len(arm_rows(result)) == 2 * (1 + 2 * len(ARMS))
    assert {r["arm"] for r in round_rows(result)} == {"agora", "control"}
    effects = paired_effects(result, "kd")
    diff = np.subtract(arm_scores(result, "kd", "agora"), arm_scores(result, "kd", "plain"))
    assert effects["agora_vs_plain"]["mean"] == pytest.approx(diff.mean())

    # the cache: a second run reads every record back, a changed setting recomputes
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["seed3-kd.json", "seed3-mlm.json", "seed4-kd.json", "seed4-mlm.json"]
    stamp = json.loads((tmp_path / "seed4-mlm.json").read_text())["fingerprint"]
    (tmp_path / "seed3-kd.json").write_text(json.dumps({"fingerprint": "stale"}))
    again = compare(toy, [3, 4], tmp_path)
    assert json.loads((tmp_path / "seed4-mlm.json").read_text())["fingerprint"] == stamp
    assert again["records"][1:] == json.loads(json.dumps(result["records"][1:]))
    assert again["records"][0]["arms"] == result["records"][0]["arms"], "recomputed: same seed, same run"


def _untimed(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(json.dumps(records))]


@pytest.mark.slow
def test_worker_processes_give_the_records_of_one_process(toy, tmp_path, monkeypatch):
    """Every (train size, seed) in one pool of two spawned one-thread workers: per size the same
    records, in seed order, as one process on one thread, written to each size's cache (a later
    run with nproc 1 reads them back)."""
    tokenizer, task, source, students, generator = toy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = {size: compare(toy, [5, 3, 4], tmp_path / f"one{size}", size=size) for size in (20, 14)}
        pooled = compare_on_sizes(
            task, tokenizer, source, students, CONFIG, CONFIG, THETAS, generator, [5, 3, 4],
            {20: tmp_path / "two", 14: tmp_path / "two" / "size14"}, 20, nproc=2, progress=False,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert list(pooled) == [20, 14]
    for size in (20, 14):
        assert [(r["seed"], r["student"], r["train_size"]) for r in pooled[size]["records"]] == [
            (s, n, size) for s in (5, 3, 4) for n in ("kd", "mlm")
        ]
        assert _untimed(pooled[size]["records"]) == _untimed(alone[size]["records"])
    monkeypatch.setattr("ose.finetuning.comparison.fine_tune", None)  # a recompute would fail
    again = compare(toy, [5, 3, 4], tmp_path / "two", size=20)
    assert _untimed(again["records"]) == _untimed(pooled[20]["records"])
    with pytest.raises(ValueError, match="nproc"):
        compare(toy, [3], nproc=0)
    with pytest.raises(ValueError, match="train_sizes"):
        compare_on_sizes(task, tokenizer, source, students, CONFIG, CONFIG, THETAS, generator, [3], {})


def test_comparison_needs_seeds_and_students(toy):
    tokenizer, task, source, students, generator = toy
    with pytest.raises(ValueError, match="seeds"):
        compare_on_task(task, tokenizer, source, students, CONFIG, CONFIG, THETAS, generator, [], None)
    with pytest.raises(ValueError, match="students"):
        compare_on_task(task, tokenizer, source, {}, CONFIG, CONFIG, THETAS, generator, [0], None)


def _effect(mean, low, high, n=8):
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": n}


def test_verdict_follows_from_the_numbers():
    helps = _effect(0.02, 0.01, 0.03)
    nothing = _effect(0.001, -0.01, 0.012)
    line = verdict(
        {"agora_vs_plain": helps, "agora_vs_control": nothing},
        {"agora_vs_plain": 0.01, "agora_vs_control": 0.6},
    )
    assert line.startswith(CONCLUSIONS[1, 0]) and "+2.0 points [+1.0, +3.0]" in line
    line = verdict(
        {"agora_vs_plain": helps, "agora_vs_control": helps}, {"agora_vs_plain": 0.2, "agora_vs_control": 0.2}
    )
    assert line.startswith(CONCLUSIONS[0, 0]), "not significant after correction: no detectable effect"
    hurts = _effect(-0.03, -0.05, -0.01)
    line = verdict(
        {"agora_vs_plain": hurts, "agora_vs_control": hurts},
        {"agora_vs_plain": 0.01, "agora_vs_control": 0.01},
    )
    assert line.startswith(CONCLUSIONS[-1, -1])
    assert len(CONCLUSIONS) == 9
