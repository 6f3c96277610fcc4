"""Atomic file writes: a crash at any moment leaves either the old file or the complete new one.

The bytes go to a temporary file in the target's own folder (so the final rename stays on one
file system, where POSIX makes ``rename`` atomic), are fsynced, and only then moved onto the
target with ``os.replace``; the folder is fsynced too so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "remove_stale_temps"]


_TOKEN_BYTES = 6


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds it replaces ``path``.

    Write the file to the yielded path (``torch.save(obj, tmp)``, ``onnx.save(model, tmp)``).
    If the block raises, the temporary file is removed and ``path`` is left as it was. The
    parent folder must exist: a missing folder is usually a typo, so it is not created.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {target.parent} does not exist")
    tmp = target.parent / f".{target.name}.{secrets.token_hex(_TOKEN_BYTES)}.tmp"
    # Created by us with O_EXCL and mode 0o666, so the final file gets the usual umask
    # permissions (mkstemp's 0o600 would survive the rename).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer of ``path`` left behind; return them.

    Only names :func:`atomic_path` gives temps of this very target (``.<name>.<12 hex>.tmp``)
    match, so other files in the folder are never touched. Call it when no other process is
    writing ``path`` (e.g. when a training run starts).
    """
    target = Path(path)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{{2 * _TOKEN_BYTES}}}\.tmp")
    if not target.parent.is_dir():
        return []
    stale = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open folders; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
