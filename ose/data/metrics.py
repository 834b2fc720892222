"""Task metrics and `score`: every metric of a task for its predictions.

Metrics follow GLUE, computed with `sklearn.metrics` and `scipy.stats`: accuracy; F1 of the
positive class and accuracy for MRPC and QQP; Matthews correlation for CoLA; Pearson and Spearman
correlation for STS-B. The main metric of each task follows BERT (Devlin et al. 2019), the
comparison the Bort paper makes: F1 for MRPC and QQP, Spearman for STS-B, Matthews correlation for
CoLA, accuracy otherwise.
"""

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ose.data.tasks import task_spec

# ---------------------------------------------------------------------------------------------
# Metrics


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(labels, predictions))


def f1_binary(predictions: np.ndarray, labels: np.ndarray, positive: int = 1) -> float:
    """F1 of the positive class (GLUE's MRPC/QQP F1); 0 when there is no true or predicted one."""
    from sklearn.metrics import f1_score

    # labels=[positive] with average="macro" is the positive class's F1 whatever other ids occur.
    return float(f1_score(labels, predictions, labels=[positive], average="macro", zero_division=0))


def macro_f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, average="macro", zero_division=0))


def matthews_corrcoef(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation (multi-class form, Gorodkin 2004); 0 when undefined (a constant predictor)."""
    from sklearn.metrics import matthews_corrcoef as mcc

    with warnings.catch_warnings():
        # One class in labels and predictions alike: MCC is 0, sklearn's confusion matrix warns.
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return float(mcc(labels, predictions))


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import pearsonr

    return float(pearsonr(predictions, labels)[0])


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(predictions, labels)[0])


METRICS: Mapping[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "macro_f1": macro_f1,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def score(task: str, predictions: Any, labels: Any) -> dict[str, float]:
    """Every metric of `task` (see `TASK_SPECS`) for `predictions` against `labels`.

    For classification, `predictions` are class ids (N,) or scores/logits (N, num_labels), which
    are turned into ids by argmax. For regression (STS-B) they are real numbers (N,) or (N, 1).
    """
    spec = task_spec(task)
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if spec.is_regression:
        predictions = predictions.reshape(len(predictions), -1)[:, 0].astype(np.float64)
        labels = labels.astype(np.float64)
    else:
        if predictions.ndim == 2:
            predictions = predictions.argmax(axis=1)
        predictions, labels = predictions.astype(np.int64), labels.astype(np.int64)
    if predictions.shape != labels.shape or predictions.ndim != 1 or len(labels) == 0:
        raise ValueError(
            f"predictions {predictions.shape} and labels {labels.shape} must be non-empty and match"
        )
    return {name: METRICS[name](predictions, labels) for name in spec.metric_names}
