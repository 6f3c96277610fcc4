"""Atomic file writes: a crash at any moment leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto it.

    The temp file lives in the same folder so that the final ``os.replace`` is a rename on one
    file system, which POSIX guarantees to be atomic.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(target)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _create_temp(target: Path) -> Path:
    """An empty, new, uniquely named file next to ``target``, with the umask's usual mode.

    ``tempfile.mkstemp`` would create it 0600, and the rename would then leave every
    checkpoint and report readable by its owner only, unlike a plain ``open(path, "w")``.
    """
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {target}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """``open(path, mode)`` that only replaces ``path`` once the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
