"""Training negatives for outlier exposure, kept apart from everything the evaluation uses.

Far negatives come from :func:`train.ood.sets.training_negatives` (other seeds, other photos);
near negatives are other-denomination notes from the synthetic generator with their own seed
(``NEAR_SEED``), not the evaluation's default seed.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch
from torch import Tensor

from train.ood.sets import folder_images, training_negatives
from train.preprocess import INPUT_SIZE

log = logging.getLogger(__name__)

NEAR_SEED = 7  # ensure_near_ood's evaluation default is 1000
NEAR_PER_CLASS = 100


def outlier_negatives(cache_dir: str | Path, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """uint8 (N, 3, H, W) non-note and other-denomination images for outlier exposure."""
    from train.synthetic import ensure_near_ood

    near = folder_images(ensure_near_ood(Path(cache_dir), NEAR_PER_CLASS, NEAR_SEED), size)
    far = _far_negatives(size)
    log.info("outlier exposure: %d far and %d near negatives", len(far), len(near))
    return torch.cat([far, near])


@functools.lru_cache(maxsize=1)
def _far_negatives(size: tuple[int, int]) -> Tensor:
    """Drawn once per process (seconds of PIL work); callers only read it (torch.cat copies)."""
    return training_negatives(size=size)
