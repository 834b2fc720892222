"""The CPU benchmark: latency of whole models and speed-ups with bootstrap confidence intervals.

The paper claims Bort is many times faster than BERT-large and BERT-base on a CPU (`ose.paper`) and
says neither at which batch size, sequence length or thread count, nor how often it measured. A
speed-up is a ratio of two latencies, so both must come from the same machine, the same thread
settings and the same minutes; and one ratio from one run says nothing about how far the next run
will land (the int8 student measured 0.76× in one run and 1.84× in the next). This module therefore
measures in *interleaved rounds* and reports every ratio with a confidence interval.

Protocol (`benchmark_models`). Every model is warmed up at every (batch, seq) cell it is timed at.
Then R rounds: each round times every (model, cell) once, as a block of `calls` forward passes
(at least `repeats`, more for a fast model so that a block lasts `min_round_ms`), and keeps the
block's median: the round's latency. The order of cells and of models is rotated by one place per
round, so over the rounds every model occupies every position equally often, and a machine that
drifts (another job starts, the CPU clocks down) slows all models of a round alike. Garbage
collection is off inside a round. `grid_models` caps the expensive cells: the models it names are
timed at every cell, the others only at the headline cell (smallest batch, shortest sequence).

Ratios (`speedups`, `ratio_ci`). For each round, speed-up = reference latency / model latency of
that round; the reported speed-up is the geometric mean of the per-round ratios, and its 95%
interval a percentile bootstrap over rounds. Rounds, not the pooled calls, are resampled: calls of
one block run back to back in one machine state and are not independent, so pooling them would
give intervals that ignore the round-to-round drift that actually moves a ratio between runs; a
round pairs the two models within seconds, which is what makes the ratio per round meaningful.
With R rounds the interval cannot be wider than the per-round ratios' range and, like every
percentile bootstrap of few samples, it runs somewhat narrow: R ≥ 5 is advised. `stability` splits
the rounds into an earlier and a later half, two runs in miniature, and says whether both halves'
ratios lie inside the whole run's interval.

Work. GFLOPs are analytic (`ose.search.objectives.op_count`: the forward of one sequence, times
the batch), never counted from a profiler; achieved GFLOP/s = GFLOPs / median seconds.
`gemm_peak_gflops` gives the float32 matrix-product rate of this machine as the hardware reference,
and `peak_fractions` reports each model's rate as a fraction of it. For an int8 ONNX model the
same analytic count is used: the rate is then "useful float32-equivalent work per second", not
integer operations.

ONNX. `export_onnx` traces a BERT-like model (inputs `input_ids`, `attention_mask`; batch and sequence
axes dynamic) with the TorchScript exporter (`dynamo=False`), and writes ξ, the embedding sizes, the
head and the parameter count into the file's metadata, so an `onnxruntime.InferenceSession` can be
benchmarked beside the PyTorch models. `quantize_int8` makes a dynamically quantised copy (int8
weights, activations quantised at run time).
"""

from __future__ import annotations

import gc
import math
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import bootstrap
from torch import nn

from ose.arch import Arch, Embedding, from_bert_config
from ose.configs import Benchmark  # noqa: F401 (re-exported)
from ose.pipeline.atomic import atomic_path
from ose.pipeline.clock import call_times_ms
from ose.pipeline.machine import machine_info
from ose.pipeline.progress import bar as progress_bar
from ose.search.cost_model import random_inputs, time_call
from ose.search.objectives import op_count

CI_LEVEL = 0.95  # every interval this module reports
BOOTSTRAP_RESAMPLES = 4000  # resamples of the rounds; a few ms for any R the stage uses
# An interval wider than this factor (ci_high / ci_low) neither confirms nor refutes a claim inside it:
# at 1.5 a claim of 20× "holds" only if the interval is about 20× ± 20% or tighter.
DECISIVE_CI_RATIO = 1.5

ROW_COLUMNS = (
    "run_id",
    "model",
    "backend",
    "arch",
    "head",
    "params",
    "batch",
    "seq",
    "threads",
    "rounds",
    "calls",
    "median_ms",
    "iqr_ms",
    "q1_ms",
    "q3_ms",
    "seq_per_s",
    "gflops",
    "gflops_per_s",
)
ROUND_COLUMNS = ("run_id", "model", "batch", "seq", "threads", "round", "position", "calls", "median_ms")

_META = "ose."  # prefix of the metadata keys `export_onnx` writes into an ONNX file


# --- what a benchmarked model is --------------------------------------------------------------


def _head_of(model: nn.Module) -> str:
    """The `ose.search.objectives` head of a Hugging Face BERT-like model: "mlm", "pooler" or "none".

    A sequence classifier counts as "pooler": its classifier adds 2·H·labels FLOPs, negligible.
    """
    if hasattr(model, "cls"):
        return "mlm"
    base = getattr(model, "base_model", model)
    return "pooler" if getattr(base, "pooler", None) is not None else "none"


def _describe_torch(label: str, model: nn.Module) -> dict:
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(f"{label} has no `config`: expected a Hugging Face BERT-like model")
    arch, embedding = from_bert_config(config)
    return {
        "backend": "torch",
        "arch": arch,
        "embedding": embedding,
        "head": _head_of(model),
        "params": sum(p.numel() for p in model.parameters()),
    }


def _describe_session(label: str, session) -> dict:
    meta = session.get_modelmeta().custom_metadata_map
    if f"{_META}arch" not in meta:
        raise ValueError(
            f"{label} is an ONNX session without ose metadata: export it with ose.speed.bench.export_onnx"
        )
    return {
        "backend": "onnxruntime" + (f"-{meta[_META + 'weights']}" if _META + "weights" in meta else ""),
        "arch": Arch.parse(meta[f"{_META}arch"]),
        "embedding": Embedding(
            int(meta[f"{_META}vocab_size"]),
            int(meta[f"{_META}max_positions"]),
            int(meta[f"{_META}type_vocab_size"]),
        ),
        "head": meta[f"{_META}head"],
        "params": int(meta[f"{_META}params"]),
    }


def _is_session(model) -> bool:
    return hasattr(model, "run") and hasattr(model, "get_modelmeta")


def _check_positive(name: str, values: Iterable[int]) -> list[int]:
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
    return values


def _inputs(embedding: Embedding, batch: int, seq: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = random_inputs(embedding, batch, seq, seed)  # (B, L)
    return ids, torch.ones_like(ids)  # (B, L): every position attended, as in a full batch


def _forward(model, embedding: Embedding, batch: int, seq: int, seed: int) -> Callable[[], object]:
    ids, mask = _inputs(embedding, batch, seq, seed)
    if _is_session(model):
        names = {i.name for i in model.get_inputs()}
        feeds = {k: v.numpy() for k, v in (("input_ids", ids), ("attention_mask", mask)) if k in names}
        return lambda: model.run(None, feeds)
    return lambda: model(input_ids=ids, attention_mask=mask)


def _quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return float(q1), float(median), float(q3)


# --- the benchmark ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """One benchmark run. `rows`: one per (model, cell), the columns of `ROW_COLUMNS`, latency =
    median over rounds of the rounds' medians. `rounds`: one per (model, cell, round), the columns
    of `ROUND_COLUMNS` (`position`: the block's place in its round), what `speedups` pairs."""

    rows: list[dict]
    rounds: list[dict]


def _rotated(items: Sequence, shift: int) -> list:
    """`items` rotated left by `shift` places: round r starts with item r."""
    shift %= len(items)
    return list(items[shift:]) + list(items[:shift])


def _check_grid(grid_models: Sequence[str] | None, names: Sequence[str]) -> set[str]:
    if grid_models is None:
        return set(names)
    unknown = [m for m in grid_models if m not in names]
    if unknown:
        raise ValueError(f"grid_models {unknown} are not among the models {list(names)}")
    return set(grid_models)


def _calls_per_block(warm_ms: float | None, repeats: int, min_round_ms: float) -> int:
    """Calls in one timed block: `repeats`, or enough to last `min_round_ms` at the warm-up's pace."""
    if warm_ms is None or min_round_ms <= 0:
        return repeats
    return max(repeats, math.ceil(min_round_ms / max(warm_ms, 1e-3)))


def _time_block(call: Callable[[], object], calls: int) -> float:
    """Median milliseconds of `calls` back-to-back calls (`ose.pipeline.clock`, no warm-up)."""
    return float(np.median(call_times_ms(call, calls)))


def _describe_all(models: Mapping[str, object], threads: int, seq_lens: Sequence[int]) -> dict[str, dict]:
    described = {}
    for name, model in models.items():
        if _is_session(model):
            session_threads = model.get_session_options().intra_op_num_threads
            if session_threads != threads:
                raise ValueError(
                    f"threads={threads} but models[{name!r}] was made with intra_op_num_threads="
                    f"{session_threads}; make it with ose.speed.bench.ort_session(path, threads={threads})"
                )
            described[name] = _describe_session(f"models[{name!r}]", model)
        elif isinstance(model, nn.Module):
            described[name] = _describe_torch(f"models[{name!r}]", model)
        else:
            raise ValueError(f"models[{name!r}] is a {type(model).__name__}, not an nn.Module or ORT session")
        longest = described[name]["embedding"].max_positions
        if max(seq_lens) > longest:
            raise ValueError(f"seq_lens {max(seq_lens)} exceeds models[{name!r}]'s max positions {longest}")
    return described


def benchmark_models(
    models: Mapping[str, object],
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int],
    threads: int,
    warmup: int = 1,
    rounds: int = 5,
    repeats: int = 1,
    min_round_ms: float = 0.0,
    grid_models: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Timings:
    """Time every model at its (batch, seq) cells in `rounds` interleaved rounds (module docstring).

    models: name → a Hugging Face BERT-like `nn.Module` (called with `input_ids` and an all-ones
    `attention_mask`) or an `onnxruntime.InferenceSession` from `ort_session` (its file written by
    `export_onnx`, whose metadata says what it computes; its intra-op threads must equal `threads`).
    Each model is set to eval mode for the run and restored afterwards. Inputs are random token ids
    from the model's own vocabulary, seeded, the same in every round.

    warmup: untimed calls per (model, cell) before the first round; the fastest of them sizes the
    blocks. repeats: the fewest calls in a timed block; min_round_ms: a fast model's block gets
    more calls, to last about this long (0: exactly `repeats`). grid_models: the models timed at
    every cell (None: all); the others only at the smallest batch and shortest sequence.
    """
    if not models:
        raise ValueError("models must name at least one model")
    batch_sizes = _check_positive("batch_sizes", batch_sizes)
    seq_lens = _check_positive("seq_lens", seq_lens)
    _check_positive("threads", [threads])
    _check_positive("repeats", [repeats])
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise ValueError(f"rounds must be an integer >= 2 (a confidence interval needs two), got {rounds!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    if not min_round_ms >= 0:
        raise ValueError(f"min_round_ms must be >= 0, got {min_round_ms!r}")
    names = list(models)
    grid = _check_grid(grid_models, names)
    described = _describe_all(models, threads, seq_lens)

    cells = [(b, s) for b in batch_sizes for s in seq_lens]
    headline = (min(batch_sizes), min(seq_lens))
    timed = {cell: [n for n in names if n in grid or cell == headline] for cell in cells}
    blocks = [(cell, n) for cell in cells for n in timed[cell]]
    run_id = uuid.uuid4().hex[:12]
    training = {n: m.training for n, m in models.items() if isinstance(m, nn.Module)}
    previous_threads = torch.get_num_threads()
    bar = progress_bar(
        total=len(blocks) * (rounds + (warmup > 0)), desc="benchmark", unit="blocks", disable=not progress
    )
    round_rows: list[dict] = []
    calls_of: dict[tuple[str, int, int], int] = {}
    torch.set_num_threads(threads)
    try:
        for name in training:
            models[name].eval()
        with torch.inference_mode():
            forward = {
                (cell, n): _forward(models[n], described[n]["embedding"], *cell, seed) for cell, n in blocks
            }
            for cell, n in blocks:
                # the fastest warm-up call, each timed alone: the first ones pay for allocation
                warm_ms = min(call_times_ms(forward[(cell, n)], warmup), default=None)
                calls_of[(n, *cell)] = _calls_per_block(warm_ms, repeats, min_round_ms)
                bar.update(int(warmup > 0))
            for r in range(rounds):
                gc.collect()
                gc.disable()  # a collection inside a block would land on whichever model it hit
                schedule = [(cell, n) for cell in _rotated(cells, r) for n in _rotated(timed[cell], r)]
                for position, (cell, n) in enumerate(schedule):
                    calls = calls_of[(n, *cell)]
                    round_rows.append(
                        {
                            "run_id": run_id,
                            "model": n,
                            "batch": cell[0],
                            "seq": cell[1],
                            "threads": threads,
                            "round": r,
                            "position": position,
                            "calls": calls,
                            "median_ms": _time_block(forward[(cell, n)], calls),
                        }
                    )
                    bar.update()
                gc.enable()
    finally:
        gc.enable()
        bar.close()
        torch.set_num_threads(previous_threads)
        for name, was_training in training.items():
            models[name].train(was_training)
    rows = [
        _latency_row(run_id, n, described[n], cell, threads, rounds, calls_of[(n, *cell)], round_rows)
        for n in names
        for cell in cells
        if n in timed[cell]
    ]
    return Timings(rows=rows, rounds=round_rows)


def _latency_row(
    run_id: str,
    name: str,
    info: dict,
    cell: tuple[int, int],
    threads: int,
    rounds: int,
    calls: int,
    round_rows: Sequence[dict],
) -> dict:
    """The `ROW_COLUMNS` row of one (model, cell): quartiles over its rounds' medians."""
    batch, seq = cell
    per_round = [r["median_ms"] for r in round_rows if (r["model"], r["batch"], r["seq"]) == (name, *cell)]
    q1, median, q3 = _quartiles(per_round)
    gflops = op_count(info["arch"], seq, info["embedding"], info["head"]).total * batch / 1e9
    return {
        "run_id": run_id,
        "model": name,
        "backend": info["backend"],
        "arch": info["arch"].name,
        "head": info["head"],
        "params": info["params"],
        "batch": batch,
        "seq": seq,
        "threads": threads,
        "rounds": rounds,
        "calls": calls,
        "median_ms": median,
        "iqr_ms": q3 - q1,
        "q1_ms": q1,
        "q3_ms": q3,
        "seq_per_s": batch / (median / 1e3),
        "gflops": gflops,
        "gflops_per_s": gflops / (median / 1e3),
    }


# --- speed-ups with confidence intervals --------------------------------------------------------


def _geometric_mean_ratio(log_ratios: np.ndarray) -> float:
    return float(np.exp(log_ratios.mean()))


def ratio_ci(
    reference_ms: Sequence[float],
    model_ms: Sequence[float],
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Speed-up of a model over a reference from paired per-round latencies, with a bootstrap interval.

    reference_ms[k], model_ms[k]: the two latencies (ms) of round k. Per-round ratio
    reference / model; `speedup` = their geometric mean (a ratio's natural average: 2× and ½×
    average to 1×); `ci_low`/`ci_high` = the percentile bootstrap interval at `level`, resampling
    rounds (`resamples` times, seeded): `scipy.stats.bootstrap` with `method="percentile"` (the
    `level` quantiles of the resampled geometric means, not BCa), its generator
    `np.random.default_rng(seed)`. Rounds with one common ratio give the interval [ratio, ratio].
    Also the spread across rounds: the smallest and largest per-round ratio and `round_sd_log`, the
    standard deviation of the natural-log ratios (≈ the coefficient of variation of the ratio when
    small).
    """
    ref = np.asarray(reference_ms, dtype=float)
    mod = np.asarray(model_ms, dtype=float)
    if ref.shape != mod.shape or ref.ndim != 1:
        raise ValueError(
            f"reference_ms and model_ms must be paired per round, got {ref.shape} and {mod.shape}"
        )
    if len(ref) < 2:
        raise ValueError(f"rounds: a confidence interval needs at least 2 rounds, got {len(ref)}")
    if not (np.all(ref > 0) and np.all(mod > 0) and np.all(np.isfinite(ref)) and np.all(np.isfinite(mod))):
        raise ValueError("reference_ms and model_ms must be positive, finite latencies")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _check_positive("resamples", [resamples])
    log_ratios = np.log(ref) - np.log(mod)  # (R,)
    low, high = bootstrap(
        (log_ratios,),
        lambda sample, axis: np.exp(sample.mean(axis=axis)),  # the geometric-mean ratio of a resample
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return {
        "speedup": _geometric_mean_ratio(log_ratios),
        "ci_low": float(low),
        "ci_high": float(high),
        "rounds": len(log_ratios),
        "round_min": float(np.exp(log_ratios.min())),
        "round_max": float(np.exp(log_ratios.max())),
        "round_sd_log": float(log_ratios.std(ddof=1)),
    }


def stability(reference_ms: Sequence[float], model_ms: Sequence[float], ci: Mapping[str, float]) -> dict:
    """Does the ratio repeat? The rounds' earlier and later halves (the middle round of an odd count
    goes to the earlier) as two runs in miniature: each half's geometric-mean ratio, and `stable`
    when both lie inside the whole run's interval `ci` (from `ratio_ci`)."""
    ref, mod = np.asarray(reference_ms, dtype=float), np.asarray(model_ms, dtype=float)
    if len(ref) < 2 or ref.shape != mod.shape:
        raise ValueError(f"stability needs at least 2 paired rounds, got {ref.shape} and {mod.shape}")
    log_ratios = np.log(ref) - np.log(mod)
    cut = (len(log_ratios) + 1) // 2
    halves = _geometric_mean_ratio(log_ratios[:cut]), _geometric_mean_ratio(log_ratios[cut:])
    return {
        "first_half": halves[0],
        "second_half": halves[1],
        "stable": all(ci["ci_low"] <= h <= ci["ci_high"] for h in halves),
    }


def _round_key(row: Mapping) -> tuple:
    return (str(row["run_id"]), int(row["batch"]), int(row["seq"]), int(row["threads"]))


def paired_rounds(rounds: Sequence[Mapping], model: str, reference: str) -> dict[tuple, tuple[list, list]]:
    """Per cell (run_id, batch, seq, threads): the reference's and the model's latencies, round by
    round, for the rounds both were timed in. Rows read back from CSV (strings) work too."""
    by_round: dict[tuple, dict[str, float]] = {}
    for row in rounds:
        if row["model"] in (model, reference):
            key = (*_round_key(row), int(row["round"]))
            by_round.setdefault(key, {})[row["model"]] = float(row["median_ms"])
    cells: dict[tuple, tuple[list, list]] = {}
    for key in sorted(by_round):
        pair = by_round[key]
        if model in pair and reference in pair:
            ref, mod = cells.setdefault(key[:-1], ([], []))
            ref.append(pair[reference])
            mod.append(pair[model])
    return cells


def speedups(
    rounds: Sequence[Mapping],
    reference: str,
    models: Sequence[str] | None = None,
    level: float = CI_LEVEL,
    seed: int = 0,
) -> list[dict]:
    """Speed-up of each model over `reference` at every cell both were timed in, with its interval.

    rounds: `Timings.rounds` (or the same rows read back from CSV). Rounds are paired only when
    they share run_id, batch, seq, threads and round, so every ratio comes from one run.
    models: which models (default: every model timed, the reference included, whose speed-up is 1).
    Each row: model, reference, the cell, both median latencies (ms, over rounds) and `ratio_ci`'s
    keys.
    """
    present = list(dict.fromkeys(r["model"] for r in rounds))
    if reference not in present:
        raise ValueError(f"reference {reference!r} is not among the measured models {present}")
    wanted = present if models is None else list(models)
    unknown = [m for m in wanted if m not in present]
    if unknown:
        raise ValueError(f"models {unknown} are not among the measured models {present}")
    out = []
    for name in wanted:
        cells = paired_rounds(rounds, name, reference)
        if not cells:
            raise ValueError(
                f"models: {name!r} was never measured in the same run and cell as reference {reference!r}"
            )
        for (run_id, batch, seq, threads), (ref_ms, model_ms) in cells.items():
            out.append(
                {
                    "model": name,
                    "reference": reference,
                    "run_id": run_id,
                    "batch": batch,
                    "seq": seq,
                    "threads": threads,
                    "model_median_ms": float(np.median(model_ms)),
                    "reference_median_ms": float(np.median(ref_ms)),
                    **ratio_ci(ref_ms, model_ms, level=level, seed=seed),
                }
            )
    return out


def claim_status(row: Mapping, claimed: float, decisive: float = DECISIVE_CI_RATIO) -> str:
    """Where a claimed speed-up sits against a measured one (`speedups` row): "short" when the
    interval lies below it, "exceeded" when above it, "holds" when inside it, and "undecided" when
    inside an interval so wide (ci_high / ci_low > `decisive`) that it would hold almost any claim."""
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if high < claimed:
        return "short"
    if low > claimed:
        return "exceeded"
    return "holds" if high / low <= decisive else "undecided"


def headline_speedup(speedup_rows: Sequence[dict], model: str, reference: str) -> dict | None:
    """The `speedups` row of `model` over `reference` at the smallest batch (and shortest sequence)
    measured: the single-request latency ratio that "N× faster" usually means. None when not measured."""
    cells = [r for r in speedup_rows if r["model"] == model and r["reference"] == reference]
    if not cells:
        return None
    return min(cells, key=lambda r: (int(r["batch"]), int(r["seq"])))


# --- the hardware reference -------------------------------------------------------------------


def gemm_peak_gflops(
    threads: int, sizes: Sequence[int] = (256, 512, 1024), repeats: int = 10, warmup: int = 2, seed: int = 0
) -> dict:
    """Achieved float32 GFLOP/s of an n×n by n×n matrix product (2n³ FLOPs), best over `sizes`.

    The median rate at each size is reported; the best size's rate is the machine's practical peak
    for the dense work that dominates a transformer.
    """
    _check_positive("threads", [threads])
    sizes = _check_positive("sizes", sizes)
    _check_positive("repeats", [repeats])
    generator = torch.Generator().manual_seed(seed)
    by_size = {}
    for n in sizes:
        a = torch.randn(n, n, generator=generator, dtype=torch.float32)
        b = torch.randn(n, n, generator=generator, dtype=torch.float32)
        timing = time_call(lambda a=a, b=b: a @ b, warmup, repeats, threads)
        by_size[n] = 2 * n**3 / (timing.median_ms / 1e3) / 1e9
    best = max(by_size, key=by_size.get)
    return {
        "gflops_per_s": by_size[best],
        "size": best,
        "by_size": {str(n): rate for n, rate in by_size.items()},
        "threads": threads,
        "repeats": repeats,
        "dtype": "float32",
    }


def peak_fractions(rows: Sequence[dict], peak: dict | float) -> list[dict]:
    """The rows with `peak_fraction`: achieved GFLOP/s over the GEMM peak (`gemm_peak_gflops`)."""
    rate = float(peak["gflops_per_s"] if isinstance(peak, dict) else peak)
    if not rate > 0:
        raise ValueError(f"peak must be a positive GFLOP/s, got {rate}")
    return [{**r, "peak_fraction": float(r["gflops_per_s"]) / rate} for r in rows]


# --- ONNX Runtime -----------------------------------------------------------------------------


class _Outputs(nn.Module):
    """The model as a function of (input_ids, attention_mask) returning plain tensors.

    Encoders give last_hidden_state (and pooler_output when they have a pooler); heads give logits.
    """

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return tuple(out[n] for n in self.names)


def _output_names(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[str, ...]:
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask)
    if getattr(out, "last_hidden_state", None) is not None:
        return ("last_hidden_state",) + (("pooler_output",) if out.get("pooler_output") is not None else ())
    if getattr(out, "logits", None) is not None:
        return ("logits",)
    raise ValueError("model returns neither last_hidden_state nor logits: not a BERT-like model")


def _padded_inputs(
    embedding: Embedding, batch: int, seq: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ids and a mask in which every sequence but the first is padded to a random length."""
    ids = random_inputs(embedding, batch, seq, seed)  # (B, L)
    generator = torch.Generator().manual_seed(seed + 1)
    lengths = torch.randint(max(1, seq // 2), seq + 1, (batch,), generator=generator)
    lengths[0] = seq
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()  # (B, L)
    return ids, mask


def export_onnx(
    model: nn.Module, path: str | Path, seq_len: int = 16, batch: int = 2, opset: int = 17
) -> Path:
    """Export a BERT-like model to ONNX with dynamic batch and sequence axes, atomically.

    Traced at (batch, seq_len) with a partly padded mask, so the masking path is what gets traced;
    any batch and sequence length (up to the model's max positions) run afterwards. The file's
    metadata records ξ, embedding sizes, head and parameter count for `benchmark_models`.
    """
    import onnx

    _check_positive("batch", [batch])
    _check_positive("seq_len", [seq_len])
    if opset < 14:
        raise ValueError(f"opset must be at least 14, got {opset}")
    info = _describe_torch("model", model)
    if seq_len > info["embedding"].max_positions:
        raise ValueError(
            f"seq_len {seq_len} exceeds the model's max positions {info['embedding'].max_positions}"
        )
    was_training = model.training
    ids, mask = _padded_inputs(info["embedding"], batch, seq_len, seed=0)
    try:
        model.eval()
        names = _output_names(model, ids, mask)
        wrapper = _Outputs(model, names).eval()
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
        axes |= {n: {0: "batch", 1: "sequence"} if n != "pooler_output" else {0: "batch"} for n in names}
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # The tracer warns about Python-level branches in transformers' mask code; they do not
            # depend on the batch or sequence length (checked by the round-trip test).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message="The feature will be removed.*")
            warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["input_ids", "attention_mask"],
                output_names=list(names),
                dynamic_axes=axes,
                do_constant_folding=True,
            )
            proto = onnx.load(str(tmp))
            metadata = {
                "arch": info["arch"].name,
                "vocab_size": info["embedding"].vocab_size,
                "max_positions": info["embedding"].max_positions,
                "type_vocab_size": info["embedding"].type_vocab_size,
                "head": info["head"],
                "params": info["params"],
                "source_class": type(model).__name__,
            }
            onnx.helper.set_model_props(proto, {_META + k: str(v) for k, v in metadata.items()})
            onnx.save(proto, str(tmp))
    finally:
        model.train(was_training)
    return Path(path)


def quantize_int8(onnx_path: str | Path, out_path: str | Path, per_channel: bool = False) -> Path:
    """Dynamic int8 quantisation (onnxruntime `quantize_dynamic`, QInt8 weights), written atomically.

    Weights of MatMul (and embedding Gather) nodes become int8; activations are quantised at run
    time. The ose metadata is kept and `ose.weights` is set to "int8".
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**props, _META + "weights": "int8"})
    with atomic_path(out_path) as tmp:
        quantize_dynamic(proto, str(tmp), weight_type=QuantType.QInt8, per_channel=per_channel)
    return Path(out_path)


def ort_session(path: str | Path, threads: int):
    """An onnxruntime CPU session with `threads` intra-op threads, sequential execution (one
    inter-op thread) and every graph optimisation on."""
    import onnxruntime as ort

    _check_positive("threads", [threads])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(norms, 1e-12)


def check_equivalence(model: nn.Module, session, batch: int = 2, seq: int = 16, seed: int = 0) -> dict:
    """How closely the ONNX session reproduces the PyTorch model on seeded, partly padded inputs.

    Compared over the real (unpadded) tokens of the first output (last_hidden_state, or logits):
    max and mean absolute difference and the smallest per-token cosine similarity; also the
    smallest cosine of the first token's vector and, if exported, of the pooler output. A float32
    export should agree to ~1e-5; an int8 one is judged by the cosines.
    """
    _check_positive("batch", [batch])
    _check_positive("seq", [seq])
    info = _describe_torch("model", model)
    if seq > info["embedding"].max_positions:
        raise ValueError(f"seq {seq} exceeds the model's max positions {info['embedding'].max_positions}")
    ids, mask = _padded_inputs(info["embedding"], batch, seq, seed)
    names = [o.name for o in session.get_outputs()]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask)
        expected = [out[n].numpy() for n in names]
    finally:
        model.train(was_training)
    got = session.run(names, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    real = mask.numpy().astype(bool)  # (B, L)
    first, first_ref = got[0][real], expected[0][real]  # (tokens, H)
    diff = np.abs(first - first_ref)
    result = {
        "output": names[0],
        "batch": batch,
        "seq": seq,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "cosine_min_token": float(_cosine(first, first_ref).min()),
        "cosine_first_token": float(_cosine(got[0][:, 0], expected[0][:, 0]).min()),
    }
    if "pooler_output" in names:
        k = names.index("pooler_output")
        result["cosine_pooled"] = float(_cosine(got[k], expected[k]).min())
        result["max_abs_diff_pooled"] = float(np.abs(got[k] - expected[k]).max())
    return result


# --- what the numbers ran on ------------------------------------------------------------------


def environment_metadata(threads: int) -> dict:
    """`ose.pipeline.machine.machine_info()` plus the library versions and thread settings of a benchmark."""
    import onnx
    import onnxruntime as ort
    import transformers

    return {
        **machine_info(),
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "transformers": transformers.__version__,
        "benchmark_threads": threads,
        "torch_intra_op_threads": threads,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "ort_intra_op_threads": threads,
        "ort_inter_op_threads": 1,
        "ort_execution_mode": "sequential",
        "ort_graph_optimization": "all",
        "ort_providers": ort.get_available_providers(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "mkl_num_threads": os.environ.get("MKL_NUM_THREADS"),
        "load_average_1_5_15": list(os.getloadavg()),
        "dtype": "float32",
    }
