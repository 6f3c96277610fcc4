"""Protects preprocessing and augmentation against torchvision's transforms, the course's
reference (decode paths and their agreement: tests/test_preprocess.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from train.preprocess import INPUT_SIZE, MEAN, STD, normalize, open_image, to_uint8_tensor
from train.transforms import (
    CROP_PADDING,
    GRAYSCALE_P,
    random_crop,
    random_grayscale,
    train_batch,
)


def _random_uint8(n: int, seed: int = 0, size: tuple[int, int] = (32, 32)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, *size), generator=g, dtype=torch.uint8)


def _photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients, a few shapes and mild noise: what JPEG draft decoding meets in photos."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 90 * np.sin(x / width * 3 * np.pi) * np.cos(y / height * 2 * np.pi)
    g = 60 + 150 * x / width
    b = 200 - 140 * y / height
    pixels = np.stack([r, g, b], axis=-1)
    for _ in range(6):
        cx, cy = rng.integers(0, width), rng.integers(0, height)
        radius = rng.integers(height // 10, height // 3)
        disc = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
        pixels[disc] = rng.integers(0, 256, size=3)
    stripes = (np.sin(x / 3.0) * np.sin(y / 5.0) > 0.3) & (x > width // 2)  # fine print
    pixels[stripes] *= 0.6
    pixels += rng.normal(0.0, 6.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def test_constants_are_the_courses():
    assert INPUT_SIZE == (32, 32)
    assert MEAN == (0.485, 0.456, 0.406)
    assert STD == (0.229, 0.224, 0.225)
    assert CROP_PADDING == 4
    assert GRAYSCALE_P == 0.8


@pytest.mark.parametrize("seed", [0, 1])
def test_normalize_matches_torchvision_to_tensor_then_normalize(seed):
    images = _random_uint8(3, seed)
    reference_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    reference = torch.stack(
        [reference_tf(Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB")) for img in images]
    )
    out = normalize(images, MEAN, STD)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, atol=1e-6, rtol=0)


def test_normalize_accepts_0_255_floats_and_custom_statistics():
    images = _random_uint8(2, 5)
    as_float = normalize(images.float(), MEAN, STD)
    torch.testing.assert_close(as_float, normalize(images, MEAN, STD), atol=0, rtol=0)
    out = normalize(images, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    torch.testing.assert_close(out, images.float() / 127.5 - 1.0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_random_crop_is_a_window_of_the_zero_padded_image(padding):
    images = _random_uint8(16, 2)
    g = torch.Generator().manual_seed(7)
    out = random_crop(images, padding, g)
    assert out.shape == images.shape
    assert out.dtype == torch.uint8
    offsets = 2 * padding + 1
    seen = set()
    for img, crop in zip(images, out, strict=True):
        padded = TF.pad(img, [padding] * 4, fill=0)  # torchvision's RandomCrop(padding=...) pad
        matches = [
            (top, left)
            for top in range(offsets)
            for left in range(offsets)
            if torch.equal(TF.crop(padded, top, left, 32, 32), crop)
        ]
        assert matches, "the crop is not a 32x32 window of the zero-padded image"
        seen.update(matches)
    if padding:
        assert len(seen) > 1, "every image got the same offset"


def test_random_crop_offsets_follow_the_generator():
    # The offsets are drawn as randint(0, 2p+1) for rows then columns, per image.
    images = _random_uint8(5, 3)
    out = random_crop(images, 4, torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    tops = torch.randint(0, 9, (5,), generator=g)
    lefts = torch.randint(0, 9, (5,), generator=g)
    for i in range(5):
        padded = TF.pad(images[i], [4, 4, 4, 4], fill=0)
        expected = TF.crop(padded, int(tops[i]), int(lefts[i]), 32, 32)
        assert torch.equal(out[i], expected)


def test_random_grayscale_puts_luma_in_all_channels_of_the_chosen():
    images = _random_uint8(64, 4).float() / 255.0
    out = random_grayscale(images, 0.5, torch.Generator().manual_seed(0))
    luma = TF.rgb_to_grayscale(images, num_output_channels=3)
    chosen = [i for i in range(64) if not torch.equal(out[i], images[i])]
    assert 10 < len(chosen) < 54
    for i in range(64):
        if i in chosen:
            assert torch.equal(out[i, 0], out[i, 1])
            assert torch.equal(out[i, 1], out[i, 2])
            # PIL / ITU-R 601-2 uses 0.299 for red, torchvision 0.2989: 1e-4 * red apart at most,
            # plus float32 rounding (the rtol).
            torch.testing.assert_close(out[i], luma[i], atol=1e-4, rtol=1e-5)
        else:
            assert torch.equal(out[i], images[i])


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_random_grayscale_extremes(p):
    images = _random_uint8(8, 6).float()
    out = random_grayscale(images, p, torch.Generator().manual_seed(0))
    if p == 0.0:
        assert torch.equal(out, images)
    else:
        expected = TF.rgb_to_grayscale(images / 255.0, num_output_channels=3) * 255.0
        torch.testing.assert_close(out, expected, atol=255e-4, rtol=1e-5)


def test_random_grayscale_chooses_about_80_percent():
    n = 4000
    images = torch.zeros(n, 3, 1, 1)
    images[:, 0] = 1.0  # pure red: grey ones are easy to spot
    out = random_grayscale(images, GRAYSCALE_P, torch.Generator().manual_seed(123))
    fraction = (out[:, 1, 0, 0] > 0).float().mean().item()
    assert fraction == pytest.approx(0.8, abs=0.05)


def test_train_batch_is_crop_then_grayscale_then_normalize():
    images = _random_uint8(8, 9)
    out = train_batch(images, torch.Generator().manual_seed(5), MEAN, STD)
    g = torch.Generator().manual_seed(5)
    expected = normalize(
        random_grayscale(random_crop(images, CROP_PADDING, g).float(), GRAYSCALE_P, g), MEAN, STD
    )
    assert out.shape == (8, 3, 32, 32)
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)


def test_train_batch_is_deterministic_for_a_seeded_generator():
    images = _random_uint8(8, 10)
    a = train_batch(images, torch.Generator().manual_seed(42), MEAN, STD)
    b = train_batch(images, torch.Generator().manual_seed(42), MEAN, STD)
    c = train_batch(images, torch.Generator().manual_seed(43), MEAN, STD)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("width", "height", "mode"), [(48, 24, "RGB"), (301, 149, "RGB"), (40, 60, "L")]
)
def test_to_uint8_tensor_matches_torchvision_resize(width, height, mode):
    image = _photo_like(width, height, seed=width).convert(mode)
    out = to_uint8_tensor(image)
    assert out.dtype == torch.uint8
    assert out.shape == (3, 32, 32)
    reference = TF.pil_to_tensor(T.Resize((32, 32))(image.convert("RGB")))
    assert torch.equal(out, reference)


def test_to_uint8_tensor_respects_height_width_order():
    out = to_uint8_tensor(_photo_like(50, 30), size=(20, 40))
    assert out.shape == (3, 20, 40)


def test_open_image_gives_rgb_for_every_mode(tmp_path):
    base = _photo_like(64, 48)
    cases = {
        "rgb.png": base,
        "grey.jpg": base.convert("L"),
        "rgba.png": base.convert("RGBA"),
        "palette.png": base.convert("P"),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
        opened = open_image(tmp_path / name)
        assert opened.mode == "RGB", name
        assert opened.size == (64, 48), name  # small images are not shrunk by draft mode


def test_open_image_draft_mode_stays_close_to_a_full_decode(tmp_path):
    path = tmp_path / "photo.jpg"
    _photo_like(1254, 600, seed=1).save(path, quality=90)
    drafted = open_image(path)
    assert drafted.size[0] < 1254, "draft mode should have decoded at a reduced scale"
    assert min(drafted.size) >= 64, "draft mode must keep at least 2x the input size per side"
    with Image.open(path) as im:
        full = im.convert("RGB")
    a = to_uint8_tensor(drafted).float()
    b = to_uint8_tensor(full).float()
    mean_abs = (a - b).abs().mean().item()
    assert mean_abs <= 3.0, f"draft decode differs by {mean_abs:.2f} levels on average"
