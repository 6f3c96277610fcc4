"""Protects the recorded split: deterministic, stratified 8:1:1, disjoint, and never empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.imagefolder import DataError, FileList
from train.split import SPLITS, stratified_split


def _files(*counts: int) -> FileList:
    paths, labels = [], []
    for label, count in enumerate(counts):
        paths += [f"{label}/{i:04d}.jpg" for i in range(count)]
        labels += [label] * count
    return FileList(
        Path("/data"), tuple(str(c) for c in range(len(counts))), tuple(paths), tuple(labels)
    )


def _per_class(split: dict[str, list[str]], label: int) -> tuple[int, int, int]:
    return tuple(sum(p.startswith(f"{label}/") for p in split[name]) for name in SPLITS)


def test_same_seed_same_split_other_seed_other_split():
    files = _files(100, 100)
    a = stratified_split(files, seed=1)
    assert stratified_split(files, seed=1) == a
    b = stratified_split(files, seed=2)
    assert b != a
    for name in SPLITS:
        assert set(b[name]) != set(a[name])


def test_stratified_80_10_10_disjoint_and_complete():
    files = _files(100, 100)
    split = stratified_split(files, seed=1)
    assert list(split) == list(SPLITS)
    for label in (0, 1):
        assert _per_class(split, label) == (80, 10, 10)
    everything = [p for name in SPLITS for p in split[name]]
    assert len(everything) == len(set(everything)) == 200
    assert set(everything) == set(files.paths)


def test_split_does_not_depend_on_listing_order():
    files = _files(30, 20)
    shuffled = FileList(files.root, files.class_names, files.paths[::-1], files.labels[::-1])
    a, b = stratified_split(files, seed=5), stratified_split(shuffled, seed=5)
    assert {k: sorted(v) for k, v in a.items()} == {k: sorted(v) for k, v in b.items()}


def test_split_is_shuffled_not_the_sorted_head():
    split = stratified_split(_files(100, 100), seed=1)
    assert split["train"][:80] != [f"0/{i:04d}.jpg" for i in range(80)]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (3, (1, 1, 1)),
        (4, (2, 1, 1)),
        (5, (3, 1, 1)),
        (10, (8, 1, 1)),
        (19, (15, 2, 2)),  # the course's cut points int(0.8 n) and int(0.9 n)
        (101, (80, 10, 11)),
    ],
)
def test_class_sizes_give_non_empty_valid_and_test(count, expected):
    split = stratified_split(_files(count, 7), seed=3)
    assert _per_class(split, 0) == expected
    assert sum(_per_class(split, 1)) == 7
    assert all(split[name] for name in SPLITS)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_fewer_than_three_images_in_a_class_is_a_data_error(count):
    with pytest.raises(DataError, match=rf"class '1' has {count} image") as e:
        stratified_split(_files(10, count), seed=1)
    assert "\n" not in str(e.value)
