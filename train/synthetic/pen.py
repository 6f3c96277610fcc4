"""A pen in note units that varies each element it draws, so no detail of the design is fixed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]  # (u0, v0, u1, v1) in note units, 0..1
Color = tuple[int, ...]


class Pen:
    """ImageDraw in note units (u, v in 0..1) that varies each element of the design a little.

    Real notes and photos differ from this drawing in every detail: where each element sits and
    how dark it prints. If those details never varied in training, BatchNorm would normalise
    them by a near-zero spread and any difference on a real photo would swing the prediction;
    so :meth:`nudge` gives each element its own offset and ink density.
    """

    def __init__(self, image: Image.Image, rng: np.random.Generator, shift: float = 0.03) -> None:
        self.draw = ImageDraw.Draw(image, "RGBA")
        self.w, self.h = image.size
        self.rng = rng
        self.shift = shift
        self.base = (rng.normal(0.0, 0.006), rng.normal(0.0, 0.008))  # the whole print's offset
        self.du, self.dv, self.density = *self.base, 1.0

    def nudge(self) -> None:
        """Start a new element: its own small offset and ink density."""
        self.du = self.base[0] + self.rng.normal(0.0, self.shift)
        self.dv = self.base[1] + self.rng.normal(0.0, self.shift * 1.5)
        self.density = self.rng.uniform(0.4, 1.0)

    def ink(self, color: Color | None) -> Color | None:
        if color is None:
            return None
        alpha = color[3] if len(color) == 4 else 255
        return (*color[:3], round(alpha * self.density))

    def xy(self, u: float, v: float) -> tuple[float, float]:
        return ((u + self.du) * self.w, (v + self.dv) * self.h)

    def box(self, b: Box) -> tuple[float, float, float, float]:
        return (*self.xy(b[0], b[1]), *self.xy(b[2], b[3]))

    def rect(self, b: Box, fill: Color) -> None:
        self.draw.rectangle(self.box(b), fill=self.ink(fill))

    def ellipse(self, b: Box, fill: Color | None = None, outline: Color | None = None) -> None:
        width = max(1, round(self.w * 0.006))
        self.draw.ellipse(self.box(b), fill=self.ink(fill), outline=self.ink(outline), width=width)

    def ring(self, b: Box, fill: Color, thickness: float) -> None:
        """An ellipse outline ``thickness`` note widths thick, its hole left unpainted."""
        width = max(1, round(self.w * thickness))
        self.draw.ellipse(self.box(b), outline=self.ink(fill), width=width)

    def poly(self, points: Sequence[tuple[float, float]], fill: Color) -> None:
        self.draw.polygon([self.xy(u, v) for u, v in points], fill=self.ink(fill))

    def hatch(self, b: Box, fill: Color, spacing: float = 0.008) -> None:
        """Vertical engraving lines every ``spacing`` note widths, like the portraits' line work."""
        x0, y0, x1, y1 = self.box(b)
        for x in range(int(x0), int(x1), max(2, round(spacing * self.w))):
            self.draw.line([(x, y0), (x, y1)], fill=self.ink(fill), width=1)

    def strokes(self, b: Box, rects: Sequence[Box], fill: Color) -> None:
        """Rectangles given in units of box ``b``: a blocky glyph."""
        for r in rects:
            self.rect((*self.within(b, r[0], r[1]), *self.within(b, r[2], r[3])), fill)

    def within(self, b: Box, x: float, y: float) -> tuple[float, float]:
        """The point (``x``, ``y``) given in units of box ``b``, in note units."""
        return (b[0] + x * (b[2] - b[0]), b[1] + y * (b[3] - b[1]))
