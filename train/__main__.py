"""``python -m train``: train LeNet / BN-LeNet on RMB photos (or the synthetic set).

Example::

    python -m train --data ../shared/data/rmb --model bn-lenet --epochs 10
"""

from __future__ import annotations

import argparse
import math
import sys

from train import recipe
from train.cli import add_image_set_flags, parse_and_run
from train.names import ARCHS, INITS


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train LeNet or BN-LeNet on an ImageFolder of banknote photos "
        "(DIR/1/*.jpg, DIR/100/*.jpg) and write a self-describing checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data",
        default=None,
        help="ImageFolder with one sub-folder per class; default: the synthetic RMB-like set, "
        "generated once under --synthetic-dir",
    )
    p.add_argument("--model", default="bn-lenet", choices=ARCHS, help="architecture")
    p.add_argument("--init", default="default", choices=INITS, help="weight initialisation")
    p.add_argument("--epochs", type=int, default=recipe.EPOCHS, help="total epochs")
    p.add_argument("--batch-size", type=int, default=16, help="mini-batch size")
    p.add_argument("--lr", type=float, default=recipe.LR, help="SGD learning rate (momentum 0.9)")
    p.add_argument(
        "--schedule",
        default=recipe.SCHEDULE,
        choices=recipe.SCHEDULES,
        help="LR schedule: cosine annealing over all epochs, or the course's step (x0.1 at 10)",
    )
    p.add_argument(
        "--augment",
        default=recipe.AUGMENT,
        choices=recipe.AUGMENTS,
        help="training augmentation: product (resized crops, colour jitter, 10%% grey) or the "
        "course's (RandomCrop, 80%% grey)",
    )
    p.add_argument(
        "--seed", type=int, default=1, help="seed for init, split, order and augmentation"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads; small LeNet batches train fastest on one, and the same seed and "
        "thread count give bit-identical weights",
    )
    p.add_argument("--out", default="artifacts/bn-lenet.pt", help="checkpoint path")
    p.add_argument("--resume", action="store_true", help="continue --out from its last epoch")
    add_image_set_flags(p)
    p.add_argument(
        "--series",
        default="all",
        choices=("4", "5", "all"),
        help="which RMB notes the synthetic set holds: 4 (1980/1990 designs), 5 (1999 onwards, "
        "the notes in circulation) or all; ignored with --data",
    )
    p.add_argument(
        "--outlier-exposure",
        action=argparse.BooleanOptionalAction,
        default=recipe.OUTLIER_EXPOSURE,
        help="also train against non-note images and other denominations (pushed towards a "
        "uniform softmax), so the OOD score flags them",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=recipe.EMA_DECAY,
        help="serve an exponential moving average of the weights with this decay per step; "
        "0 serves SGD's own",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(args: argparse.Namespace) -> int:
    from train.trainer import TrainConfig, fit

    if args.epochs < 1 or args.batch_size < 2 or args.threads < 1:
        raise ValueError("--epochs and --threads must be >= 1 and --batch-size >= 2")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive finite number, got {args.lr}")
    if not 0.0 <= args.ema_decay < 1.0:
        raise ValueError(f"--ema-decay must be in [0, 1), got {args.ema_decay}")
    # Every flag but --verbose is a TrainConfig field of the same name (a new flag that is not
    # fails here with a TypeError).
    fit(TrainConfig(**{k: v for k, v in vars(args).items() if k != "verbose"}))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return parse_and_run(get_args_parser(), main, argv)


if __name__ == "__main__":
    sys.exit(cli())
