"""benchmarks.floor: the compute floor and a latency's ratio to it (arithmetic, no timing)."""

from __future__ import annotations

import pytest

from benchmarks.floor import floor_ratio, floor_seconds
from benchmarks.peak import Peak

LENET_FLOPS = 1_313_332  # tests/test_bench_flops.py: the folded 2-class network


def test_floor_is_flops_over_rate():
    # 1.313 MFLOP at 114 GFLOP/s: the 11.5 µs per image.
    assert floor_seconds(LENET_FLOPS, 1, 114e9) == pytest.approx(11.52e-6, rel=1e-3)
    assert floor_seconds(LENET_FLOPS, 256, 114e9) == pytest.approx(256 * 11.52e-6, rel=1e-3)


def test_ratio_uses_the_rate_of_the_thread_count_asked_for():
    peak = Peak(2048, 5, {1: 100e9, 2: 200e9})
    latency = 2 * floor_seconds(LENET_FLOPS, 8, 100e9)
    assert floor_ratio(latency, LENET_FLOPS, 8, peak, 1) == pytest.approx(2.0)
    assert floor_ratio(latency, LENET_FLOPS, 8, peak, 2) == pytest.approx(4.0)
    assert floor_ratio(latency, LENET_FLOPS, 8, peak, 4) is None


@pytest.mark.parametrize(("flops", "batch", "rate"), [(0, 1, 1e9), (1e6, 0, 1e9), (1e6, 1, 0)])
def test_impossible_floors_are_refused(flops, batch, rate):
    with pytest.raises(ValueError, match="positive"):
        floor_seconds(flops, batch, rate)
