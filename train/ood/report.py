"""Write the OOD comparison: ood.json (everything), ood.md (one table), ood.png (histograms)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from train.atomic import atomic_open, atomic_path
from train.ood.evaluate import Scores

log = logging.getLogger(__name__)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def markdown_table(report: dict[str, Any]) -> str:
    """One row per method: per OOD group AUROC / FPR95 / flagged, per in-set FR / acc accepted."""
    results = report["methods"]
    first = next(iter(results.values()))
    groups, insets = list(first["out"]), list(first["in"])
    head = ["method", "threshold"]
    for g in groups:
        head += [f"{g} AUROC", f"{g} FPR95", f"{g} flagged"]
    for s in insets:
        head += [f"{s} false-reject", f"{s} acc. accepted"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, r in results.items():
        name = f"**{m}**" if m == report.get("checkpoint_method") else m
        row = [name, f"{r['threshold']:.4g}"]
        for g in groups:
            o = r["out"][g]
            row += [f"{o['auroc']:.4f}", _pct(o["fpr95"]), _pct(o["flagged"])]
        for s in insets:
            i = r["in"][s]
            row += [_pct(i["false_reject"]), _pct(i["accuracy_accepted"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], scores: Scores, out_dir: str | Path) -> list[Path]:
    """ood.json, ood.md and ood.png under ``out_dir``, each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ood.json", out / "ood.md", out / "ood.png"]
    with atomic_open(paths[0]) as fh:
        json.dump(report, fh, indent=2)
    intro = (
        f"# OOD scores of {report['checkpoint']}\n\n"
        f"AUROC and FPR at 95% TPR against the pooled in-distribution sets "
        f"{', '.join(report['reference_in'])}; thresholds calibrated on the valid split for "
        f"a false-reject of at most {_pct(report['target_false_reject'])}. Bold: the method "
        "stored in the checkpoint.\n\n"
    )
    with atomic_open(paths[1]) as fh:
        fh.write(intro + markdown_table(report))
    plot_histograms(report, scores, paths[2])
    return paths


def plot_histograms(report: dict[str, Any], scores: Scores, path: Path) -> None:
    """One panel per method: in-distribution vs each OOD group, with the threshold line."""
    # A bare Figure renders with Agg without touching pyplot's global backend or figure list.
    from matplotlib.figure import Figure

    names = list(report["methods"])
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, m in zip(axes.flat, names, strict=False):
        groups = {"in": torch.cat([scores.inside[m][n] for n in report["reference_in"]])}
        groups.update({g: torch.cat(list(k.values())) for g, k in scores.outside[m].items()})
        every = torch.cat(list(groups.values())).double()
        lo, hi = torch.quantile(every, 0.005).item(), torch.quantile(every, 0.995).item()
        if hi <= lo:
            hi = lo + 1.0
        for label, s in groups.items():
            ax.hist(
                s.double().clamp(lo, hi).numpy(),
                bins=40,
                range=(lo, hi),
                alpha=0.5,
                density=True,
                label=label,
            )
        ax.axvline(report["methods"][m]["threshold"], color="k", ls="--", lw=1, label="threshold")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("OOD score (higher = less like training data; clipped to 0.5–99.5%)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
