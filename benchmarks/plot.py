"""Latency against batch size, log–log, one line per variant (no pyplot global state)."""

from __future__ import annotations

from matplotlib import colormaps
from matplotlib.figure import Figure

from benchmarks.sweep import SweepResult
from benchmarks.variants import BASELINE


def latency_figure(result: SweepResult) -> Figure:
    """Median latency (ms) per variant; folded solid, unfolded dashed, the baseline black."""
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax = fig.add_subplot()
    sizes = result.config.batch_sizes
    palette = colormaps["tab20"]  # 20 distinct colours: the variants outnumber the default 10
    for i, v in enumerate(result.variants):
        points = [
            (b, 1e3 * c.stats.median_s)
            for b in sizes
            if (c := result.cells[(v.name, b)]).stats is not None
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        style = {"linestyle": "-" if v.folded else "--", "marker": "o", "markersize": 3}
        if v.name == BASELINE:
            style.update(color="black", linewidth=2.5)
        else:
            style.update(color=palette(i % palette.N), linewidth=1.2)
        ax.plot(xs, ys, label=v.name, **style)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(sizes), [str(b) for b in sizes])
    ax.set_xlabel("batch size (images)")
    ax.set_ylabel("median latency per call (ms)")
    load, cpus = result.meta.get("load_average_before") or [], result.meta.get("logical_cpus")
    where = f" (load average {load[0]:.1f} on {cpus} CPUs)" if load else ""
    ax.set_title(f"BN-LeNet inference latency{where}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
