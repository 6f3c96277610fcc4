"""Tests for train.synthetic: determinism, layout, caching, atomic writes, colours, series, OOD."""

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
    NEAR_OOD_CLASSES,
    VERSION,
    ensure_near_ood,
    ensure_synthetic,
    generate_synthetic,
    render_jpeg,
    render_near_ood_jpeg,
)
from train.synthetic.designs import choose_design, designs_for
from train.synthetic.render import draw_note

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
    assert marker["series"] == "all"
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
        ({"series": "6"}, "series"),
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
    assert first == tmp_path / f"synthetic-v{VERSION}-seriesall-seed3-n{PER_CLASS}"
    before = _stats(first)
    second = ensure_synthetic(tmp_path, seed=3, per_class=PER_CLASS, progress=False)
    assert second == first
    assert _stats(second) == before  # same inodes and mtimes: nothing was rewritten


def test_ensure_keys_the_cache_on_seed_size_and_series(tmp_path):
    a = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    b = ensure_synthetic(tmp_path, seed=1, per_class=PER_CLASS, progress=False)
    c = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS + 1, progress=False)
    d = ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, series="5", progress=False)
    assert len({a, b, c, d}) == 4
    assert len(list((c / "1").glob("*.jpg"))) == PER_CLASS + 1
    assert json.loads((d / MARKER).read_text())["series"] == "5"
    assert _files(d) != _files(a)


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

    def failing_render(seed, class_index, index, series):
        calls.append(index)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return render_jpeg(seed, class_index, index, series)

    monkeypatch.setattr(synthetic, "render_jpeg", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_synthetic(tmp_path, seed=0, per_class=PER_CLASS, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_keeps_the_previous_set(tmp_path, monkeypatch):
    root = generate_synthetic(tmp_path / "set", seed=0, per_class=2, progress=False)
    before = _files(root)

    def failing_render(seed, class_index, index, series):
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


# Colour: each series' notes in their own colours, like the real notes.


def _mean_hue_degrees(images: list[Image.Image]) -> float:
    """Circular mean hue of all pixels, weighted by saturation so grey paper counts little."""
    sin = cos = 0.0
    for im in images:
        hsv = np.asarray(im.convert("HSV"), dtype=np.float64)
        angle = hsv[..., 0] / 256.0 * 2.0 * np.pi
        weight = hsv[..., 1] / 255.0
        sin += float((weight * np.sin(angle)).sum())
        cos += float((weight * np.cos(angle)).sum())
    return float(np.degrees(np.arctan2(sin, cos)) % 360.0)


# (series, value) -> the hue range its notes must average in, degrees: 4th series 1 yuan
# red/pink, 5 brown, 10 blue-black, 100 blue-grey; 5th series 1 olive/yellow-green, 5 purple,
# 10 blue, 20 brown, 50 green, 100 red.
_HUES = {
    (4, "1"): (-30.0, 30.0),
    (4, "5"): (15.0, 50.0),
    (4, "10"): (200.0, 250.0),
    (4, "100"): (190.0, 250.0),
    (5, "1"): (50.0, 90.0),
    (5, "5"): (260.0, 320.0),
    (5, "10"): (200.0, 240.0),
    (5, "20"): (15.0, 45.0),
    (5, "50"): (120.0, 170.0),
    (5, "100"): (-20.0, 15.0),
}


@pytest.mark.parametrize(("series", "value"), sorted(_HUES))
def test_note_colours(series, value):
    # The printed note itself (both faces, every edition, 4 draws each), before photography:
    # backgrounds (wood, rooms, hands) would dominate a hue average of whole photos.
    faces = [d for d in designs_for(value, str(series))]
    notes = [draw_note(d, np.random.default_rng(k)) for d in faces for k in range(4)]
    hue = _mean_hue_degrees(notes)
    lo, hi = _HUES[(series, value)]
    centred = hue - 360.0 if hue > 180.0 and lo < 0 else hue
    assert lo <= centred <= hi, f"series {series} {value}-yuan mean hue {hue:.0f}° not in {lo, hi}"


# Which notes: both series, both faces, every edition.


def test_every_note_has_both_faces_and_draws():
    for series in ("4", "5"):
        for value in CLASSES:
            found = designs_for(value, series)
            assert {d.face for d in found} == {"front", "back"}, (series, value)
            assert {d.series for d in found} == {int(series)}
    for value in ("1", "5", "10", "20", "50", "100"):
        for design in designs_for(value, "all"):
            rng = np.random.default_rng(0)
            note = np.asarray(draw_note(design, rng), dtype=np.float64)
            assert note.shape == (120, 256, 3), design.name
            assert note.std() > 10.0, f"{design.name} is nearly flat"


def test_fifth_series_100_editions():
    editions = {d.edition for d in designs_for("100", "5")}
    assert editions == {"1999", "2005", "2015"}
    assert {d.edition for d in designs_for("1", "5")} == {"1999", "2019"}


def test_series_all_draws_both_series_and_faces():
    counts: dict[tuple[int, str], int] = {}
    rng = np.random.default_rng(0)
    for _ in range(400):
        d = choose_design("100", "all", rng)
        counts[(d.series, d.face)] = counts.get((d.series, d.face), 0) + 1
    assert set(counts) == {(4, "front"), (4, "back"), (5, "front"), (5, "back")}
    fronts = counts[(4, "front")] + counts[(5, "front")]
    assert 0.6 <= fronts / 400 <= 0.8  # FRONT_SHARE = 0.7
    today = counts[(5, "front")] + counts[(5, "back")]
    assert 0.58 <= today / 400 <= 0.75  # TODAY_SHARE = 2/3
    with pytest.raises(ValueError, match="series"):
        designs_for("1", "6")
    with pytest.raises(ValueError, match="no 20-yuan"):
        designs_for("20", "4")


def test_the_series_picks_different_images():
    assert render_jpeg(0, 1, 0, "4") != render_jpeg(0, 1, 0, "5")
    assert render_jpeg(0, 1, 0) == render_jpeg(0, 1, 0, "all")


# Near-OOD: other denominations, for out-of-distribution evaluation.


@pytest.fixture(scope="module")
def near_ood(tmp_path_factory) -> Path:
    return ensure_near_ood(tmp_path_factory.mktemp("near"), per_class=4, seed=7)


def test_near_ood_is_an_image_folder_of_other_denominations(near_ood):
    dataset = ImageFolder(str(near_ood))
    assert dataset.classes == ["10", "20", "5", "50"] == list(NEAR_OOD_CLASSES)
    assert len(dataset) == 16
    for path, _ in dataset.samples:
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", IMAGE_SIZE)
    marker = json.loads((near_ood / MARKER).read_text())
    assert (marker["kind"], marker["seed"], marker["per_class"]) == ("near-ood", 7, 4)


def test_near_ood_is_deterministic_and_cached(near_ood, tmp_path):
    before = _stats(near_ood)
    assert ensure_near_ood(near_ood.parent, per_class=4, seed=7) == near_ood
    assert _stats(near_ood) == before
    again = ensure_near_ood(tmp_path, per_class=4, seed=7)
    assert again.name == near_ood.name
    assert _files(again) == _files(near_ood)
    other = ensure_near_ood(tmp_path, per_class=4, seed=8)
    assert _files(other)["5/00000.jpg"] != _files(again)["5/00000.jpg"]


def test_near_ood_default_root_is_under_artifacts_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = ensure_near_ood(per_class=1, seed=0)
    assert root.parent == Path("artifacts/data")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["10", "20", "5", "50"]


def test_near_ood_never_repeats_a_training_image():
    assert render_near_ood_jpeg(0, 0, 0) not in {render_jpeg(0, c, 0) for c in range(2)}


@pytest.mark.parametrize("bad", [{"per_class": 0}, {"seed": -1}])
def test_near_ood_rejects_bad_arguments(tmp_path, bad):
    with pytest.raises(ValueError):
        ensure_near_ood(tmp_path, **bad)
    assert list(tmp_path.iterdir()) == []
