"""Latency of calls, measured as the demo reports it: warm-up first, then N timed calls each.

Warm-up calls absorb one-off costs (lazy allocations, kernel selection, caches) that a
deployed model pays once, not per request. Percentiles, not the mean, because a single
scheduler hiccup on a busy machine would otherwise dominate a small sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def time_calls(
    fns: Sequence[Callable[[np.ndarray], object]], batch: np.ndarray, *, runs: int, warmup: int
) -> list[np.ndarray]:
    """Seconds taken by each of ``runs`` calls ``fn(batch)`` per ``fn``, after ``warmup`` each.

    The calls go round-robin (fn 1, fn 2, ..., fn 1, fn 2, ...) so that a burst of load from
    another process slows every ``fn`` a little instead of one of them a lot.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    for fn in fns:
        for _ in range(warmup):
            fn(batch)
    samples = np.empty((len(fns), runs))
    for i in range(runs):
        for j, fn in enumerate(fns):
            start = time.perf_counter()
            fn(batch)
            samples[j, i] = time.perf_counter() - start
    return list(samples)


def percentiles_ms(samples: np.ndarray, qs: tuple[float, ...] = (50.0, 90.0)) -> tuple[float, ...]:
    """The ``qs`` percentiles of ``samples`` (seconds), in milliseconds (linear interpolation)."""
    if len(samples) == 0:
        raise ValueError("no samples: time at least one call")
    return tuple(float(v) * 1e3 for v in np.percentile(samples, qs))
