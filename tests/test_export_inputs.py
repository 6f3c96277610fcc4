"""export.inputs: parity runs on the recorded valid/test images, normalised as evaluation did."""

from __future__ import annotations

import logging

import pytest
import torch
from factories import checkpoint

from export.errors import ExportError
from export.inputs import data_inputs
from train.dataset import load_images
from train.imagefolder import scan_image_folder
from train.preprocess import normalize
from train.split import stratified_split

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture
def folder_and_ckpt(tiny_image_folder):
    root = tiny_image_folder(per_class=5)
    split = stratified_split(scan_image_folder(root), seed=0)
    return root, checkpoint(data_dir=str(root), split=split, mean=MEAN, std=STD)


def test_valid_and_test_images_normalised_with_the_checkpoint_statistics(folder_and_ckpt):
    root, ckpt = folder_and_ckpt
    got = data_inputs(ckpt)
    assert [i.name for i in got] == ["valid images", "test images"]
    files = scan_image_folder(root)
    for item, split in zip(got, ("valid", "test"), strict=True):
        decoded = load_images(files, ckpt.split[split])
        expected = normalize(decoded.images, tuple(MEAN), tuple(STD))
        torch.testing.assert_close(item.images, expected, atol=0, rtol=0)


def test_explicit_data_overrides_the_recorded_folder(folder_and_ckpt):
    root, ckpt = folder_and_ckpt
    moved = ckpt.replace(data_dir=str(root.parent / "gone"))
    assert len(data_inputs(moved, str(root))) == 2


def test_a_recorded_folder_that_is_gone_means_random_inputs_only(folder_and_ckpt, caplog):
    root, ckpt = folder_and_ckpt
    with caplog.at_level(logging.WARNING):
        assert data_inputs(ckpt.replace(data_dir=str(root.parent / "gone"))) == []
    assert "random inputs only" in caplog.text


def test_explicit_data_that_cannot_supply_the_split_is_an_error(folder_and_ckpt, tmp_path):
    root, ckpt = folder_and_ckpt
    with pytest.raises(ExportError, match="not found"):
        data_inputs(ckpt, str(tmp_path / "nowhere"))
    other = ckpt.replace(split={"valid": ["1/not_there.jpg"], "test": []})
    with pytest.raises(ExportError, match="valid/test images"):
        data_inputs(other, str(root))
