"""Decode a data set once into memory: uint8 (N, 3, H, W) tensors that training indexes per batch.

Decoding a full-resolution JPEG costs far more than a LeNet step, so the naive pipeline
(decode + transform every image every epoch) spends most of its time in PIL. Here every
image is decoded exactly once, in draft mode, by a small thread pool (PIL releases the GIL).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from train.imagefolder import DataError, FileList
from train.preprocess import INPUT_SIZE, open_image, to_uint8_tensor

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    """Decoded images of one split with their labels and the files they came from."""

    images: Tensor  # uint8 (N, 3, H, W)
    labels: Tensor  # int64 (N,)
    paths: list[str]  # relative to the data folder

    def __len__(self) -> int:
        return len(self.paths)

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device), self.paths)


def decode_file(path: Path, size: tuple[int, int]) -> Tensor | str:
    """The image file as a uint8 tensor, or the reason it could not be read."""
    try:
        return to_uint8_tensor(open_image(path, size), size)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        return f"{type(e).__name__}: {e}"


def load_images(
    files: FileList,
    paths: list[str],
    *,
    size: tuple[int, int] = INPUT_SIZE,
    skip_bad: bool = False,
    desc: str = "decode",
) -> ImageSet:
    """Decode ``paths`` (relative to ``files.root``) into an :class:`ImageSet`.

    A file that is not a readable image raises :class:`DataError` naming it, unless
    ``skip_bad`` is set, in which case it is dropped and counted in a warning.
    """
    label_of = dict(zip(files.paths, files.labels, strict=True))
    missing = [p for p in paths if p not in label_of]
    if missing:
        raise DataError(
            f"{files.root / missing[0]} is listed in the split but not in the data folder: "
            "retrain, or pass the --data folder the checkpoint was trained on"
        )
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = list(
            tqdm(
                pool.map(lambda rel: decode_file(files.root / rel, size), paths),
                total=len(paths),
                desc=desc,
                unit="img",
                leave=False,
                disable=None,
            )
        )
    kept, images, bad = [], [], []
    for rel, result in zip(paths, results, strict=True):
        if isinstance(result, str):
            if not skip_bad:
                raise DataError(
                    f"cannot read image {files.root / rel} ({result}); "
                    "remove it or pass --skip-bad-images"
                )
            bad.append(rel)
        else:
            kept.append(rel)
            images.append(result)
    if bad:
        log.warning("skipped %d unreadable file(s), first: %s", len(bad), files.root / bad[0])
    if not kept:
        raise DataError(f"no readable images among {len(paths)} file(s) in {files.root}")
    labels = torch.tensor([label_of[p] for p in kept], dtype=torch.int64)
    return ImageSet(torch.stack(images), labels, kept)


def subset(images: ImageSet, paths: list[str]) -> ImageSet:
    """The images of ``paths`` (e.g. one split), in that order."""
    index = {p: i for i, p in enumerate(images.paths)}
    missing = [p for p in paths if p not in index]
    if missing:
        raise DataError(
            f"{missing[0]} is in the recorded split but was not decoded from the data folder: "
            "retrain, or pass the --data folder the checkpoint was trained on"
        )
    idx = torch.tensor([index[p] for p in paths], dtype=torch.int64)
    return ImageSet(images.images[idx], images.labels[idx], list(paths))
