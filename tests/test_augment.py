"""The product's training augmentation (train.augment): what each step does and does not do.

Protects: neutral settings leave a batch unchanged (so each step is exactly the transform named);
colour jitter keeps hue (red vs olive is the 5th series' cue); grayscale hits about p of the
images; same generator state, same batch; unknown names are a ValueError.
"""

from __future__ import annotations

import pytest
import torch

from train.augment import (
    PRODUCT_JITTER,
    Jitter,
    augment_for,
    colour_jitter,
    product_batch,
    random_resized_crop,
)
from train.preprocess import MEAN, STD, normalize
from train.transforms import train_batch


def _batch(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed))


def test_a_crop_of_zoom_one_is_the_identity():
    x = _batch().float()
    out = random_resized_crop(x, (1.0, 1.0), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-3, rtol=0)


def test_neutral_colour_jitter_is_the_identity():
    x = _batch().float()
    neutral = Jitter(brightness=(1.0, 1.0), contrast=(1.0, 1.0), saturation=(1.0, 1.0))
    out = colour_jitter(x, neutral, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-3, rtol=0)


def test_colour_jitter_keeps_a_reds_hue():
    red = torch.zeros(8, 3, 32, 32)
    red[:, 0], red[:, 1], red[:, 2] = 180.0, 40.0, 50.0
    out = colour_jitter(red, PRODUCT_JITTER, torch.Generator().manual_seed(1))
    r, g, b = out[:, 0].mean(), out[:, 1].mean(), out[:, 2].mean()
    assert r > g and r > b  # still red, never green or olive


def test_grayscale_hits_about_p_of_the_images():
    x = _batch(n=2000)
    ones = (1.0, 1.0)
    only_grey = Jitter(zoom=ones, brightness=ones, contrast=ones, saturation=ones, grayscale_p=0.1)
    out = product_batch(x, torch.Generator().manual_seed(0), MEAN, STD, only_grey)
    pixels = out * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    grey = ((pixels[:, 0] - pixels[:, 1]).abs().amax(dim=(1, 2)) < 1e-4).double().mean()
    assert abs(float(grey) - 0.1) < 0.03


def test_same_generator_state_same_batch_and_normalised_output():
    x = _batch()
    a = product_batch(x, torch.Generator().manual_seed(5), MEAN, STD)
    b = product_batch(x, torch.Generator().manual_seed(5), MEAN, STD)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert a.dtype == torch.float32 and a.shape == x.shape
    lo = normalize(torch.zeros(1, 3, 1, 1), MEAN, STD)
    hi = normalize(torch.full((1, 3, 1, 1), 255.0), MEAN, STD)
    assert bool((a >= lo - 1e-5).all() and (a <= hi + 1e-5).all())


def test_augment_for_names_the_choices():
    assert augment_for("course") is train_batch
    assert augment_for("product") is product_batch
    with pytest.raises(ValueError, match="product, course"):
        augment_for("heavy")
