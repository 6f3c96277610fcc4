"""Outlier-exposure ingredients: the loss (train.ood.exposure), the scenes and the training photos.

Protects: each loss term is the formula in the module doc and vanishes when its margin holds;
scenes are deterministic RGB images of the canvas size; training photos come from scikit-image's
installed files, never from the evaluation's packages and never over the network.
"""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch

from train.ood import scenes
from train.ood.exposure import ExposureLoss
from train.ood.sets import bundled_photos, training_negatives
from train.ood.training_photos import PHOTOS, data_dir, training_faces, training_photos


def test_uniform_term_is_log_classes_at_equal_logits_and_energy_terms_vanish_past_margins():
    loss = ExposureLoss(uniform_weight=1.0, energy_weight=0.1, m_in=-5.0, m_out=-1.0)
    notes = torch.tensor([[10.0, 0.0], [0.0, 9.0]])  # energies ~ -10, -9: below m_in
    negatives = torch.tensor([[-8.0, -8.0]])  # uniform softmax, energy 8 - log 2 > m_out
    assert float(loss(notes, negatives)) == pytest.approx(math.log(2), abs=1e-6)


def test_energy_margins_are_squared_hinges():
    loss = ExposureLoss(uniform_weight=0.0, energy_weight=1.0, m_in=-5.0, m_out=-1.0)
    notes = torch.tensor([[0.0, 0.0]])  # energy -log 2: 5 - log 2 above m_in
    negatives = torch.tensor([[2.0, 2.0]])  # energy -2 - log 2: 1 + log 2 below m_out
    expected = (5 - math.log(2)) ** 2 + (1 + math.log(2)) ** 2
    assert float(loss(notes, negatives)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", sorted(scenes.MAKERS))
def test_scenes_are_deterministic_rgb_images_of_the_canvas(kind):
    make = scenes.MAKERS[kind]
    a, b = make(np.random.default_rng(3)), make(np.random.default_rng(3))
    assert a.mode == "RGB" and a.size == scenes.CANVAS
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.asarray(a).std() > 1.0  # a scene, not a flat fill


def test_training_photos_are_scikit_image_files_not_the_evaluations():
    folder = data_dir()
    if folder is None:
        pytest.skip("scikit-image is not installed (pyproject lists it): no training photos")
    assert all((folder / name).is_file() for name in PHOTOS)  # shipped inside the wheel
    assert len(training_photos()) == len(PHOTOS) and len(training_faces()) == 100
    evaluation = {p.resolve() for p in bundled_photos()}
    assert not any((folder / name).resolve() in evaluation for name in PHOTOS)


def test_training_negatives_need_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    negatives = training_negatives(per_kind=2)
    kinds = 11 + (4 + 1 if data_dir() is not None else 0)  # photo kind counts 4x, faces 1x
    assert negatives.shape == (2 * kinds, 3, 32, 32) and negatives.dtype == torch.uint8
