"""The machine's fp32 limit, measured: a large sgemm through torch, best of several.

Why measure it in the same run: on a shared two-core machine the attainable peak moves with the
load, and a variant's FLOP rate means something only next to the peak measured beside it. The
peak is taken over thread counts as well (1 and torch's default): on a loaded machine one thread
can beat two, and "the machine's limit" is the best it does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

DEFAULT_SIZE = 2048
DEFAULT_REPEATS = 5


def sgemm_flops(size: int) -> int:
    """FLOPs of one size×size by size×size fp32 matmul: 2·n³ (a multiply and an add per MAC)."""
    return 2 * size**3


def best_sgemm_rate(
    size: int = DEFAULT_SIZE, repeats: int = DEFAULT_REPEATS, device: str = "cpu"
) -> float:
    """The best FLOP/s of ``repeats`` timed fp32 matmuls (at the current torch thread count on
    the CPU; on the current CUDA device with TF32 off)."""
    from export.runtimes.torch_runner import no_tf32

    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be >= 1, got size={size}, repeats={repeats}")
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, generator=generator, device=device)
    b = torch.randn(size, size, generator=generator, device=device)
    out = torch.empty(size, size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    best = float("inf")
    with no_tf32():
        torch.mm(a, b, out=out)  # warm-up: MKL's first call sets up its buffers
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            sync()
            best = min(best, time.perf_counter() - start)
    return sgemm_flops(size) / best


@dataclass
class Peak:
    """sgemm FLOP/s per torch thread count, and the best of them."""

    size: int
    repeats: int
    by_threads: dict[int, float]  # threads → best FLOP/s

    @property
    def flops_per_s(self) -> float:
        return max(self.by_threads.values())

    def merged(self, other: Peak) -> Peak:
        """The best of two measurements (taken before and after the latency runs)."""
        keys = self.by_threads.keys() | other.by_threads.keys()
        best = {k: max(self.by_threads.get(k, 0.0), other.by_threads.get(k, 0.0)) for k in keys}
        return Peak(self.size, self.repeats + other.repeats, dict(sorted(best.items())))

    def to_dict(self) -> dict:
        return {
            "sgemm_size": self.size,
            "repeats": self.repeats,
            "flops_per_s": self.flops_per_s,
            "by_threads": {str(k): v for k, v in self.by_threads.items()},
        }


def measure_peak(size: int = DEFAULT_SIZE, repeats: int = DEFAULT_REPEATS) -> Peak:
    """:func:`best_sgemm_rate` at 1 and 2 threads and torch's current count (restored after).

    One and two threads are the compute floor's rates (:mod:`benchmarks.floor`): what a
    one- or two-thread variant could reach at best.
    """
    from export.runtimes.torch_runner import torch_threads

    rates = {}
    for threads in sorted({1, min(2, os.cpu_count() or 1), torch.get_num_threads()}):
        with torch_threads(threads):
            rates[threads] = best_sgemm_rate(size, repeats)
    return Peak(size, repeats, rates)
