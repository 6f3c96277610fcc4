"""The course's training augmentation, applied per batch to uint8 images on their own device.

Decoding, resizing and normalisation are :mod:`train.preprocess`, shared with evaluation, export
and the demo; only the random crop and grayscale that training adds live here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from train.preprocess import normalize

CROP_PADDING = 4
GRAYSCALE_P = 0.8
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, what PIL's convert("L") and torchvision use


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
    luma = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    gray = (images * luma).sum(dim=1, keepdim=True).expand_as(images)
    return torch.where(chosen.view(-1, 1, 1, 1), gray, images)


def train_batch(
    images: Tensor, generator: torch.Generator, mean: tuple[float, ...], std: tuple[float, ...]
) -> Tensor:
    """The course's training transform for a uint8 batch: crop, grayscale, normalise."""
    cropped = random_crop(images, CROP_PADDING, generator).float()
    return normalize(random_grayscale(cropped, GRAYSCALE_P, generator), mean, std)
