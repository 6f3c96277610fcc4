"""The product's training augmentation: phone photos vary in framing, exposure and colour.

The course's transform (:func:`train.transforms.train_batch`: RandomCrop with 4 px padding,
RandomGrayscale p=0.8) stays as it is for the course experiments. The default model sees instead,
per image of each uint8 (N, 3, H, W) batch:

- a random resized crop (zoom 0.8-1.25 per axis, aspect change included, anywhere in the frame;
  zoom-outs repeat the border): notes photographed nearer or farther, off-centre;
- brightness, contrast and saturation jitter: exposure, white balance and faded prints;
- grayscale with a small probability only: colour is what tells a red 5th-series 100 from an
  olive 5th-series 1, whose grey layouts are alike, so a network that mostly sees grey images
  never learns it (README, "The synthetic set").

Hue is left alone for the same reason. Everything runs on the batch's device from ``generator``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from train.preprocess import normalize
from train.transforms import LUMA, random_grayscale, train_batch

Stats = tuple[float, ...]
Augment = Callable[[Tensor, torch.Generator, Stats, Stats], Tensor]  # (uint8, gen, mean, std)


@dataclass(frozen=True)
class Jitter:
    """Ranges of the product augmentation (uniform draws, factors of 1 mean unchanged)."""

    zoom: tuple[float, float] = (0.8, 1.25)  # crop side / image side, per axis
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.6, 1.4)
    grayscale_p: float = 0.1


PRODUCT_JITTER = Jitter()


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def random_resized_crop(
    images: Tensor, zoom: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """Crop a box of ``zoom`` × the side per axis at a random place and resize it back (bilinear).

    A zoom above 1 shows more than the frame (the note smaller); the border pixels fill the rest.
    """
    n = images.shape[0]
    sx, sy = _uniform(n, zoom, generator), _uniform(n, zoom, generator)
    # centre offsets that keep a zoom-in crop inside the image and a zoom-out image inside the box
    tx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sx).abs()
    ty = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sy).abs()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    theta = theta.to(images.device)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def colour_jitter(images: Tensor, jitter: Jitter, generator: torch.Generator) -> Tensor:
    """Brightness, contrast (around each image's mean luma) and saturation on a [0, 255] batch."""
    n, device = images.shape[0], images.device
    b = _uniform(n, jitter.brightness, generator).to(device).view(-1, 1, 1, 1)
    c = _uniform(n, jitter.contrast, generator).to(device).view(-1, 1, 1, 1)
    s = _uniform(n, jitter.saturation, generator).to(device).view(-1, 1, 1, 1)
    luma_w = torch.tensor(LUMA, device=device, dtype=images.dtype).view(1, 3, 1, 1)
    out = images * b
    mean = (out * luma_w).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * c + mean
    gray = (out * luma_w).sum(dim=1, keepdim=True)
    out = (out - gray) * s + gray
    return out.clamp(0.0, 255.0)


def product_batch(
    images: Tensor,
    generator: torch.Generator,
    mean: Stats,
    std: Stats,
    jitter: Jitter = PRODUCT_JITTER,
) -> Tensor:
    """The default model's training transform for a uint8 batch: crop, colour, grey, normalise."""
    out = random_resized_crop(images.float(), jitter.zoom, generator)
    out = colour_jitter(out, jitter, generator)
    return normalize(random_grayscale(out, jitter.grayscale_p, generator), mean, std)


AUGMENTS: dict[str, Augment] = {"product": product_batch, "course": train_batch}


def augment_for(name: str) -> Augment:
    """The batch transform called ``name``; ValueError naming the choices otherwise."""
    if name not in AUGMENTS:
        raise ValueError(f"unknown augmentation {name!r}: use one of {', '.join(AUGMENTS)}")
    return AUGMENTS[name]
