"""Tests for train.synthetic: determinism, ImageFolder layout, caching, atomic writes, colours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from train import synthetic
from train.synthetic import (
    CLASSES,
    IMAGE_SIZE,
    MARKER,
    VERSION,
    ensure_synthetic,
    generate_synthetic,
    render_jpeg,
)

PER_CLASS = 6


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _stats(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file: unchanged only if nothing was rewritten."""
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def seed0(tmp_path_factory) -> Path:
    """One small set shared by the read-only tests."""
    root = tmp_path_factory.mktemp("syn") / "set"
    return generate_synthetic(root, seed=0, per_class=PER_CLASS, progress=False)


# Determinism: a seed names one byte-exact data set.


def test_same_seed_is_byte_identical(seed0, tmp_path):
    again = generate_synthetic(tmp_path / "again", seed=0, per_class=PER_CLASS, progress=False)
    assert _files(again) == _files(seed0)


def test_files_are_the_per_image_renders(seed0):
    # Each file depends only on (seed, class, index), not on generation order or per_class.
    for class_index, cls in enumerate(CLASSES):
        for index in (0, PER_CLASS - 1):
            data = (seed0 / cls / f"{index:05d}.jpg").read_bytes()
            assert data == render_jpeg(0, class_index, index)


def test_different_seeds_differ(seed0, tmp_path):
    other = generate_synthetic(tmp_path / "other", seed=1, per_class=PER_CLASS, progress=False)
    a, b = _files(seed0), _files(other)
    assert a.keys() == b.keys()
    images = [k for k in a if k.endswith(".jpg")]
    assert len(images) == PER_CLASS * len(CLASSES)
    assert all(a[k] != b[k] for k in images)


def test_images_within_a_set_differ(seed0):
    for cls in CLASSES:
        blobs = [p.read_bytes() for p in sorted((seed0 / cls).glob("*.jpg"))]
        assert len(set(blobs)) == len(blobs)


# Layout: what every tool reads as ImageFolder data.


def test_imagefolder_layout(seed0):
    dataset = ImageFolder(str(seed0))
    assert dataset.classes == list(CLASSES)
    assert dataset.class_to_idx == {"1": 0, "100": 1}
    assert len(dataset) == PER_CLASS * len(CLASSES)
    labels = [label for _, label in dataset.samples]
    assert labels.count(0) == labels.count(1) == PER_CLASS
    for path, _ in dataset.samples:
        with Image.open(path) as im:
            assert im.format == "JPEG"
            assert im.mode == "RGB"
            assert im.size == IMAGE_SIZE
            im.load()  # decodes completely


def test_marker_describes_the_set(seed0):
    marker = json.loads((seed0 / MARKER).read_text())
    assert marker["version"] == VERSION
    assert marker["seed"] == 0
    assert marker["per_class"] == PER_CLASS
    assert marker["classes"] == list(CLASSES)
    assert marker["image_size"] == list(IMAGE_SIZE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"per_class": 0}, "per_class"),
        ({"per_class": True}, "per_class"),
    ],
)
def test_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic(tmp_path / "set", progress=False, **kwargs)
    with pytest.raises(ValueError, match=match):
        ensure_synthetic(tmp_path, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


# Cache: the second call reuses the folder; a damaged one is rebuilt.


def test_ensure_reuses_the_cached_set(tmp_path):
    first = ensure_synthetic(tmp_path, seed=3, per_class=PER_CLASS, progress=False)
    assert first == tmp_path / f"synthetic-v{VERSION}-seed3-n{PER_CLASS}"
    before = _stats(first)
    second = ensure_synthetic(tmp_path, seed=3, per_class=PER_CLASS, progress=False)
    assert second == first
    assert _stats(second) == before  # same inodes and mtimes: nothing was rewritten


def test_ensure_keys_the_cache_on_seed_and_size(tmp_path):
    a = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    b = ensure_synthetic(tmp_path, seed=1, per_class=PER_CLASS, progress=False)
    c = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS + 1, progress=False)
    assert len({a, b, c}) == 3
    assert len(list((c / "1").glob("*.jpg"))) == PER_CLASS + 1


@pytest.mark.parametrize("damage", ["delete_image", "edit_marker"])
def test_ensure_regenerates_a_damaged_set(tmp_path, damage):
    root = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    reference = _files(root)
    if damage == "delete_image":
        (root / "100" / "00002.jpg").unlink()
    else:
        (root / MARKER).write_text(json.dumps({"version": VERSION, "seed": 9}))
    again = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    assert again == root
    assert _files(again) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == [root.name]


def test_ensure_never_deletes_a_folder_without_marker(tmp_path):
    # Without its marker the folder cannot be told apart from someone's photos: keep it.
    root = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    (root / MARKER).unlink()
    before = _files(root)
    with pytest.raises(FileExistsError, match="remove it"):
        ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    assert _files(root) == before


# Atomicity: the set appears complete or not at all, and no temp folder is left.


def test_no_temp_folder_left_behind(tmp_path):
    generate_synthetic(tmp_path / "set", seed=0, per_class=2, progress=False)
    generate_synthetic(tmp_path / "set", seed=1, per_class=3, progress=False)  # replaces it
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
    assert json.loads((tmp_path / "set" / MARKER).read_text())["seed"] == 1
    assert len(list((tmp_path / "set").rglob("*.jpg"))) == 3 * len(CLASSES)


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_render(seed, class_index, index):
        calls.append(index)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return render_jpeg(seed, class_index, index)

    monkeypatch.setattr(synthetic, "render_jpeg", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_keeps_the_previous_set(tmp_path, monkeypatch):
    root = generate_synthetic(tmp_path / "set", seed=0, per_class=2, progress=False)
    before = _files(root)

    def failing_render(seed, class_index, index):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "render_jpeg", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_synthetic(root, seed=1, per_class=2, progress=False)
    assert _files(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_refuses_to_replace_a_folder_that_is_not_a_synthetic_set(tmp_path):
    root = tmp_path / "photos"
    (root / "1").mkdir(parents=True)
    (root / "1" / "mine.jpg").write_bytes(b"not generated")
    with pytest.raises(FileExistsError, match="not a synthetic data set"):
        generate_synthetic(root, per_class=2, progress=False)
    assert (root / "1" / "mine.jpg").read_bytes() == b"not generated"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


# Colour: 1 yuan is red/pink, 100 yuan blue-ish, like the real notes.


def _mean_hue_degrees(folder: Path) -> float:
    """Circular mean hue of all pixels, weighted by saturation so grey background counts little."""
    sin = cos = 0.0
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as im:
            hsv = np.asarray(im.convert("HSV"), dtype=np.float64)
        angle = hsv[..., 0] / 256.0 * 2.0 * np.pi
        weight = hsv[..., 1] / 255.0
        sin += float((weight * np.sin(angle)).sum())
        cos += float((weight * np.cos(angle)).sum())
    return float(np.degrees(np.arctan2(sin, cos)) % 360.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_colours(tmp_path, seed):
    # 20 images per class: enough that the per-image hue and white-balance jitter averages out.
    root = generate_synthetic(tmp_path / "set", seed=seed, per_class=20, progress=False)
    hue_1 = _mean_hue_degrees(root / "1")
    hue_100 = _mean_hue_degrees(root / "100")
    red_distance = min(hue_1, 360.0 - hue_1)
    assert red_distance <= 30.0, f"1-yuan mean hue {hue_1:.0f}° is not red/pink"
    assert 170.0 <= hue_100 <= 260.0, f"100-yuan mean hue {hue_100:.0f}° is not blue-ish"
