"""Measure OOD methods side by side: every method scores the same images from one forward pass.

In-distribution sets are labelled (:class:`~train.dataset.ImageSet`: the valid split the
thresholds come from, the held-out test split, the course photos); out-of-distribution sets
are groups ("far", "near", a folder) of kinds of unlabelled uint8 images. Each method gets
AUROC and FPR at 95% TPR against the pooled in-distribution sets other than the calibration
split, the share flagged at its threshold, and per in-distribution set the false-reject rate
and the accuracy among the accepted images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from train.dataset import ImageSet
from train.ood import metrics
from train.ood.fit import collect_taps
from train.ood.scorer import OODScorer
from train.preprocess import MEAN, STD

CALIBRATION_SET = "valid"


@dataclass
class EvalSets:
    inside: dict[str, ImageSet]  # name -> labelled in-distribution images
    outside: dict[str, dict[str, Tensor]]  # group -> kind -> uint8 (N, 3, H, W)


@dataclass
class Scores:
    """Every method's scores on every set, and the model's predictions on the inside sets."""

    inside: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # method -> set -> (N,)
    outside: dict[str, dict[str, dict[str, Tensor]]] = field(default_factory=dict)
    predicted: dict[str, Tensor] = field(default_factory=dict)  # set -> (N,) class index


@torch.no_grad()
def score_all(
    model: nn.Module,
    scorers: dict[str, OODScorer],
    sets: EvalSets,
    *,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
) -> Scores:
    """One forward pass per set; every scorer reads the same taps."""
    out = Scores({m: {} for m in scorers}, {m: {} for m in scorers})
    for name, images in sets.inside.items():
        taps = collect_taps(model, images.images, mean=mean, std=std, desc=name)
        out.predicted[name] = taps.logits.argmax(dim=1)
        for m, scorer in scorers.items():
            out.inside[m][name] = scorer(taps)
    for group, kinds in sets.outside.items():
        for kind, images in kinds.items():
            taps = collect_taps(model, images, mean=mean, std=std, desc=f"{group}/{kind}")
            for m, scorer in scorers.items():
                out.outside[m].setdefault(group, {})[kind] = scorer(taps)
    return out


def reference_sets(sets: EvalSets) -> list[str]:
    """The in-distribution sets pooled for AUROC: all but the calibration split, if any remain."""
    names = [n for n in sets.inside if n != CALIBRATION_SET]
    return names or list(sets.inside)


def summarise(
    scorers: dict[str, OODScorer], sets: EvalSets, scores: Scores
) -> dict[str, dict[str, Any]]:
    """Per method: threshold, per in-set rates, per OOD group (and kind) AUROC / FPR95 / flagged."""
    reference = reference_sets(sets)
    results: dict[str, dict[str, Any]] = {}
    for m, scorer in scorers.items():
        t = scorer.threshold
        inside = {}
        for name, images in sets.inside.items():
            s = scores.inside[m][name]
            pred = scores.predicted[name]
            inside[name] = {
                "images": len(images),
                "false_reject": metrics.flagged(s, t),
                "accuracy": float((pred == images.labels).double().mean()),
                "accuracy_accepted": metrics.accuracy_among_accepted(s, t, pred, images.labels),
            }
        pooled_in = torch.cat([scores.inside[m][n] for n in reference])
        outside = {}
        for group, kinds in scores.outside[m].items():
            pooled_out = torch.cat(list(kinds.values()))
            outside[group] = {
                **_detection(pooled_in, pooled_out, t),
                "kinds": {k: _detection(pooled_in, s, t) for k, s in kinds.items()},
            }
        results[m] = {"threshold": t, "in": inside, "out": outside}
    return results


def _detection(pooled_in: Tensor, out: Tensor, threshold: float) -> dict[str, float | int]:
    return {
        "images": len(out),
        "auroc": metrics.auroc(pooled_in, out),
        "fpr95": metrics.fpr_at_tpr(pooled_in, out),
        "flagged": metrics.flagged(out, threshold),
    }
