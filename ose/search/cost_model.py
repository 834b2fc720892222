"""Measured inference cost i(ξ) and the polynomial fitted to it (the paper's "polynomial correlation").

Latency is the median wall time of a forward pass (random weights, `torch.inference_mode`, fixed
thread count, warm-up first). The cost model is a non-negative combination of monomials taken
from the operation count (`ose.search.objectives`): a constant, D (per-layer overhead), D·L·H and D·L·I
(element-wise work), D·L·H² and D·L·H·I (the projections and the feed-forward block), D·L²·H
(attention products) and D·A·L² (softmax). It is fitted to minimise relative error, so small and
large architectures count alike; non-negativity keeps every term a cost.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from ose.arch import BERT_EMBEDDING, Arch, Embedding, build_model
from ose.configs import Costs, LatencySettings  # noqa: F401 (re-exported)
from ose.pipeline import row_cache
from ose.pipeline.atomic import write_text_atomic
from ose.pipeline.clock import call_times_ms
from ose.pipeline.progress import bar as progress_bar

FEATURES = ("1", "D", "D·L·H", "D·L·I", "D·L·H²", "D·L·H·I", "D·L²·H", "D·A·L²")


@dataclass(frozen=True)
class Timing:
    """Median and interquartile range of repeated wall-clock measurements, in milliseconds."""

    median_ms: float
    iqr_ms: float
    repeats: int


def time_call(fn: Callable[[], object], warmup: int, repeats: int, threads: int) -> Timing:
    """Median wall time of `fn()` after `warmup` untimed calls, with `threads` intra-op threads.

    The calls are timed by `ose.pipeline.clock.call_times_ms`, the timer `ose.speed.harness` uses too.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            samples = call_times_ms(fn, repeats, warmup)
    finally:
        torch.set_num_threads(previous)
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return Timing(float(median), float(q3 - q1), repeats)


def random_inputs(embedding: Embedding, batch_size: int, seq_len: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, embedding.vocab_size, (batch_size, seq_len), generator=generator)


def measure_latency(
    arch: Arch, settings: LatencySettings, embedding: Embedding = BERT_EMBEDDING, seed: int = 0
) -> Timing:
    """Latency of a full encoder forward pass (embeddings, D layers, pooler) of a fresh ξ."""
    model = build_model(arch, embedding, head="pooler", seed=seed)
    ids = random_inputs(embedding, settings.batch_size, settings.seq_len, seed)  # (B, L)
    return time_call(lambda: model(ids), settings.warmup, settings.repeats, settings.threads)


PARTS = ("A", "B", "C_pooler", "C_mlm")


def measure_parts(
    arch: Arch, settings: LatencySettings, embedding: Embedding = BERT_EMBEDDING, seed: int = 0
) -> dict[str, Timing]:
    """Latency of each part of f = C ∘ B^D ∘ A: A, one B, and C as pooler and as masked-LM head."""
    model = build_model(arch, embedding, head="mlm", seed=seed)
    bert = model.bert
    ids = random_inputs(embedding, settings.batch_size, settings.seq_len, seed)  # (B, L)
    with torch.inference_mode():
        hidden = bert.embeddings(ids)  # (B, L, H)
    pooler = torch.nn.Sequential(torch.nn.Linear(arch.hidden, arch.hidden), torch.nn.Tanh()).eval()
    layer = bert.encoder.layer[0]
    timed = {  # the keys are PARTS
        "A": lambda: bert.embeddings(ids),
        "B": lambda: layer(hidden),
        "C_pooler": lambda: pooler(hidden[:, 0]),
        "C_mlm": lambda: model.cls(hidden),
    }
    return {
        part: time_call(fn, settings.warmup, settings.repeats, settings.threads) for part, fn in timed.items()
    }


def measure_parts_cached(
    space_name: str,
    arch: Arch,
    settings: LatencySettings,
    cache_path: Path,
    embedding: Embedding = BERT_EMBEDDING,
    seed: int = 0,
) -> dict[str, Timing]:
    """`measure_parts`, kept in the latency cache (rows named `<arch>/<part>`): a re-run re-times nothing."""
    cache = read_cache(cache_path)
    keys = {part: _key(space_name, f"{arch.name}/{part}", settings) for part in PARTS}
    if not all(key in cache for key in keys.values()):
        for part, timing in measure_parts(arch, settings, embedding, seed).items():
            cache[keys[part]] = timing
        _write_cache(cache_path, cache)
        cache = read_cache(cache_path)
    return {part: cache[key] for part, key in keys.items()}


def sample_architectures(space: Sequence[Arch], n: int, seed: int) -> list[Arch]:
    """A seeded sample of n distinct points of Ξ that always includes its smallest and largest ξ.

    The extremes are included so that the fitted model interpolates, never extrapolates, in p.
    """
    if not 2 <= n <= len(space):
        raise ValueError(f"n must be between 2 and the space size {len(space)}, got {n}")
    ordered = sorted(space, key=lambda a: (a.depth * a.hidden * (a.hidden + a.intermediate), a))
    ends = [ordered[0], ordered[-1]]
    rest = random.Random(seed).sample(ordered[1:-1], n - 2)
    return ends + rest


def split_heldout(archs: Sequence[Arch], heldout_fraction: float, seed: int) -> tuple[list[Arch], list[Arch]]:
    """Seeded (fit, held-out) split; the space's extremes (first two of the sample) stay in the fit."""
    ends, rest = list(archs[:2]), list(archs[2:])
    random.Random(seed + 1).shuffle(rest)
    n_heldout = max(1, round(heldout_fraction * len(archs)))
    return ends + rest[n_heldout:], rest[:n_heldout]


# --- measurement cache: one row per measured ξ, so an interrupted run resumes ----------------

CACHE_COLUMNS = (
    "space",
    "arch",
    "batch_size",
    "seq_len",
    "threads",
    "warmup",
    "repeats",
    "median_ms",
    "iqr_ms",
)


def _key(space: str, arch: str, settings: LatencySettings) -> tuple:
    return (
        space,
        arch,
        settings.batch_size,
        settings.seq_len,
        settings.threads,
        settings.warmup,
        settings.repeats,
    )


def read_cache(path: Path) -> dict[tuple, Timing]:
    """Rows of an earlier (possibly interrupted) run; rows measured with other settings are kept
    in the file but not reused."""
    out = {}
    for row in row_cache.read_rows(path, CACHE_COLUMNS[:-2]).values():
        settings = LatencySettings(
            int(row["batch_size"]),
            int(row["seq_len"]),
            int(row["threads"]),
            int(row["warmup"]),
            int(row["repeats"]),
        )
        out[_key(row["space"], row["arch"], settings)] = Timing(
            float(row["median_ms"]), float(row["iqr_ms"]), int(row["repeats"])
        )
    return out


def _write_cache(path: Path, rows: dict[tuple, Timing]) -> None:
    """Rewrite the cache atomically (floats as `repr`, so they read back exactly)."""
    lines = ((*key, timing.median_ms, timing.iqr_ms) for key, timing in rows.items())
    row_cache.write_rows(path, CACHE_COLUMNS, (dict(zip(CACHE_COLUMNS, line, strict=True)) for line in lines))


def measure_space_sample(
    space_name: str,
    archs: Iterable[Arch],
    settings: LatencySettings,
    cache_path: Path,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Measure every ξ not yet in the cache, saving the cache after each one; return all rows.

    The rows are read back from the cache file, so a first run and a re-run that measures nothing
    fit the cost model to exactly the same numbers.
    """
    archs = list(archs)
    cache = read_cache(cache_path)
    todo = [a for a in archs if _key(space_name, a.name, settings) not in cache]
    for arch in progress_bar(todo, desc=f"latency ({space_name} space)", disable=not progress):
        cache[_key(space_name, arch.name, settings)] = measure_latency(arch, settings, seed=seed)
        _write_cache(cache_path, cache)
    cache = read_cache(cache_path)
    rows = []
    for arch in archs:
        timing = cache[_key(space_name, arch.name, settings)]
        rows.append(
            {
                "space": space_name,
                "arch": arch.name,
                **arch.as_dict(),
                "median_ms": timing.median_ms,
                "iqr_ms": timing.iqr_ms,
            }
        )
    return rows


# --- the polynomial cost model ----------------------------------------------------------------


def feature_vector(arch: Arch, seq_len: int) -> np.ndarray:
    d, a, h, i, L = arch.depth, arch.heads, arch.hidden, arch.intermediate, seq_len
    return np.array(
        [1, d, d * L * h, d * L * i, d * L * h * h, d * L * h * i, d * L * L * h, d * a * L * L], dtype=float
    )


@dataclass(frozen=True)
class CostModel:
    """i(ξ) in milliseconds: Σ_k coefficient_k · feature_k(ξ, L)."""

    coefficients: tuple[float, ...]
    seq_len: int
    batch_size: int
    threads: int
    features: tuple[str, ...] = FEATURES

    def predict(self, arch: Arch) -> float:
        return float(feature_vector(arch, self.seq_len) @ np.asarray(self.coefficients))

    def predict_many(self, archs: Iterable[Arch]) -> np.ndarray:
        return np.array([self.predict(a) for a in archs])

    def to_json(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: Path) -> CostModel:
        data = json.loads(Path(path).read_text())
        return cls(
            tuple(data["coefficients"]),
            data["seq_len"],
            data["batch_size"],
            data["threads"],
            tuple(data["features"]),
        )


def fit_cost_model(
    archs: Sequence[Arch], latency_ms: Sequence[float], settings: LatencySettings
) -> CostModel:
    """Non-negative least squares on relative error: minimise Σ ((X·w − y) / y)², w ≥ 0."""
    if len(archs) != len(latency_ms) or len(archs) < 2:
        raise ValueError("need at least two (architecture, latency) pairs of equal length")
    y = np.asarray(latency_ms, dtype=float)
    X = np.stack([feature_vector(a, settings.seq_len) for a in archs]) / y[:, None]
    scale = X.max(axis=0)
    scale[scale == 0] = 1.0
    w, _ = nnls(X / scale, np.ones(len(y)))
    return CostModel(
        tuple(float(c) for c in w / scale), settings.seq_len, settings.batch_size, settings.threads
    )


def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Mean absolute percentage error, in percent."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    return float(100 * np.mean(np.abs(predicted - measured) / measured))


@dataclass
class SpaceFit:
    """The cost model of one space and how well it predicts latency it was not fitted on."""

    space: str
    model: CostModel
    rows: list[dict]  # one per measured ξ: arch, D, A, H, I, median_ms, predicted_ms, split
    mape_fit: float
    mape_heldout: float


def fit_space(
    space_name: str,
    space: Sequence[Arch],
    n_sample: int,
    settings: LatencySettings,
    heldout_fraction: float,
    seed: int,
    cache_path: Path,
    progress: bool = True,
) -> SpaceFit:
    """Sample, measure (resuming from the cache), split, fit, and score on the held-out part."""
    archs = sample_architectures(space, n_sample, seed)
    rows = measure_space_sample(space_name, archs, settings, cache_path, seed, progress)
    fit, heldout = split_heldout(archs, heldout_fraction, seed)
    latency = {r["arch"]: r["median_ms"] for r in rows}
    model = fit_cost_model(fit, [latency[a.name] for a in fit], settings)
    heldout_names = {a.name for a in heldout}
    for row in rows:
        row["predicted_ms"] = model.predict(Arch.parse(row["arch"]))
        row["split"] = "held-out" if row["arch"] in heldout_names else "fit"
    score = {
        split: mape(
            [r["predicted_ms"] for r in rows if r["split"] == split],
            [r["median_ms"] for r in rows if r["split"] == split],
        )
        for split in ("fit", "held-out")
    }
    return SpaceFit(space_name, model, rows, score["fit"], score["held-out"])
