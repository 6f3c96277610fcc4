"""Protects decode-once loading: uint8 (N, 3, 32, 32), bad files named or skipped and counted."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from train.dataset import ImageSet, load_images, subset
from train.imagefolder import DataError, scan_image_folder
from train.preprocess import open_image, to_uint8_tensor


def _load(root, **kwargs) -> ImageSet:
    files = scan_image_folder(root)
    return load_images(files, list(files.paths), **kwargs)


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_decodes_to_uint8_nchw_like_the_shared_preprocessing(tiny_image_folder, fmt):
    root = tiny_image_folder(per_class=4, fmt=fmt)
    data = _load(root)
    assert data.images.dtype == torch.uint8
    assert data.images.shape == (8, 3, 32, 32)
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == [0] * 4 + [1] * 4
    assert len(data) == 8
    for i in (0, 7):
        expected = to_uint8_tensor(open_image(root / data.paths[i]))
        assert torch.equal(data.images[i], expected)
    # reddish "1" and bluish "100": the decoded colours must follow the files
    red_minus_blue = data.images[:, 0].float().mean((1, 2)) - data.images[:, 2].float().mean((1, 2))
    assert (red_minus_blue[:4] > 50).all() and (red_minus_blue[4:] < -50).all()


def test_custom_size(tiny_image_folder):
    data = _load(tiny_image_folder(per_class=3), size=(16, 24))
    assert data.images.shape == (6, 3, 16, 24)


def _add_bad_files(root) -> dict[str, bytes]:
    good = (root / "1" / "1_000.jpg").read_bytes()
    bad = {
        "1/notes.txt": b"not an image at all\n",
        "100/corrupt.jpg": good[: len(good) // 3],  # a truncated JPEG
        "100/empty.png": b"",
    }
    for rel, data in bad.items():
        (root / rel).write_bytes(data)
    return bad


@pytest.mark.parametrize("bad", ["1/notes.txt", "100/corrupt.jpg", "100/empty.png"])
def test_a_bad_file_is_a_data_error_naming_it(tiny_image_folder, bad):
    root = tiny_image_folder(per_class=3)
    contents = _add_bad_files(root)
    files = scan_image_folder(root)
    good = [p for p in files.paths if p not in contents]
    with pytest.raises(DataError) as e:
        load_images(files, [*good, bad])
    message = str(e.value)
    assert str(root / bad) in message
    assert "--skip-bad-images" in message
    assert "\n" not in message


def test_skip_bad_drops_and_counts_them(tiny_image_folder, caplog):
    root = tiny_image_folder(per_class=3)
    bad = _add_bad_files(root)
    with caplog.at_level(logging.WARNING, logger="train.dataset"):
        data = _load(root, skip_bad=True)
    assert len(data) == 6
    assert data.images.shape == (6, 3, 32, 32)
    assert not set(data.paths) & set(bad)
    assert data.labels.tolist() == [0] * 3 + [1] * 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3 unreadable file(s)" in warnings[0]


def test_no_readable_image_at_all(tmp_path):
    for rel in ("1/a.jpg", "2/b.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"junk")
    with pytest.raises(DataError, match="no readable images among 2 file"):
        _load(tmp_path, skip_bad=True)


def test_a_path_outside_the_folder_is_refused(tiny_image_folder):
    root = tiny_image_folder(per_class=3)
    files = scan_image_folder(root)
    with pytest.raises(DataError, match="listed in the split but not in the data folder"):
        load_images(files, [files.paths[0], "1/gone.jpg"])


def test_a_large_photo_is_decoded_in_draft_mode_to_32x32(tmp_path):
    for cls in ("1", "100"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (640, 320), (200, 30, 30) if cls == "1" else (20, 40, 220)).save(
            tmp_path / cls / "big.jpg"
        )
    data = _load(tmp_path)
    assert data.images.shape == (2, 3, 32, 32)
    torch.testing.assert_close(
        data.images[0].float().mean((1, 2)), torch.tensor([200.0, 30.0, 30.0]), atol=3, rtol=0
    )


def test_subset_keeps_the_given_order_and_refuses_unknown_paths(tiny_image_folder):
    data = _load(tiny_image_folder(per_class=3))
    picked = subset(data, [data.paths[4], data.paths[1]])
    assert picked.paths == [data.paths[4], data.paths[1]]
    assert torch.equal(picked.images, data.images[[4, 1]])
    assert picked.labels.tolist() == [1, 0]
    with pytest.raises(DataError, match="was not decoded"):
        subset(data, ["1/missing.jpg"])


def test_to_moves_images_and_labels_but_keeps_paths(tiny_image_folder):
    data = _load(tiny_image_folder(per_class=3))
    moved = data.to("cpu")
    assert torch.equal(moved.images, data.images)
    assert torch.equal(moved.labels, data.labels)
    assert moved.paths == data.paths
