"""The inputs a parity run feeds every variant: real held-out images and random batches.

Real images are the checkpoint's recorded valid and test split, decoded and normalised exactly as
evaluation did (:mod:`train.preprocess`, the checkpoint's mean/std), so parity is proven on the
data the model was judged on.
Only those images are decoded, not the training split. Random batches of 1, 7 and 64 add inputs
off the data manifold and exercise the dynamic batch axis with odd and large sizes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from export.errors import ExportError

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint

log = logging.getLogger(__name__)

RANDOM_BATCH_SIZES = (1, 7, 64)
DATA_SPLITS = ("valid", "test")


@dataclass(frozen=True)
class ParityInput:
    """One batch of model input (normalised float32 NCHW) and where it came from."""

    name: str
    images: Tensor
    labels: Tensor | None = None  # class indices, for real images (int8 accuracy)


def data_inputs(ckpt: Checkpoint, data: str | None = None) -> list[ParityInput]:
    """The checkpoint's valid and test images, from ``data`` or the folder it was trained on.

    An explicit ``data`` folder that cannot supply them is an error; a recorded folder that is
    gone (the checkpoint travelled without its data) only means no real images: logged, [].
    """
    from train.dataset import load_images, subset
    from train.imagefolder import DataError, scan_image_folder
    from train.preprocess import normalize

    folder = data if data is not None else ckpt.data_dir
    if folder is None or not Path(folder).is_dir():
        if data is not None:
            raise ExportError(f"--data folder not found: {data}")
        log.warning(
            "data folder %s is not here: parity runs on random inputs only (pass --data DIR "
            "for the valid/test images)",
            folder,
        )
        return []
    wanted = {name: list(ckpt.split.get(name, [])) for name in DATA_SPLITS}
    try:
        files = scan_image_folder(folder)
        paths = [p for paths in wanted.values() for p in paths]
        images = load_images(files, paths, size=ckpt.input_size, desc="decode")
    except DataError as e:
        raise ExportError(f"cannot read the checkpoint's valid/test images: {e}") from e
    out = []
    for name, paths in wanted.items():
        if not paths:
            continue
        part = subset(images, paths)
        batch = normalize(part.images, ckpt.mean, ckpt.std)
        out.append(ParityInput(f"{name} images", batch, part.labels))
    log.info("parity data: %s from %s", ", ".join(f"{len(i.images)} {i.name}" for i in out), folder)
    return out


def train_images(ckpt: Checkpoint, data: str | None = None) -> Tensor | None:
    """The checkpoint's training images, normalised: what the int8 file is calibrated on.

    None when the data folder is not here (then no int8 file is written, and the export says
    so); an explicit ``data`` folder that cannot supply them is an error.
    """
    from train.dataset import load_images
    from train.imagefolder import DataError, scan_image_folder
    from train.preprocess import normalize

    folder = data if data is not None else ckpt.data_dir
    paths = list(ckpt.split.get("train", []))
    if folder is None or not Path(folder).is_dir() or not paths:
        if data is not None and not Path(data).is_dir():
            raise ExportError(f"--data folder not found: {data}")
        return None
    try:
        images = load_images(scan_image_folder(folder), paths, size=ckpt.input_size, desc="decode")
    except DataError as e:
        raise ExportError(f"cannot read the checkpoint's training images: {e}") from e
    return normalize(images.images, ckpt.mean, ckpt.std)


def random_inputs(
    input_size: tuple[int, int], batch_sizes: tuple[int, ...] = RANDOM_BATCH_SIZES, seed: int = 0
) -> list[ParityInput]:
    """Standard-normal batches (the scale of normalised images), reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return [
        ParityInput(f"random batch {n}", torch.randn(n, 3, *input_size, generator=generator))
        for n in batch_sizes
    ]
