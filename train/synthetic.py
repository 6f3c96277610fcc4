"""A synthetic RMB-like banknote data set, so ``python -m train`` runs without any photos.

Why drawn, not photographed: the project must train out of the box, yet cannot ship banknote
photos. Each image is drawn from scratch with PIL ``ImageDraw`` and numpy, imitating the layout a
32×32 LeNet can see of the 4th-series notes (1 yuan: pink/red-brown, two portraits on the right,
dark corner numerals; 100 yuan: blue-grey, four grey profiles, pale watermark on the left, dark
band at the bottom), then photographed virtually: colour jitter, perspective, rotation, lighting,
background, blur, noise and JPEG. Every element of the design also gets its own small offset
and ink density, because what transfers to real photos is a network that never saw any detail
of this drawing held fixed (see :class:`_Pen`).

Why deterministic and cached: every image comes from its own PCG64 stream keyed by
(seed, class, index) and is written with fixed JPEG settings, so a seed names one byte-exact
set. The set is written once in ImageFolder layout (``ROOT/1/*.jpg``, ``ROOT/100/*.jpg``) so every
tool reads it like real data, built in a sibling temp folder and renamed into place so a crash
never leaves a half-written set that looks complete.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

logger = logging.getLogger(__name__)

VERSION = 1  # bump whenever the drawing changes: it names the cache folder
CLASSES = ("1", "100")  # folder names; sorted, so ImageFolder index 0 = "1", 1 = "100"
IMAGE_SIZE = (192, 96)  # (width, height): about 2:1 like the photos; training shrinks to 32×32
MARKER = "SYNTHETIC.json"
# 500 per class: training BN-LeNet on 8 synthetic seeds x 6 training seeds, 500 per class never
# went below 99.5 % on 200 real photos, while 300 per class had one run at 81.5 %; generating
# 1000 images takes about 5-8 s on one core.
DEFAULT_PER_CLASS = 500
_NOTE_SIZE = (256, 120)  # a little above its largest on-image size: warping only shrinks it
_JPEG_QUALITY = (40, 95)

Box = tuple[float, float, float, float]  # (u0, v0, u1, v1) in note units, 0..1
Color = tuple[int, ...]


# ----------------------------------------------------------------------------------------------
# Math layer: textures and geometry as numpy arrays.


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in note units: u across (0..1), v down (0..1)."""
    v = (np.arange(h, dtype=np.float32) + 0.5) / h
    u = (np.arange(w, dtype=np.float32) + 0.5) / w
    return v[:, None], u[None, :]


def guilloche(h: int, w: int, rng: np.random.Generator, *, lines: float, wave: float) -> np.ndarray:
    """Two crossing families of fine wavy lines, in [0, 1] (1 = ink), with a random phase.

    This is the moiré-like security print that covers both notes; its phase and frequency
    change per image so the model cannot key on one exact texture.
    """
    v, u = _grid(h, w)
    out = np.zeros((h, w), dtype=np.float32)
    for sign in (1.0, -1.0):
        f_wave = rng.uniform(2.0, 5.0)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=2)
        t = lines * (u + sign * 0.45 * v) + wave * np.sin(2.0 * np.pi * f_wave * v + phase[0])
        t = t + 0.5 * wave * np.sin(2.0 * np.pi * 3.0 * u + phase[1])
        out = np.maximum(out, np.clip(1.0 - np.abs(np.sin(np.pi * t)) * 3.0, 0.0, 1.0))
    return out


def perspective_coeffs(
    dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]
) -> tuple[float, ...]:
    """The 8 coefficients PIL's ``Image.PERSPECTIVE`` needs to map ``dst`` corners onto ``src``.

    PIL maps each output pixel (x, y) back to the input ((a x + b y + c) / (g x + h y + 1),
    (d x + e y + f) / (g x + h y + 1)); four point pairs give eight linear equations.
    """
    rows, rhs = [], []
    for (x, y), (sx, sy) in zip(dst, src, strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -sx * x, -sx * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -sy * x, -sy * y])
        rhs.extend([sx, sy])
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), np.array(rhs)))


def low_frequency_noise(h: int, w: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(0.0, 255.0, size=(cells, 2 * cells)).astype(np.uint8)
    field = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(field, dtype=np.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------------------------
# Drawing layer: one note in note units on a PIL canvas.


class _Pen:
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
        x0, y0 = self.xy(b[0], b[1])
        x1, y1 = self.xy(b[2], b[3])
        return (x0, y0, x1, y1)

    def rect(self, b: Box, fill: Color) -> None:
        self.draw.rectangle(self.box(b), fill=self.ink(fill))

    def ellipse(self, b: Box, fill: Color | None = None, outline: Color | None = None) -> None:
        width = max(1, round(self.w * 0.006))
        self.draw.ellipse(self.box(b), fill=self.ink(fill), outline=self.ink(outline), width=width)

    def poly(self, points: Sequence[tuple[float, float]], fill: Color) -> None:
        self.draw.polygon([self.xy(u, v) for u, v in points], fill=self.ink(fill))

    def hatch(self, b: Box, fill: Color, spacing: float = 0.008) -> None:
        """Vertical engraving lines every ``spacing`` note widths, like the portraits' line work."""
        x0, y0, x1, y1 = self.box(b)
        for x in range(int(x0), int(x1), max(2, round(spacing * self.w))):
            self.draw.line([(x, y0), (x, y1)], fill=self.ink(fill), width=1)

    def strokes(self, b: Box, rects: Sequence[Box], fill: Color) -> None:
        """Rectangles given in units of box ``b``: a blocky glyph."""
        u0, v0, u1, v1 = b
        for r in rects:
            self.rect(
                (
                    u0 + r[0] * (u1 - u0),
                    v0 + r[1] * (v1 - v0),
                    u0 + r[2] * (u1 - u0),
                    v0 + r[3] * (v1 - v0),
                ),
                fill,
            )


# Blocky stand-ins for the characters, in glyph-box units (no fonts needed).
_GLYPH_YUAN: tuple[Box, ...] = (  # 圆
    (0.0, 0.0, 1.0, 0.12),
    (0.0, 0.0, 0.13, 1.0),
    (0.87, 0.0, 1.0, 1.0),
    (0.0, 0.88, 1.0, 1.0),
    (0.3, 0.2, 0.7, 0.3),
    (0.25, 0.4, 0.75, 0.48),
    (0.25, 0.4, 0.34, 0.74),
    (0.66, 0.4, 0.75, 0.74),
    (0.46, 0.48, 0.55, 0.7),
    (0.3, 0.72, 0.45, 0.8),
    (0.55, 0.72, 0.7, 0.8),
)
_GLYPH_YI: tuple[Box, ...] = (  # 壹
    (0.45, 0.0, 0.56, 0.22),
    (0.12, 0.08, 0.88, 0.16),
    (0.28, 0.2, 0.72, 0.26),
    (0.04, 0.3, 0.96, 0.37),
    (0.04, 0.3, 0.13, 0.46),
    (0.87, 0.3, 0.96, 0.46),
    (0.2, 0.44, 0.8, 0.5),
    (0.25, 0.55, 0.75, 0.61),
    (0.25, 0.55, 0.33, 0.74),
    (0.67, 0.55, 0.75, 0.74),
    (0.25, 0.68, 0.75, 0.74),
    (0.3, 0.78, 0.37, 0.88),
    (0.63, 0.78, 0.7, 0.88),
    (0.08, 0.9, 0.92, 0.98),
)
_GLYPH_BAI: tuple[Box, ...] = (  # 佰
    (0.12, 0.0, 0.21, 1.0),
    (0.0, 0.28, 0.14, 0.38),
    (0.34, 0.04, 0.98, 0.13),
    (0.4, 0.26, 0.49, 0.98),
    (0.82, 0.26, 0.91, 0.98),
    (0.4, 0.26, 0.91, 0.34),
    (0.4, 0.58, 0.91, 0.65),
    (0.4, 0.89, 0.91, 0.98),
)
_GLYPH_SMALL: tuple[tuple[Box, ...], ...] = (  # 中国人民银行: generic blocks, tiny on the note
    ((0.42, 0.0, 0.58, 1.0), (0.1, 0.25, 0.9, 0.4), (0.1, 0.25, 0.25, 0.7), (0.75, 0.25, 0.9, 0.7)),
    ((0.0, 0.0, 1.0, 0.15), (0.0, 0.0, 0.15, 1.0), (0.85, 0.0, 1.0, 1.0), (0.0, 0.85, 1.0, 1.0)),
    ((0.4, 0.0, 0.6, 0.5), (0.1, 0.45, 0.45, 1.0), (0.55, 0.45, 0.9, 1.0)),
    ((0.1, 0.0, 0.9, 0.15), (0.1, 0.0, 0.25, 1.0), (0.1, 0.45, 0.9, 0.6), (0.55, 0.6, 0.95, 0.95)),
    ((0.0, 0.0, 0.3, 1.0), (0.45, 0.0, 1.0, 0.15), (0.45, 0.4, 1.0, 0.55), (0.6, 0.55, 0.75, 1.0)),
    (
        (0.0, 0.1, 0.35, 1.0),
        (0.45, 0.05, 1.0, 0.18),
        (0.45, 0.35, 1.0, 0.48),
        (0.7, 0.35, 0.85, 1.0),
    ),
)


def _digit_one(pen: _Pen, b: Box, fill: Color) -> None:
    pen.strokes(b, ((0.42, 0.0, 0.68, 1.0), (0.22, 0.88, 0.88, 1.0)), fill)
    u0, v0, u1, v1 = b
    w, h = u1 - u0, v1 - v0
    flag = [(0.42, 0.0), (0.68, 0.0), (0.6, 0.2), (0.15, 0.32), (0.15, 0.2)]
    pen.poly([(u0 + x * w, v0 + y * h) for x, y in flag], fill)


def _digit_zero(pen: _Pen, b: Box, fill: Color, paper: Color) -> None:
    u0, v0, u1, v1 = b
    w = u1 - u0
    pen.ellipse(b, fill=fill)
    pen.ellipse((u0 + 0.3 * w, v0 + 0.16 * (v1 - v0), u1 - 0.3 * w, v1 - 0.16 * (v1 - v0)), paper)


def _digits_100(pen: _Pen, b: Box, fill: Color, paper: Color) -> None:
    u0, v0, u1, v1 = b
    w = (u1 - u0) / 3.0
    _digit_one(pen, (u0, v0, u0 + w * 0.9, v1), fill)
    _digit_zero(pen, (u0 + w, v0, u0 + w * 1.95, v1), fill, paper)
    _digit_zero(pen, (u0 + 2 * w, v0, u0 + w * 2.95, v1), fill, paper)


def _text_row(pen: _Pen, u0: float, u1: float, v0: float, v1: float, fill: Color) -> None:
    step = (u1 - u0) / len(_GLYPH_SMALL)
    for i, glyph in enumerate(_GLYPH_SMALL):
        pen.strokes((u0 + i * step, v0, u0 + (i + 0.7) * step, v1), glyph, fill)


def _serial(pen: _Pen, rng: np.random.Generator, u0: float, v0: float, fill: Color) -> None:
    """Ten small dark marks of random height: the serial number, unreadable at 32×32 anyway."""
    for i in range(10):
        top = v0 + rng.uniform(0.0, 0.015)
        pen.rect((u0 + i * 0.018, top, u0 + i * 0.018 + 0.011, v0 + 0.045), fill)


def _margin(pen: _Pen, rng: np.random.Generator, color: Color) -> None:
    """The unprinted paper rim around the design: a light frame every photo shows."""
    m = rng.uniform(0.015, 0.035)
    mv = m * pen.w / pen.h
    draw, w, h = pen.draw, pen.w, pen.h
    draw.rectangle((0, 0, w, mv * h), fill=color)
    draw.rectangle((0, h - mv * h, w, h), fill=color)
    draw.rectangle((0, 0, m * w, h), fill=color)
    draw.rectangle((w - m * w, 0, w, h), fill=color)


def _paper(
    size: tuple[int, int], paper: Color, ink: Color, pattern: np.ndarray, a: float
) -> Image.Image:
    """RGB paper colour with ``pattern`` (0..1) printed over it in ``ink`` at opacity ``a``."""
    mask = Image.fromarray((pattern * (255.0 * a)).astype(np.uint8), "L")
    return Image.composite(Image.new("RGB", size, ink), Image.new("RGB", size, paper), mask)


def draw_note_1(rng: np.random.Generator) -> Image.Image:
    """The 4th-series 1-yuan note's layout, in its canonical pink/red-brown colours."""
    w, h = _NOTE_SIZE
    paper, dark, mid = (230, 176, 158), (108, 36, 36), (168, 92, 86)
    # Engraved faces print only a little lighter than the block around them.
    k = rng.uniform(0.45, 0.9)
    light_face = tuple(int(m + k * (f - m)) for m, f in zip(mid, (222, 176, 164), strict=True))
    pattern = guilloche(h, w, rng, lines=rng.uniform(55, 80), wave=rng.uniform(0.6, 1.4))
    img = _paper(_NOTE_SIZE, paper, mid, pattern, rng.uniform(0.45, 0.75))
    pen = _Pen(img, rng)

    # Central floral area: paler, with pastel flowers.
    pen.nudge()
    pen.rect((0.2, 0.18, 0.54, 0.72), (232, 200, 180, int(rng.uniform(0, 110))))
    petals = ((150, 172, 206), (170, 196, 140), (226, 150, 172), (222, 204, 140), (190, 160, 210))
    for _ in range(48):
        cu, cv = rng.uniform(0.2, 0.54), rng.uniform(0.18, 0.72)
        r = rng.uniform(0.008, 0.022)
        color = petals[int(rng.integers(len(petals)))]
        pen.ellipse((cu - r, cv - 2.1 * r, cu + r, cv + 2.1 * r), (*color, 150), (*dark, 150))
    # Emblem top-left and flower emblem under it.
    pen.nudge()
    pen.ellipse((0.075, 0.13, 0.15, 0.4), dark)
    pen.ellipse((0.088, 0.17, 0.137, 0.33), (*mid, 255))
    for k in range(5):
        pen.ellipse((0.1 + 0.01 * k - 0.004, 0.19, 0.1 + 0.01 * k + 0.004, 0.21), (232, 200, 120))
    pen.rect((0.09, 0.27, 0.135, 0.32), (232, 200, 150))
    pen.poly([(0.11, 0.48), (0.14, 0.55), (0.11, 0.62), (0.08, 0.55)], (150, 160, 210, 220))
    pen.poly([(0.11, 0.51), (0.125, 0.55), (0.11, 0.59), (0.095, 0.55)], (220, 120, 150, 230))
    # "中国人民银行" top row and the large "壹圆".
    pen.nudge()
    _text_row(pen, 0.19, 0.5, 0.07, 0.15, dark)
    pen.nudge()
    pen.strokes((0.25, 0.33, 0.33, 0.55), _GLYPH_YI, dark)
    pen.nudge()
    pen.strokes((0.36, 0.33, 0.44, 0.55), _GLYPH_YUAN, dark)
    # Portraits: engraved mid-dark block on the right with two women facing left.
    pen.nudge()
    pen.rect((0.52, 0.06, 0.89, 0.94), (*mid, int(rng.uniform(190, 250))))
    pen.hatch((0.52, 0.06, 0.89, 0.94), (*dark, int(rng.uniform(80, 140))))
    pen.nudge()
    headdress = (*light_face, int(rng.uniform(80, 180)))
    pen.poly([(0.54, 0.3), (0.56, 0.08), (0.66, 0.07), (0.68, 0.32), (0.55, 0.36)], headdress)
    pen.hatch((0.54, 0.08, 0.68, 0.34), (*dark, 120), spacing=0.016)
    clothes = (*mid, int(rng.uniform(120, 230)))
    pen.poly([(0.53, 0.72), (0.7, 0.66), (0.72, 0.94), (0.52, 0.94)], clothes)
    pen.ellipse((0.535, 0.3, 0.615, 0.62), light_face)  # left woman's face
    pen.poly([(0.56, 0.58), (0.61, 0.58), (0.62, 0.74), (0.55, 0.74)], light_face)  # neck
    pen.nudge()
    pen.ellipse((0.7, 0.12, 0.86, 0.64), (*dark, int(rng.uniform(150, 240))))  # hair and bun
    pen.poly([(0.64, 0.16), (0.72, 0.1), (0.76, 0.3), (0.66, 0.34)], (*dark, 200))
    pen.ellipse((0.625, 0.32, 0.71, 0.64), light_face)  # right woman's face
    pen.poly([(0.66, 0.6), (0.72, 0.6), (0.74, 0.78), (0.66, 0.78)], light_face)  # neck
    pen.poly([(0.64, 0.78), (0.84, 0.7), (0.88, 0.94), (0.62, 0.94)], (*dark, 160))  # clothes
    pen.ellipse((0.655, 0.56, 0.675, 0.64), outline=dark)  # earrings
    pen.ellipse((0.735, 0.55, 0.755, 0.63), outline=dark)
    pen.hatch((0.53, 0.3, 0.74, 0.94), (*mid, 90), spacing=0.011)
    # Right strip with the small "1", bottom-left band and bottom-right box with "1".
    pen.nudge()
    pen.rect((0.89, 0.05, 0.97, 0.95), (*paper, int(rng.uniform(60, 160))))
    _digit_one(pen, (0.91, 0.12, 0.95, 0.26), dark)
    pen.nudge()
    pen.rect((0.05, 0.72, 0.5, 0.86), dark)
    for k in range(4):
        cu = 0.2 + 0.085 * k
        pen.poly([(cu, 0.735), (cu + 0.03, 0.79), (cu, 0.845), (cu - 0.03, 0.79)], (*mid, 140))
    pen.rect((0.07, 0.7, 0.15, 0.88), (*mid, 255))
    _digit_one(pen, (0.085, 0.71, 0.135, 0.87), dark)
    pen.nudge()
    pen.rect((0.75, 0.7, 0.96, 0.9), dark)
    pen.poly([(0.855, 0.715), (0.94, 0.8), (0.855, 0.885), (0.77, 0.8)], (*mid, 255))
    _digit_one(pen, (0.835, 0.73, 0.875, 0.87), dark)
    _serial(pen, rng, 0.52, 0.74, (150, 40, 40))
    _margin(pen, rng, (242, 218, 208))
    return img


def draw_note_100(rng: np.random.Generator) -> Image.Image:
    """The 4th-series 100-yuan note's layout, in its canonical blue-grey colours."""
    w, h = _NOTE_SIZE
    paper, dark, mid = (190, 196, 214), (36, 48, 66), (100, 114, 146)
    face, shade = (204, 202, 176), (126, 128, 108)  # the profiles print olive-grey
    pattern = guilloche(h, w, rng, lines=rng.uniform(60, 90), wave=rng.uniform(0.3, 1.0))
    img = _paper(_NOTE_SIZE, paper, mid, pattern, rng.uniform(0.4, 0.8))
    pen = _Pen(img, rng)

    # Pale watermark area on the left and pastel rosettes behind the portraits.
    pen.nudge()
    pen.rect((0.03, 0.04, 0.25, 0.76), (238, 234, 216, int(rng.uniform(190, 250))))
    pen.nudge()
    panel = (int(rng.uniform(60, 120)), int(rng.uniform(110, 160)), int(rng.uniform(160, 200)))
    pen.rect((0.73, 0.04, 0.97, 0.8), (*panel, int(rng.uniform(80, 220))))  # blue right panel
    for _ in range(14):
        cu, cv = rng.uniform(0.26, 0.74), rng.uniform(0.08, 0.75)
        r = rng.uniform(0.02, 0.045)
        color = ((214, 168, 196), (168, 200, 220), (200, 186, 226))[int(rng.integers(3))]
        pen.ellipse((cu - r, cv - 2.1 * r, cu + r, cv + 2.1 * r), (*color, 110))
    pen.nudge()
    _text_row(pen, 0.06, 0.33, 0.06, 0.14, dark)
    # Four grey profiles facing left, the rightmost largest and in front.
    pen.nudge()
    pen.rect((0.27, 0.12, 0.72, 0.74), (*shade, int(rng.uniform(120, 230))))
    pen.hatch((0.27, 0.12, 0.72, 0.74), (*dark, int(rng.uniform(30, 90))))
    face = tuple(int(c * rng.uniform(0.8, 1.05)) for c in face)
    back = (104, 108, 96, int(rng.uniform(100, 220)))  # the shaded back of each head
    heads = ((0.335, 0.42, 0.055, 0.24), (0.415, 0.4, 0.055, 0.25), (0.5, 0.41, 0.056, 0.25))
    for cu, cv, ru, rv in (*heads, (0.605, 0.37, 0.07, 0.29)):
        pen.nudge()
        pen.poly(
            [
                (cu - ru, cv + 0.5 * rv),
                (cu + ru, cv + 0.4 * rv),
                (cu + 1.6 * ru, 0.76),
                (cu - 1.4 * ru, 0.76),
            ],
            back[:3],
        )  # neck and coat
        pen.poly(
            [(cu - 0.2 * ru, cv + 0.9 * rv), (cu + 0.3 * ru, 0.76), (cu - 1.1 * ru, 0.76)],
            (*face, 255),
        )  # collar
        pen.ellipse((cu - 0.85 * ru, cv - rv, cu + ru, cv + rv * 0.95), (*face, 255), back[:3])
        pen.ellipse((cu + 0.1 * ru, cv - rv, cu + ru, cv + 0.2 * rv), back)  # hair
        pen.poly(
            [
                (cu - 0.8 * ru, cv - 0.1 * rv),
                (cu - 1.15 * ru, cv + 0.15 * rv),
                (cu - 0.8 * ru, cv + 0.3 * rv),
            ],
            (*face, 255),
        )  # nose
        pen.ellipse((cu + 0.2 * ru, cv - 0.1 * rv, cu + 0.45 * ru, cv + 0.25 * rv), (*shade, 255))
    pen.hatch((0.28, 0.14, 0.7, 0.76), (*shade, 70), spacing=0.011)
    # Right panel: big "100", ornament, serial number and dots.
    pen.nudge()
    _digits_100(pen, (0.765, 0.09, 0.945, 0.33), dark, paper)
    pen.nudge()
    lace = (*dark, int(rng.uniform(120, 230)))  # the dense ornament under the numeral
    for cu, cv in ((0.8, 0.4), (0.86, 0.37), (0.92, 0.4), (0.83, 0.47), (0.89, 0.47), (0.86, 0.53)):
        pen.poly([(cu, cv - 0.05), (cu + 0.025, cv), (cu, cv + 0.05), (cu - 0.025, cv)], lace)
    _serial(pen, rng, 0.76, 0.56, (40, 40, 60))
    for k in range(5):
        pen.ellipse((0.8 + 0.025 * k, 0.66, 0.81 + 0.025 * k, 0.685), dark)
    # Bottom: "100" on the left, dark band, and the dark plaque carrying "壹佰圆".
    pen.nudge()
    _digits_100(pen, (0.09, 0.64, 0.24, 0.79), dark, (*paper, 255))
    pen.nudge()
    pen.rect((0.03, 0.79, 0.97, 0.9), (*dark, int(rng.uniform(170, 240))))
    pen.poly([(0.42, 0.81), (0.47, 0.845), (0.42, 0.88), (0.37, 0.845)], (*mid, 255))
    pen.nudge()
    pen.ellipse((0.57, 0.62, 0.86, 0.91), dark)
    for k, glyph in enumerate((_GLYPH_YI, _GLYPH_BAI, _GLYPH_YUAN)):
        pen.strokes((0.625 + 0.07 * k, 0.68, 0.675 + 0.07 * k, 0.84), glyph, (214, 218, 222))
    pen.rect((0.0, 0.04, 0.03, 0.96), (*mid, 160))
    pen.rect((0.97, 0.04, 1.0, 0.96), (*mid, 160))
    _margin(pen, rng, (228, 230, 234))
    return img


_DRAWERS = {"1": draw_note_1, "100": draw_note_100}
# Hue (PIL's 0..255 scale) shift range per class: 1 yuan pink ↔ salmon; 100 yuan teal ↔ lavender.
_HUE_SHIFT = {"1": (-12, 14), "100": (-25, 25)}


# ----------------------------------------------------------------------------------------------
# Virtual photography: colour jitter, placement, lighting, background, degradations.


def _print_texture(note: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Blotchy ink density at a scale that survives shrinking to 32×32, the same for both notes.

    Real notes are busy at every scale; without this the flat-filled 1-yuan drawing is smoother
    than the 100-yuan one, and the network would learn "smooth means 1 yuan".
    """
    w, h = note.size
    field = low_frequency_noise(h, w, rng, int(rng.integers(8, 20)))
    gain = 1.0 + rng.uniform(0.05, 0.2) * field
    out = np.asarray(note, dtype=np.float32) * gain[..., None]
    return Image.fromarray(np.clip(out, 0.0, 255.0).astype(np.uint8), "RGB")


def _jitter_colour(note: Image.Image, cls: str, rng: np.random.Generator) -> Image.Image:
    """Shift hue, scale saturation and brightness in HSV: print and ageing variation."""
    hsv = np.asarray(note.convert("HSV"), dtype=np.float32).copy()
    lo, hi = _HUE_SHIFT[cls]
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(lo, hi), 256.0)
    hsv[..., 1] *= rng.uniform(0.5, 1.2)
    hsv[..., 2] *= rng.uniform(0.7, 1.08)
    hsv = np.clip(hsv, 0.0, 255.0).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _background(rng: np.random.Generator, scan: bool) -> np.ndarray:
    """A mostly light, slightly tinted, softly textured surface (scanner lid, table, paper)."""
    w, h = IMAGE_SIZE
    if scan:
        level = rng.uniform(170.0, 240.0)
    elif rng.random() < 0.85:
        level = rng.uniform(150.0, 250.0)
    else:
        level = rng.uniform(60.0, 150.0)
    tint = rng.normal(0.0, 10.0, size=3)
    bg = np.empty((h, w, 3), dtype=np.float32)
    bg[:] = level + tint
    bg += (
        rng.uniform(0.0, 20.0) * low_frequency_noise(h, w, rng, int(rng.integers(2, 6)))[..., None]
    )
    if rng.random() < 0.3:  # fine grain, e.g. wood or fabric
        bg += rng.normal(0.0, rng.uniform(2.0, 8.0), size=(h, 1, 1)).astype(np.float32)
    return bg


def _place(note: Image.Image, bg: np.ndarray, rng: np.random.Generator, scan: bool) -> np.ndarray:
    """Warp the note onto the background: scale, aspect, rotation, perspective, position."""
    w, h = IMAGE_SIZE
    nw, nh = note.size
    if scan:  # flat and upright, filling most of the frame
        tw = w * rng.uniform(0.88, 0.98)
        angle = math.radians(rng.normal(0.0, 1.0))
        skew = 0.004
    else:
        tw = w * rng.uniform(0.75, 1.0)
        angle = math.radians(rng.uniform(-8.0, 8.0))
        skew = 0.02
    th = min(h * 0.98, tw / (2.15 * rng.uniform(0.9, 1.1)))
    cos, sin = math.cos(angle), math.sin(angle)
    ext_w = abs(tw * cos) + abs(th * sin)
    ext_h = abs(tw * sin) + abs(th * cos)
    roam = 0.3 if scan else 1.0  # scans are centred, photos anywhere the note still fits
    cx = w / 2 + rng.uniform(-roam, roam) * max(1.0, (w - ext_w) / 2 + 2)
    cy = h / 2 + rng.uniform(-roam, roam) * max(1.0, (h - ext_h) / 2 + 2)
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        x, y = sx * tw / 2, sy * th / 2
        jx, jy = rng.normal(0.0, skew * tw), rng.normal(0.0, skew * th)
        corners.append((cx + x * cos - y * sin + jx, cy + x * sin + y * cos + jy))
    coeffs = perspective_coeffs(corners, [(0, 0), (nw, 0), (nw, nh), (0, nh)])
    rgba = note.convert("RGBA")
    warped = rgba.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    arr = np.asarray(warped, dtype=np.float32)
    alpha = arr[..., 3:4] / 255.0
    return bg * (1.0 - alpha) + arr[..., :3] * alpha


def _photograph(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Exposure and lighting gradient, white balance, contrast, blur and sensor noise."""
    h, w = img.shape[:2]
    v, u = _grid(h, w)
    theta = rng.uniform(0.0, 2.0 * np.pi)
    ramp = (u - 0.5) * math.cos(theta) + (v - 0.5) * math.sin(theta)
    light = rng.uniform(0.7, 1.15) * (1.0 + rng.uniform(0.0, 0.35) * ramp)  # exposure, falloff
    gains = rng.normal(1.0, 0.05, size=3).astype(np.float32)
    img = img * light[..., None] * gains
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.6, 1.2) + mean  # hazy phone photos to crisp scans
    out = Image.fromarray(np.clip(img, 0.0, 255.0).astype(np.uint8), "RGB")
    radius = rng.uniform(0.0, 1.0)
    if radius > 0.25:
        out = out.filter(ImageFilter.GaussianBlur(radius))
    sigma = rng.uniform(0.0, 6.0)
    noisy = np.asarray(out, dtype=np.float32) + rng.normal(0.0, sigma, size=(h, w, 3))
    return Image.fromarray(np.clip(noisy + 0.5, 0.0, 255.0).astype(np.uint8), "RGB")


def image_rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    """The independent random stream of one image: same (seed, class, index) → same image."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, class_index, index])))


def render_jpeg(seed: int, class_index: int, index: int) -> bytes:
    """One synthetic photo of class ``CLASSES[class_index]`` as JPEG bytes (deterministic)."""
    cls = CLASSES[class_index]
    rng = image_rng(seed, class_index, index)
    note = _DRAWERS[cls](rng)
    note = _jitter_colour(_print_texture(note, rng), cls, rng)
    # Half the images look like the typical photo (a flat, upright, frame-filling scan), so
    # training sees that case densely; the other half roams over the wider range of photos.
    scan = bool(rng.random() < 0.5)
    photo = _photograph(_place(note, _background(rng, scan), rng, scan), rng)
    buf = io.BytesIO()
    quality = int(rng.integers(_JPEG_QUALITY[0], _JPEG_QUALITY[1] + 1))
    photo.save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Data set layer: the folder on disk and its cache.


def _marker(seed: int, per_class: int) -> dict:
    return {
        "generator": __name__,
        "version": VERSION,
        "seed": seed,
        "per_class": per_class,
        "classes": list(CLASSES),
        "image_size": list(IMAGE_SIZE),
    }


def _check_args(seed: int, per_class: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}: pass e.g. seed=0")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(
            f"per_class must be a positive int, got {per_class!r}: pass e.g. {DEFAULT_PER_CLASS}"
        )


def read_marker(root: Path) -> dict | None:
    """The marker of a synthetic set at ``root``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(root) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(root: Path, seed: int, per_class: int) -> bool:
    """Whether ``root`` holds exactly the set this version would generate for (seed, per_class)."""
    root = Path(root)
    if read_marker(root) != _marker(seed, per_class):
        return False
    for cls in CLASSES:
        folder = root / cls
        if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != per_class:
            return False
    return True


def generate_synthetic(
    root: Path, *, seed: int = 0, per_class: int = DEFAULT_PER_CLASS, progress: bool = True
) -> Path:
    """Write ``per_class`` synthetic images per class to ``root`` in ImageFolder layout.

    The set is built in a hidden sibling folder and renamed onto ``root`` only when complete,
    marker (``SYNTHETIC.json``) included. An existing synthetic set at ``root`` is replaced; any
    other non-empty folder there is left alone and raises :class:`FileExistsError`.
    """
    _check_args(seed, per_class)
    root = Path(root)
    if root.exists() and read_marker(root) is None and any(root.iterdir()):
        raise FileExistsError(
            f"{root} exists and is not a synthetic data set (no {MARKER}): "
            "choose another folder or remove it"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    existed = root.exists()
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished set is an ordinary folder
    try:
        with tqdm(
            total=per_class * len(CLASSES),
            desc="synthetic RMB",
            unit="img",
            disable=None if progress else True,  # None: a bar on terminals, silence in logs
        ) as bar:
            for class_index, cls in enumerate(CLASSES):
                folder = tmp / cls
                folder.mkdir()
                for index in range(per_class):
                    (folder / f"{index:05d}.jpg").write_bytes(render_jpeg(seed, class_index, index))
                    bar.update(1)
        (tmp / MARKER).write_text(
            json.dumps(_marker(seed, per_class), indent=2) + "\n", encoding="utf-8"
        )
        _swap_into_place(tmp, root, keep=None if existed else (seed, per_class))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "generated %d synthetic images (seed %d) in %s in %.1f s",
        per_class * len(CLASSES),
        seed,
        root,
        time.perf_counter() - start,
    )
    return root


def _swap_into_place(tmp: Path, root: Path, keep: tuple[int, int] | None) -> None:
    """Rename ``tmp`` onto ``root``; a previous synthetic set there is moved aside first.

    ``keep=(seed, per_class)``: ``root`` did not exist when we started, so if it now holds that
    complete set, another process just wrote the same (deterministic) set: keep theirs rather
    than pull it from under a reader.
    """
    try:
        os.replace(tmp, root)  # atomic when root is absent or an empty folder
        return
    except OSError:
        if not root.exists():
            raise
    if keep is not None and is_complete(root, *keep):
        logger.info("%s was completed concurrently; keeping it", root)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    os.replace(root, old / "set")
    try:
        os.replace(tmp, root)
    except OSError:
        os.replace(old / "set", root)  # put the previous set back before failing
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def cache_path(cache_dir: Path, *, seed: int = 0, per_class: int = DEFAULT_PER_CLASS) -> Path:
    """Where :func:`ensure_synthetic` keeps the set for (version, seed, per_class)."""
    return Path(cache_dir) / f"synthetic-v{VERSION}-seed{seed}-n{per_class}"


def ensure_synthetic(
    cache_dir: Path, *, seed: int = 0, per_class: int = DEFAULT_PER_CLASS, progress: bool = True
) -> Path:
    """The cached synthetic set under ``cache_dir``, generating it only when missing or stale."""
    _check_args(seed, per_class)
    root = cache_path(cache_dir, seed=seed, per_class=per_class)
    if is_complete(root, seed, per_class):
        logger.info("using cached synthetic data set %s", root)
        return root
    return generate_synthetic(root, seed=seed, per_class=per_class, progress=progress)
