"""The threshold: the smallest score that rejects at most a target share of held-out photos."""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor

from train.ood.metrics import flagged

TARGET_FALSE_REJECT = 0.02


def threshold_for(scores: Tensor, target_false_reject: float = TARGET_FALSE_REJECT) -> float:
    """A threshold with ``mean(scores > t) <= target`` on these in-distribution ``scores``.

    It is the (n - k)-th smallest score with k = floor(target * n): exactly the k highest
    scores lie above it (fewer when they tie), so the false-reject on this very set never
    exceeds the target. With fewer than 1 / target images (k = 0) that is their maximum, which
    a new image exceeds with probability 1 / (n + 1), not the target (20 held-out photos: 4.8%);
    then the threshold is the target's quantile of a normal fitted to the scores, if higher.
    """
    if not 0.0 <= target_false_reject < 1.0:
        raise ValueError(f"target false-reject must be in [0, 1), got {target_false_reject}")
    flat = scores.detach().double().flatten()
    if flat.numel() == 0:
        raise ValueError("cannot calibrate an OOD threshold on zero held-out images")
    if not torch.isfinite(flat).all():
        raise ValueError("held-out OOD scores contain NaN or inf: the scorer is broken")
    n = flat.numel()
    k = math.floor(target_false_reject * n + 1e-9)
    empirical = float(flat.sort().values[n - 1 - k])
    if k > 0 or n < 3 or target_false_reject == 0.0:
        return empirical
    z = NormalDist().inv_cdf(1.0 - target_false_reject)
    return max(empirical, float(flat.mean() + z * flat.std()))


false_reject = flagged  # on in-distribution scores, the share above the threshold is the FR
