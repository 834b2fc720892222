"""Stage `finetune`: the source, the student fine-tuned plainly, and the student with Agora, per task.

For every seed, on the same seeded sample of the task's train split:
- `source`: the source encoder fine-tuned with Bort's head (one hyperparameter set). This model is
  also Agora's labeller S for that seed: "the source model fine-tuned on the same train split".
- `student_plain`: the pretrained student fine-tuned under every θ ∈ Θ, the best on dev kept. This
  is Agora's first round, so plain and Agora differ by the data expansion alone.
- `student_agora`: Agora's best model over all rounds (docs/science.md, "Agora").
Every score is on the task's test split, which neither model selection nor Agora ever reads (the
fits and Agora receive the task without it: `ose.finetune.without_test`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ose.agora import NearestNeighbourSubstitution, agora_on_task
from ose.configs import FineTune  # noqa: F401 (re-exported)
from ose.finetune import (
    FineTuneConfig,
    evaluate,
    fine_tune,
    load_encoder,
    make_fit,
    make_labeller,
    make_predict,
    sample_rows,
    without_test,
)
from ose.tasks import TaskData

MODELS = ("source", "student_plain", "student_agora")


def summarise(scores: Sequence[float]) -> dict:
    values = np.asarray(scores, dtype=float)
    return {
        "scores": values.tolist(),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


def compare_on_task(
    task: TaskData,
    tokenizer,
    source_encoder,
    student_encoder,
    source_config: FineTuneConfig,
    student_config: FineTuneConfig,
    thetas: list[dict],
    generator: NearestNeighbourSubstitution,
    seeds: Sequence[int],
    max_train_examples: int | None,
    replay: int = 0,
    progress: bool = True,
) -> dict:
    """Scores of the three models on `task.test` for every seed, with Agora's per-round logs."""
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    test = task.test
    selection_task = without_test(task)  # all that fine-tuning and Agora may see
    source_encoder, student_encoder = load_encoder(source_encoder), load_encoder(student_encoder)
    rows, rounds, added = [], [], []
    predict = make_predict(tokenizer, student_config.max_len, student_config.eval_batch_size)
    for seed in tqdm(seeds, desc=f"{task.name}: seeds", disable=not progress):
        seeded_task = dataclasses.replace(
            selection_task, train=sample_rows(selection_task.train, max_train_examples, seed)
        )
        source, _ = fine_tune(
            source_encoder, tokenizer, seeded_task, config=source_config, seed=seed, progress=False
        )
        result = agora_on_task(
            seeded_task,
            make_fit(student_encoder, tokenizer, seeded_task, student_config),
            predict,
            make_labeller(source, tokenizer, source_config.max_len),
            thetas,
            generator,
            np.random.default_rng(seed),
            replay=replay,
            progress=False,
        )
        for name, model, config in (
            ("source", source, source_config),
            ("student_plain", result.plain_model, student_config),
            ("student_agora", result.model, student_config),
        ):
            scores = evaluate(model, tokenizer, task.name, test, config.max_len, config.eval_batch_size)
            rows.append(
                {
                    "task": task.name,
                    "seed": seed,
                    "model": name,
                    "main_metric": task.main_metric,
                    "score": scores[task.main_metric],
                    **{f"test_{k}": v for k, v in scores.items()},
                }
            )
        rounds += [{"seed": seed, **entry, "scores": dict(entry["scores"])} for entry in result.log]
        added.append(result.added.assign(seed=seed))
    summary = {name: summarise([r["score"] for r in rows if r["model"] == name]) for name in MODELS}
    return {
        "task": task.name,
        "metric": task.main_metric,
        "train_size": len(seeded_task.train),
        "test_size": len(test),
        **summary,
        "rows": rows,
        "rounds": rounds,
        "added": pd.concat(added, ignore_index=True),
    }
