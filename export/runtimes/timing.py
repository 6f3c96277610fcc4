"""Latency measurement in interleaved rounds, and its statistics (the demo and the benchmarks).

Warm-up calls absorb one-off costs (lazy allocations, kernel selection, caches) that a
deployed model pays once, not per request. Percentiles, not the mean, because a single
scheduler hiccup on a busy machine would otherwise dominate a small sample.

Why interleaved: on a shared two-core machine the load changes by the second. Timing variant A
for a minute and then B would credit the difference in load to the variants. Here every round
runs a short block of each variant in turn (A B C, then C A B, ...), so drift hits every variant
alike, and a ratio between two variants can be taken round by round, which gives its spread.

Each call is timed on its own with ``time.perf_counter``; a block is as many calls as fill
about ``block_s`` (measured in the warm-up), at least one, after ``settle`` untimed calls.

Switching runtimes has a cost a deployment running one runtime never pays: PyTorch's OpenMP
workers and onnxruntime's thread pool both spin-wait after a call, and on two busy cores the
first PyTorch call after a block of ORT calls was measured at 20–100 ms instead of 0.3 ms
(later calls unaffected; gone with ``OMP_WAIT_POLICY=passive`` or ORT's ``allow_spinning=0``).
The same holds between two ORT sessions: after three calls of a default (two-thread) session,
a one-thread session's next calls took 16, 12, 15, 12 ms instead of 7.3 ms at batch 256, because
the idle pool kept spinning for some 30–50 ms; with a 30 ms pause before them, 8.3, 7.6, 7.5.
So a block of a variant that leaves threads spinning is followed by a pause (``pause_s``,
default 50 ms; the caller says which variants: :func:`benchmarks.sweep.leaves_threads_spinning`),
variants of one group (one runtime) run back to back within a round, in a shuffled order, the
groups' order is shuffled too (no variant always follows the same one), and the settle calls
absorb what remains.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from export.runtimes.runner import Bound

DEFAULT_BLOCK_S = 0.005
MAX_BLOCK_CALLS = 100
DEFAULT_SETTLE_CALLS = 1
DEFAULT_PAUSE_S = 0.05


@dataclass
class Samples:
    """Seconds per call of one variant at one batch size, grouped by round."""

    rounds: list[list[float]]

    @property
    def calls(self) -> np.ndarray:
        return np.array([t for block in self.rounds for t in block], dtype=np.float64)

    @property
    def round_medians(self) -> np.ndarray:
        return np.array([np.median(block) for block in self.rounds], dtype=np.float64)


@dataclass(frozen=True)
class Stats:
    """Latency of one variant at one batch size."""

    median_s: float
    p90_s: float
    calls: int
    rounds: int

    def throughput(self, batch: int) -> float:
        """Images per second at the median latency."""
        return batch / self.median_s


def summarise(samples: Samples) -> Stats:
    calls = samples.calls
    if calls.size == 0:
        raise ValueError("no samples to summarise: run at least one round")
    return Stats(
        median_s=float(np.median(calls)),
        p90_s=float(np.percentile(calls, 90)),
        calls=int(calls.size),
        rounds=len(samples.rounds),
    )


@dataclass(frozen=True)
class Ratio:
    """How many times faster ``other`` is than ``base`` (>1: faster), with its round spread."""

    value: float  # median latency of base / median latency of other
    p10: float  # 10th and 90th percentile of the same ratio taken round by round
    p90: float

    @property
    def slower_beyond_noise(self) -> bool:
        """In at least 90% of the rounds ``other`` was slower than ``base``."""
        return self.p90 < 1.0


def ratio(base: Samples, other: Samples) -> Ratio:
    """``base`` over ``other`` latency; both must come from the same interleaved rounds."""
    if len(base.rounds) != len(other.rounds):
        raise ValueError(
            f"ratio needs samples from the same rounds: {len(base.rounds)} vs {len(other.rounds)}"
        )
    per_round = base.round_medians / other.round_medians
    return Ratio(
        value=float(np.median(base.calls) / np.median(other.calls)),
        p10=float(np.percentile(per_round, 10)),
        p90=float(np.percentile(per_round, 90)),
    )


def _block(runner: Bound, calls: int, settle: int = 0) -> list[float]:
    times = []
    step = runner.step
    with runner.setting():
        for _ in range(settle):
            step()
        for _ in range(calls):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return times


def measure_interleaved(
    runners: Mapping[str, Bound],
    *,
    rounds: int,
    warmup: int,
    block_s: float = DEFAULT_BLOCK_S,
    max_block_calls: int = MAX_BLOCK_CALLS,
    settle: int = DEFAULT_SETTLE_CALLS,
    groups: Mapping[str, str] | None = None,
    seed: int = 0,
    pause_after: Collection[str] = (),
    pause_s: float = DEFAULT_PAUSE_S,
) -> dict[str, Samples]:
    """Warm every runner up, then time ``rounds`` interleaved rounds of blocks of calls.

    ``groups`` maps a runner's name to its group (its runtime, say; default: one group each);
    the round order is drawn from ``seed``. Blocks of the runners in ``pause_after`` (those
    that leave threads spinning) are followed by ``pause_s`` of sleep.
    """
    if rounds < 1 or warmup < 1 or settle < 0 or pause_s < 0:
        raise ValueError(
            f"rounds and warmup must be >= 1, settle and pause_s >= 0, got rounds={rounds}, "
            f"warmup={warmup}, settle={settle}, pause_s={pause_s}"
        )
    names = list(runners)
    block_calls = {}
    pause = set(pause_after)

    def run_block(name: str, calls: int) -> list[float]:
        times = _block(runners[name], calls, settle)
        if name in pause:
            time.sleep(pause_s)
        return times

    for name in names:
        warm = run_block(name, warmup)
        typical = float(np.median(warm))
        block_calls[name] = max(1, min(max_block_calls, math.floor(block_s / max(typical, 1e-9))))
    samples = {name: Samples([]) for name in names}
    rng = random.Random(seed)
    for _ in range(rounds):
        for name in round_order(names, groups or {}, rng):
            samples[name].rounds.append(run_block(name, block_calls[name]))
    return samples


def round_order(names: list[str], groups: Mapping[str, str], rng: random.Random) -> list[str]:
    """Every name once: groups kept together, groups and members each in a shuffled order."""
    members: dict[str, list[str]] = {}
    for name in names:
        members.setdefault(groups.get(name, name), []).append(name)
    keys = list(members)
    rng.shuffle(keys)
    order = []
    for key in keys:
        group = list(members[key])
        rng.shuffle(group)
        order += group
    return order
