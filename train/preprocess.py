"""The one preprocessing path: image file → small upright RGB picture → uint8 tensor → model input.

Training's decode, evaluation, export's parity inputs, the demo and the benchmarks all call these
functions, so what the demo feeds the model is bit for bit what evaluation fed it, normalised
with the checkpoint's own mean/std.

Decoding normalises what cameras and editors produce: first frame of an animation, EXIF
orientation, transparency composited over white, 16-bit scaled (not clipped) to 8-bit,
palette/CMYK/grayscale to RGB. The model sees 32×32 pixels, so the picture is shrunk as early as
possible: JPEGs decode at 1/2, 1/4 or 1/8 scale (draft mode), other formats are box-reduced right
after decoding, before any mode conversion copies them, keeping at least twice the input size
for the bilinear resize that follows. Full-size decodes share a pixel budget, so many large
uploads at once queue instead of each holding hundreds of megabytes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint

__all__ = [
    "IMAGE_SUFFIXES",
    "INPUT_SIZE",
    "MEAN",
    "STD",
    "decode",
    "model_input",
    "normalize",
    "open_image",
    "to_rgb",
    "to_uint8_tensor",
]

INPUT_SIZE = (32, 32)  # (height, width) of new training runs, as the course resizes
# File names that are taken for photos where a folder or an archive also holds other files.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as the course normalises (new runs)
STD = (0.229, 0.224, 0.225)
DECODE_BUDGET_PIXELS = 60_000_000  # full-size pixels decoded at once, across threads
# Pillow allocates pixels in 16 MiB blocks by default; glibc serves those from per-thread malloc
# arenas, which keep freed memory, so 8 threads each held on to a full-size decode (2.7 GB peak
# for 8 concurrent 7000x7000 uploads). Blocks above glibc's largest mmap threshold (32 MiB) are
# mapped and unmapped, so freed pixels go back to the system (1.3 GB at a 100 MP budget).
PIXEL_BLOCK_BYTES = 64 * 2**20
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_WHITE = (255, 255, 255, 255)
_ORIENTATION = 0x0112
_TRANSPOSE = {  # EXIF orientation → the transpose that shows the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class _PixelBudget:
    """At most ``limit`` full-size pixels decoded at once; one image alone always proceeds."""

    def __init__(self, limit: int) -> None:
        self._limit, self._used = limit, 0
        self._free = threading.Condition()
        self._blocks_set = False

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._free:
            if not self._blocks_set:  # once, on first use: no work at import
                Image.core.set_block_size(max(PIXEL_BLOCK_BYTES, Image.core.get_block_size()))
                self._blocks_set = True
            self._free.wait_for(lambda: self._used == 0 or self._used + pixels <= self._limit)
            self._used += pixels
        try:
            yield
        finally:
            with self._free:
                self._used -= pixels
                self._free.notify_all()


_BUDGET = _PixelBudget(DECODE_BUDGET_PIXELS)


def open_image(path: str | Path, size: tuple[int, int] = INPUT_SIZE) -> Image.Image:
    """The image file at ``path`` as a small upright 8-bit RGB picture (see :func:`decode`)."""
    with Image.open(path) as image:
        return decode(image, size)


def decode(image: Image.Image, size: tuple[int, int] = INPUT_SIZE) -> Image.Image:
    """An opened, not yet loaded PIL image → upright 8-bit RGB of at least ``2 * size``.

    Raises PIL's own errors (OSError, SyntaxError, ValueError, EOFError) for corrupt data; the
    caller says what that means for its user. A 16-bit image stays in 16/32-bit integers.
    """
    image.seek(0)  # animations: the first frame
    keep = 2 * max(size)  # either orientation keeps twice the input size
    image.draft("RGB", (keep, keep))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
    with _BUDGET.hold(image.width * image.height):
        image.load()
        orientation = _orientation(image)
        image = to_rgb(_reduce(_reducible(image), keep))
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    return image


def to_uint8_tensor(image: Image.Image, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """An RGB picture resized to ``size`` (bilinear, like ``transforms.Resize``) as uint8 CHW."""
    resized = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    data = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    return data.reshape(size[0], size[1], 3).permute(2, 0, 1).contiguous()


def normalize(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 (or [0, 255] float) NCHW → float32 model input: (x / 255 - mean) / std."""
    m = torch.tensor(mean, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def model_input(image: Image.Image, ckpt: Checkpoint) -> Tensor:
    """A decoded picture as the 1×3×H×W float32 batch ``ckpt``'s model takes."""
    pixels = to_uint8_tensor(image, ckpt.input_size).unsqueeze(0)
    return normalize(pixels, ckpt.mean, ckpt.std)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); a broken EXIF block counts as upright."""
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return 1


def _reducible(image: Image.Image) -> Image.Image:
    """Modes PIL cannot box-reduce become the smallest mode that keeps their content."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "1":
        return image.convert("L")
    return image


def _reduce(image: Image.Image, keep: int) -> Image.Image:
    """Box-average by the largest whole factor that keeps ``keep`` pixels on the short side."""
    factor = min(image.width, image.height) // keep
    if factor < 2:
        return image
    if image.mode in _SIXTEEN_BIT:  # reduce() has no 16-bit kernel; a box resize does it
        w, h = image.width // factor, image.height // factor
        box = (0, 0, w * factor, h * factor)
        return image.resize((w, h), Image.Resampling.BOX, box=box)
    return image.reduce(factor)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded PIL image as 8-bit RGB: alpha over white, 16-bit scaled (not clipped)."""
    image = _reducible(image)
    mode = image.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        image = _wide_gray_to_l(image)
    elif mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode in _ALPHA:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
    return image.convert("RGB")


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) grayscale → 8-bit, scaling 0..65535 onto 0..255.

    PIL's own convert clips every value above 255 to white, which would turn a 16-bit photo into
    a white sheet. A 32-bit image whose values all fit in 8 bits is kept as is. Integer rounding
    in 32 bits: round(v / 257) == (2v + 257) // 514 exactly, never a float64 copy.
    """
    values = np.asarray(image)
    if image.mode in _SIXTEEN_BIT or values.max(initial=0) > 255:
        wide = values.clip(0, 65535).astype(np.uint32)
        values = (2 * wide + 257) // 514
    return Image.fromarray(values.clip(0, 255).astype(np.uint8), "L")
