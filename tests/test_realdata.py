"""Protects the headline on the real RMB photos: all decode, 8:1:1 per class, BN-LeNet >= 95%."""

from __future__ import annotations

import pytest
import torch

from train.dataset import load_images
from train.imagefolder import scan_image_folder
from train.recipe import COURSE
from train.split import SPLITS, stratified_split
from train.trainer import TrainConfig, fit

pytestmark = pytest.mark.realdata


def test_all_200_photos_decode_and_split_8_1_1_per_class(rmb_data_dir):
    files = scan_image_folder(rmb_data_dir)
    assert files.class_names == ("1", "100")
    assert [len(v) for v in files.by_class().values()] == [100, 100]
    data = load_images(files, list(files.paths))
    assert data.images.shape == (200, 3, 32, 32)
    assert data.images.dtype == torch.uint8
    assert data.images.float().std().item() > 10, "photos should not decode to flat images"
    split = stratified_split(files, seed=1)
    for cls in files.class_names:
        counts = [sum(p.startswith(f"{cls}/") for p in split[name]) for name in SPLITS]
        assert counts == [80, 10, 10], cls


@pytest.mark.slow
def test_bn_lenet_with_the_course_recipe_reaches_95_percent_valid(rmb_data_dir, tmp_path):
    cfg = TrainConfig(**COURSE, data=str(rmb_data_dir), out=str(tmp_path / "bn-lenet.pt"))
    assert (cfg.model, cfg.epochs, cfg.seed) == ("bn-lenet", 10, 1)
    ckpt = fit(cfg)
    history = ckpt.metrics["history"]
    assert len(history) == 10
    assert history[-1]["valid_acc"] >= 0.95, history[-1]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
