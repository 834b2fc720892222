"""Agora: fine-tuning with data expansion around the dev set's mistakes (de Wynter, arXiv 2010.07990).

One task at a time. Inputs: `fit(train, θ, seed) -> (model, dev score)` or `(model, dev score, dev
loss)`, `predict(model, frame)`, a labeller S (`label(frame) -> labels`, in practice the source model
fine-tuned on the same train split), the train set D, the dev set E, hyperparameter sets Θ (dicts with
a "name") and a generator g (`generate(mistakes, rng) -> unlabelled frame`). Each round:

1. fine-tunes one model per θ ∈ Θ on the current train set and records its dev score;
2. takes the round's best model and collects the dev points it gets wrong (`find_mistakes`: for
   classification a wrong class; for regression an absolute error above `regression_tolerance`
   times the range of the dev labels, i.e. above 1.0 on STS-B's 0–5 scale);
3. g makes new points near each mistake, S labels them, and they are appended to the train set;
4. sorts Θ by score and removes the longest run of sets tied with the worst (`remove_tied_worst`;
   our reading of "the longest common sequence rooted at the first element"). A tie is broken by
   dev loss, and a round in which all of Θ (of more than one θ) stays tied removes none, so ties
   never empty Θ: the last θ goes only after a round of its own.

Agora stops when one θ is left and its round is done (Θ is empty), when the round's best model
makes no dev mistakes (there is nothing left to expand around: the next round would train on the
same set), or after `max_rounds` rounds (default 2·|Θ|; rounds that remove nothing cannot go on for
ever); the last round's log says which (`stop`). Then `replay` extra rounds train the θ of the best
model so far on the grown set. The best model over all rounds (by dev score; ties keep the
earliest) is returned with its θ and a per-round log.

The control arm is the same loop (the same stopping rule) with step 3's anchors drawn uniformly at
random instead of selected by the dev mistakes, optionally adding exactly the number of points
Agora added in each round (`points_per_round`): it trains on as many S-labelled points, so as many
steps. The default control (`anchor="random_dev"`) draws its anchors from the dev set, so it
differs from Agora only in where the new points lie: S labels points near texts it never saw in
both arms. It separates "points near the dev mistakes" from "more S-labelled points anywhere".
`anchor="random_train"` draws them from the original train set instead (an ablation: S labels
near-copies of rows it was fine-tuned on, so its labels are better than in Agora).

Two readings of ours: each θ is fitted with the same seed in every round (drawn once from the rng),
so a change between rounds comes from the data alone; and step 3 is skipped in the last round
(nothing would be trained on those points; S, often the largest model, is not run for nothing).

Agora reads only D and E: `agora` takes frames, never a `TaskData`, and `agora_on_task` reads only
`task.train` and `task.dev`. Every reported score must be on a test split Agora never saw.

The default generator for text lives in `ose.finetuning.generator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ose.configs import GeneratorConfig  # noqa: F401 (re-exported)
from ose.pipeline.progress import bar as progress_bar

Theta = Mapping[str, Any]
Fit = Callable[[pd.DataFrame, Theta, int], tuple[Any, float] | tuple[Any, float, float]]
Predict = Callable[[Any, pd.DataFrame], np.ndarray]
Label = Callable[[pd.DataFrame], Sequence]
Generate = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def _key(value: float) -> float:
    """A NaN score ranks below every number."""
    return -math.inf if math.isnan(value) else value


def remove_tied_worst(
    scores: Mapping[str, float], tolerance: float = 0.0, losses: Mapping[str, float] | None = None
) -> list[str]:
    """Names of the θ Agora drops after a round (`scores`: the round's dev score of every θ in Θ).

    1. Sort by score, worst first, and take the run from the first one of those within `tolerance`
       of the worst (at least the worst itself). NaN scores are the worst.
    2. When that run holds more than one θ and `losses` (θ name → dev loss, lower is better) is
       given, the tie is broken by loss: only the θ with the highest loss stay in the removal (all
       of them when their losses are exactly equal). A NaN or missing loss counts as the highest.
    3. If the removal would take every θ of a Θ of more than one θ, none is removed this round:
       ties never empty Θ. A Θ of one θ removes it (its round is done).

    Ties in sorting keep the order of `scores` (stable).
    """
    if not scores:
        raise ValueError("no scores: Θ is empty")
    ordered = sorted(scores, key=lambda name: _key(scores[name]))
    worst = _key(scores[ordered[0]])
    removed = [ordered[0]]
    for name in ordered[1:]:
        if _key(scores[name]) - worst > tolerance:
            break
        removed.append(name)
    if len(removed) > 1 and losses is not None:
        loss = {name: _loss_key(losses.get(name, math.nan)) for name in removed}
        highest = max(loss.values())
        removed = [name for name in removed if loss[name] == highest]
    if len(scores) > 1 and len(removed) == len(scores):
        return []
    return removed


def _loss_key(value: float) -> float:
    """A NaN loss ranks above every number (the worst)."""
    return math.inf if math.isnan(value) else float(value)


def find_mistakes(
    predictions: Sequence, labels: Sequence, is_regression: bool = False, regression_tolerance: float = 0.2
) -> np.ndarray:
    """Boolean mask of the dev points a model gets wrong.

    Classification: predicted class != label. Regression: |prediction − label| > regression_tolerance
    × (max − min of the labels), e.g. an error above 1.0 on STS-B's 0–5 similarity scale.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape[0] != labels.shape[0]:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    if not is_regression:
        if predictions.ndim == 2:
            predictions = predictions.argmax(axis=1)
        return predictions.astype(np.int64) != labels.astype(np.int64)
    predictions = predictions.reshape(len(predictions), -1)[:, 0].astype(np.float64)
    labels = labels.astype(np.float64)
    spread = float(labels.max() - labels.min()) if len(labels) else 0.0
    return np.abs(predictions - labels) > regression_tolerance * spread


@dataclass
class AgoraResult:
    """What Agora returns: the best model over all rounds, its θ and dev score, and the record.

    log: one dict per round (round, replay, train_size, scores and losses per θ, best_theta,
    best_score, the best model's `prediction_spread` on dev, what `observe` returned, mistakes,
    anchors, added, anchor_agreement, removed, remaining: the θ left in Θ after the round); the
    last round's also `stop`, why the rounds on Θ ended (`STOP_REASONS`). train: the final grown
    train set. added: every point added, with the generator's columns (`source` indexes the
    anchors' pool: the dev set's index for Agora, 0..n−1 rows of the dev or original train set for
    the controls), S's `label` and the `round` it was made in.
    """

    model: Any
    theta: dict
    dev_score: float
    best_round: int
    log: list[dict]
    train: pd.DataFrame
    added: pd.DataFrame = field(repr=False)
    plain_model: Any = field(default=None, repr=False)  # round 1's best: model selection, no expansion
    plain_theta: dict | None = None
    plain_dev_score: float = float("nan")
    anchor: str = "dev_mistakes"  # or a control's anchors, "random_dev" or "random_train" (`ANCHORS`)


def _check_thetas(thetas: Iterable[Theta]) -> list[dict]:
    thetas = [dict(t) for t in thetas]
    if not thetas:
        raise ValueError("thetas is empty: Agora needs at least one hyperparameter set")
    names = [t.get("name") for t in thetas]
    if any(not isinstance(n, str) or not n for n in names):
        raise ValueError(f"every θ needs a non-empty string 'name'; got names {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"θ names must be unique; got {names}")
    return thetas


# where step 3 makes new points: Agora, its control (random dev points), or the train-anchored ablation
ANCHORS = ("dev_mistakes", "random_dev", "random_train")
STOP_THETA = "one θ left and its round done"
STOP_NO_MISTAKES = "no dev mistakes left"
STOP_MAX_ROUNDS = "max_rounds reached"
STOP_REASONS = (STOP_THETA, STOP_NO_MISTAKES, STOP_MAX_ROUNDS)  # a log's "stop"
Observe = Callable[[Any], Mapping[str, Any]]


def prediction_spread(predictions: Sequence, is_regression: bool = False) -> dict:
    """How varied a model's dev predictions are, to catch a round that collapsed to a constant.

    Classification: the number of distinct classes predicted and the share of the most frequent
    one. Regression: the standard deviation of the predictions. `constant_predictor` is True when
    every prediction is the same.
    """
    predictions = np.asarray(predictions)
    if is_regression:
        values = predictions.reshape(len(predictions), -1)[:, 0].astype(np.float64)
        spread = float(values.std()) if len(values) else 0.0
        return {"dev_prediction_std": spread, "constant_predictor": spread == 0.0}
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)
    _, counts = np.unique(predictions, return_counts=True)
    return {
        "dev_classes_predicted": len(counts),
        "dev_majority_share": float(counts.max() / counts.sum()) if len(counts) else math.nan,
        "constant_predictor": len(counts) <= 1,
    }


def points_around_random(
    pool: pd.DataFrame, count: int, target: int | None, generate: Generate, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A control's step 3: new points around rows of `pool` drawn uniformly at random, and those anchors.

    The pool is the dev set (`anchor="random_dev"`) or the original train set ("random_train").
    Without `target`, `count` anchors (as many as the round's dev mistakes). With it, anchors are
    drawn without replacement in chunks of `count` (at least 1) until `target` points are made, and
    the points are cut to exactly `target` (fewer only when the pool runs out of anchors). The
    generator's `source` column then indexes `pool` (which must have a 0..n−1 index).
    """
    order = rng.permutation(len(pool))
    if target is None:
        anchors = pool.iloc[order[:count]]
        return (generate(anchors, rng) if len(anchors) else pool.iloc[:0]), anchors
    pieces, made, start, chunk = [], 0, 0, max(1, count)
    while made < target and start < len(order):
        piece = generate(pool.iloc[order[start : start + chunk]], rng)
        start += chunk
        pieces.append(piece)
        made += len(piece)
    if not pieces:
        return pool.iloc[:0], pool.iloc[:0]
    return pd.concat(pieces).iloc[:target], pool.iloc[order[:start]]


def anchor_agreement(new: pd.DataFrame, labels: np.ndarray, anchors: pd.DataFrame) -> float:
    """Share of new points to which S gives the true label of the point they were made from.

    The new points' own true labels are unknown (they are made-up text); the anchor's label is the
    best known stand-in, since the generator changes only a few tokens. NaN when the generator
    names no `source` or nothing was added.
    """
    if not len(new) or "source" not in new.columns:
        return math.nan
    truth = anchors["label"].reindex(new["source"].to_numpy()).to_numpy(dtype=np.float64)
    known = ~np.isnan(truth)
    if not known.any():
        return math.nan
    return float(np.mean(labels[known] == truth[known]))


def agora(
    fit: Fit,
    predict: Predict,
    label: Label,
    train: pd.DataFrame,
    dev: pd.DataFrame,
    thetas: Iterable[Theta],
    generate: Generate,
    rng: np.random.Generator,
    *,
    replay: int = 0,
    max_rounds: int | None = None,
    is_regression: bool = False,
    regression_tolerance: float = 0.2,
    tie_tolerance: float = 0.0,
    anchor: str = "dev_mistakes",
    points_per_round: Sequence[int] | None = None,
    observe: Observe | None = None,
    progress: bool = True,
) -> AgoraResult:
    """Run Agora (see the module docstring) on train set `train` and dev set `dev`.

    Every fit of a round gets the same seed, drawn once from `rng`; `generate` draws from `rng`.
    `train` and `dev` need the same input columns and `label`; the generator must return frames
    with the input columns (further columns, e.g. `source`, are kept only in `result.added`).
    `fit` returns `(model, dev score)` or `(model, dev score, dev loss)`; the loss breaks ties in
    score (`remove_tied_worst`), and is NaN in the log when the fit gives none.
    At most `max_rounds` + `replay` rounds run.

    max_rounds: the most rounds on Θ (replays not counted); None: 2·|Θ|.
    anchor: "dev_mistakes" (Agora), "random_dev" (the control: new points around dev points drawn
    uniformly at random, as many anchors as the round's dev mistakes) or "random_train" (the
    ablation: around random points of the original `train`, which S was fine-tuned on).
    points_per_round: the controls only: round r adds exactly points_per_round[r − 1] points (0
    beyond the list), e.g. what Agora added on the same seed, so both train equally long.
    tie_tolerance: dev scores within this of the worst count as tied with it (`remove_tied_worst`).
    observe: called with each round's best model, for the record only (e.g. its test score); what
    it returns is added to that round's log, and Agora never reads it.
    """
    thetas = _check_thetas(thetas)
    if isinstance(replay, bool) or not isinstance(replay, int) or replay < 0:
        raise ValueError(f"replay must be a non-negative integer, got {replay!r}")
    if max_rounds is None:
        max_rounds = 2 * len(thetas)
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int | np.integer) or max_rounds < 1:
        raise ValueError(f"max_rounds must be a positive integer or None, got {max_rounds!r}")
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
    if points_per_round is not None:
        if anchor == "dev_mistakes":
            raise ValueError(
                "points_per_round applies to the controls (anchor='random_dev' or 'random_train') only"
            )
        if any(isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0 for n in points_per_round):
            raise ValueError(
                f"points_per_round must hold non-negative integers, got {list(points_per_round)}"
            )
    if not tie_tolerance >= 0:
        raise ValueError(f"tie_tolerance must be a number >= 0, got {tie_tolerance!r}")
    if "label" not in train.columns or "label" not in dev.columns:
        raise ValueError("train and dev need a 'label' column")
    inputs = [c for c in train.columns if c != "label"]
    missing = [c for c in inputs if c not in dev.columns]
    if missing:
        raise ValueError(f"dev lacks the train columns {missing}")
    original = train.reset_index(drop=True)
    pool = dev.reset_index(drop=True) if anchor == "random_dev" else original
    current = original
    fit_seed = int(rng.integers(2**31 - 1))
    remaining, replays_left = thetas, replay
    selecting, selection_rounds, stop = True, 0, None  # selecting: rounds on Θ go on
    best: tuple[Any, dict, float, int] | None = None  # (model, θ, score, round)
    plain: tuple[Any, dict, float] | None = None  # round 1's best: fine-tuning with model selection only
    log: list[dict] = []
    added: list[pd.DataFrame] = []
    bar = progress_bar(total=max_rounds + replay, desc="agora rounds", unit="rounds", disable=not progress)
    round_number = 0
    while selecting or replays_left:
        round_number += 1
        replaying = not selecting
        active = [best[1]] if replaying else remaining
        scores: dict[str, float] = {}
        losses: dict[str, float] = {}
        round_best: tuple[Any, dict, float] | None = None
        for theta in active:
            model, dev_score, dev_loss = _fitted(fit(current, theta, fit_seed))
            scores[theta["name"]], losses[theta["name"]] = dev_score, dev_loss
            if round_best is None or _key(dev_score) > _key(round_best[2]):
                round_best = (model, theta, dev_score)
            del model
        assert round_best is not None
        if plain is None:
            plain = round_best
        if best is None or _key(round_best[2]) > _key(best[2]):
            best = (round_best[0], round_best[1], round_best[2], round_number)
        predictions = predict(round_best[0], dev)
        wrong = find_mistakes(predictions, dev["label"].to_numpy(), is_regression, regression_tolerance)
        if replaying:
            removed, replays_left = [], replays_left - 1
        else:
            removed = remove_tied_worst(scores, tie_tolerance, losses)
            remaining = [t for t in remaining if t["name"] not in removed]
            selection_rounds += 1
            if not remaining:
                stop = STOP_THETA
            elif not wrong.any():
                stop = STOP_NO_MISTAKES
            elif selection_rounds >= max_rounds:
                stop = STOP_MAX_ROUNDS
            selecting = stop is None
        new, anchors = dev.iloc[:0], dev.iloc[:0]
        if selecting or replays_left:  # the last round's points would train nothing
            if anchor == "dev_mistakes":
                if wrong.any():
                    anchors = dev.loc[wrong]
                    new = generate(anchors, rng)
            else:
                target = None
                if points_per_round is not None:
                    target = (
                        int(points_per_round[round_number - 1])
                        if round_number <= len(points_per_round)
                        else 0
                    )
                new, anchors = points_around_random(pool, int(wrong.sum()), target, generate, rng)
        agreement = math.nan
        if len(new):
            lacking = [c for c in inputs if c not in new.columns]
            if lacking:
                raise ValueError(f"the generator's frame lacks the input columns {lacking}")
            labels = np.asarray(label(new[inputs].reset_index(drop=True)))
            if labels.shape[0] != len(new):
                raise ValueError(f"the labeller gave {labels.shape[0]} labels for {len(new)} points")
            labels = labels.astype(np.float64 if is_regression else np.int64)
            if not is_regression:
                agreement = anchor_agreement(new, labels, anchors)
            new = new.reset_index(drop=True).assign(label=labels)
            current = pd.concat([current, new[[*inputs, "label"]]], ignore_index=True)
            added.append(new.assign(round=round_number))
        log.append(
            {
                "round": round_number,
                "replay": replaying,
                "train_size": len(current) - len(new),
                "scores": scores,
                "losses": losses,
                "best_theta": round_best[1]["name"],
                "best_score": round_best[2],
                **prediction_spread(predictions, is_regression),
                **(dict(observe(round_best[0])) if observe is not None else {}),
                "mistakes": int(wrong.sum()),
                "anchors": len(anchors),
                "added": len(new),
                "anchor_agreement": agreement,
                "removed": removed,
                "remaining": [t["name"] for t in remaining],
            }
        )
        bar.update(1)
        bar.set_postfix(best=f"{best[2]:.3f}", train=len(current))
    bar.close()
    assert best is not None and stop is not None
    log[-1]["stop"] = stop
    columns = [*inputs, "label", "round"]
    return AgoraResult(
        model=best[0],
        theta=dict(best[1]),
        dev_score=best[2],
        best_round=best[3],
        log=log,
        train=current,
        added=pd.concat(added, ignore_index=True) if added else pd.DataFrame(columns=columns),
        plain_model=plain[0],
        plain_theta=dict(plain[1]),
        plain_dev_score=plain[2],
        anchor=anchor,
    )


def _fitted(result: Sequence) -> tuple[Any, float, float]:
    """`fit`'s `(model, score)` or `(model, score, loss)` as `(model, score, loss)`; NaN: no loss."""
    if len(result) == 2:
        return result[0], float(result[1]), math.nan
    if len(result) == 3:
        return result[0], float(result[1]), float(result[2])
    raise ValueError(
        f"fit must return (model, dev score) or (model, dev score, dev loss), got {len(result)} values"
    )


def agora_on_task(
    task, fit: Fit, predict: Predict, label: Label, thetas, generate, rng, **options
) -> AgoraResult:
    """`agora` on a `TaskData`'s train and dev splits; its test splits are never touched."""
    return agora(
        fit,
        predict,
        label,
        task.train,
        task.dev,
        thetas,
        generate,
        rng,
        is_regression=task.is_regression,
        **options,
    )
