"""Stage `agora_torus` (notebook 07): Agora's toy example, a torus learned from an unrepresentative sample.

`ose.finetuning.torus.torus_experiment` with the pipeline's seed; its figure, and its accuracies with and
without Agora as the stage's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ose.finetuning.torus import torus_experiment
from ose.params import Params
from ose.pipeline.dvcfile import paths_class
from ose.pipeline.paths import resolve
from ose.pipeline.results import StageResult
from ose.reporting import figures
from ose.reporting.markdown import figure


class Paths(paths_class("agora_torus")):
    """The notebook's path parameters; defaults: what dvc.yaml passes (`ose.pipeline.dvcfile`)."""

    @property
    def figure(self) -> Path:
        return resolve(self.figures_dir) / "agora_torus.png"


@dataclass(frozen=True)
class Result(StageResult):
    """reports/metrics/agora_torus.json."""

    profile: str
    seed: int
    accuracy_without_agora: float
    accuracy_with_agora: float
    accuracy_train_plus_dev_true_labels: float  # the reference: trained on D ∪ E with E's true labels
    points_added: int
    labeller_calls: int
    rounds: int


def summarise(experiment: dict, params: Params) -> Result:
    """The metrics of one `torus_experiment`."""
    return Result(
        profile=params.profile,
        seed=experiment["seed"],
        accuracy_without_agora=experiment["accuracy_without_agora"],
        accuracy_with_agora=experiment["accuracy_with_agora"],
        accuracy_train_plus_dev_true_labels=experiment["accuracy_train_plus_dev"],
        points_added=len(experiment["added"]),
        labeller_calls=experiment["labeller_calls"],
        rounds=len(experiment["rounds"]),
    )


def run(params: Params, paths: Paths | None = None, progress: bool = True) -> tuple[Result, dict]:
    """Run the experiment (quick: no progress to show), write its figure and metrics.

    Returns the metrics and what the notebook shows: the figure's PNG path (`agora_torus.png`).
    """
    paths = paths or Paths()
    experiment = torus_experiment(seed=params.seed)
    fig = figures.torus_figure(experiment)
    figures.save(fig, paths.figure)
    plt.close(fig)
    result = summarise(experiment, params)
    result.write(resolve(paths.metrics_file))
    return result, {"agora_torus.png": paths.figure}


def section(m: Result) -> str:
    """The toy example's paragraph, which closes the report's fine-tuning section."""
    return (
        f"\nThe blog's toy example: test accuracy {m.accuracy_without_agora:.3f} without Agora, "
        f"{m.accuracy_with_agora:.3f} with it ({m.points_added} points added); trained on "
        f"train and dev with true labels: {m.accuracy_train_plus_dev_true_labels:.3f}.\n\n"
        f"{figure('agora_torus.png', 'Agora on a torus learned from an unrepresentative sample')}"
    )
