"""The hardware reference: this machine's float32 matrix-product rate, and each model's fraction of it.

Work. GFLOPs are analytic (`ose.search.objectives.op_count`: the forward of one sequence, times
the batch), never counted from a profiler; achieved GFLOP/s = GFLOPs / median seconds.
`gemm_peak_gflops` gives the float32 matrix-product rate of this machine as the hardware reference,
and `peak_fractions` reports each model's rate as a fraction of it. For an int8 ONNX model the
same analytic count is used: the rate is then "useful float32-equivalent work per second", not
integer operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ose.search.cost_model import time_call
from ose.speed.harness import check_positive

# --- the hardware reference -------------------------------------------------------------------


def gemm_peak_gflops(
    threads: int, sizes: Sequence[int] = (256, 512, 1024), repeats: int = 10, warmup: int = 2, seed: int = 0
) -> dict:
    """Achieved float32 GFLOP/s of an n×n by n×n matrix product (2n³ FLOPs), best over `sizes`.

    The median rate at each size is reported; the best size's rate is the machine's practical peak
    for the dense work that dominates a transformer.
    """
    check_positive("threads", [threads])
    sizes = check_positive("sizes", sizes)
    check_positive("repeats", [repeats])
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
