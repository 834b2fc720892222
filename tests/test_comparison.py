"""The finetune stage's comparison on a tiny toy task: shapes, seeds, and the test split kept apart."""

import numpy as np
import pandas as pd
import pytest
from transformers import BertTokenizer

from ose.agora import NearestNeighbourSubstitution
from ose.arch import Arch, Embedding, build_model
from ose.comparison import MODELS, compare_on_task, summarise
from ose.finetune import FineTuneConfig
from ose.tasks import make_task_data

WORDS = {1: [f"good{i}" for i in range(9)], 0: [f"bad{i}" for i in range(9)]}
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS[1], *WORDS[0]])}
EMB = Embedding(vocab_size=len(VOCAB), max_positions=17, type_vocab_size=2)


def frame(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(2, size=n)
    texts = [" ".join(rng.choice(WORDS[int(y)], 3)) for y in labels]
    return pd.DataFrame({"text": texts, "label": labels})


def test_summary_statistics():
    s = summarise([0.5, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summarise([0.4])["std"] == 0.0


def test_comparison_on_a_toy_task():
    tokenizer = BertTokenizer(vocab=VOCAB)
    task = make_task_data("rotten_tomatoes", frame(48, 0), frame(23, 1), frame(31, 2))
    source = build_model(Arch(1, 2, 16, 19), EMB, head="none", seed=0)
    student = build_model(Arch(1, 2, 8, 11), EMB, head="none", seed=1)
    generator = NearestNeighbourSubstitution(tokenizer, source.get_input_embeddings().weight, k=3, n_new=1)
    config = FineTuneConfig(epochs=2, batch_size=8, lr=3e-3, max_len=8)
    thetas = [{"name": "slow", "lr": 1e-3}, {"name": "fast", "lr": 5e-3}]
    result = compare_on_task(
        task,
        tokenizer,
        source,
        student,
        config,
        config,
        thetas,
        generator,
        [3, 4],
        max_train_examples=40,
        progress=False,
    )
    assert result["train_size"] == 40 and result["test_size"] == 31
    assert [(r["seed"], r["model"]) for r in result["rows"]] == [(s, m) for s in (3, 4) for m in MODELS]
    for model in MODELS:
        assert len(result[model]["scores"]) == 2
        assert all(0.0 <= s <= 1.0 for s in result[model]["scores"])
    assert {r["seed"] for r in result["rounds"]} == {3, 4}
    assert max(sum(r["seed"] == s for r in result["rounds"]) for s in (3, 4)) <= len(thetas)
    with pytest.raises(ValueError, match="seeds"):
        compare_on_task(task, tokenizer, source, student, config, config, thetas, generator, [], None)
