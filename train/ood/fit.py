"""Fit an OOD scorer to a trained model: statistics from the training split, threshold from valid.

The statistics come from the training images as the model sees them at inference (resized,
normalised, no augmentation); the threshold from the held-out valid split, so it reflects
images the model did not fit (training images look more typical than new ones do).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from train.dataset import ImageSet
from train.ood import methods
from train.ood.calibrate import TARGET_FALSE_REJECT, false_reject, threshold_for
from train.ood.scorer import OODScorer
from train.ood.taps import Taps, check_lenet, lenet_taps
from train.preprocess import MEAN, STD, normalize

log = logging.getLogger(__name__)

DEFAULT_METHOD = "energy"  # chosen by measurement (README: python -m train.ood)
BATCH_SIZE = 256


@torch.no_grad()
def collect_taps(
    model: nn.Module,
    images: Tensor,
    *,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
    desc: str = "features",
) -> Taps:
    """The taps of ``model`` (eval mode) on uint8 ``images`` (N, 3, H, W), batch by batch."""
    check_lenet(model)
    model.eval()
    parts: list[Taps] = []
    starts = range(0, len(images), BATCH_SIZE)
    for start in tqdm(starts, desc=desc, leave=False, disable=None):
        parts.append(lenet_taps(model, normalize(images[start : start + BATCH_SIZE], mean, std)))
    return Taps(
        torch.cat([p.logits for p in parts]),
        tuple(torch.cat([p.conv[i] for p in parts]) for i in range(len(parts[0].conv))),
        torch.cat([p.hidden for p in parts]),
        torch.cat([p.penultimate for p in parts]),
    )


def fit_stats(method: str, model: nn.Module, taps: Taps, labels: Tensor) -> dict[str, Tensor]:
    """The statistics of ``method`` (base or "A+B") fitted on training ``taps`` and ``labels``."""
    parts = methods.components(method)
    bn = methods.bn_stats_from_model(model)
    if "bn-stats" in parts and bn is None:
        raise ValueError("bn-stats needs a model with BatchNorm (bn-lenet); pick another method")
    feats = methods.Features.of(taps, labels.cpu(), bn)
    if len(parts) == 1:
        return _fit_base(method, feats, bn)
    stats: dict[str, Tensor] = {}
    for part in parts:
        own = _fit_base(part, feats, bn)
        on_train = OODScorer(part, own, threshold=float("inf"))(taps).double()
        own["loc"] = on_train.mean().float()
        own["scale"] = on_train.std().clamp_min(1e-12).float()
        stats.update({f"{part}.{k}": v for k, v in own.items()})
    return stats


def _fit_base(method: str, feats: methods.Features, bn: dict[str, Tensor] | None) -> dict:
    fitters = {
        "msp": lambda: {},
        "energy": lambda: {},
        "mahalanobis": lambda: methods.fit_mahalanobis(feats),
        "knn": lambda: methods.fit_knn(feats),
        "channel-stats": lambda: methods.fit_channel_stats(feats),
        "bn-stats": lambda: dict(bn or {}),
    }
    return fitters[method]()


def fit_scorer(
    model: nn.Module,
    train: ImageSet,
    *,
    method: str = DEFAULT_METHOD,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
) -> OODScorer:
    """An :class:`OODScorer` for ``model`` fitted on ``train``, threshold not yet calibrated."""
    taps = collect_taps(model, train.images, mean=mean, std=std, desc=f"fit {method}")
    stats = fit_stats(method, model, taps, train.labels)
    return OODScorer(method, stats, threshold=float("inf"))


@torch.no_grad()
def calibrate(
    model: nn.Module,
    scorer: OODScorer,
    held_out: ImageSet,
    *,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
    target_false_reject: float = TARGET_FALSE_REJECT,
    split: str = "valid",
) -> dict[str, Any]:
    """Set ``scorer.threshold`` from ``held_out`` scores; return the ``calibration`` record."""
    taps = collect_taps(model, held_out.images, mean=mean, std=std, desc="calibrate")
    scores = scorer(taps)
    scorer.threshold = threshold_for(scores, target_false_reject)
    return {
        "split": split,
        "images": len(held_out),
        "target_false_reject": float(target_false_reject),
        "false_reject": false_reject(scores, scorer.threshold),
    }


def fit_ood(
    model: nn.Module,
    train: ImageSet,
    valid: ImageSet,
    *,
    method: str = DEFAULT_METHOD,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
    target_false_reject: float = TARGET_FALSE_REJECT,
) -> dict[str, Any]:
    """The checkpoint's ``ood`` dict: ``method`` fitted on ``train``, calibrated on ``valid``."""
    # On the CPU, from a copy: the fits are tiny, and the stored statistics must be CPU tensors.
    model = copy.deepcopy(model).cpu().eval()
    train, valid = train.to("cpu"), valid.to("cpu")
    scorer = fit_scorer(model, train, method=method, mean=mean, std=std)
    record = calibrate(
        model, scorer, valid, mean=mean, std=std, target_false_reject=target_false_reject
    )
    log.info(
        "OOD %s: threshold %.4g rejects %.1f%% of %d valid images (target <= %.1f%%)",
        method,
        scorer.threshold,
        100 * record["false_reject"],
        record["images"],
        100 * target_false_reject,
    )
    return {**scorer.state(), "calibration": record}
