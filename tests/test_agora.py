import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import BertTokenizer

from ose.data.tasks import make_task_data
from ose.finetuning.agora import (
    STOP_MAX_ROUNDS,
    STOP_NO_MISTAKES,
    STOP_THETA,
    agora,
    agora_on_task,
    find_mistakes,
    points_around_random,
    prediction_spread,
    remove_tied_worst,
)
from ose.finetuning.generator import NearestNeighbourSubstitution
from ose.finetuning.torus import FEATURES, GaussianNeighbours, sector_of, torus_experiment, torus_points

# ---------------------------------------------------------------------------------------------
# The removal rule


def test_removes_the_run_tied_with_the_worst():
    assert remove_tied_worst({"a": 0.7, "b": 0.5, "c": 0.5, "d": 0.9}) == ["b", "c"]
    assert remove_tied_worst({"a": 0.5, "b": 0.6, "c": 0.6}) == ["a"], "a tie not at the root stays"
    assert remove_tied_worst({"a": 0.8, "b": 0.8, "c": 0.8}) == [], "an all-tied Θ keeps every θ"
    assert remove_tied_worst({"a": 0.9}) == ["a"], "a Θ of one θ: its round is done"
    assert remove_tied_worst({"a": 0.6, "b": math.nan, "c": 0.4}) == ["b"], "NaN ranks worst"
    assert remove_tied_worst({"a": 0.5, "b": 0.505, "c": 0.6}, tolerance=0.01) == ["a", "b"]
    with pytest.raises(ValueError):
        remove_tied_worst({})


def test_ties_are_broken_by_dev_loss_and_never_empty_theta():
    scores = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.7}
    assert remove_tied_worst(scores, losses={"a": 0.6, "b": 0.9, "c": 0.7, "d": 0.1}) == ["b"]
    assert remove_tied_worst(scores, losses={"a": 0.9, "b": 0.6, "c": 0.9, "d": 2.0}) == ["a", "c"]
    assert remove_tied_worst(scores, losses={"a": 0.6, "b": math.nan, "c": 0.7}) == ["b"], "NaN loss worst"
    assert remove_tied_worst(scores) == ["a", "b", "c"], "no losses: the whole tied run"
    tied = {"a": 0.5, "b": 0.5, "c": 0.5}
    assert remove_tied_worst(tied, losses={"a": 0.4, "b": 0.4, "c": 0.4}) == [], "scores and losses all tie"
    assert remove_tied_worst(tied, losses={"a": 0.4, "b": 0.3, "c": 0.4}) == ["a", "c"]
    assert remove_tied_worst({"a": 0.5, "b": 0.6}, losses={"a": 0.1, "b": 9.0}) == ["a"], "score first"
    assert remove_tied_worst({"a": 0.5}, losses={"a": 0.1}) == ["a"]


def test_mistakes_for_classes_and_for_regression():
    np.testing.assert_array_equal(find_mistakes([0, 2, 1], [0, 1, 1]), [False, True, False])
    logits = np.array([[0.1, 0.9], [0.8, 0.2]])
    np.testing.assert_array_equal(find_mistakes(logits, [1, 1]), [False, True])
    labels = np.array([0.0, 5.0, 2.0, 3.0])  # range 5: tolerance 0.2 · 5 = 1.0
    predictions = np.array([0.9, 3.8, 2.0, 4.5])
    np.testing.assert_array_equal(find_mistakes(predictions, labels, True), [False, True, False, True])


# ---------------------------------------------------------------------------------------------
# The loop, with scripted fits


def numeric_frame(n, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(offset, 1.0, size=(n, 2))
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "label": (x[:, 0] > 0).astype(int)})


class ScriptedFit:
    """Dev scores from a script: scores[θ name] lists the score of that θ's 1st, 2nd, … fit; with
    `losses`, the dev losses likewise (and the fit returns them)."""

    def __init__(self, scores, losses=None):
        self.scores = {k: list(v) for k, v in scores.items()}
        self.losses = None if losses is None else {k: list(v) for k, v in losses.items()}
        self.calls = []  # (θ name, train size, seed)
        self.models = []

    def __call__(self, train, theta, seed):
        name = theta["name"]
        self.calls.append((name, len(train), seed))
        model = {"name": name, "call": len(self.calls)}
        self.models.append(model)
        if self.losses is None:
            return model, self.scores[name].pop(0)
        return model, self.scores[name].pop(0), self.losses[name].pop(0)


def wrong_on_first(k):
    """predict(): wrong on the first k dev rows, right on the rest."""

    def predict(model, dev):
        labels = dev["label"].to_numpy().copy()
        labels[:k] = 1 - labels[:k]
        return labels

    return predict


class CountingLabeller:
    """S: the true rule (x0 > 0), counting calls and labelled rows."""

    def __init__(self):
        self.calls, self.rows = 0, 0

    def __call__(self, frame):
        self.calls += 1
        self.rows += len(frame)
        return (frame["x0"].to_numpy() > 0).astype(int)


def jitter(n_new):
    def generate(mistakes, rng):
        points = np.repeat(mistakes[["x0", "x1"]].to_numpy(), n_new, axis=0)
        points = points + rng.normal(0, 0.1, size=points.shape)
        return pd.DataFrame(
            {"x0": points[:, 0], "x1": points[:, 1], "source": np.repeat(mistakes.index, n_new)}
        )

    return generate


THETAS = [{"name": n} for n in ("t1", "t2", "t3", "t4")]


def run_scripted(fit, thetas, *, wrong=1, n_new=1, seed=0, **options):
    """Agora on a 9-row train and 5-row dev frame, `wrong` dev mistakes, `n_new` points per mistake."""
    return agora(
        fit,
        wrong_on_first(wrong),
        CountingLabeller(),
        numeric_frame(9, 0),
        numeric_frame(5, 1),
        thetas,
        jitter(n_new),
        np.random.default_rng(seed),
        progress=False,
        **options,
    )


def test_rounds_follow_the_removal_rule_then_replay_the_best_theta():
    fit = ScriptedFit({"t1": [0.6, 0.7], "t2": [0.5], "t3": [0.5], "t4": [0.8, 0.75, 0.7, 0.72, 0.85]})
    train, dev = numeric_frame(11, 0), numeric_frame(7, 1)
    labeller = CountingLabeller()
    result = agora(
        fit,
        wrong_on_first(2),
        labeller,
        train,
        dev,
        THETAS,
        jitter(3),
        np.random.default_rng(0),
        replay=2,
        progress=False,
    )
    log = result.log
    assert [r["removed"] for r in log] == [["t2", "t3"], ["t1"], ["t4"], [], []]
    assert [r["remaining"] for r in log] == [["t1", "t4"], ["t4"], [], [], []]
    assert [sorted(r["scores"]) for r in log] == [
        ["t1", "t2", "t3", "t4"],
        ["t1", "t4"],
        ["t4"],
        ["t4"],
        ["t4"],
    ]
    assert [r["replay"] for r in log] == [False, False, False, True, True]
    assert [r["train_size"] for r in log] == [11, 17, 23, 29, 35]
    assert [r["added"] for r in log] == [6, 6, 6, 6, 0], "nothing is generated after the last round"
    assert result.model is fit.models[-1] and result.theta == {"name": "t4"} and result.best_round == 5
    assert result.dev_score == 0.85
    assert log[-1]["stop"] == STOP_THETA and all("stop" not in r for r in log[:-1])
    assert all(np.isnan(loss) for r in log for loss in r["losses"].values()), "the fit gave no losses"
    assert len({seed for _, _, seed in fit.calls}) == 1, "one seed for every fit"
    assert labeller.calls == 4 and labeller.rows == len(result.added) == 24 == len(result.train) - len(train)
    np.testing.assert_array_equal(result.added["label"], (result.added["x0"] > 0).astype(int))
    assert set(result.added["source"]) <= set(dev.index[:2])
    assert list(result.train.columns) == ["x0", "x1", "label"]


def test_best_model_is_kept_across_rounds_and_ties_keep_the_earliest():
    fit = ScriptedFit({"a": [0.9, 0.4], "b": [0.7, 0.9]})
    result = run_scripted(fit, [{"name": "a"}, {"name": "b"}], n_new=2)
    assert len(result.log) == 2
    assert result.model is fit.models[0] and result.best_round == 1 and result.theta["name"] == "a"


@pytest.mark.parametrize("seed", range(5))
def test_terminates_within_max_rounds_plus_replay_rounds(seed):
    rng = np.random.default_rng(seed)
    names = [f"t{k}" for k in range(7)]
    scores = {n: list(rng.integers(0, 3, size=20) / 4) for n in names}  # many ties
    losses = {n: list(rng.integers(0, 2, size=20) / 2) for n in names}  # ties in loss too
    fit = ScriptedFit(scores, losses)
    result = run_scripted(fit, [{"name": n} for n in names], seed=seed, replay=1)
    regular = [r for r in result.log if not r["replay"]]
    assert 1 <= len(regular) <= 2 * len(names) and len(result.log) == len(regular) + 1
    assert all(r["remaining"] for r in regular[:-1]), "Θ is never emptied before the last round on it"
    sizes = [len(names)] + [len(r["remaining"]) for r in regular]
    assert all(a - b == len(r["removed"]) for a, b, r in zip(sizes[:-1], sizes[1:], regular, strict=True))
    assert result.log[-1]["stop"] == (STOP_THETA if not regular[-1]["remaining"] else STOP_MAX_ROUNDS)
    best = max(fit.models, key=lambda m: (fit_score(result, m), -m["call"]))
    assert result.model is best


def fit_score(result, model):
    """The score the log records for a model, by the order of the fits."""
    scores = [s for r in result.log for s in r["scores"].values()]
    return scores[model["call"] - 1]


class Untouchable:
    """A test split that fails on any use."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")


def test_never_reads_the_test_split():
    rng = np.random.default_rng(0)
    frames = {
        s: pd.DataFrame({"text": [f"{s}{i}" for i in range(n)], "label": rng.integers(2, size=n)})
        for s, n in (("train", 9), ("dev", 5), ("test", 4))
    }
    task = make_task_data("sst2", frames["train"], frames["dev"], frames["test"])
    task = dataclasses.replace(task, test=Untouchable(), extra_tests={"test_other": Untouchable()})
    seen = []

    def fit(train, theta, seed):
        seen.append(train)
        return theta["name"], 0.5, {"a": 0.7, "b": 0.3}[theta["name"]]  # a tie in score, broken by loss

    def generate(mistakes, rng):
        seen.append(mistakes)
        return pd.DataFrame({"text": mistakes["text"] + " new"})

    def label(frame):
        seen.append(frame)
        return np.zeros(len(frame), dtype=int)

    result = agora_on_task(
        task,
        fit,
        lambda model, dev: 1 - dev["label"].to_numpy(),
        label,
        [{"name": "a"}, {"name": "b"}],
        generate,
        np.random.default_rng(0),
        replay=1,
        progress=False,
    )
    assert [r["removed"] for r in result.log] == [["a"], ["b"], []]
    assert result.log[0]["losses"] == {"a": 0.7, "b": 0.3}
    assert len(result.added) == 10 and len(result.log) == 3
    texts = set().union(*(set(f["text"]) for f in seen))
    assert texts == {*frames["train"]["text"], *frames["dev"]["text"], *(frames["dev"]["text"] + " new")}


def test_theta_names_are_checked():
    args = (ScriptedFit({}), wrong_on_first(0), CountingLabeller(), numeric_frame(5, 0), numeric_frame(3, 1))
    for thetas in ([], [{"lr": 1.0}], [{"name": "a"}, {"name": "a"}]):
        with pytest.raises(ValueError, match="θ|thetas"):
            agora(*args, thetas, jitter(1), np.random.default_rng(0), progress=False)


def test_same_rng_seed_same_run():
    def run(seed):
        fit = ScriptedFit({"a": [0.5], "b": [0.6, 0.7, 0.65]})
        result = run_scripted(fit, [{"name": "a"}, {"name": "b"}], wrong=3, n_new=2, seed=seed, replay=1)
        return result.added, fit.calls

    (a, calls_a), (b, calls_b), (c, _) = run(3), run(3), run(4)
    pd.testing.assert_frame_equal(a, b)
    assert calls_a == calls_b
    assert not np.allclose(a["x0"], c["x0"])


# ---------------------------------------------------------------------------------------------
# The control arm, the record of each round


def test_control_adds_exactly_the_given_points_around_random_train_points():
    fit = ScriptedFit({"a": [0.5], "b": [0.6, 0.7], "c": [0.7, 0.8, 0.9]})
    train, dev = numeric_frame(30, 0), numeric_frame(5, 1, offset=5.0)  # dev far from train
    labeller = CountingLabeller()
    control = agora(
        fit, wrong_on_first(2), labeller, train, dev, [{"name": n} for n in "abc"], jitter(2),
        np.random.default_rng(0), anchor="random_train", points_per_round=[7, 3], progress=False,
    )  # fmt: skip
    assert [r["added"] for r in control.log] == [7, 3, 0]
    assert [r["anchors"] for r in control.log] == [4, 2, 0], "anchors drawn in chunks of the mistakes (2)"
    assert [r["train_size"] for r in control.log] == [30, 37, 40]
    assert set(control.added["source"]) <= set(train.index)
    assert (control.added["x0"] < 3).all(), "made around train points, not the dev mistakes"
    assert control.anchor == "random_train" and labeller.rows == 10
    # S labels by the true rule and the jitter is small: it agrees with the anchor on nearly all
    assert all(r["anchor_agreement"] >= 0.7 for r in control.log[:2])
    assert np.isnan(control.log[2]["anchor_agreement"])


def test_control_without_a_budget_draws_as_many_anchors_as_mistakes():
    fit = ScriptedFit({"a": [0.5], "b": [0.6, 0.7]})
    control = run_scripted(fit, [{"name": "a"}, {"name": "b"}], wrong=3, n_new=2, anchor="random_train")
    assert control.log[0]["anchors"] == 3 and control.log[0]["added"] == 6
    with pytest.raises(ValueError, match="points_per_round"):
        run_scripted(ScriptedFit({"a": [0.5]}), [{"name": "a"}], points_per_round=[1])
    with pytest.raises(ValueError, match="anchor"):
        run_scripted(ScriptedFit({"a": [0.5]}), [{"name": "a"}], anchor="dev")


def test_default_control_anchors_at_random_dev_rows_never_train_rows():
    fit = ScriptedFit({"a": [0.5], "b": [0.6, 0.7], "c": [0.7, 0.8, 0.9]})
    train = numeric_frame(30, 0)
    dev = numeric_frame(11, 1, offset=5.0).set_axis(range(100, 111))  # far from train, not 0..n−1
    labeller = CountingLabeller()
    control = agora(
        fit, wrong_on_first(2), labeller, train, dev, [{"name": n} for n in "abc"], jitter(2),
        np.random.default_rng(0), anchor="random_dev", points_per_round=[7, 3], progress=False,
    )  # fmt: skip
    assert control.anchor == "random_dev"
    assert [r["added"] for r in control.log] == [7, 3, 0] and labeller.rows == 10
    assert [r["anchors"] for r in control.log] == [4, 2, 0], "anchors drawn in chunks of the mistakes (2)"
    pool = dev.reset_index(drop=True)
    assert set(control.added["source"]) <= set(range(len(dev))), "sources index the dev rows 0..n−1"
    distance = np.abs(control.added["x0"].to_numpy() - pool["x0"].to_numpy()[control.added["source"]])
    assert (distance < 1).all() and (control.added["x0"] > 3).all(), "made around dev rows, not train rows"
    assert not set(control.added["source"]) <= {0, 1}, "not the dev mistakes (rows 0 and 1)"
    assert all(r["anchor_agreement"] >= 0.7 for r in control.log[:2])
    unbudgeted = run_scripted(
        ScriptedFit({"a": [0.5], "b": [0.6, 0.7]}), [{"name": "a"}, {"name": "b"}], wrong=3, n_new=2,
        anchor="random_dev",
    )  # fmt: skip
    assert unbudgeted.log[0]["anchors"] == 3 and unbudgeted.log[0]["added"] == 6


def test_random_dev_anchors_are_dev_texts_never_train_texts():
    train = pd.DataFrame({"text": [f"train{i}" for i in range(13)], "label": [i % 2 for i in range(13)]})
    dev = pd.DataFrame({"text": [f"dev{i}" for i in range(9)], "label": [i % 2 for i in range(9)]})
    anchors_seen = []

    def generate(anchors, rng):
        anchors_seen.append(anchors)
        return pd.DataFrame({"text": anchors["text"] + " new", "source": anchors.index})

    result = agora(
        lambda frame, theta, seed: (theta["name"], {"a": 0.5, "b": 0.6, "c": 0.7}[theta["name"]]),
        lambda model, frame: 1 - frame["label"].to_numpy(),  # every dev point a mistake
        lambda frame: np.zeros(len(frame), dtype=int),
        train, dev, [{"name": n} for n in "abc"], generate, np.random.default_rng(1),
        anchor="random_dev", points_per_round=[5, 17], progress=False,
    )  # fmt: skip
    assert [r["added"] for r in result.log] == [5, 9, 0], "17 asked, but the dev set has only 9 anchors"
    texts = set(pd.concat(anchors_seen)["text"])
    assert texts <= set(dev["text"]) and not texts & set(train["text"])
    assert set(result.added["text"]) <= set(dev["text"] + " new")
    new, anchors = points_around_random(dev, 4, None, generate, np.random.default_rng(0))
    assert len(anchors) == len(new) == 4 and set(anchors["text"]) <= set(dev["text"])


# ---------------------------------------------------------------------------------------------
# The stopping rule


def test_stops_when_one_theta_is_left_and_its_round_done():
    result = run_scripted(ScriptedFit({"a": [0.5, 0.6]}), [{"name": "a"}], replay=1)
    assert [r["removed"] for r in result.log] == [["a"], []] and [r["remaining"] for r in result.log] == [
        [],
        [],
    ]
    assert result.log[-1]["stop"] == STOP_THETA and result.log[0]["added"] == 1, "points for the replay"


def test_stops_when_the_best_model_makes_no_dev_mistakes():
    fit = ScriptedFit({"a": [0.5], "b": [1.0, 1.0], "c": [0.7]})
    labeller = CountingLabeller()
    thetas = [{"name": n} for n in "abc"]
    result = agora(
        fit, wrong_on_first(0), labeller, numeric_frame(9, 0), numeric_frame(5, 1), thetas, jitter(1),
        np.random.default_rng(0), replay=1, progress=False,
    )  # fmt: skip
    assert len(result.log) == 2 and result.log[0]["remaining"] == ["b", "c"], "Θ left, nothing to expand"
    assert result.log[-1]["stop"] == STOP_NO_MISTAKES and "stop" not in result.log[0]
    assert result.log[1]["replay"] and labeller.calls == 0 and len(result.added) == 0
    control = run_scripted(
        ScriptedFit({"a": [0.5], "b": [1.0], "c": [0.7]}), thetas, wrong=0, anchor="random_dev",
        points_per_round=[4],
    )  # fmt: skip
    assert len(control.log) == 1 and control.log[0]["stop"] == STOP_NO_MISTAKES, "the same loop"


def test_rounds_that_remove_nothing_stop_at_max_rounds():
    thetas = [{"name": n} for n in "abc"]
    tied = {n: [0.5] * 10 for n in "abc"}
    for max_rounds, expected in ((None, 6), (2, 2)):
        fit = ScriptedFit(tied, {n: [0.3] * 10 for n in "abc"})
        result = run_scripted(fit, thetas, replay=1, max_rounds=max_rounds)
        assert len(result.log) == expected + 1 and all(r["removed"] == [] for r in result.log)
        assert all(r["remaining"] == ["a", "b", "c"] for r in result.log), "an all-tied Θ is kept"
        assert result.log[-1]["stop"] == STOP_MAX_ROUNDS and result.log[-1]["replay"]
        assert result.log[0]["losses"] == {"a": 0.3, "b": 0.3, "c": 0.3}
    with pytest.raises(ValueError, match="max_rounds"):
        run_scripted(ScriptedFit({"a": [0.5]}), [{"name": "a"}], max_rounds=0)
    with pytest.raises(ValueError, match="dev loss"):
        run_scripted(lambda train, theta, seed: (None, 0.5, 0.1, 0.0), [{"name": "a"}])


def test_each_round_records_collapse_and_what_observe_returns():
    seen = []

    def observe(model):
        seen.append(model)
        return {"test_score": 0.25 * model["call"]}

    fit = ScriptedFit({"a": [0.5], "b": [0.6, 0.7]})
    result = agora(
        fit, lambda model, dev: np.zeros(len(dev), dtype=int), CountingLabeller(), numeric_frame(9, 0),
        numeric_frame(6, 1), [{"name": "a"}, {"name": "b"}], jitter(1), np.random.default_rng(0),
        observe=observe, progress=False,
    )  # fmt: skip
    assert [r["constant_predictor"] for r in result.log] == [True, True]
    assert [r["dev_classes_predicted"] for r in result.log] == [1, 1]
    assert [r["test_score"] for r in result.log] == [0.5, 0.75] and seen == [fit.models[1], fit.models[2]]
    assert prediction_spread([0, 1, 1, 1]) == {
        "dev_classes_predicted": 2, "dev_majority_share": 0.75, "constant_predictor": False
    }  # fmt: skip
    assert prediction_spread([2.0, 2.0], is_regression=True)["constant_predictor"]


def test_tie_tolerance_removes_near_ties_together():
    fit = ScriptedFit({"a": [0.50], "b": [0.505], "c": [0.6, 0.6]})
    thetas = [{"name": n} for n in "abc"]
    result = run_scripted(fit, thetas, tie_tolerance=0.01)
    assert result.log[0]["removed"] == ["a", "b"] and len(result.log) == 2
    with pytest.raises(ValueError, match="tie_tolerance"):
        run_scripted(ScriptedFit({"a": [0.5]}), [{"name": "a"}], tie_tolerance=-0.1)


# ---------------------------------------------------------------------------------------------
# The nearest-neighbour generator

WORDS = ["cat", "dog", "sun", "moon", "red", "blue", "green", "run", "walk", "sing", "tree", "rock", "fish"]
VOCAB = {
    t: i
    for i, t in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", *WORDS, "##s", "##ed", ",", "."]
    )
}  # 23 entries


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(vocab=VOCAB)


@pytest.fixture(scope="module")
def embeddings():
    return torch.randn(len(VOCAB), 7, generator=torch.Generator().manual_seed(0))  # (V, H)


def kind(token):
    if token.startswith("##"):
        return "continuation"
    return "word" if token.isalnum() else "punctuation"


def brute_force_neighbours(embeddings, token_id, k):
    """Nearest by cosine among tokens of the same kind, not special or bracketed, not the token."""
    unit = embeddings.double() / embeddings.double().norm(dim=1, keepdim=True)
    tokens = list(VOCAB)
    allowed = [
        j
        for j, t in enumerate(tokens)
        if j != token_id and not t.startswith("[") and kind(t) == kind(tokens[token_id])
    ]
    similarity = (unit[allowed] @ unit[token_id]).numpy()
    return [allowed[j] for j in np.argsort(-similarity)[:k]]


def test_neighbour_table_is_the_k_nearest_of_the_same_kind(tokenizer, embeddings):
    generator = NearestNeighbourSubstitution(tokenizer, embeddings, k=4, chunk_size=3)
    ids = [VOCAB[t] for t in [*WORDS, "##s", "##ed", ",", "."]]
    table = generator.neighbours(ids)
    for token_id in ids:
        assert table[token_id].tolist() == brute_force_neighbours(embeddings, token_id, 4)
    assert table[VOCAB["##s"]].tolist() == [VOCAB["##ed"]], "continuations only neighbour continuations"
    whole = NearestNeighbourSubstitution(tokenizer, embeddings, k=4, chunk_size=1000).neighbours(ids)
    assert all(np.array_equal(table[i], whole[i]) for i in ids), "chunking changes nothing"


def test_perturbed_tokens_are_near_neighbours_and_specials_stay(tokenizer, embeddings):
    generator = NearestNeighbourSubstitution(tokenizer, embeddings, k=3, fraction=0.3)
    text = "cat dog [MASK] sun zebra moon red , blue green tree rock fish"  # zebra is [UNK]
    original = tokenizer(text, add_special_tokens=False)["input_ids"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        edited, replaced = generator.perturb(text, rng)
        new = tokenizer(edited, add_special_tokens=False)["input_ids"]
        assert len(new) == len(original)
        assert len(replaced) == round(0.3 * 11)  # 11 replaceable tokens: not [MASK], not [UNK]
        changed = {p for p, _, _ in replaced}
        for p, old, token in replaced:
            assert old == original[p] and new[p] == token
            assert token in brute_force_neighbours(embeddings, old, 3)
        assert all(new[p] == original[p] for p in range(len(new)) if p not in changed)
        assert "[MASK]" in edited and "zebra" in edited


def test_at_least_one_token_is_replaced_and_empty_texts_give_nothing(tokenizer, embeddings):
    generator = NearestNeighbourSubstitution(tokenizer, embeddings, k=2, fraction=0.1, n_new=3)
    assert len(generator.perturb("cat", np.random.default_rng(0))[1]) == 1
    assert generator.perturb("", np.random.default_rng(0)) == ("", [])
    frame = generator(
        pd.DataFrame({"text": ["", "dog sun"], "label": [0, 1]}, index=[7, 9]), np.random.default_rng(0)
    )
    assert len(frame) == 3 and set(frame["source"]) == {9}


def test_pairs_perturb_exactly_one_side(tokenizer, embeddings):
    generator = NearestNeighbourSubstitution(tokenizer, embeddings, k=3, fraction=0.5, n_new=5)
    mistakes = pd.DataFrame(
        {"text_a": ["cat dog sun", "red blue"], "text_b": ["moon tree", "rock fish walk"], "label": [0, 1]},
        index=[4, 11],
    )
    frame = generator(mistakes, np.random.default_rng(1))
    assert len(frame) == 10
    for row in frame.itertuples():
        source = mistakes.loc[row.source]
        changed = [side for side in ("text_a", "text_b") if getattr(row, side) != source[side]]
        assert changed == [row.side]
    assert set(frame["side"]) == {"text_a", "text_b"}


def test_generator_is_seeded(tokenizer, embeddings):
    generator = NearestNeighbourSubstitution(tokenizer, embeddings, k=3, fraction=0.4, n_new=4)
    mistakes = pd.DataFrame({"text": ["cat dog sun moon red", "blue green tree"], "label": [0, 1]})
    a = generator(mistakes, np.random.default_rng(5))
    pd.testing.assert_frame_equal(a, generator(mistakes, np.random.default_rng(5)))
    assert not a.equals(generator(mistakes, np.random.default_rng(6)))


def test_full_vocabulary_stays_cheap_and_keeps_casing(minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    embeddings = torch.randn(len(tokenizer), 5, generator=torch.Generator().manual_seed(0))  # (30522, 5)
    generator = NearestNeighbourSubstitution(tokenizer, embeddings, k=5, fraction=0.2)
    text = "The Quick brown fox jumps over the lazy dog near Paris."
    edited, replaced = generator.perturb(text, np.random.default_rng(0))
    assert len(replaced) == 2 and edited != text and len(generator._table) <= 2, "only the ids met"
    unused = {i for t, i in tokenizer.get_vocab().items() if t.startswith("[")}
    for _, old, new in replaced:
        assert new not in unused and new in generator.neighbours([old])[old]
    kept = [w for w in text.split() if w in edited.split()]
    assert len(kept) >= len(text.split()) - 2, "untouched words keep their casing"


# ---------------------------------------------------------------------------------------------
# The blog's toy example


def test_torus_points_and_sectors():
    rng = np.random.default_rng(0)
    points = torus_points(200, rng, (0.1, 0.5))
    radius = np.hypot(points["x"], points["y"])
    np.testing.assert_allclose((radius - 3.0) ** 2 + points["z"] ** 2, 1.0)
    assert set(sector_of(points, 4)) == {0}
    frame = pd.DataFrame({"x": [1.0, -1.0, -1.0, 1.0], "y": [1.0, 1.0, -1.0, -1.0], "z": 0.0})
    assert sector_of(frame, 4).tolist() == [0, 1, 2, 3]
    new = GaussianNeighbours(0.1, 3)(points.iloc[:4], rng)
    assert len(new) == 12 and list(new.columns) == [*FEATURES, "source"]


def test_agora_beats_the_unrepresentative_sample_on_the_torus():
    from ose.reporting.figures import torus_figure

    result = torus_experiment(seed=0)
    assert result["accuracy_without_agora"] < 0.6  # two of four sectors seen
    assert result["accuracy_with_agora"] > result["accuracy_without_agora"] + 0.25
    assert result["labelled_points"] == len(result["added"]) > 0
    assert len(result["rounds"]) <= 2 * 3 + 2, "at most max_rounds (2·|Θ|) + replay"
    assert result["train"]["label"].nunique() == 2
    fig = torus_figure(result)
    assert len(fig.axes) == 4
