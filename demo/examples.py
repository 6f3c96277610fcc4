"""Example photos for the page, copied into one folder: the only folder the server serves.

Real photos when a data folder is known (``--data``, else the checkpoint's ``data_dir``),
preferring the checkpoint's held-out test split so an example was never trained on; synthetic
RMB-like notes drawn by :mod:`train.synthetic` when there is no folder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from train.preprocess import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint

log = logging.getLogger(__name__)


def source_folder(ckpt: Checkpoint, data: str | Path | None) -> Path | None:
    """``data`` if given, else the checkpoint's ``data_dir`` when that folder still exists."""
    if data is not None:
        return Path(data)
    recorded = ckpt.data_dir
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    return None


def candidate_photos(ckpt: Checkpoint, folder: Path, per_class: int) -> list[tuple[str, Path]]:
    """Up to ``per_class`` (class, photo) pairs per class: test split first, then any file."""
    picked: list[tuple[str, Path]] = []
    test = ckpt.split.get("test", [])
    for name in ckpt.class_names:
        in_test = [folder / p for p in test if Path(p).parts[:1] == (name,)]
        in_folder = sorted((folder / name).glob("*")) if (folder / name).is_dir() else []
        chosen: list[Path] = []
        for path in [*in_test, *in_folder]:
            if len(chosen) == per_class:
                break
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path not in chosen:
                chosen.append(path)
        picked += [(name, path) for path in chosen]
    return picked


def prepare_examples(
    ckpt: Checkpoint, dest: str | Path, data: str | Path | None = None, per_class: int = 2
) -> list[Path]:
    """Fill ``dest`` with example images and return their paths (may be empty)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    folder = source_folder(ckpt, data)
    out: list[Path] = []
    if folder is not None and folder.is_dir():
        for name, path in candidate_photos(ckpt, folder, per_class):
            target = dest / f"{name}_{path.name}"
            shutil.copyfile(path, target)
            out.append(target)
    if out:
        log.info("%d example photos from %s", len(out), folder)
        return out
    return synthetic_examples(list(ckpt.class_names), dest, per_class)


def synthetic_examples(class_names: list[str], dest: Path, per_class: int) -> list[Path]:
    """Synthetic notes for the classes :mod:`train.synthetic` draws (none for other classes)."""
    from train.synthetic import CLASSES, render_jpeg

    out = []
    for name in class_names:
        if name not in CLASSES:
            continue
        for index in range(per_class):
            target = dest / f"{name}_synthetic_{index}.jpg"
            target.write_bytes(render_jpeg(12345, CLASSES.index(name), index))
            out.append(target)
    log.info("%d synthetic example notes (no data folder)", len(out))
    return out
