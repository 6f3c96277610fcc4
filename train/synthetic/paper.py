"""The paper a note is printed on: its tint and guilloche, unprinted rim and serial number."""

from __future__ import annotations

import numpy as np
from PIL import Image

from train.synthetic.pen import Color, Pen

NOTE_SIZE = (256, 120)  # a little above its largest on-image size: warping only shrinks it


def serial(pen: Pen, rng: np.random.Generator, u0: float, v0: float, fill: Color) -> None:
    """Ten small dark marks of random height: the serial number, unreadable at 32×32 anyway."""
    for i in range(10):
        top = v0 + rng.uniform(0.0, 0.015)
        pen.rect((u0 + i * 0.018, top, u0 + i * 0.018 + 0.011, v0 + 0.045), fill)


def margin(pen: Pen, rng: np.random.Generator, color: Color) -> None:
    """The unprinted paper rim around the design: a light frame every photo shows."""
    m = rng.uniform(0.015, 0.035)
    mv = m * pen.w / pen.h
    draw, w, h = pen.draw, pen.w, pen.h
    draw.rectangle((0, 0, w, mv * h), fill=color)
    draw.rectangle((0, h - mv * h, w, h), fill=color)
    draw.rectangle((0, 0, m * w, h), fill=color)
    draw.rectangle((w - m * w, 0, w, h), fill=color)


def printed_paper(
    size: tuple[int, int], tint: Color, ink: Color, pattern: np.ndarray, a: float
) -> Image.Image:
    """Paper of colour ``tint``, ``pattern`` (0..1) printed on it in ``ink`` at opacity ``a``."""
    mask = Image.fromarray((pattern * (255.0 * a)).astype(np.uint8), "L")
    return Image.composite(Image.new("RGB", size, ink), Image.new("RGB", size, tint), mask)
