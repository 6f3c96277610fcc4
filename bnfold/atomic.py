"""Atomic file writes: a crash at any moment leaves either the old file or the complete new one.

The bytes go to a temporary file in the target's own folder (so the final rename stays on one
file system, where POSIX makes ``rename`` atomic), are fsynced, and only then moved onto the
target with ``os.replace``; the folder is fsynced too so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes"]


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
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
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
