"""``python -m train.evaluate``: accuracy of a checkpoint on any ImageFolder, or on its own split.

Answers "how well does it do on *these* photos?" — e.g. a model trained only on the synthetic
set, evaluated on the real RMB photos::

    python -m train.evaluate --checkpoint artifacts/bn-lenet.pt --data ../shared/data/rmb

or on synthetic notes it never saw: a fresh seed of the generator, e.g. today's (5th-series)
notes only::

    python -m train.evaluate --synthetic-series 5 --synthetic-seed 101
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train.cli import add_image_set_flags, parse_and_run
from train.names import SPLIT_NAMES


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    split: str = "all",
    *,
    skip_bad_images: bool = False,
) -> dict[str, float | int]:
    """Loss, accuracy and image count of ``checkpoint`` on ``data`` (default: its own data).

    ``split`` picks one of the checkpoint's recorded splits, or ``all`` images of the folder.
    Images are decoded and normalised as in training, with the checkpoint's mean/std.
    """
    from bnfold.checkpoint import load_checkpoint
    from train.dataset import load_images
    from train.engine import evaluate
    from train.imagefolder import scan_image_folder

    ckpt = load_checkpoint(checkpoint)
    files = scan_image_folder(data or ckpt.data_dir or "", ckpt.class_names)
    paths = list(files.paths) if split == "all" else ckpt.split.get(split, [])
    images = load_images(files, paths, size=ckpt.input_size, skip_bad=skip_bad_images)
    loss, acc = evaluate(ckpt.build_model(allow_folded=True), images, ckpt.mean, ckpt.std)
    return {"loss": loss, "acc": acc, "images": len(images)}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Accuracy of a python -m train checkpoint on an ImageFolder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", default="artifacts/bn-lenet.pt", help="checkpoint path")
    p.add_argument(
        "--data", default=None, help="ImageFolder to evaluate on; default: the checkpoint's own"
    )
    p.add_argument(
        "--synthetic-series",
        default=None,
        choices=("4", "5", "all"),
        help="evaluate on a synthetic set of this series instead of --data (generated once "
        "under --synthetic-dir); default: none",
    )
    p.add_argument(
        "--synthetic-seed",
        type=int,
        default=101,
        help="seed of that set; training uses seed 0, so any other seed is unseen notes",
    )
    p.add_argument(
        "--synthetic-per-class", type=int, default=300, help="notes per class in that set"
    )
    p.add_argument(
        "--split",
        default="all",
        choices=("all", *SPLIT_NAMES),
        help="all images of the folder, or one of the checkpoint's recorded splits",
    )
    add_image_set_flags(p)
    return p


def main(args: argparse.Namespace) -> int:
    data = args.data
    if args.synthetic_series is not None:
        if data is not None:
            raise ValueError("give either --data or --synthetic-series, not both")
        from train.synthetic import ensure_synthetic

        data = str(
            ensure_synthetic(
                Path(args.synthetic_dir),
                seed=args.synthetic_seed,
                per_class=args.synthetic_per_class,
                series=args.synthetic_series,
            )
        )
    r = evaluate_checkpoint(args.checkpoint, data, args.split, skip_bad_images=args.skip_bad_images)
    print(f"accuracy {r['acc']:.2%} on {r['images']} images (mean cross-entropy {r['loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(parse_and_run(get_args_parser(), main))
