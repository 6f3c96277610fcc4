"""Where one inference spends its time: per ORT node, per PyTorch module.

The evidence behind a missed target: which kernel dominates, how much is fixed per-call cost.
ORT's own profiler (``SessionOptions.enable_profiling``) gives every node's kernel time and the
whole ``model_run``; PyTorch modules are timed with forward pre/post hooks (no kineto, which
prints to the terminal). Both add a little per node or module (~1–3 µs), so the shares are
what matters; the benchmark's own medians are the unprofiled latencies. Every figure is a median
over the profiled inferences: on a shared machine a mean is one preempted call away from
meaningless.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.runtimes.variant import OrtOptions


@dataclass
class OpTime:
    name: str  # node or module name
    op: str  # op type or module class
    us: float  # median microseconds per inference (all calls of that node/module in one)


@dataclass
class Profile:
    """Per-op times of one runtime configuration at one batch size."""

    label: str
    batch: int
    total_us: float  # median wall time of one inference while profiled
    ops: list[OpTime] = field(default_factory=list)

    @property
    def ops_us(self) -> float:
        return sum(o.us for o in self.ops)

    def to_dict(self) -> dict:
        return {**asdict(self), "ops_us": self.ops_us}


def _runs_for(batch: int, budget_s: float, per_image_s: float = 50e-6) -> int:
    return max(5, min(1000, int(budget_s / (per_image_s * batch))))


def ort_profile(
    path: str | Path, options: OrtOptions, batch: np.ndarray, label: str, budget_s: float = 0.5
) -> Profile:
    """Kernel time per node of a CPU session configured as ``options`` (plain ``session.run``)."""
    from export.runtimes.sessions import ort_session

    runs = _runs_for(batch.shape[0], budget_s)
    with tempfile.TemporaryDirectory(prefix="rmb-ort-profile-") as tmp:
        session = ort_session(path, options, profile_prefix=str(Path(tmp) / "ort"))
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(batch, np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    model_runs = []
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            key = (e["name"].removesuffix("_kernel_time"), e.get("args", {}).get("op_name", "?"))
            per_node[key].append(float(e["dur"]))
        elif e.get("cat") == "Session" and e.get("name") == "model_run":
            model_runs.append(float(e["dur"]))
    ops = [OpTime(name, op, statistics.median(d)) for (name, op), d in per_node.items()]
    return Profile(label, int(batch.shape[0]), statistics.median(model_runs), ops)


def torch_profile(
    model: nn.Module, batch: np.ndarray, label: str, budget_s: float = 0.5
) -> Profile:
    """Wall time per leaf module call of ``model`` under ``torch.no_grad()``, via hooks."""
    runs = _runs_for(batch.shape[0], budget_s, per_image_s=300e-6)
    x = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
    spent: dict[tuple[str, str], float] = defaultdict(float)  # this inference, per module
    per_run: dict[tuple[str, str], list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue

        def pre(_m, _i, name=name) -> None:
            started[name] = time.perf_counter()

        def post(m, _i, _o, name=name) -> None:
            spent[(name, type(m).__name__)] += time.perf_counter() - started[name]

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    totals = []
    try:
        with torch.no_grad():
            model(x)  # warm-up, not counted
            for _ in range(runs):
                spent.clear()
                start = time.perf_counter()
                model(x)
                totals.append(time.perf_counter() - start)
                for key, seconds in spent.items():
                    per_run[key].append(seconds)
    finally:
        for h in handles:
            h.remove()
    ops = [OpTime(name, op, 1e6 * statistics.median(t)) for (name, op), t in per_run.items()]
    return Profile(label, int(batch.shape[0]), 1e6 * statistics.median(totals), ops)


def profile_markdown(profiles: list[Profile]) -> list[str]:
    """One small table per profile: op, µs per inference, share of the profiled total."""
    lines: list[str] = []
    for p in profiles:
        lines += [
            f"**{p.label}, batch {p.batch}**: median {p.total_us:,.1f} µs per inference while "
            f"profiled; the ops' medians add up to {p.ops_us:,.1f} µs.",
            "",
            "| node / module | op | µs | share |",
            "|---|---|---:|---:|",
        ]
        lines += [
            f"| {o.name} | {o.op} | {o.us:,.1f} | {100 * o.us / p.total_us:.0f}% |" for o in p.ops
        ]
        lines.append("")
    return lines
