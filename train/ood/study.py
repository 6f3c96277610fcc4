"""The library half of ``python -m train.ood``: fit every method on a checkpoint, measure, report.

Each method is fitted on the checkpoint's own training split and calibrated on its valid split,
exactly as training fits the one it stores; the stored method is measured as stored (its
statistics and threshold from the checkpoint's ``ood`` entry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from bnfold.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from train.dataset import ImageSet, load_images, subset
from train.imagefolder import DataError, scan_image_folder
from train.ood import sets as ood_sets
from train.ood.calibrate import TARGET_FALSE_REJECT
from train.ood.evaluate import EvalSets, reference_sets, score_all, summarise
from train.ood.fit import DEFAULT_METHOD, calibrate, fit_ood, fit_scorer
from train.ood.methods import BASE_METHODS
from train.ood.report import write_report
from train.ood.scorer import OODScorer

log = logging.getLogger(__name__)

COMPARED = (*BASE_METHODS, "mahalanobis+msp", "knn+msp", "mahalanobis+knn+msp", "knn+energy")


@dataclass
class StudyConfig:
    checkpoint: str = "artifacts/bn-lenet.pt"
    inside: list[str] = field(default_factory=list)  # labelled ImageFolders (course photos)
    out_dirs: list[str] = field(default_factory=list)  # extra folders of OOD images
    out: str = "artifacts/ood"
    methods: tuple[str, ...] = COMPARED
    per_kind: int = 100
    near: bool = True
    near_dir: str | None = None
    target_false_reject: float = TARGET_FALSE_REJECT


def training_splits(ckpt: Checkpoint) -> dict[str, ImageSet]:
    """The checkpoint's train / valid / test images, decoded from the folder it was trained on."""
    root = Path(ckpt.data_dir)
    if not root.is_dir():
        raise DataError(
            f"the checkpoint's training data {root} is gone: regenerate it (python -m train "
            "with the same flags) or fit on a machine that has it"
        )
    files = scan_image_folder(root)
    wanted = [p for name in ("train", "valid", "test") for p in ckpt.split[name]]
    images = load_images(files, wanted, size=tuple(ckpt.input_size), desc="decode splits")
    return {name: subset(images, ckpt.split[name]) for name in ("train", "valid", "test")}


def build_sets(cfg: StudyConfig, ckpt: Checkpoint, splits: dict[str, ImageSet]) -> EvalSets:
    size = tuple(ckpt.input_size)
    inside = {"valid": splits["valid"], "test": splits["test"]}
    for root in cfg.inside:  # labelled in-distribution folders, e.g. the course photos
        files = scan_image_folder(root, ckpt.class_names)
        inside[Path(root).name or root] = load_images(
            files, list(files.paths), size=size, desc=root
        )
    outside = {"far": ood_sets.far_ood(cfg.per_kind, size=size)}
    if cfg.near:
        outside["near"] = {"other denominations": ood_sets.near_ood(cfg.near_dir, size)}
    for root in cfg.out_dirs:
        outside[Path(root).name or root] = {"images": ood_sets.folder_images(root, size)}
    return EvalSets(inside, outside)


def fit_methods(
    cfg: StudyConfig, ckpt: Checkpoint, model: nn.Module, splits: dict[str, ImageSet]
) -> dict[str, OODScorer]:
    """Every compared method fitted and calibrated; the stored one as stored."""
    norm = {"mean": tuple(ckpt.mean), "std": tuple(ckpt.std)}
    stored = ckpt.ood
    scorers: dict[str, OODScorer] = {}
    for method in cfg.methods:
        if stored is not None and stored.get("method") == method:
            scorers[method] = OODScorer.from_state(stored)
            continue
        if method == "bn-stats" and ckpt.arch != "bn-lenet":
            log.info("bn-stats skipped: %s has no BatchNorm", ckpt.arch)
            continue
        scorer = fit_scorer(model, splits["train"], method=method, **norm)
        calibrate(
            model, scorer, splits["valid"], target_false_reject=cfg.target_false_reject, **norm
        )
        scorers[method] = scorer
    if stored is not None and stored["method"] not in scorers:
        scorers[stored["method"]] = OODScorer.from_state(stored)
    return scorers


def run_study(cfg: StudyConfig) -> tuple[dict[str, Any], list[Path]]:
    """Measure every method of ``cfg`` on the checkpoint; write ood.json / .md / .png."""
    ckpt = load_checkpoint(cfg.checkpoint)
    model = ckpt.build_model(allow_folded=False)
    splits = training_splits(ckpt)
    scorers = fit_methods(cfg, ckpt, model, splits)
    sets = build_sets(cfg, ckpt, splits)
    scores = score_all(model, scorers, sets, mean=tuple(ckpt.mean), std=tuple(ckpt.std))
    report = {
        "checkpoint": str(cfg.checkpoint),
        "checkpoint_method": (ckpt.ood or {}).get("method"),
        "target_false_reject": cfg.target_false_reject,
        "reference_in": reference_sets(sets),
        "sets": {
            "in": {n: len(s) for n, s in sets.inside.items()},
            "out": {g: {k: len(v) for k, v in kinds.items()} for g, kinds in sets.outside.items()},
        },
        "methods": summarise(scorers, sets, scores),
    }
    return report, write_report(report, scores, cfg.out)


def refit_checkpoint(
    checkpoint: str | Path,
    method: str = DEFAULT_METHOD,
    target_false_reject: float = TARGET_FALSE_REJECT,
) -> dict[str, Any]:
    """(Re)fit the checkpoint's ``ood`` entry with ``method`` and save it in place, atomically."""
    ckpt = load_checkpoint(checkpoint)
    splits = training_splits(ckpt)
    ood = fit_ood(
        ckpt.build_model(allow_folded=False),
        splits["train"],
        splits["valid"],
        method=method,
        mean=tuple(ckpt.mean),
        std=tuple(ckpt.std),
        target_false_reject=target_false_reject,
    )
    save_checkpoint(ckpt.replace(ood=ood), checkpoint)
    return ood
