"""The toy example of the Agora blog post: a torus whose training sample is not representative.

Points lie on a torus in 3-D (major radius R around the z axis, tube radius r), at angle u around
the z axis and v around the tube. The label is the sector of u: `sectors` equal arcs, the first
starting at u = 0. The training sample D comes from a small arc of u (by default ±π/4, so it holds
only two of four classes); the dev set E and the test set are uniform over the whole torus, and the
dev set is small. The labeller S knows the true rule but errs on a fraction of points (an "ok-ish"
labeller, as the paper's S; `labeller_noise`). The generator adds Gaussian noise to the coordinates
of each dev mistake (in input space). The model is a tiny MLP trained full-batch with Adam.

`torus_experiment` compares, on the same held-out test sample: the best θ trained on D alone
(without Agora: Agora's own first round, so the two differ only by the points Agora adds), Agora,
and, for reference, the best θ trained on D ∪ E with E's true labels.
Every θ of the default Θ fits the two classes of D perfectly, so all tie in the first round; the
fit reports no dev loss to break the tie, so Θ is kept (the tie rule never empties Θ) and the rounds
go on until one θ is left, no dev mistake is left, or 2·|Θ| rounds, then the two replay rounds. With
seeds 0–2 and the defaults: about 0.50 without Agora, about 0.97 with it, against 0.92–0.98 for
the reference, which sees E's true labels where Agora sees only S's labels of points near E.
`n_train_elsewhere` adds points from the whole torus to D (a less unrepresentative sample).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ose.finetuning.agora import agora

FEATURES = ("x", "y", "z")

DEFAULT_THETAS: tuple[dict, ...] = (
    {"name": "h32-lr0.02", "hidden": 32, "lr": 0.02, "steps": 300},
    {"name": "h16-lr0.05", "hidden": 16, "lr": 0.05, "steps": 300},
    {"name": "h8-lr0.05", "hidden": 8, "lr": 0.05, "steps": 200},
)


def torus_points(
    n: int,
    rng: np.random.Generator,
    u_range: tuple[float, float] = (0.0, 2 * np.pi),
    major: float = 3.0,
    minor: float = 1.0,
) -> pd.DataFrame:
    """n points on the torus with u uniform in `u_range` and v uniform in [0, 2π); columns x, y, z."""
    u = rng.uniform(*u_range, size=n)
    v = rng.uniform(0, 2 * np.pi, size=n)
    return pd.DataFrame(
        {
            "x": (major + minor * np.cos(v)) * np.cos(u),
            "y": (major + minor * np.cos(v)) * np.sin(u),
            "z": minor * np.sin(v),
        }
    )


def sector_of(frame: pd.DataFrame, sectors: int = 4) -> np.ndarray:
    """The true label: which of `sectors` equal arcs of u = atan2(y, x) a point lies in."""
    u = np.mod(np.arctan2(frame["y"].to_numpy(), frame["x"].to_numpy()), 2 * np.pi)
    return np.minimum((u / (2 * np.pi / sectors)).astype(np.int64), sectors - 1)


class NoisyRule:
    """The labeller S: the true sector, flipped to a random other class with probability `noise`."""

    def __init__(self, sectors: int, noise: float, rng: np.random.Generator) -> None:
        self.sectors, self.noise, self.rng = sectors, noise, rng
        self.calls, self.labelled = 0, 0

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        self.labelled += len(frame)
        labels = sector_of(frame, self.sectors)
        flip = self.rng.random(len(frame)) < self.noise
        shift = self.rng.integers(1, self.sectors, size=len(frame))
        return np.where(flip, (labels + shift) % self.sectors, labels)


class GaussianNeighbours:
    """Agora's generator in input space: `n_new` copies of each mistake plus N(0, sigma²) noise."""

    def __init__(self, sigma: float = 0.4, n_new: int = 8) -> None:
        self.sigma, self.n_new = sigma, n_new

    def __call__(self, mistakes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        points = mistakes[list(FEATURES)].to_numpy()  # (M, 3)
        copies = np.repeat(points, self.n_new, axis=0)  # (M·n_new, 3)
        noisy = copies + rng.normal(0.0, self.sigma, size=copies.shape)
        frame = pd.DataFrame(noisy, columns=list(FEATURES))
        frame["source"] = np.repeat(mistakes.index.to_numpy(), self.n_new)
        return frame


def _mlp(hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(len(FEATURES), hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, classes),
    )


def _inputs(frame: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(frame[list(FEATURES)].to_numpy(), dtype=torch.float32) / 4.0  # (N, 3), about [-1, 1]


def predict(model: nn.Module, frame: pd.DataFrame) -> np.ndarray:
    """Class ids of the MLP for the rows of `frame`."""
    with torch.no_grad():
        return model(_inputs(frame)).argmax(dim=1).numpy()


def make_fit(dev: pd.DataFrame, sectors: int):
    """`fit(train, θ, seed) -> (MLP, dev accuracy)`; θ sets hidden, lr and steps (full batch, Adam)."""

    def fit(train: pd.DataFrame, theta: Mapping[str, Any], seed: int) -> tuple[nn.Module, float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _mlp(int(theta["hidden"]), sectors)
            optimizer = torch.optim.Adam(model.parameters(), lr=float(theta["lr"]))
            x, y = _inputs(train), torch.tensor(train["label"].to_numpy(), dtype=torch.long)
            for _ in range(int(theta["steps"])):
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
        return model, float(np.mean(predict(model, dev) == dev["label"].to_numpy()))

    return fit


def _best_fit(fit, train: pd.DataFrame, thetas: Sequence[Mapping[str, Any]], seed: int):
    """The best θ on the dev set, trained on `train` alone (the reference fit on D ∪ E)."""
    best = None
    for theta in thetas:
        model, score = fit(train, theta, seed)
        if best is None or score > best[2]:
            best = (model, dict(theta), score)
    return best


def torus_experiment(
    seed: int = 0,
    n_train: int = 60,
    n_train_elsewhere: int = 0,
    n_dev: int = 40,
    n_test: int = 2000,
    sectors: int = 4,
    train_arc: tuple[float, float] = (-np.pi / 4, np.pi / 4),
    labeller_noise: float = 0.1,
    sigma: float = 0.4,
    n_new: int = 8,
    thetas: Sequence[Mapping[str, Any]] = DEFAULT_THETAS,
    replay: int = 2,
) -> dict:
    """Test accuracy on the whole torus with and without Agora, and the data to plot it.

    Returns accuracy_without_agora, accuracy_with_agora, accuracy_train_plus_dev (reference: D ∪ E
    with true labels), their θ, Agora's per-round log, the train/dev/test/added frames (with
    `label`; test also with `pred_without` and `pred_with`), and `labeller_calls`/`labelled_points`.
    """
    rng = np.random.default_rng(seed)
    train = pd.concat(
        [torus_points(n_train, rng, train_arc), torus_points(n_train_elsewhere, rng)], ignore_index=True
    )
    dev, test = torus_points(n_dev, rng), torus_points(n_test, rng)
    for frame in (train, dev, test):
        frame["label"] = sector_of(frame, sectors)
    fit = make_fit(dev, sectors)
    fit_seed = int(rng.integers(2**31 - 1))
    reference, reference_theta, _ = _best_fit(
        fit, pd.concat([train, dev], ignore_index=True), thetas, fit_seed
    )
    labeller = NoisyRule(sectors, labeller_noise, np.random.default_rng(rng.integers(2**31 - 1)))
    result = agora(
        fit,
        predict,
        labeller,
        train,
        dev,
        thetas,
        GaussianNeighbours(sigma, n_new),
        rng,
        replay=replay,
        progress=False,
    )
    # without Agora: its own first round (the best θ on D alone), so the two differ by the added data only
    baseline, baseline_theta = result.plain_model, result.plain_theta
    labels = test["label"].to_numpy()
    test = test.assign(pred_without=predict(baseline, test), pred_with=predict(result.model, test))
    return {
        "seed": seed,
        "accuracy_without_agora": float(np.mean(test["pred_without"].to_numpy() == labels)),
        "accuracy_with_agora": float(np.mean(test["pred_with"].to_numpy() == labels)),
        "accuracy_train_plus_dev": float(np.mean(predict(reference, test) == labels)),
        "theta_without_agora": baseline_theta["name"],
        "theta_with_agora": result.theta["name"],
        "theta_train_plus_dev": reference_theta["name"],
        "dev_score_with_agora": result.dev_score,
        "rounds": result.log,
        "train": train,
        "dev": dev,
        "test": test,
        "added": result.added,
        "labeller_calls": labeller.calls,
        "labelled_points": labeller.labelled,
        "sectors": sectors,
    }
