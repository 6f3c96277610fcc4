"""Preprocessing, defined once for training, evaluation, export and the demo.

Images live as uint8 tensors (N, 3, 32, 32). Training augments them per batch on whatever
device they sit on; every consumer turns them into model input with :func:`normalize`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

INPUT_SIZE = (32, 32)  # (height, width), as the course resizes
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as the course normalises
STD = (0.229, 0.224, 0.225)
CROP_PADDING = 4
GRAYSCALE_P = 0.8
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, what PIL's convert("L") and torchvision use


def open_image(path: str | Path, size: tuple[int, int] = INPUT_SIZE) -> Image.Image:
    """Open an image as RGB, letting the JPEG decoder shrink it first (draft mode).

    Draft mode decodes at 1/2, 1/4 or 1/8 scale while keeping at least ``2 * size``
    pixels per side, so the bilinear resize that follows still sees enough detail and a
    1254x600 photo decodes several times faster.
    """
    with Image.open(path) as im:
        im.draft("RGB", (size[1] * 2, size[0] * 2))
        return im.convert("RGB")


def to_uint8_tensor(image: Image.Image, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """Resize an RGB PIL image to ``size`` (bilinear, like ``transforms.Resize``) as uint8 CHW."""
    resized = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    data = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    return data.reshape(size[0], size[1], 3).permute(2, 0, 1).contiguous()


def normalize(
    images: Tensor, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD
) -> Tensor:
    """uint8 (or [0, 255] float) NCHW → float32 model input: (x / 255 - mean) / std."""
    m = torch.tensor(mean, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """RandomCrop(size, padding) on a batch: zero-pad, then crop each image at its own offset."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    rows = (oy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_grayscale(images: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """RandomGrayscale(p) on a float batch: chosen images get their luma in all 3 channels."""
    chosen = (torch.rand(images.shape[0], generator=generator) < p).to(images.device)
    luma = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    gray = (images * luma).sum(dim=1, keepdim=True).expand_as(images)
    return torch.where(chosen.view(-1, 1, 1, 1), gray, images)


def train_batch(images: Tensor, generator: torch.Generator) -> Tensor:
    """The course's training transform for a uint8 batch: crop, grayscale, normalise."""
    cropped = random_crop(images, CROP_PADDING, generator).float()
    return normalize(random_grayscale(cropped, GRAYSCALE_P, generator))


def eval_batch(images: Tensor) -> Tensor:
    """The course's evaluation transform for a uint8 batch (already resized): normalise."""
    return normalize(images)
