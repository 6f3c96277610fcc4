"""Training curves as PNG: people would rather look at a curve than read a table of losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train.atomic import atomic_path


def plot_runs(runs: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Plot per-step training loss, per-epoch valid loss and accuracies for each named run.

    ``runs`` maps a label to a checkpoint's ``metrics`` dict (``history`` list and
    ``step_losses``). One figure, three panels, written atomically as PNG.
    """
    # A bare Figure renders with Agg without touching pyplot's global backend or figure list.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.2))
    ax_step, ax_loss, ax_acc = fig.subplots(1, 3)
    for i, (label, metrics) in enumerate(runs.items()):
        color = f"C{i}"
        steps = [x for epoch in metrics.get("step_losses", []) for x in epoch]
        if steps:
            per_epoch = max(1, len(steps) // max(1, len(metrics["history"])))
            ax_step.plot(
                [s / per_epoch for s in range(1, len(steps) + 1)],
                steps,
                color=color,
                lw=0.8,
                label=label,
            )
        epochs = [h["epoch"] for h in metrics["history"]]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            for split, style in (("train", {"ls": "--"}), ("valid", {"marker": "o"})):
                values = [h[f"{split}_{metric}"] for h in metrics["history"]]
                ax.plot(epochs, values, color=color, label=f"{label} {split}", **style)
    ax_step.set(title="training loss per step", xlabel="epoch", ylabel="loss", yscale="log")
    ax_loss.set(title="loss per epoch", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax_acc.set(title="accuracy per epoch", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    for ax in (ax_step, ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
