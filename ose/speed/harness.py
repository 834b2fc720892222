"""Timing whole models on the CPU in interleaved rounds, and what the numbers ran on.

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
"""

from __future__ import annotations

import gc
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ose.arch import Arch, Embedding, from_bert_config
from ose.pipeline.clock import call_times_ms
from ose.pipeline.machine import machine_info
from ose.pipeline.progress import bar as progress_bar
from ose.search.cost_model import random_inputs
from ose.search.objectives import op_count

META_PREFIX = "ose."  # prefix of the metadata keys `export_onnx` writes into an ONNX file

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

# --- what a benchmarked model is --------------------------------------------------------------


def _head_of(model: nn.Module) -> str:
    """The `ose.search.objectives` head of a Hugging Face BERT-like model: "mlm", "pooler" or "none".

    A sequence classifier counts as "pooler": its classifier adds 2·H·labels FLOPs, negligible.
    """
    if hasattr(model, "cls"):
        return "mlm"
    base = getattr(model, "base_model", model)
    return "pooler" if getattr(base, "pooler", None) is not None else "none"


def describe_torch(label: str, model: nn.Module) -> dict:
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
    if f"{META_PREFIX}arch" not in meta:
        raise ValueError(
            f"{label} is an ONNX session without ose metadata: export it with ose.speed.onnx.export_onnx"
        )
    return {
        "backend": "onnxruntime"
        + (f"-{meta[f'{META_PREFIX}weights']}" if f"{META_PREFIX}weights" in meta else ""),
        "arch": Arch.parse(meta[f"{META_PREFIX}arch"]),
        "embedding": Embedding(
            int(meta[f"{META_PREFIX}vocab_size"]),
            int(meta[f"{META_PREFIX}max_positions"]),
            int(meta[f"{META_PREFIX}type_vocab_size"]),
        ),
        "head": meta[f"{META_PREFIX}head"],
        "params": int(meta[f"{META_PREFIX}params"]),
    }


def _is_session(model) -> bool:
    return hasattr(model, "run") and hasattr(model, "get_modelmeta")


def check_positive(name: str, values: Iterable[int]) -> list[int]:
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
                    f"{session_threads}; make it with ose.speed.onnx.ort_session(path, threads={threads})"
                )
            described[name] = _describe_session(f"models[{name!r}]", model)
        elif isinstance(model, nn.Module):
            described[name] = describe_torch(f"models[{name!r}]", model)
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
    batch_sizes = check_positive("batch_sizes", batch_sizes)
    seq_lens = check_positive("seq_lens", seq_lens)
    check_positive("threads", [threads])
    check_positive("repeats", [repeats])
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
