"""Atomic writes for training artifacts: bnfold's mechanism, plus creating missing folders.

A crash at any moment leaves either the old file or the complete new one (see
:mod:`bnfold.atomic`). Training writes under ``artifacts/`` by default, which a fresh checkout
does not have yet, so the parent folder is created here first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bnfold import atomic


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds it replaces ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """``open(path, mode)`` that only replaces ``path`` once the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
