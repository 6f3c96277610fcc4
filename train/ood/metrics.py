"""Detection metrics with OOD as the positive class and *higher score = more OOD*.

AUROC is the Mann-Whitney probability that a random OOD image scores above a random
in-distribution one (ties count one half); FPR at 95% TPR follows the OOD literature's
convention (Liang et al., 2018): accept 95% of in-distribution images, report the share of OOD
images also accepted.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values``; tied values share their average rank."""
    ordered, order = values.sort(stable=True)
    _, group, counts = ordered.unique_consecutive(return_inverse=True, return_counts=True)
    last = counts.cumsum(0)  # 1-based rank of each tie group's last member
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = ((2 * last - counts + 1).double() / 2)[group]
    return ranks


def auroc(in_scores: Tensor, out_scores: Tensor) -> float:
    """P(out > in) + P(out == in) / 2 over all (in, out) pairs; 1.0 = perfect separation."""
    n_in, n_out = len(in_scores), len(out_scores)
    if n_in == 0 or n_out == 0:
        raise ValueError("AUROC needs at least one in-distribution and one OOD score")
    both = torch.cat([in_scores.double().flatten(), out_scores.double().flatten()])
    rank_sum = _ranks(both)[n_in:].sum().item()
    return (rank_sum - n_out * (n_out + 1) / 2) / (n_in * n_out)


def fpr_at_tpr(in_scores: Tensor, out_scores: Tensor, tpr: float = 0.95) -> float:
    """Share of OOD images accepted when the threshold accepts ``tpr`` of in-distribution ones.

    The threshold is the smallest in-distribution score t with mean(in <= t) >= tpr; an OOD
    image is accepted when its score <= t.
    """
    if len(in_scores) == 0 or len(out_scores) == 0:
        raise ValueError("FPR at TPR needs in-distribution and OOD scores")
    ordered = in_scores.double().flatten().sort().values
    t = ordered[max(math.ceil(tpr * len(ordered) - 1e-9) - 1, 0)]
    return float((out_scores.double() <= t).double().mean())


def flagged(scores: Tensor, threshold: float) -> float:
    """Share of ``scores`` above ``threshold``: called unknown."""
    return float((scores.double() > threshold).double().mean())


def accuracy_among_accepted(
    scores: Tensor, threshold: float, predicted: Tensor, labels: Tensor
) -> float | None:
    """Accuracy on the images the threshold keeps; None when it keeps none."""
    kept = scores.double() <= threshold
    if not bool(kept.any()):
        return None
    return float((predicted[kept] == labels[kept]).double().mean())
