"""Stage `finetune`'s experiment: Agora in its regime (scarce train data), against two paired controls.

For every seed, one paired sample of the task (`seed_sample`): a balanced train sample of
`train_size` rows, a stratified dev sample of `dev_size` rows; the test split is used in full and
is never seen by any fit, model selection or Agora (`ose.finetuning.classifier.without_test`).

- `labeller`: the source fine-tuned on that train sample: Agora's S ("the source model fine-tuned
  on the same train split"), its test score reported so its "ok-ish" accuracy is on record.
- per student (pretrain's arms: `kd`, `mlm`, `inherited_kd`), three arms on the same sample:
  - `plain`: the student fine-tuned under every θ ∈ Θ, the best on dev kept: Agora's round 1;
  - `agora`: Agora's best model over all rounds (docs/science.md, "Agora");
  - `control`: the same loop, same Θ, same fit seed, the same generator and labeller, but each
    round adds exactly as many S-labelled points as Agora did on that seed, made around dev points
    drawn uniformly at random instead of the dev mistakes (`ose.finetuning.agora.agora(anchor=
    "random_dev")`). It trains as many steps on points S labels as well as Agora's (both anchored
    on dev points S never saw), so Agora − control isolates *where* the points go. The earlier
    control, around random rows of the train sample S was fine-tuned on (`random_train`), stays
    available as `finetune.control_anchor` for ablation: S labels near-copies of what it memorised.

The three arms of one seed share the fit seed and round 1 (it is fitted once: `MemoFit`). Each
(task, seed, student) record is a JSON file in a cache keyed by a fingerprint of every input
(data, weights, tokenizer, generator, settings, code): an interrupted stage redoes no finished seed.
The paired effects, tables and verdict read off the records are in `ose.finetuning.effects`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ose import stats as stats_module
from ose.configs import FineTune  # noqa: F401 (re-exported)
from ose.data.tasks import TaskData
from ose.finetuning import agora as agora_module
from ose.finetuning import classifier as finetune_module
from ose.finetuning.agora import agora
from ose.finetuning.classifier import (
    Classifier,
    Encoded,
    FineTuneConfig,
    balanced_sample,
    encode_frame,
    evaluate_encoded,
    fine_tune,
    load_encoder,
    make_fit,
    make_labeller,
    make_predict,
    stratified_sample,
    without_test,
)
from ose.finetuning.generator import NearestNeighbourSubstitution
from ose.pipeline.fingerprint import (
    mapping_digest,
    source_digest,
    state_digest,
    tensor_digest,
    tokenizer_digest,
)
from ose.pipeline.progress import bar as progress_bar
from ose.pipeline.results import json_ready, read_json, write_json  # json_ready: also for ose.stages.finetune
from ose.training import loop as training_module

EXAMPLES_KEPT = 4  # added points kept per (seed, student, arm) for the notebook to show
# ---------------------------------------------------------------------------------------------
# One seed


def seed_sample(task: TaskData, train_size: int | None, dev_size: int | None, seed: int) -> TaskData:
    """What every arm of one seed sees: a balanced train sample, a stratified dev sample, no test."""
    visible = without_test(task)
    return dataclasses.replace(
        visible,
        train=balanced_sample(visible.train, train_size, seed, "finetune.train_size"),
        dev=stratified_sample(visible.dev, dev_size, seed),
    )


def frame_digest(frame: pd.DataFrame) -> str:
    """A content hash of a frame's rows (values and column names, not its index)."""
    digest = hashlib.sha256(json.dumps(list(map(str, frame.columns))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


class MemoFit:
    """A fit that fits each (train frame, θ, seed) once: the control's round 1 is Agora's round 1."""

    def __init__(self, fit: Callable[[pd.DataFrame, Mapping[str, Any], int], tuple[Classifier, float]]):
        self.fit, self.fitted, self.calls = fit, {}, 0

    def __call__(self, train: pd.DataFrame, theta: Mapping[str, Any], seed: int) -> tuple[Classifier, float]:
        key = (frame_digest(train), json.dumps(dict(theta), sort_keys=True, default=str), seed)
        if key not in self.fitted:
            self.calls += 1
            self.fitted[key] = self.fit(train, theta, seed)
        return self.fitted[key]


class ScoredTest:
    """The test split, tokenised once per `max_len`: every model is scored without re-tokenising."""

    def __init__(self, task: TaskData, frame: pd.DataFrame, tokenizer):
        self.task, self.frame, self.tokenizer = task, frame, tokenizer
        self.labels = frame["label"].to_numpy()
        self.encoded: dict[int, Encoded] = {}

    def score(self, model, config: FineTuneConfig) -> dict:
        """{"score": the main metric, "test_<metric>": every metric}."""
        if config.max_len not in self.encoded:
            self.encoded[config.max_len] = encode_frame(self.tokenizer, self.frame, config.max_len)
        encoded = self.encoded[config.max_len]
        scores = evaluate_encoded(model, self.task.name, encoded, self.labels, config.eval_batch_size)
        return {"score": scores[self.task.main_metric], **{f"test_{k}": v for k, v in scores.items()}}


def _examples(added: pd.DataFrame) -> list[dict]:
    """The first EXAMPLES_KEPT added points, for the record (plain values)."""
    keep = [c for c in added.columns if c not in ("side",)]
    return json.loads(added[keep].head(EXAMPLES_KEPT).to_json(orient="records"))


def _gap(dev: float | None, test: float | None) -> float | None:
    """Dev score − test score of one model (None when either is missing)."""
    if dev is None or test is None or not (math.isfinite(dev) and math.isfinite(test)):
        return None
    return dev - test


def student_arms(
    sample: TaskData,
    test: ScoredTest,
    tokenizer,
    student: nn.Module,
    labeller: Callable[[pd.DataFrame], np.ndarray],
    config: FineTuneConfig,
    thetas: list[dict],
    generator: NearestNeighbourSubstitution,
    seed: int,
    control_anchor: str = "random_dev",
    **options,
) -> dict:
    """The three arms of one student on one seed's sample: test scores, rounds and a few added points.

    options: Agora's (`replay`, `tie_tolerance`, `regression_tolerance`). Each round's best model
    is also scored on `test`, for the record only (`agora(observe=...)`). Per arm the record holds,
    besides the test metrics: the dev score, θ, best round, points added, the share of dev its model
    predicts as one class (`dev_majority_share`) and the dev − test gap of the main metric.
    """
    fit = MemoFit(make_fit(student, tokenizer, sample, config))
    predict = make_predict(tokenizer, config.max_len, config.eval_batch_size)
    tested: dict[int, tuple[Any, dict]] = {}  # id(model) → (model, test scores): each model once

    def scores(model) -> dict:
        if id(model) not in tested:
            tested[id(model)] = (model, test.score(model, config))
        return tested[id(model)][1]

    def observe(model) -> dict:
        return {"test_score": scores(model)["score"]}

    def run(**arm_options):
        return agora(
            fit,
            predict,
            labeller,
            sample.train,
            sample.dev,
            thetas,
            generator,
            np.random.default_rng(seed),  # the same fit seed for every arm of this seed
            is_regression=sample.is_regression,
            observe=observe,
            progress=False,
            **options,
            **arm_options,
        )

    with_agora = run()
    control = run(anchor=control_anchor, points_per_round=[entry["added"] for entry in with_agora.log])
    arms = {
        "plain": (with_agora.plain_model, with_agora.plain_dev_score, with_agora.plain_theta, 1, 0),
        "agora": (
            with_agora.model,
            with_agora.dev_score,
            with_agora.theta,
            with_agora.best_round,
            len(with_agora.added),
        ),
        "control": (control.model, control.dev_score, control.theta, control.best_round, len(control.added)),
    }
    logs = {"plain": with_agora.log, "agora": with_agora.log, "control": control.log}
    record = {"arms": {}, "rounds": [], "examples": []}
    for arm, (model, dev_score, theta, best_round, added) in arms.items():
        tested_scores = scores(model)
        record["arms"][arm] = {
            **tested_scores,
            "dev_score": dev_score,
            "theta": theta["name"],
            "best_round": best_round,
            "points_added": added,
            # the arm's model is its best round's best: that round's share of dev in one class
            "dev_majority_share": logs[arm][best_round - 1].get("dev_majority_share"),
            "dev_test_gap": _gap(dev_score, tested_scores["score"]),
        }
    for arm, result in (("agora", with_agora), ("control", control)):
        record["rounds"] += [{"arm": arm, **entry} for entry in result.log]
        record["examples"] += [{"arm": arm, **row} for row in _examples(result.added)]
    record["student_fits"] = fit.calls
    return record


# ---------------------------------------------------------------------------------------------
# All seeds, with the cache


def _digests(task, tokenizer, source, students, generator, settings) -> dict:
    """Everything that shapes a (seed, student) record except the seed and the student's name."""
    return {
        "task": {name: frame_digest(frame) for name, frame in task.splits().items()},
        "tokenizer": tokenizer_digest(tokenizer),
        "source": state_digest(source),
        "students": {name: state_digest(model) for name, model in students.items()},
        "generator": {
            "embeddings": tensor_digest(generator.unit),
            **{k: getattr(generator, k) for k in ("k", "fraction", "n_new", "max_tokens")},
        },
        "settings": settings,
        "code": source_digest(agora_module, finetune_module, training_module, stats_module),
    }


def record_key(digests: dict, seed: int, student: str) -> str:
    """The fingerprint of one (seed, student) record: its inputs, only this student's weights."""
    shared = {k: v for k, v in digests.items() if k != "students"}
    return mapping_digest({**shared, "student": digests["students"][student], "seed": seed})


def _cached(path: Path | None, key: str) -> dict | None:
    if path is None or not path.exists():
        return None
    record = read_json(path)
    return record if record.get("fingerprint") == key else None


@dataclasses.dataclass
class SeedWork:
    """What every seed of `compare_on_task` shares: sent once to each worker process."""

    task: TaskData
    tokenizer: Any
    source: nn.Module
    students: dict[str, nn.Module]
    source_config: FineTuneConfig
    student_config: FineTuneConfig
    thetas: list[dict]
    generator: NearestNeighbourSubstitution
    train_size: int | None
    dev_size: int | None
    options: dict
    digests: dict
    cache: Path | None
    test: ScoredTest  # one for every train size: the test split is tokenised once per process


def seed_records(work: SeedWork, seed: int, done: Mapping[str, dict | None]) -> dict[str, dict]:
    """One seed: the labeller S fine-tuned on the seed's sample, then the three arms of every student
    whose record is not in `done`; each new record is written to the cache as soon as it exists."""
    task, tokenizer = work.task, work.tokenizer
    started = time.perf_counter()
    sample = seed_sample(task, work.train_size, work.dev_size, seed)
    test = work.test
    labeller_model, labeller_log = fine_tune(
        work.source, tokenizer, sample, config=work.source_config, seed=seed, progress=False
    )
    labeller = {**test.score(labeller_model, work.source_config), "dev_score": labeller_log["best_score"]}
    label = make_labeller(
        labeller_model, tokenizer, work.source_config.max_len, work.source_config.eval_batch_size
    )
    labeller_seconds = time.perf_counter() - started
    computed = {}
    for name, encoder in work.students.items():
        if done.get(name) is not None:
            continue
        started = time.perf_counter()
        arms = student_arms(
            sample, test, tokenizer, encoder, label, work.student_config, work.thetas, work.generator,
            seed, **work.options,
        )  # fmt: skip
        computed[name] = json_ready(
            {
                "fingerprint": record_key(work.digests, seed, name),
                "task": task.name,
                "seed": seed,
                "student": name,
                "train_size": len(sample.train),
                "dev_size": len(sample.dev),
                "labeller": labeller,
                **arms,
                "seconds": {"labeller": labeller_seconds, "student": time.perf_counter() - started},
            }
        )
        if work.cache is not None:
            write_json(work.cache / f"seed{seed}-{name}.json", computed[name])
    return computed


_WORKS: tuple[SeedWork, ...] = ()  # a worker process's shared inputs, one per train size (`_start_worker`)


def _start_worker(works: tuple[SeedWork, ...]) -> None:
    global _WORKS
    torch.set_num_threads(1)  # two workers on two cores beat one on both for models this small
    _WORKS = works


def _seed_in_worker(index: int, seed: int, done: dict[str, dict | None]) -> dict[str, dict]:
    assert _WORKS, "the worker was started without its inputs"
    return seed_records(_WORKS[index], seed, done)


def _map_seeds(works: Sequence[SeedWork], jobs: Sequence[tuple[int, int]], done: Mapping, nproc: int):
    """((work index, seed), its new records) for every job of `jobs`, in this process (nproc 1, or
    one job) or in `nproc` spawned workers of one thread each, yielded as they finish. The works
    are sent to each worker once (pickled together: what they share, pickled once)."""
    if nproc == 1 or len(jobs) <= 1:
        for job in jobs:
            yield job, seed_records(works[job[0]], job[1], done[job])
        return
    context = multiprocessing.get_context("spawn")  # no forked torch threads or open files
    with ProcessPoolExecutor(min(nproc, len(jobs)), context, _start_worker, (tuple(works),)) as pool:
        futures = {pool.submit(_seed_in_worker, *job, dict(done[job])): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def compare_on_task(
    task: TaskData,
    tokenizer,
    source_encoder,
    students: Mapping[str, Any],
    source_config: FineTuneConfig,
    student_config: FineTuneConfig,
    thetas: list[dict],
    generator: NearestNeighbourSubstitution,
    seeds: Sequence[int],
    train_size: int | None,
    dev_size: int | None = None,
    *,
    cache_dir: str | Path | None = None,
    **options,
) -> dict:
    """The labeller and every student's three arms on `task.test`, for every seed (see the module),
    at one train size: `compare_on_sizes` with that size alone.

    students: name → encoder (a `save_pretrained` directory or a model). Returns {task, metric,
    train_size, dev_size, test_size, chance (the test split's majority-class share; None for
    regression), seeds, students, records}: one record per (seed, student),
    holding the labeller's and the arms' test scores, both loops' rounds, a few added points, the
    fingerprint and the seconds it took (those of the run that computed it). With `cache_dir`,
    each record is read from / written to `<cache_dir>/seed<seed>-<student>.json` when its
    fingerprint matches. options: `compare_on_sizes`'s (Agora's, `nproc`, `progress`).
    """
    return compare_on_sizes(
        task, tokenizer, source_encoder, students, source_config, student_config, thetas, generator,
        seeds, {train_size: cache_dir}, dev_size, **options,
    )[train_size]  # fmt: skip


def compare_on_sizes(
    task: TaskData,
    tokenizer,
    source_encoder,
    students: Mapping[str, Any],
    source_config: FineTuneConfig,
    student_config: FineTuneConfig,
    thetas: list[dict],
    generator: NearestNeighbourSubstitution,
    seeds: Sequence[int],
    train_sizes: Mapping[int | None, str | Path | None],
    dev_size: int | None = None,
    *,
    replay: int = 0,
    tie_tolerance: float = 0.0,
    regression_tolerance: float = 0.2,
    control_anchor: str = "random_dev",
    nproc: int = 1,
    progress: bool = True,
) -> dict[int | None, dict]:
    """`compare_on_task`'s result at every train size of `train_sizes` (size → its cache folder, or
    None for none), by size. The (size, seed) pairs still to compute share one pool of `nproc`
    worker processes of one intra-op thread each, the largest sizes first (the longest jobs, so
    the pool ends on short ones); records are the same whatever the order or `nproc`.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be a positive integer, got {nproc}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    if not students:
        raise ValueError("students must name at least one student encoder")
    if not train_sizes:
        raise ValueError("train_sizes must name at least one train size")
    source = load_encoder(source_encoder)
    encoders = {name: load_encoder(encoder) for name, encoder in students.items()}
    options = {
        "replay": replay,
        "tie_tolerance": tie_tolerance,
        "regression_tolerance": regression_tolerance,
        "control_anchor": control_anchor,
    }
    settings = {
        "source_config": dataclasses.asdict(source_config),
        "student_config": dataclasses.asdict(student_config),
        "thetas": thetas,
        "dev_size": dev_size,
        **options,
    }
    shared = _digests(task, tokenizer, source, encoders, generator, settings)  # the weights hashed once
    test = ScoredTest(task, task.test, tokenizer)
    works, done = [], {}
    for index, (train_size, cache_dir) in enumerate(train_sizes.items()):
        digests = {**shared, "settings": {**settings, "train_size": train_size}}
        cache = None if cache_dir is None else Path(cache_dir)
        work = SeedWork(
            task, tokenizer, source, encoders, source_config, student_config, thetas, generator,
            train_size, dev_size, options, digests, cache, test,
        )  # fmt: skip
        works.append(work)
        for seed in seeds:
            paths = {name: None if cache is None else cache / f"seed{seed}-{name}.json" for name in encoders}
            keys = {name: record_key(digests, seed, name) for name in encoders}
            done[index, seed] = {name: _cached(paths[name], keys[name]) for name in encoders}
    largest_first = sorted(range(len(works)), key=lambda i: -(works[i].train_size or math.inf))
    todo = [
        (index, seed)
        for index in largest_first
        for seed in seeds
        if any(record is None for record in done[index, seed].values())
    ]
    bar = progress_bar(
        total=len(works) * len(seeds) * len(encoders),
        desc=f"{task.name}: sizes × seeds × students",
        disable=not progress,
    )
    bar.update((len(done) - len(todo)) * len(encoders))
    for job, computed in _map_seeds(works, todo, done, nproc):
        done[job].update(computed)
        bar.update(len(encoders))
    bar.close()
    common = {  # the same at every size
        "test_size": len(task.test),
        "chance": None
        if task.is_regression
        else float(task.test["label"].value_counts(normalize=True).iloc[0]),
        "seeds": list(seeds),
        "students": list(encoders),
    }
    results = {}
    for index, work in enumerate(works):
        records = [done[index, seed][name] for seed in seeds for name in encoders]
        results[work.train_size] = {
            "task": task.name,
            "metric": task.main_metric,
            "train_size": records[0]["train_size"],
            "dev_size": records[0]["dev_size"],
            **common,
            "records": records,
        }
    return results
