"""One synthetic image from its key (seed, class, index), so any image can be redrawn alone.

Each image has its own PCG64 stream and fixed JPEG settings, so the same key always gives the
same bytes, whatever else is generated and in whatever order.
"""

from __future__ import annotations

import io

import numpy as np

from train.synthetic.notes import DRAWERS
from train.synthetic.photo import photograph_note

CLASSES = ("1", "100")  # folder names; sorted, so ImageFolder index 0 = "1", 1 = "100"
_JPEG_QUALITY = (40, 95)


def image_rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    """The independent random stream of one image: same (seed, class, index) → same image."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, class_index, index])))


def render_jpeg(seed: int, class_index: int, index: int) -> bytes:
    """One synthetic photo of class ``CLASSES[class_index]`` as JPEG bytes (deterministic)."""
    cls = CLASSES[class_index]
    rng = image_rng(seed, class_index, index)
    photo = photograph_note(DRAWERS[cls](rng), cls, rng)
    buf = io.BytesIO()
    quality = int(rng.integers(_JPEG_QUALITY[0], _JPEG_QUALITY[1] + 1))
    photo.save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()
