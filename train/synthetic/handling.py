"""What happens to a note outside a scanner: creases, the surface it lies on, the hand holding it.

Phone photos of notes in use differ from the course's flat scans in exactly these ways; without
them the network would learn that every note is flat, centred, and alone on a plain light card.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from train.synthetic.fields import low_frequency_noise, pixel_grid

Point = tuple[float, float]
# Skin tones from light to dark, RGB.
SKIN_TONES = ((236, 196, 168), (224, 172, 138), (198, 140, 104), (160, 106, 72), (112, 74, 50))


def crease(note: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Fold lines across the note: each side of a fold catches the light differently.

    One fold across the middle (a note folded in half), sometimes a second one along it, plus
    soft wrinkles: smooth brightness changes of a few percent.
    """
    w, h = note.size
    v, u = pixel_grid(h, w)
    arr = np.asarray(note, dtype=np.float32)
    gain = np.ones((h, w), dtype=np.float32)
    folds = [("u", rng.uniform(0.35, 0.65))]
    if rng.random() < 0.4:
        folds.append(("v", rng.uniform(0.4, 0.6)))
    for axis, at in folds:
        coord = u if axis == "u" else v
        side = coord > at
        gain = gain * np.where(side, rng.uniform(0.82, 1.0), rng.uniform(0.95, 1.08))
        line = np.exp(-(((coord - at) * (w if axis == "u" else h) / 1.2) ** 2))
        gain = gain * (1.0 + rng.uniform(-0.25, 0.2) * line)
    gain = gain * (1.0 + rng.uniform(0.0, 0.06) * low_frequency_noise(h, w, rng, 6))
    out = np.clip(arr * gain[..., None], 0.0, 255.0).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def wood(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A wooden table top: a brown tone with long grain lines (float32, h×w×3)."""
    v, u = pixel_grid(h, w)
    warp = low_frequency_noise(h, w, rng, 3)
    grain = np.sin(2.0 * np.pi * (rng.uniform(8, 25) * v + 0.6 * warp + 0.3 * u))
    base = np.array(
        [rng.uniform(120, 210), rng.uniform(80, 150), rng.uniform(40, 100)], dtype=np.float32
    )
    return base * (1.0 + rng.uniform(0.05, 0.15) * grain)[..., None]


def room(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus room behind a held note: large soft blobs of unrelated colours."""
    level = rng.uniform(40.0, 220.0) + rng.normal(0.0, 20.0, size=3)
    out = np.empty((h, w, 3), dtype=np.float32)
    shared = low_frequency_noise(h, w, rng, 3)
    for c in range(3):
        own = low_frequency_noise(h, w, rng, 3)
        out[..., c] = level[c] + rng.uniform(20.0, 50.0) * shared + 15.0 * own
    return out


def _ellipse_points(centre: Point, along: Point, half_len: float, half_wid: float) -> list[Point]:
    """A polygon for an ellipse whose long axis points along the unit vector ``along``."""
    ax, ay = along
    px, py = -ay, ax
    pts = []
    for k in range(20):
        t = 2.0 * math.pi * k / 20
        a, b = half_len * math.cos(t), half_wid * math.sin(t)
        pts.append((centre[0] + a * ax + b * px, centre[1] + a * ay + b * py))
    return pts


def hand(img: np.ndarray, corners: Sequence[Point], rng: np.random.Generator) -> np.ndarray:
    """Draw a thumb over one edge of the note at ``corners`` and the hand beyond that edge.

    ``corners`` are the note's corners in image pixels (top-left, top-right, bottom-right,
    bottom-left), as placed; the thumb covers part of the print as a holding thumb does.
    """
    h, w = img.shape[:2]
    edge = int(rng.choice(4, p=(0.15, 0.35, 0.15, 0.35)))  # short sides are held more often
    a, b = corners[edge], corners[(edge + 1) % 4]
    t = rng.uniform(0.25, 0.75)
    at = (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    cx = sum(p[0] for p in corners) / 4
    cy = sum(p[1] for p in corners) / 4
    dx, dy = cx - at[0], cy - at[1]
    norm = math.hypot(dx, dy) or 1.0
    inward = (dx / norm, dy / norm)
    size = math.hypot(corners[1][0] - corners[0][0], corners[1][1] - corners[0][1])
    thumb_len = size * rng.uniform(0.08, 0.14)
    skin = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], dtype=np.float32)
    skin = np.clip(skin * rng.uniform(0.85, 1.1) + rng.normal(0.0, 6.0, size=3), 0, 255)
    layer = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(layer)
    palm = (at[0] - inward[0] * size * 0.18, at[1] - inward[1] * size * 0.18)
    draw.polygon(_ellipse_points(palm, inward, size * 0.22, size * 0.16), fill=255)
    tip = (at[0] + inward[0] * thumb_len * 0.6, at[1] + inward[1] * thumb_len * 0.6)
    draw.polygon(_ellipse_points(tip, inward, thumb_len, thumb_len * 0.42), fill=255)
    mask = np.asarray(layer, dtype=np.float32)[..., None] / 255.0
    v, u = pixel_grid(h, w)
    shade = 1.0 + 0.15 * ((u - 0.5) * inward[0] + (v - 0.5) * inward[1])  # light from one side
    skin_img = skin * shade[..., None]
    return img * (1.0 - mask) + skin_img * mask
