"""The compute floor: the least time a batch could take at the machine's measured sgemm rate.

floor(batch, threads) = batch × FLOPs per image / sgemm rate with ``threads`` threads, both
measured in the same run (:mod:`benchmarks.peak`, :mod:`benchmarks.flops`). A variant's ratio
to the floor is its median latency over that: 1.0 would be a network run as fast as one large
fp32 matrix multiply. The one-thread floor is the yardstick for one-thread variants (and for
batch 1, where a second thread has too little work to share); the two-thread one for the rest.
An int8 variant can go below 1.0: the floor is an fp32 rate.
"""

from __future__ import annotations

from benchmarks.peak import Peak


def floor_seconds(flops_per_image: float, batch: int, rate: float) -> float:
    """Seconds ``batch`` images need at ``rate`` FLOP/s."""
    if flops_per_image <= 0 or batch < 1 or rate <= 0:
        raise ValueError(
            f"floor needs positive FLOPs, batch and rate; got {flops_per_image}, {batch}, {rate}"
        )
    return batch * flops_per_image / rate


def floor_ratio(
    latency_s: float, flops_per_image: float, batch: int, peak: Peak, threads: int
) -> float | None:
    """``latency_s`` over the ``threads``-thread floor; None when that rate was not measured."""
    rate = peak.by_threads.get(threads)
    if rate is None:
        return None
    return latency_s / floor_seconds(flops_per_image, batch, rate)
