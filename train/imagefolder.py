"""Find and check an ImageFolder-layout data set (``DIR/<class>/<image>``) before any decoding.

Each problem a user can make with a data folder gets a :class:`DataError` whose one-line
message names the folder or file and says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """The data folder or one of its files cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class FileList:
    """The files of a data set: paths relative to ``root`` (posix), their labels, class names."""

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]

    def by_class(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {i: [] for i in range(len(self.class_names))}
        for path, label in zip(self.paths, self.labels, strict=True):
            out[label].append(path)
        return out

    def only(self, keep: list[str]) -> FileList:
        """The same data set restricted to ``keep`` (e.g. the images that decoded)."""
        wanted = set(keep)
        pairs = [(p, y) for p, y in zip(self.paths, self.labels, strict=True) if p in wanted]
        return FileList(
            self.root, self.class_names, tuple(p for p, _ in pairs), tuple(y for _, y in pairs)
        )


def _class_sort_key(name: str) -> tuple[int, int, str]:
    # "1" < "100" < "20" alphabetically is fine, but numeric names read better numerically;
    # RMB's classes "1" and "100" get the same order either way. The name breaks ties ("01"
    # and "1") so that labels never depend on directory listing order, and only ASCII digits
    # count as numbers ("²".isdigit() is True, but int("²") fails).
    numeric = name.isascii() and name.isdigit()
    return (0, int(name), name) if numeric else (1, 0, name)


def scan_image_folder(root: str | Path, expected: Sequence[str] | None = None) -> FileList:
    """List the images of an ImageFolder tree, checking its shape (not the file contents).

    ``expected``: the class names a checkpoint was trained on, which the tree must have.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder not found: {root} (pass --data DIR with DIR/<class>/*.jpg)")
    if not root.is_dir():
        raise DataError(f"--data must be a folder, got a file: {root}")
    classes = sorted(
        (d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=_class_sort_key,
    )
    if not classes:
        raise DataError(
            f"no class folders in {root}: expected one sub-folder per class, e.g. {root}/1/*.jpg"
        )
    if len(classes) < 2:
        raise DataError(
            f"only one class folder ({classes[0]!r}) in {root}: a classifier needs at least two"
        )
    if expected is not None and classes != list(expected):
        raise DataError(
            f"{root} has classes {classes}, the checkpoint {list(expected)}: pass a folder with "
            "the same class folders"
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(
            f for f in (root / name).iterdir() if f.is_file() and not f.name.startswith(".")
        )
        if not files:
            raise DataError(f"class folder {root / name} is empty: add images or remove it")
        paths += [f.relative_to(root).as_posix() for f in files]
        labels += [label] * len(files)
    return FileList(root, tuple(classes), tuple(paths), tuple(labels))
