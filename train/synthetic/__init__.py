"""The synthetic RMB-like data sets on disk, so ``python -m train`` runs without any photos.

Two kinds of set, both in ImageFolder layout and cached under ``artifacts/data/``:

- the training set (:func:`ensure_synthetic`): 1- and 100-yuan notes of the 4th series
  (1980/1990 designs), the 5th series (1999 onwards: the notes in circulation today) or both,
  fronts and backs;
- the near-out-of-distribution set (:func:`ensure_near_ood`): 5-, 10-, 20- and 50-yuan notes of
  both series, photographed the same way, for judging whether a model knows what it does not.

A (kind, series, seed) names one byte-exact set (see :mod:`train.synthetic.render`). Which notes
exist is :mod:`train.synthetic.designs`, their drawing :mod:`train.synthetic.layout` and
:mod:`train.synthetic.notes`, the virtual photography :mod:`train.synthetic.photo`, the atomic
writing :mod:`train.synthetic.store`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from train.synthetic.designs import SERIES
from train.synthetic.photo import IMAGE_SIZE
from train.synthetic.render import (
    CLASSES,
    NEAR_OOD_CLASSES,
    render_jpeg,
    render_near_ood_jpeg,
)
from train.synthetic.store import MARKER, read_marker, write_image_set
from train.synthetic.store import is_complete as _is_complete

__all__ = [
    "CLASSES",
    "DEFAULT_SERIES",
    "IMAGE_SIZE",
    "MARKER",
    "NEAR_OOD_CLASSES",
    "SERIES",
    "VERSION",
    "cache_path",
    "default_per_class",
    "ensure_near_ood",
    "ensure_synthetic",
    "generate_near_ood",
    "generate_synthetic",
    "is_complete",
    "read_marker",
    "render_jpeg",
    "render_near_ood_jpeg",
]

logger = logging.getLogger(__name__)

VERSION = 3  # bump whenever any image changes (drawing, photography, JPEG): it names the cache
DEFAULT_SERIES = "all"
DEFAULT_CACHE_DIR = Path("artifacts/data")
# 1000 notes per class and series. On the 4th-series-only set of version 1, 500 per class never
# went below 99.5 % on the 200 real photos while 300 had one run at 81.5 %; with both series,
# fronts and backs, and phone shots, 500 per series left the default 10 epochs at ~88 % on
# unseen synthetic notes, 1000 reached ~96 % (see README, "The synthetic set").
_PER_SERIES = 1000


def default_per_class(series: str = DEFAULT_SERIES) -> int:
    """Images per class when none is asked for: 500 for each series the set holds."""
    _check_series(series)
    return _PER_SERIES * (2 if series == "all" else 1)


def _check_series(series: str) -> None:
    if series not in SERIES:
        raise ValueError(f"series must be one of {', '.join(SERIES)}, got {series!r}")


def _check_args(seed: int, per_class: int | None) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}: pass e.g. seed=0")
    if per_class is None:
        return
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}: pass e.g. 500")


def _marker(seed: int, per_class: int, series: str) -> dict:
    return {
        "generator": __name__,
        "version": VERSION,
        "kind": "banknotes",
        "series": series,
        "seed": seed,
        "per_class": per_class,
        "classes": list(CLASSES),
        "image_size": list(IMAGE_SIZE),
    }


def _near_ood_marker(seed: int, per_class: int) -> dict:
    return {
        "generator": __name__,
        "version": VERSION,
        "kind": "near-ood",
        "series": "all",
        "seed": seed,
        "per_class": per_class,
        "classes": list(NEAR_OOD_CLASSES),
        "image_size": list(IMAGE_SIZE),
    }


def is_complete(root: Path, seed: int, per_class: int, series: str = DEFAULT_SERIES) -> bool:
    """Whether ``root`` holds exactly the training set this version would generate."""
    return _is_complete(root, _marker(seed, per_class, series), CLASSES, per_class)


def generate_synthetic(
    root: Path,
    *,
    seed: int = 0,
    per_class: int | None = None,
    series: str = DEFAULT_SERIES,
    progress: bool = True,
) -> Path:
    """Write ``per_class`` (default :func:`default_per_class`) notes per class to ``root``.

    Built in a hidden sibling folder and renamed onto ``root`` only when complete, marker
    (``SYNTHETIC.json``) included. An existing synthetic set at ``root`` is replaced; any other
    non-empty folder there is left alone and raises :class:`FileExistsError`.
    """
    _check_series(series)
    _check_args(seed, per_class)
    n = default_per_class(series) if per_class is None else per_class
    return write_image_set(
        Path(root),
        classes=CLASSES,
        per_class=n,
        render=lambda class_index, index: render_jpeg(seed, class_index, index, series),
        marker=_marker(seed, n, series),
        progress=progress,
    )


def cache_path(
    cache_dir: Path,
    *,
    seed: int = 0,
    per_class: int | None = None,
    series: str = DEFAULT_SERIES,
) -> Path:
    """Where :func:`ensure_synthetic` keeps the set for (version, series, seed, per_class)."""
    n = default_per_class(series) if per_class is None else per_class
    return Path(cache_dir) / f"synthetic-v{VERSION}-series{series}-seed{seed}-n{n}"


def ensure_synthetic(
    cache_dir: Path,
    *,
    seed: int = 0,
    per_class: int | None = None,
    series: str = DEFAULT_SERIES,
    progress: bool = True,
) -> Path:
    """The cached training set under ``cache_dir``, generating it only when missing or stale."""
    _check_series(series)
    _check_args(seed, per_class)
    n = default_per_class(series) if per_class is None else per_class
    root = cache_path(cache_dir, seed=seed, per_class=n, series=series)
    if is_complete(root, seed, n, series):
        logger.info("using cached synthetic data set %s", root)
        return root
    return generate_synthetic(root, seed=seed, per_class=n, series=series, progress=progress)


def generate_near_ood(
    root: Path, *, seed: int = 1000, per_class: int = 100, progress: bool = True
) -> Path:
    """Write ``per_class`` notes of each of 5, 10, 20 and 50 yuan to ``root`` (ImageFolder)."""
    _check_args(seed, per_class)
    return write_image_set(
        Path(root),
        classes=NEAR_OOD_CLASSES,
        per_class=per_class,
        render=lambda class_index, index: render_near_ood_jpeg(seed, class_index, index),
        marker=_near_ood_marker(seed, per_class),
        progress=progress,
    )


def ensure_near_ood(root: str | Path | None = None, per_class: int = 100, seed: int = 1000) -> Path:
    """The cached near-out-of-distribution set: other denominations, for OOD evaluation.

    5-, 10-, 20- and 50-yuan notes (both series where the note exists: the 4th series had no
    20), both faces, in their own colours, photographed like the training notes; one folder per
    denomination (``10``, ``20``, ``5``, ``50``). ``root`` is the cache folder (default
    ``artifacts/data``); the set goes to ``root/near-ood-v<VERSION>-seed<seed>-n<per_class>``,
    which is returned. Generated only when missing or stale.
    """
    _check_args(seed, per_class)
    cache_dir = DEFAULT_CACHE_DIR if root is None else Path(root)
    folder = cache_dir / f"near-ood-v{VERSION}-seed{seed}-n{per_class}"
    marker = _near_ood_marker(seed, per_class)
    if _is_complete(folder, marker, NEAR_OOD_CLASSES, per_class):
        return folder
    return generate_near_ood(folder, seed=seed, per_class=per_class, progress=False)
