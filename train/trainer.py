"""Fit a LeNet / BN-LeNet on an image folder, checkpointing every epoch so it can resume.

The library half of ``python -m train``: the CLI turns flags into a :class:`TrainConfig` and
calls :func:`fit`. Every epoch ends with an atomic checkpoint, so an interrupted run loses at
most the epoch in progress, and ``resume=True`` continues bit-identically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel
from tqdm.contrib.logging import logging_redirect_tqdm

from bnfold.atomic import remove_stale_temps
from bnfold.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from train import recipe
from train.atomic import atomic_open
from train.augment import augment_for
from train.dataset import ImageSet, load_images, subset
from train.engine import NonFiniteLossError, Stats, evaluate, train_one_epoch
from train.imagefolder import FileList, scan_image_folder
from train.models import build_model, initialize_weights, model_spec
from train.preprocess import INPUT_SIZE, MEAN, STD
from train.split import stratified_split

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults are the product's (train.recipe)."""

    data: str | None = None  # image folder; None = the synthetic RMB-like set
    model: str = "bn-lenet"
    init: str = "default"
    epochs: int = recipe.EPOCHS
    batch_size: int = 16
    lr: float = recipe.LR
    momentum: float = 0.9
    step_size: int = 10
    gamma: float = 0.1
    seed: int = 1
    device: str = "auto"
    threads: int = 1  # CPU threads; LeNet's batch-16 steps are fastest on one
    out: str = "artifacts/bn-lenet.pt"
    resume: bool = False
    skip_bad_images: bool = False
    synthetic_dir: str = "artifacts/data"
    outlier_exposure: bool = recipe.OUTLIER_EXPOSURE  # train against non-notes (train.ood)
    series: str = "all"  # which RMB series the synthetic set holds: "4", "5" or "all"
    augment: str = recipe.AUGMENT  # train.augment: "product" or the course's
    schedule: str = recipe.SCHEDULE  # "cosine" over all epochs, or the course's "step"
    ema_decay: float = recipe.EMA_DECAY  # serve a moving average of the weights (0: off)


@dataclass
class SplitData:
    """The decoded train/valid/test sets of one data folder and how they were made."""

    files: FileList
    split: dict[str, list[str]]
    sets: dict[str, ImageSet]
    data_label: str  # the folder as given, or "synthetic"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when this machine has it, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from e
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r} is not supported here: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available: use --device cpu")
    return device


def resolve_data_dir(
    data: str | None, synthetic_dir: str | Path, series: str = "all"
) -> tuple[Path, str]:
    """The folder to read and the label recorded in the checkpoint ("synthetic" if generated)."""
    if data is not None:
        return Path(data), str(data)
    from train.synthetic import ensure_synthetic

    return ensure_synthetic(Path(synthetic_dir), series=series), SYNTHETIC


def prepare_data(
    data: str | None,
    *,
    seed: int,
    synthetic_dir: str | Path = "artifacts/data",
    skip_bad_images: bool = False,
    split: dict[str, list[str]] | None = None,
    series: str = "all",
) -> SplitData:
    """Scan, decode once, and split (or reuse a recorded ``split``) a data folder.

    ``series`` picks the synthetic set's notes when ``data`` is None.
    """
    root, label = resolve_data_dir(data, synthetic_dir, series)
    files = scan_image_folder(root)
    everything = load_images(files, list(files.paths), skip_bad=skip_bad_images)
    files = files.only(everything.paths)
    if split is None:
        split = stratified_split(files, seed)
    sets = {name: subset(everything, paths) for name, paths in split.items()}
    return SplitData(files, split, sets, label)


def _new_checkpoint(cfg: TrainConfig, data: SplitData) -> Checkpoint:
    num_classes = len(data.files.class_names)
    return Checkpoint(
        arch=cfg.model,
        model=model_spec(cfg.model, num_classes),
        class_names=tuple(data.files.class_names),
        input_size=INPUT_SIZE,
        mean=MEAN,
        std=STD,
        state_dict={},
        metrics={"history": [], "step_losses": [], "test_acc": None},
        split=data.split,
        data=data.data_label,
        data_dir=str(data.files.root.resolve()),
        args=dataclasses.asdict(cfg),
    )


def _check_resumable(old: Checkpoint, cfg: TrainConfig, out: Path) -> None:
    for key in (
        "model",
        "init",
        "batch_size",
        "lr",
        "momentum",
        "seed",
        "data",
        "series",
        "threads",
        "augment",
        "schedule",
        "outlier_exposure",
        "ema_decay",
    ) + (("epochs",) if cfg.schedule == "cosine" else ()):  # a cosine spans all its epochs
        if old.args.get(key) != getattr(cfg, key):
            raise ValueError(
                f"--resume: {out} was trained with {key}={old.args.get(key)!r}, "
                f"not {getattr(cfg, key)!r}; pass the same flags or a new --out"
            )
    if cfg.ema_decay and old.ema is None:
        raise ValueError(f"--resume: {out} lacks its moving-average state: start a new --out")


def fit(cfg: TrainConfig) -> Checkpoint:
    """Train per ``cfg``; write checkpoint, metrics JSON and curves PNG; return the checkpoint."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _fit(cfg)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(cfg: TrainConfig) -> Checkpoint:
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    removed = remove_stale_temps(out)
    if removed:
        log.info("removed %d temporary file(s) a killed run left next to %s", len(removed), out)
    resumed = load_checkpoint(out) if cfg.resume and out.exists() else None
    if cfg.resume and resumed is None:
        log.info("--resume: no checkpoint at %s yet, starting from scratch", out)
    if resumed is not None:
        _check_resumable(resumed, cfg, out)
    data = prepare_data(
        cfg.data,
        seed=cfg.seed,
        synthetic_dir=cfg.synthetic_dir,
        skip_bad_images=cfg.skip_bad_images,
        split=resumed.split if resumed else None,
        series=cfg.series,
    )
    sets = {name: s.to(device) for name, s in data.sets.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info(
        "data: %s (%s), classes %s, train/valid/test = %d/%d/%d, device %s",
        data.data_label,
        data.files.root,
        ", ".join(data.files.class_names),
        *(len(sets[s]) for s in ("train", "valid", "test")),
        device,
    )

    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, len(data.files.class_names))
    initialize_weights(model, cfg.init)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    average = _average(model, cfg.ema_decay)
    served = average.module if average is not None else model  # what is evaluated and saved
    scheduler = _scheduler(cfg, optimizer)
    augment = augment_for(cfg.augment)
    generator = torch.Generator().manual_seed(cfg.seed)

    ckpt = _new_checkpoint(cfg, data)
    if resumed is not None:
        # _check_resumable: ``ema`` is there when averaging
        served.load_state_dict(resumed.state_dict)
        if average is not None:
            model.load_state_dict(resumed.ema["live"])
            average.n_averaged.fill_(int(resumed.ema["n_averaged"]))
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        generator.set_state(resumed.rng)
        ckpt = resumed.replace(args=ckpt.args, data_dir=ckpt.data_dir)
        log.info("resumed %s after epoch %d", out, resumed.epoch)
    mean, std = ckpt.mean, ckpt.std

    negatives = _negatives(cfg, device)
    with logging_redirect_tqdm():
        for epoch in range(ckpt.epoch + 1, cfg.epochs + 1):
            try:
                stats = train_one_epoch(
                    model,
                    sets["train"],
                    optimizer,
                    batch_size=cfg.batch_size,
                    generator=generator,
                    mean=mean,
                    std=std,
                    desc=f"epoch {epoch}/{cfg.epochs}",
                    negatives=negatives,
                    augment=augment,
                    average=average,
                )
                scheduler.step()
                valid_loss, valid_acc = evaluate(served, sets["valid"], mean, std)
                if not math.isfinite(valid_loss):
                    raise NonFiniteLossError(f"the validation loss is {valid_loss}")
            except NonFiniteLossError as e:
                kept = f"{out} keeps epoch {ckpt.epoch}" if ckpt.epoch else f"{out} was not written"
                raise NonFiniteLossError(
                    f"epoch {epoch}: {e} (lr {cfg.lr:g}), training stopped; {kept}: lower --lr "
                    "or check the data"
                ) from e
            ckpt.metrics["history"].append(
                {
                    "epoch": epoch,
                    "train_loss": stats.loss,
                    "train_acc": stats.acc,
                    "valid_loss": valid_loss,
                    "valid_acc": valid_acc,
                    "lr": optimizer.param_groups[0]["lr"],
                }
            )
            ckpt.metrics["step_losses"].append(stats.step_losses)
            log.info(
                "epoch %d/%d  train loss %.4f acc %.2f%%  valid loss %.4f acc %.2f%%",
                epoch,
                cfg.epochs,
                stats.loss,
                100 * stats.acc,
                valid_loss,
                100 * valid_acc,
            )
            ckpt = ckpt.replace(
                epoch=epoch,
                state_dict=_cpu(served),
                ema=None
                if average is None
                else {
                    "decay": cfg.ema_decay,
                    "n_averaged": int(average.n_averaged),
                    "live": _cpu(model),
                },
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                rng=generator.get_state(),
            )
            save_checkpoint(ckpt, out)

    _, test_acc = evaluate(served, sets["test"], mean, std)
    ckpt.metrics["test_acc"] = test_acc
    ckpt = ckpt.replace(ood=_fit_ood(served, sets, mean, std))
    save_checkpoint(ckpt, out)
    log.info(
        "test accuracy %.2f%% (%d images); checkpoint %s", 100 * test_acc, len(sets["test"]), out
    )
    write_reports(ckpt, out)
    return ckpt


def _average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics, or None.

    Averaging the buffers too keeps each BN's running statistics close to those of the averaged
    weights' inputs (the weights move little over the steps the average spans).
    """
    if decay == 0.0:
        return None
    return AveragedModel(model, multi_avg_fn=_ema_update(decay), use_buffers=True)


def _ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """EMA with the decay ramped as ``min(decay, (1 + n) / (10 + n))`` over updates ``n``.

    The ramp (TensorFlow's ExponentialMovingAverage ``num_updates``) keeps a short run's average
    from being anchored to its first, untrained weights; integer buffers are copied.
    """

    def update(averaged: list[Tensor], current: list[Tensor], n: Tensor) -> None:
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        for a, c in zip(averaged, current, strict=True):
            if a.is_floating_point():
                a.lerp_(c, 1.0 - d)
            else:
                a.copy_(c)

    return update


def _cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """Cosine annealing to 0 over ``cfg.epochs`` (default), or the course's StepLR.

    The cosine is closed-form (LambdaLR of the epoch), so a resumed run recomputes exactly the
    learning rate the uninterrupted run had.
    """
    if cfg.schedule == "cosine":
        epochs = cfg.epochs
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, epochs) / epochs))
        )
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
    raise ValueError(f"unknown schedule {cfg.schedule!r}: use one of {', '.join(recipe.SCHEDULES)}")


def _negatives(cfg: TrainConfig, device: torch.device) -> torch.Tensor | None:
    """Outlier-exposure negatives when ``cfg.outlier_exposure`` asks for them, else None."""
    if not cfg.outlier_exposure:
        return None
    from train.ood.negatives import outlier_negatives

    return outlier_negatives(cfg.synthetic_dir).to(device)


def _fit_ood(
    model: torch.nn.Module, sets: dict[str, ImageSet], mean: Stats, std: Stats
) -> dict[str, Any]:
    """The OOD scorer (statistics + threshold) stored as the checkpoint's ``ood`` entry."""
    from train.ood.fit import fit_ood

    return fit_ood(model, sets["train"], sets["valid"], mean=mean, std=std)


def write_reports(ckpt: Checkpoint, out: Path) -> None:
    """The metrics as JSON and the training curves as PNG, next to the checkpoint."""
    from train.plots import plot_runs

    metrics_path = out.with_suffix(".metrics.json")
    with atomic_open(metrics_path) as fh:
        json.dump({"arch": ckpt.arch, "data": ckpt.data, **ckpt.metrics}, fh, indent=2)
    curves = plot_runs(
        {ckpt.arch: ckpt.metrics},
        out.with_suffix(".curves.png"),
        title=f"{ckpt.arch} on {ckpt.data}",
    )
    log.info("wrote %s and %s", metrics_path, curves)
