"""The demo's matplotlib figures, drawn on ``Figure`` objects (no pyplot state, thread-safe).

Latency bars are drawn by Gradio's own bar plot in the browser; what needs log axes or two
panels is drawn here.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from demo.folding import LayerWeights
from demo.inference import Throughput

_PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#ca8a04", "#db2777")


def throughput_figure(points: list[Throughput]) -> Figure:
    """Images per second against batch size, one line per variant, log-log."""
    by_variant: dict[str, list[Throughput]] = defaultdict(list)
    for point in points:
        by_variant[point.variant.name].append(point)
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, series) in enumerate(by_variant.items()):
        series.sort(key=lambda p: p.batch_size)
        style = "-" if "unfolded" in name else "--"
        ax.plot(
            [p.batch_size for p in series],
            [p.images_per_s for p in series],
            style,
            marker="o",
            markersize=4,
            color=_PALETTE[i % len(_PALETTE)],
            label=name,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted({p.batch_size for p in points})
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s (median latency)")
    ax.set_title("Throughput by batch size (dashed: folded)")
    ax.grid(True, which="major", alpha=0.3)
    if by_variant:
        ax.legend(fontsize=8, loc="best")
    return fig


def weights_figure(layer: LayerWeights) -> Figure:
    """Left: every weight after vs before, coloured by output channel. Right: biases."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    scatter, bars = fig.subplots(1, 2, width_ratios=(1.15, 1))
    channels = layer.weight_before.shape[0]
    before = layer.weight_before.reshape(channels, -1).numpy()
    after = layer.weight_after.reshape(channels, -1).numpy()
    cmap = _channel_colours(channels)
    for c in range(channels):
        scatter.scatter(before[c], after[c], s=6, color=cmap[c], alpha=0.7, linewidths=0)
    lim = float(max(np.abs(before).max(), np.abs(after).max(), 1e-12)) * 1.05
    scatter.plot([-lim, lim], [-lim, lim], color="0.5", linewidth=0.8, linestyle=":")
    scatter.set_xlim(-lim, lim)
    scatter.set_ylim(-lim, lim)
    scatter.set_xlabel("weight before folding")
    scatter.set_ylabel("weight after folding")
    source = f" ← {layer.folded_from}" if layer.folded_from else " (nothing folded in)"
    scatter.set_title(f"{layer.name}{source}: each output channel scaled by its own s")
    scatter.grid(True, alpha=0.3)

    x = np.arange(channels)
    width = 0.4
    bars.bar(x - width / 2, layer.bias_before.numpy(), width, label="before", color="#94a3b8")
    bars.bar(x + width / 2, layer.bias_after.numpy(), width, label="after", color="#2563eb")
    bars.axhline(0, color="0.3", linewidth=0.8)
    bars.set_xlabel("output channel")
    bars.set_ylabel("bias")
    bars.set_title("bias: b' = (b − μ)·s + β")
    if channels <= 24:
        bars.set_xticks(x)
    bars.legend(fontsize=8)
    bars.grid(True, axis="y", alpha=0.3)
    return fig


def _channel_colours(n: int) -> list[tuple[float, ...]]:
    from matplotlib import colormaps

    cmap = colormaps["turbo"]
    return [cmap(0.08 + 0.84 * i / max(n - 1, 1)) for i in range(n)]


def init_study_image(results: dict[str, dict[str, Any]]) -> Image.Image:
    """The course's init-study plot (log-scale std per layer, nan layers marked), as an image.

    Drawn by :func:`train.init_study.plot_init_study` so the demo shows the very figure that
    ``python -m train.init_study`` writes.
    """
    from train.init_study import plot_init_study

    with tempfile.TemporaryDirectory(prefix="rmb-demo-init-") as tmp:
        path = Path(tmp) / "init_study.png"
        plot_init_study(results, path)
        with Image.open(path) as image:
            return image.convert("RGB")
