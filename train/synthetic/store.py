"""Write a generated image set to disk atomically, described by a marker file.

A set is written once in ImageFolder layout (``ROOT/<class>/<index>.jpg``) so every tool reads it
like real data, built in a sibling temp folder and renamed into place so a crash never leaves a
half-written set that looks complete. ``MARKER`` names what was generated; a folder whose marker
matches and whose class folders hold the expected counts is complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

logger = logging.getLogger(__name__)

MARKER = "SYNTHETIC.json"


def read_marker(root: Path) -> dict | None:
    """The marker of a generated set at ``root``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(root) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(root: Path, marker: dict, classes: Sequence[str], per_class: int) -> bool:
    """Whether ``root`` holds the set ``marker`` describes, ``per_class`` images per class."""
    root = Path(root)
    if read_marker(root) != marker:
        return False
    for cls in classes:
        folder = root / cls
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != per_class:
            return False
    return True


def write_image_set(
    root: Path,
    *,
    classes: Sequence[str],
    per_class: int,
    render: Callable[[int, int], bytes],
    marker: dict,
    progress: bool = True,
) -> Path:
    """Write ``render(class_index, index)`` for every class and index to ``root``, atomically.

    An existing generated set at ``root`` is replaced; any other non-empty folder there is left
    alone and raises :class:`FileExistsError`.
    """
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
            total=per_class * len(classes),
            desc=root.name,
            unit="img",
            disable=None if progress else True,  # None: a bar on terminals, silence in logs
        ) as bar:
            for class_index, cls in enumerate(classes):
                folder = tmp / cls
                folder.mkdir()
                for index in range(per_class):
                    (folder / f"{index:05d}.jpg").write_bytes(render(class_index, index))
                    bar.update(1)
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        keep = None if existed else (marker, classes, per_class)
        _swap_into_place(tmp, root, keep)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "generated %d images in %s in %.1f s",
        per_class * len(classes),
        root,
        time.perf_counter() - start,
    )
    return root


def _swap_into_place(tmp: Path, root: Path, keep: tuple[dict, Sequence[str], int] | None) -> None:
    """Rename ``tmp`` onto ``root``; a previous generated set there is moved aside first.

    ``keep=(marker, classes, per_class)``: ``root`` did not exist when we started, so if it now
    holds that complete set, another process just wrote the same (deterministic) set: keep
    theirs rather than pull it from under a reader.
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
