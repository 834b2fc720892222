import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertTokenizer

from ose.arch import Arch, Embedding, build_model
from ose.data.tasks import make_task_data
from ose.finetuning.agora import agora
from ose.finetuning.classifier import (
    Classifier,
    FineTuneConfig,
    balanced_sample,
    encode_frame,
    evaluate,
    fine_tune,
    load_encoder,
    make_fit,
    make_labeller,
    make_predict,
    predict,
    predict_encoded,
    stratified_sample,
    without_test,
)
from ose.finetuning.generator import NearestNeighbourSubstitution, input_embeddings

POSITIVE = [f"good{i}" for i in range(11)]
NEGATIVE = [f"bad{i}" for i in range(11)]
NEUTRAL = [f"the{i}" for i in range(7)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = {t: i for i, t in enumerate([*SPECIALS, *POSITIVE, *NEGATIVE, *NEUTRAL])}  # 34 entries
ARCH = Arch(2, 4, 36, 37)
EMB = Embedding(vocab_size=len(VOCAB), max_positions=23, type_vocab_size=2)
FAST = FineTuneConfig(epochs=6, batch_size=8, lr=5e-3, max_len=16, dropout=0.05)


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(vocab=VOCAB)


def polarity_frame(n: int, seed: int) -> pd.DataFrame:
    """Texts of 2–5 words of one polarity plus up to 2 neutral words; label 1 for positive."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(POSITIVE if label else NEGATIVE, int(rng.integers(2, 6))))
        words += list(rng.choice(NEUTRAL, int(rng.integers(0, 3))))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return pd.DataFrame(rows, columns=["text", "label"])


def polarity_task():
    return make_task_data("sst2", polarity_frame(48, 0), polarity_frame(23, 1), polarity_frame(13, 2))


def encoder(seed=0):
    return build_model(ARCH, EMB, head="pooler", seed=seed)


class StubEncoder(torch.nn.Module):
    """Returns fixed hidden states, to see which of them the head reads."""

    def __init__(self, states):
        super().__init__()
        self.states = states
        self.config = type("Config", (), {"hidden_size": states.shape[-1], "initializer_range": 0.02})()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return type("Output", (), {"last_hidden_state": self.states})()


def test_head_reads_only_the_first_token_through_dense_tanh_linear():
    states = torch.randn(5, 7, 36, generator=torch.Generator().manual_seed(0))  # (B, L, H)
    model = Classifier(StubEncoder(states), 3, generator=torch.Generator().manual_seed(1)).eval()
    assert model.dense.weight.shape == (36, 36) and model.out.weight.shape == (3, 36)
    logits = model(torch.zeros(5, 7, dtype=torch.long))
    assert logits.shape == (5, 3)
    expected = model.out(torch.tanh(model.dense(states[:, 0])))
    torch.testing.assert_close(logits, expected)
    model.encoder.states = states.clone()
    model.encoder.states[:, 1:] += 5.0
    torch.testing.assert_close(model(torch.zeros(5, 7, dtype=torch.long)), logits)
    model.encoder.states[:, 0] += 1.0
    assert not torch.allclose(model(torch.zeros(5, 7, dtype=torch.long)), logits)


def test_mean_pooling_averages_the_hidden_states_of_the_real_tokens():
    tiny = build_model(
        Arch.parse("D1-A2-H8-I5"), Embedding(vocab_size=30, max_positions=16, type_vocab_size=2), "none", 0
    )
    model = Classifier(tiny, 3, generator=torch.Generator().manual_seed(1), pooling="mean").eval()
    ids = torch.randint(5, 30, (3, 7), generator=torch.Generator().manual_seed(2))  # (B, L)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6])  # (B, L)
    states = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, H)
    by_hand = torch.stack([states[0].sum(0) / 7, states[1, :4].sum(0) / 4, states[2, 0]])  # (B, H)
    torch.testing.assert_close(model.pool(states, mask), by_hand)
    torch.testing.assert_close(model.pool(states, None), states.sum(1) / 7)
    logits = model(ids, attention_mask=mask)
    torch.testing.assert_close(logits, model.out(torch.tanh(model.dense(by_hand))))
    unpadded = model(ids[1:2, :4], attention_mask=mask[1:2, :4])
    torch.testing.assert_close(unpadded, logits[1:2], atol=1e-5, rtol=1e-5)  # padding changes nothing
    first = Classifier(tiny, 3, pooling="cls")
    torch.testing.assert_close(first.pool(states, mask), states[:, 0])
    with pytest.raises(ValueError, match=r"pooling must be one of \['cls', 'mean'\]"):
        Classifier(tiny, 3, pooling="max")


def test_encoder_pooler_is_dropped_and_the_source_is_not_modified():
    source = encoder()
    assert source.pooler is not None
    copy = load_encoder(source)
    assert copy.pooler is None and source.pooler is not None
    with torch.no_grad():
        next(copy.parameters()).add_(1.0)
    assert not torch.equal(next(copy.parameters()), next(source.parameters()))


def test_regression_head_has_one_output_and_mse_loss():
    model = Classifier(encoder(), 1, is_regression=True).eval()
    ids = torch.randint(5, len(VOCAB), (4, 9), generator=torch.Generator().manual_seed(0))
    out = model(ids)
    assert out.shape == (4, 1)
    target = torch.tensor([0.0, 1.5, 2.5, 5.0])
    torch.testing.assert_close(model.loss(out, target), ((out[:, 0] - target) ** 2).mean())
    with pytest.raises(ValueError, match="one output"):
        Classifier(encoder(), 2, is_regression=True)


def test_pairs_are_truncated_and_padded_per_batch(tokenizer):
    frame = pd.DataFrame(
        {
            "text_a": ["good1 good2 good3 good4 good5 good6", "bad1"],
            "text_b": ["the1", "bad2 bad3"],
            "label": [1, 0],
        }
    )
    encoded = encode_frame(tokenizer, frame, max_len=6)
    assert [len(ids) for ids in encoded.input_ids] == [6, 6]
    assert encoded.token_type_ids[1] == [0, 0, 0, 1, 1, 1]
    first = encoded.input_ids[0]
    assert first[0] == VOCAB["[CLS]"] and first.count(VOCAB["[SEP]"]) == 2 and VOCAB["the1"] in first
    single = encode_frame(tokenizer, pd.DataFrame({"text": ["good1", "bad1 bad2 bad3 the1"]}), max_len=11)
    short = single.batch([0])
    assert short["input_ids"].shape == (1, 3), "a batch is padded to its own longest row"
    both = single.batch([0, 1])
    assert both["input_ids"].shape == (2, 6)
    assert both["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]
    assert both["input_ids"][0, 3:].tolist() == [VOCAB["[PAD]"]] * 3


def test_predictions_do_not_depend_on_batching(tokenizer):
    model = Classifier(encoder(), 2, generator=torch.Generator().manual_seed(0)).eval()
    encoded = encode_frame(tokenizer, polarity_frame(11, 5), max_len=16)
    torch.testing.assert_close(
        torch.from_numpy(predict_encoded(model, encoded, batch_size=3)),
        torch.from_numpy(predict_encoded(model, encoded, batch_size=1)),
        atol=1e-5,
        rtol=1e-5,
    )


def test_config_errors_name_the_field():
    for field, value in (
        ("batch_size", 0),
        ("epochs", -1),
        ("lr", 0),
        ("warmup_fraction", 1.5),
        ("patience", -1),
        ("bf16", "yes"),
        ("pooling", "max"),
    ):
        with pytest.raises(ValueError, match=field):
            FineTuneConfig(**{field: value})
    assert FineTuneConfig().with_theta({"name": "fast", "lr": 1e-3}).lr == 1e-3
    with pytest.raises(ValueError, match="learning_rate"):
        FineTuneConfig().with_theta({"name": "typo", "learning_rate": 1e-3})


def test_fine_tune_learns_a_separable_task_and_is_deterministic(tokenizer, tmp_path):
    task = polarity_task()
    model, log = fine_tune(encoder(), tokenizer, task, config=FAST, seed=3, progress=False)
    assert log["best_score"] >= 0.85, log["history"]
    assert log["main_metric"] == "accuracy" and log["train_size"] == 48
    assert evaluate(model, tokenizer, "sst2", task.dev, max_len=16)["accuracy"] == log["best_score"]
    assert not model.training
    # the same encoder from a save_pretrained directory, the same seed: the same model
    encoder().save_pretrained(tmp_path)
    again, log_again = fine_tune(tmp_path, tokenizer, task, config=FAST, seed=3, progress=False)
    assert log_again["history"] == log["history"]
    np.testing.assert_array_equal(
        predict(again, tokenizer, task.test, 16), predict(model, tokenizer, task.test, 16)
    )
    other, _ = fine_tune(encoder(), tokenizer, task, config=FAST, seed=4, progress=False)
    assert not torch.equal(other.out.weight, model.out.weight)


def test_max_steps_caps_a_fit(tokenizer):
    """`max_steps`: the fit stops there (48 rows in batches of 8: 6 steps an epoch) and evaluates on
    dev at its last step; the best evaluation is kept as always."""
    task = polarity_task()
    config = dataclasses.replace(FAST, epochs=2, eval_every=4, warmup_fraction=0.0)
    _, full = fine_tune(encoder(), tokenizer, task, config=config, seed=3, progress=False)
    _, capped = fine_tune(
        encoder(), tokenizer, task, config=dataclasses.replace(config, max_steps=7), seed=3, progress=False
    )
    assert full["steps"] == 12 and capped["steps"] == 7
    assert [h["step"] for h in capped["history"]] == [4, 7]
    assert capped["best_step"] in (4, 7) and full["best_step"] in (4, 8, 12)
    with pytest.raises(ValueError, match="max_steps"):
        FineTuneConfig(max_steps=0)


def test_bf16_fine_tuning_learns_and_predicts_in_fp32(tokenizer):
    """`bf16`: autocast inside the classifier; fp32 outputs, close to the fp32 model's, and the
    fit still learns the task."""
    fp32 = Classifier(encoder(), 2, generator=torch.Generator().manual_seed(0)).eval()
    bf16 = Classifier(encoder(), 2, generator=torch.Generator().manual_seed(0), bf16=True).eval()
    ids = torch.randint(5, EMB.vocab_size, (3, 7), generator=torch.Generator().manual_seed(1))
    out = bf16(ids)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fp32(ids), atol=0.05, rtol=0.05)
    task = polarity_task()
    model, log = fine_tune(
        encoder(), tokenizer, task, config=dataclasses.replace(FAST, bf16=True), seed=3, progress=False
    )
    assert model.bf16 and log["best_score"] >= 0.85, log["history"]


def test_dev_loss_is_recorded_and_the_fit_returns_it_at_the_best_evaluation(tokenizer):
    task = polarity_task()
    config = dataclasses.replace(FAST, epochs=3, pooling="mean")
    model, log = fine_tune(encoder(), tokenizer, task, config=config, seed=2, progress=False)
    assert model.pooling == "mean" and all("dev_loss" in entry for entry in log["history"])
    at_best = next(entry for entry in log["history"] if entry["step"] == log["best_step"])
    assert log["best_loss"] == at_best["dev_loss"]
    logits = torch.from_numpy(predict_encoded(model, encode_frame(tokenizer, task.dev, 16)))  # (N, 2)
    by_hand = torch.nn.functional.cross_entropy(logits, torch.tensor(task.dev["label"].to_numpy()))
    assert log["best_loss"] == pytest.approx(float(by_hand), rel=1e-5)
    _, score, loss = make_fit(encoder(), tokenizer, task, config)(task.train, {"name": "same"}, 2)
    assert (score, loss) == (log["best_score"], log["best_loss"])


def test_early_stopping_keeps_the_best_state(tokenizer):
    task = polarity_task()
    frozen = dataclasses.replace(FAST, lr=1e-12, eval_every=2, patience=2, epochs=3)
    _, log = fine_tune(encoder(), tokenizer, task, config=frozen, seed=0, progress=False)
    assert log["stopped_early"] and log["steps"] == 6 and len(log["history"]) == 3
    assert log["best_step"] == 2, "no later evaluation is better than the first"


def test_regression_fine_tune_scores_with_correlations(tokenizer):
    rng = np.random.default_rng(0)

    def pairs(n):
        a = [" ".join(rng.choice(POSITIVE, 3)) for _ in range(n)]
        b = [" ".join(rng.choice(NEGATIVE + POSITIVE, 3)) for _ in range(n)]
        return pd.DataFrame({"text_a": a, "text_b": b, "label": rng.uniform(0, 5, n)})

    task = make_task_data("stsb", pairs(17), pairs(9), pairs(5))
    config = dataclasses.replace(FAST, epochs=1, batch_size=6)
    model, log = fine_tune(encoder(), tokenizer, task, config=config, seed=0, progress=False)
    values = predict(model, tokenizer, task.dev, 16)
    assert values.dtype == np.float64 and values.shape == (9,)
    squared = (values - task.dev["label"].to_numpy()) ** 2
    assert log["best_loss"] == pytest.approx(squared.mean(), rel=1e-4), "regression's dev loss: the MSE"
    assert log["main_metric"] == "spearman" and set(log["history"][0]) >= {
        "pearson",
        "spearman",
        "train_loss",
    }


class Untouchable:
    """A test split that fails on any use."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")


def test_agora_with_the_real_fine_tuning_never_sees_the_test_split(tokenizer):
    task = dataclasses.replace(polarity_task(), test=Untouchable())
    assert without_test(task).test.empty
    fit = make_fit(encoder(), tokenizer, task, dataclasses.replace(FAST, epochs=2))
    teacher, _ = fine_tune(encoder(1), tokenizer, without_test(task), config=FAST, seed=1, progress=False)
    labeller = make_labeller(teacher, tokenizer, max_len=16)
    generate = NearestNeighbourSubstitution(tokenizer, input_embeddings(encoder(2)), k=3, n_new=2)
    thetas = [{"name": "slow", "lr": 1e-3}, {"name": "fast", "lr": 5e-3}]
    result = agora(
        fit,
        make_predict(tokenizer, 16),
        labeller,
        task.train,
        task.dev,
        thetas,
        generate,
        np.random.default_rng(0),
        replay=1,
        progress=False,
    )
    assert 2 <= len(result.log) <= 3
    assert result.log[0]["mistakes"] > 0 and result.log[0]["added"] > 0
    assert (
        len(result.train) == len(task.train) + sum(r["added"] for r in result.log) == 48 + len(result.added)
    )
    assert result.dev_score == max(s for r in result.log for s in r["scores"].values())
    assert all(np.isfinite(loss) for r in result.log for loss in r["losses"].values())
    np.testing.assert_array_equal(result.added["label"], labeller(result.added[["text"]]))


def _labelled(counts: dict, seed: int = 0) -> pd.DataFrame:
    labels = np.random.default_rng(seed).permutation(np.repeat(list(counts), list(counts.values())))
    return pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels})


def test_balanced_sample_takes_every_class_equally_often():
    frame = _labelled({0: 70, 1: 20, 2: 11})
    sample = balanced_sample(frame, 31, seed=5)
    assert sample["label"].value_counts().sort_index().tolist() == [11, 10, 10], "remainder to the first"
    assert set(sample["text"]) <= set(frame["text"]) and sample["text"].is_unique
    order = frame.reset_index().set_index("text").loc[sample["text"], "index"].to_numpy()
    assert (np.diff(order) > 0).all(), "original order kept"
    pd.testing.assert_frame_equal(sample, balanced_sample(frame, 31, seed=5))
    assert not balanced_sample(frame, 31, seed=6)["text"].equals(sample["text"])
    assert balanced_sample(frame, None, seed=0) is frame and balanced_sample(frame, 500, seed=0) is frame
    with pytest.raises(
        ValueError, match=r"finetune.train_size: a balanced sample of 36 needs 12 rows per class"
    ):
        balanced_sample(frame, 36, seed=0, name="finetune.train_size")
    with pytest.raises(ValueError, match="cannot hold each of the 3 classes"):
        balanced_sample(frame, 2, seed=0)
    regression = frame.assign(label=frame["label"].astype(float) / 2)
    assert len(balanced_sample(regression, 13, seed=0)) == 13


def test_stratified_sample_keeps_the_class_shares():
    frame = _labelled({0: 70, 1: 20, 2: 10})
    sample = stratified_sample(frame, 30, seed=1)
    assert sample["label"].value_counts().sort_index().tolist() == [21, 6, 3]
    assert stratified_sample(frame, 11, seed=1)["label"].value_counts().sort_index().tolist() == [8, 2, 1]
    assert stratified_sample(frame, None, seed=1) is frame
