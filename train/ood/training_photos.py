"""Natural photos for outlier exposure from scikit-image's bundled data, never used in evaluation.

scikit-image's wheel ships a handful of photos inside ``skimage/data`` (a face, a cat, a cup of
coffee, a rocket, a motorcycle, a camera man, bricks, grass, gravel, coins, a printed page, ...)
and 200 small greyscale face / non-face crops (``lfw_subset.npy``). They are read straight from
the installed package's folder: no import of scikit-image, nothing fetched at run time (its
``skimage.data`` functions for other images would download; these files are never those).

The far-OOD evaluation's photos come from other packages (matplotlib, gradio: see
:mod:`train.ood.sets`), so the evaluation still measures photos of a source training never saw.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from train.ood.sets import package_dir

log = logging.getLogger(__name__)

PACKAGE = "skimage"
# Files inside skimage/data that ship in the wheel (scikit-image 0.22 .. 0.26).
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "page.png",
    "text.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "color.png",
    "logo.png",
    "moon.png",
    "clock_motion.png",
    "cell.png",
)
FACES = "lfw_subset.npy"  # (200, 25, 25) float in [0, 1]: 100 faces, then 100 non-faces


def data_dir() -> Path | None:
    """``skimage/data`` of the installed scikit-image, or None when it is not installed."""
    root = package_dir(PACKAGE)
    return None if root is None else root / "data"


def training_photos() -> list[Image.Image]:
    """The bundled photos present here as RGB images (greyscale ones converted); [] without them."""
    folder = data_dir()
    if folder is None:
        log.warning("scikit-image is not installed: outlier exposure has no natural photos")
        return []
    return [Image.open(folder / n).convert("RGB") for n in PHOTOS if (folder / n).is_file()]


def training_faces() -> list[Image.Image]:
    """The 100 face crops of ``lfw_subset.npy`` as RGB images; [] without scikit-image."""
    folder = data_dir()
    if folder is None or not (folder / FACES).is_file():
        return []
    crops = np.load(folder / FACES, allow_pickle=False)[:100]
    tiles = (np.clip(crops, 0.0, 1.0) * 255).astype(np.uint8)
    return [Image.fromarray(t, "L").convert("RGB") for t in tiles]
