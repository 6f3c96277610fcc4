"""Deterministic, stratified train/valid/test split, recorded so later tools reuse it exactly."""

from __future__ import annotations

import random

from train.imagefolder import DataError, FileList
from train.names import SPLIT_NAMES as SPLITS

DEFAULT_RATIOS = (0.8, 0.1, 0.1)


def _counts(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    # The course's cut points int(n*0.8) and int(n*0.9); valid and test never left empty.
    n_train = int(n * ratios[0])
    n_valid = max(1, int(n * (ratios[0] + ratios[1])) - n_train)
    n_test = max(1, n - n_train - n_valid)
    return n - n_valid - n_test, n_valid, n_test


def stratified_split(
    files: FileList, seed: int, ratios: tuple[float, float, float] = DEFAULT_RATIOS
) -> dict[str, list[str]]:
    """Split each class by ``ratios`` after shuffling its sorted file names with ``seed``.

    Sorting first makes the split independent of directory listing order, so the same folder
    and seed give the same split on every machine.
    """
    split: dict[str, list[str]] = {name: [] for name in SPLITS}
    rng = random.Random(seed)
    for label, paths in files.by_class().items():
        if len(paths) < 3:
            raise DataError(
                f"class {files.class_names[label]!r} has {len(paths)} image(s); "
                "an 8:1:1 train/valid/test split needs at least 3 per class"
            )
        shuffled = sorted(paths)
        rng.shuffle(shuffled)
        n_train, n_valid, _ = _counts(len(shuffled), ratios)
        split["train"] += shuffled[:n_train]
        split["valid"] += shuffled[n_train : n_train + n_valid]
        split["test"] += shuffled[n_train + n_valid :]
    return split
