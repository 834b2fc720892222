"""The one wall-clock timer: `time.perf_counter` around each call, in milliseconds.

`ose.search.cost_model.time_call` (latency of one ξ: warm-up, repeats, median and IQR, under a fixed
thread count) and `ose.speed.harness` (blocks of back-to-back forward passes inside interleaved rounds)
both time with `call_times_ms`; what they do with the samples is theirs. No other `ose` import: the
timer must not drag a model library into whatever uses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def call_times_ms(fn: Callable[[], object], repeats: int, warmup: int = 0) -> list[float]:
    """Wall time in milliseconds of each of `repeats` back-to-back calls `fn()`, after `warmup`
    untimed calls (`time.perf_counter` just before and just after each timed call)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples
