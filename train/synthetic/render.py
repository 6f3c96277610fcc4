"""One synthetic image from its key (seed, series, class, index), so any image can be redrawn alone.

Each image has its own PCG64 stream and fixed JPEG settings, so the same key always gives the
same bytes, whatever else is generated and in whatever order.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from train.synthetic.designs import choose_design
from train.synthetic.layout import NoteDesign, draw_design
from train.synthetic.notes import DRAWERS
from train.synthetic.photo import photograph_note

CLASSES = ("1", "100")  # folder names; sorted, so ImageFolder index 0 = "1", 1 = "100"
NEAR_OOD_CLASSES = ("10", "20", "5", "50")  # other denominations, sorted as ImageFolder sorts
_JPEG_QUALITY = (40, 95)
# Separate random streams per kind of set, so e.g. the 5th-series set is not the "all" set's
# 5th-series half, and near-OOD notes never share a stream with training notes.
_STREAMS = {"4": 4, "5": 5, "all": 45, "near-ood": 1000}


def image_rng(seed: int, class_index: int, index: int, stream: int = 45) -> np.random.Generator:
    """The independent random stream of one image: same key → same image."""
    key = [seed, class_index, index, stream]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def draw_note(design: NoteDesign, rng: np.random.Generator) -> Image.Image:
    """The flat note face of ``design``: the detailed 4th-series drawings where they exist."""
    if design.detailed:
        return DRAWERS[design.value](rng)
    return draw_design(design, rng)


def _jpeg(value: str, series: str, rng: np.random.Generator) -> bytes:
    design = choose_design(value, series, rng)
    photo = photograph_note(draw_note(design, rng), design.hue_shift, rng)
    buf = io.BytesIO()
    quality = int(rng.integers(_JPEG_QUALITY[0], _JPEG_QUALITY[1] + 1))
    photo.save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()


def render_jpeg(seed: int, class_index: int, index: int, series: str = "all") -> bytes:
    """One synthetic photo of class ``CLASSES[class_index]`` from ``series`` as JPEG bytes."""
    rng = image_rng(seed, class_index, index, _STREAMS[series])
    return _jpeg(CLASSES[class_index], series, rng)


def render_near_ood_jpeg(seed: int, class_index: int, index: int) -> bytes:
    """One photo of a note of ``NEAR_OOD_CLASSES[class_index]`` yuan, either series, either face."""
    rng = image_rng(seed, class_index, index, _STREAMS["near-ood"])
    return _jpeg(NEAR_OOD_CLASSES[class_index], "all", rng)
