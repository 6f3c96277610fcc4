"""The synthetic RMB-like data set on disk, so ``python -m train`` runs without any photos.

A seed names one byte-exact set (see :mod:`train.synthetic.render`). The set is written once in
ImageFolder layout (``ROOT/1/*.jpg``, ``ROOT/100/*.jpg``) so every tool reads it like real data,
built in a sibling temp folder and renamed into place so a crash never leaves a half-written set
that looks complete. The drawing lives in :mod:`train.synthetic.notes`, the virtual photography
in :mod:`train.synthetic.photo`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from train.synthetic.fields import guilloche, low_frequency_noise
from train.synthetic.notes import draw_note_1, draw_note_100
from train.synthetic.photo import IMAGE_SIZE, perspective_coeffs
from train.synthetic.render import CLASSES, image_rng, render_jpeg

__all__ = [
    "CLASSES",
    "DEFAULT_PER_CLASS",
    "IMAGE_SIZE",
    "MARKER",
    "VERSION",
    "cache_path",
    "draw_note_1",
    "draw_note_100",
    "ensure_synthetic",
    "generate_synthetic",
    "guilloche",
    "image_rng",
    "is_complete",
    "low_frequency_noise",
    "perspective_coeffs",
    "read_marker",
    "render_jpeg",
]

logger = logging.getLogger(__name__)

VERSION = 1  # bump whenever any image changes (drawing, photography, JPEG): it names the cache
MARKER = "SYNTHETIC.json"
# 500 per class: training BN-LeNet on 8 synthetic seeds x 6 training seeds, 500 per class never
# went below 99.5 % on 200 real photos, while 300 per class had one run at 81.5 %; generating
# 1000 images takes about 5-8 s on one core.
DEFAULT_PER_CLASS = 500


def _marker(seed: int, per_class: int) -> dict:
    return {
        "generator": __name__,
        "version": VERSION,
        "seed": seed,
        "per_class": per_class,
        "classes": list(CLASSES),
        "image_size": list(IMAGE_SIZE),
    }


def _check_args(seed: int, per_class: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}: pass e.g. seed=0")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(
            f"per_class must be a positive int, got {per_class!r}: pass e.g. {DEFAULT_PER_CLASS}"
        )


def read_marker(root: Path) -> dict | None:
    """The marker of a synthetic set at ``root``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(root) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(root: Path, seed: int, per_class: int) -> bool:
    """Whether ``root`` holds exactly the set this version would generate for (seed, per_class)."""
    root = Path(root)
    if read_marker(root) != _marker(seed, per_class):
        return False
    for cls in CLASSES:
        folder = root / cls
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != per_class:
            return False
    return True


def generate_synthetic(
    root: Path, *, seed: int = 0, per_class: int = DEFAULT_PER_CLASS, progress: bool = True
) -> Path:
    """Write ``per_class`` synthetic images per class to ``root`` in ImageFolder layout.

    The set is built in a hidden sibling folder and renamed onto ``root`` only when complete,
    marker (``SYNTHETIC.json``) included. An existing synthetic set at ``root`` is replaced; any
    other non-empty folder there is left alone and raises :class:`FileExistsError`.
    """
    _check_args(seed, per_class)
    root = Path(root)
    if root.exists() and read_marker(root) is None and any(root.iterdir()):
        raise FileExistsError(
            f"{root} exists and is not a synthetic data set (no {MARKER}): "
            "choose another folder or remove it"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    existed = root.exists()
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished set is an ordinary folder
    try:
        with tqdm(
            total=per_class * len(CLASSES),
            desc="synthetic RMB",
            unit="img",
            disable=None if progress else True,  # None: a bar on terminals, silence in logs
        ) as bar:
            for class_index, cls in enumerate(CLASSES):
                folder = tmp / cls
                folder.mkdir()
                for index in range(per_class):
                    (folder / f"{index:05d}.jpg").write_bytes(render_jpeg(seed, class_index, index))
                    bar.update(1)
        (tmp / MARKER).write_text(
            json.dumps(_marker(seed, per_class), indent=2) + "\n", encoding="utf-8"
        )
        _swap_into_place(tmp, root, keep=None if existed else (seed, per_class))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "generated %d synthetic images (seed %d) in %s in %.1f s",
        per_class * len(CLASSES),
        seed,
        root,
        time.perf_counter() - start,
    )
    return root


def _swap_into_place(tmp: Path, root: Path, keep: tuple[int, int] | None) -> None:
    """Rename ``tmp`` onto ``root``; a previous synthetic set there is moved aside first.

    ``keep=(seed, per_class)``: ``root`` did not exist when we started, so if it now holds that
    complete set, another process just wrote the same (deterministic) set: keep theirs rather
    than pull it from under a reader.
    """
    try:
        os.replace(tmp, root)  # atomic when root is absent or an empty folder
        return
    except OSError:
        if not root.exists():
            raise
    if keep is not None and is_complete(root, *keep):
        logger.info("%s was completed concurrently; keeping it", root)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    os.replace(root, old / "set")
    try:
        os.replace(tmp, root)
    except OSError:
        os.replace(old / "set", root)  # put the previous set back before failing
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def cache_path(cache_dir: Path, *, seed: int = 0, per_class: int = DEFAULT_PER_CLASS) -> Path:
    """Where :func:`ensure_synthetic` keeps the set for (version, seed, per_class)."""
    return Path(cache_dir) / f"synthetic-v{VERSION}-seed{seed}-n{per_class}"


def ensure_synthetic(
    cache_dir: Path, *, seed: int = 0, per_class: int = DEFAULT_PER_CLASS, progress: bool = True
) -> Path:
    """The cached synthetic set under ``cache_dir``, generating it only when missing or stale."""
    _check_args(seed, per_class)
    root = cache_path(cache_dir, seed=seed, per_class=per_class)
    if is_complete(root, seed, per_class):
        logger.info("using cached synthetic data set %s", root)
        return root
    return generate_synthetic(root, seed=seed, per_class=per_class, progress=progress)
