"""Procedural non-note scenes for outlier exposure: what a phone sees when no note is in frame.

A user points the camera at a room, an empty table, a hand, a screen, a face or a person as
often as at a note. The note photos of :mod:`train.synthetic` put notes on exactly these
surfaces (tables, hands, blurred rooms), so without these scenes *alone* as negatives the
network may learn "wood grain or skin means a note". Used only for training negatives, never
for evaluation. Each maker draws one RGB image of :data:`train.ood.sets.CANVAS` size from ``rng``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from train.ood.sets import CANVAS
from train.synthetic.handling import SKIN_TONES, room, wood


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0.0, 255.0).astype(np.uint8), "RGB")


def _surface(rng: np.random.Generator) -> np.ndarray:
    """A table top, a wall or a blurred room, float32 (h, w, 3)."""
    w, h = CANVAS
    pick = rng.integers(3)
    if pick == 0:
        return wood(h, w, rng)
    if pick == 1:
        return room(h, w, rng)
    level = rng.uniform(60.0, 240.0) + rng.normal(0.0, 25.0, size=3)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 1.0 - rng.uniform(0.0, 0.3) * (x / w if rng.random() < 0.5 else y / h)
    return level[None, None, :] * ramp[..., None]


def empty_surface(rng: np.random.Generator) -> Image.Image:
    """An empty table, wall or room, lit unevenly: the backgrounds of note photos, alone."""
    img = _to_image(_surface(rng))
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.5))))


def _skin(rng: np.random.Generator) -> tuple[int, ...]:
    base = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], dtype=np.float64)
    return tuple(int(c) for c in np.clip(base * rng.uniform(0.8, 1.1), 0, 255))


def bare_hand(rng: np.random.Generator) -> Image.Image:
    """A hand with nothing in it: a palm and four or five fingers over a surface."""
    w, h = CANVAS
    img = _to_image(_surface(rng))
    draw = ImageDraw.Draw(img)
    skin = _skin(rng)
    cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.3 * h, 0.9 * h)
    size = rng.uniform(0.25, 0.6) * h
    angle = rng.uniform(-math.pi, math.pi)
    draw.ellipse((cx - size, cy - size * 0.8, cx + size, cy + size * 0.8), fill=skin)
    for k in range(int(rng.integers(4, 6))):
        a = angle + (k - 2) * rng.uniform(0.25, 0.4)
        length = size * rng.uniform(1.1, 1.8)
        x1, y1 = cx + math.cos(a) * length, cy + math.sin(a) * length
        draw.line((cx, cy, x1, y1), fill=skin, width=max(2, int(size * 0.35)))
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))


def screen(rng: np.random.Generator) -> Image.Image:
    """A phone or monitor screen: a dark bezel, a bright page of blocks and lines, glare."""
    w, h = CANVAS
    img = _to_image(_surface(rng))
    draw = ImageDraw.Draw(img)
    x0, y0 = rng.uniform(0, 0.25 * w), rng.uniform(0, 0.25 * h)
    x1, y1 = rng.uniform(0.75 * w, w), rng.uniform(0.75 * h, h)
    draw.rectangle((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 40, 3)))
    m = rng.uniform(2, 5)
    page = tuple(int(c) for c in rng.integers(150, 256, 3))
    draw.rectangle((x0 + m, y0 + m, x1 - m, y1 - m), fill=page)
    for _ in range(int(rng.integers(3, 12))):
        bx, by = rng.uniform(x0 + m, x1 - m), rng.uniform(y0 + m, y1 - m)
        bw, bh = rng.uniform(3, 30), rng.uniform(1, 15)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle((bx, by, min(bx + bw, x1 - m), min(by + bh, y1 - m)), fill=colour)
    arr = np.asarray(img, dtype=np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    glare = np.exp(-((x - rng.uniform(0, w)) ** 2 + (y - rng.uniform(0, h)) ** 2) / (0.1 * w * w))
    return _to_image(arr + rng.uniform(0, 80) * glare[..., None])


def face(rng: np.random.Generator) -> Image.Image:
    """A face close up: skin oval, hair, eyes, brows and mouth, over a surface."""
    w, h = CANVAS
    img = _to_image(_surface(rng))
    draw = ImageDraw.Draw(img)
    skin = _skin(rng)
    cx, cy = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.4 * h, 0.6 * h)
    fw, fh = rng.uniform(0.18, 0.4) * w, rng.uniform(0.35, 0.6) * h
    hair = tuple(int(c) for c in rng.integers(0, 120, 3))
    _head(draw, (cx, cy, fw, fh), skin, hair, hair_to=0.6, close_up=True)
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))


def _head(
    draw: ImageDraw.ImageDraw,
    oval: tuple[float, float, float, float],
    skin: tuple[int, ...],
    hair: tuple[int, ...],
    *,
    hair_to: float,
    close_up: bool,
) -> None:
    """Hair, a skin oval (centre and half-sizes ``oval``), eyes and a mouth.

    ``hair_to``: how far down the face the hair reaches, in half-heights; ``close_up`` eyes
    have whites, pupils and brows, a distant face's are two dark dots.
    """
    cx, cy, fw, fh = oval
    draw.ellipse((cx - fw * 1.1, cy - fh * 1.15, cx + fw * 1.1, cy + fh * hair_to), fill=hair)
    draw.ellipse((cx - fw, cy - fh, cx + fw, cy + fh), fill=skin)
    eye = max(1.0, fw * 0.12)
    for side in (-1, 1):
        ex, ey = cx + side * fw * 0.4, cy - fh * 0.15
        if not close_up:
            draw.ellipse((ex - eye * 1.4, ey - eye, ex + eye * 1.4, ey + eye), fill=hair)
            continue
        draw.ellipse((ex - eye * 1.6, ey - eye, ex + eye * 1.6, ey + eye), fill=(240, 240, 235))
        draw.ellipse((ex - eye * 0.8, ey - eye * 0.8, ex + eye * 0.8, ey + eye * 0.8), fill=hair)
        draw.line((ex - eye * 2, ey - eye * 2.5, ex + eye * 2, ey - eye * 2.8), fill=hair, width=1)
    mouth = tuple(int(c * 0.7) for c in skin)
    draw.ellipse((cx - fw * 0.35, cy + fh * 0.4, cx + fw * 0.35, cy + fh * 0.55), fill=mouth)


# Clothes of portrait photos: dark suits and uniforms (navy, black, charcoal), white and bright.
_CLOTHES = ((28, 36, 70), (20, 20, 24), (60, 62, 68), (225, 225, 220), (150, 30, 40), (40, 90, 60))


def portrait(rng: np.random.Generator) -> Image.Image:
    """A person from the chest up, filling the frame: a backdrop, shoulders in clothes, a face.

    A portrait is what a note's engraving shows, so without photos of people as negatives the
    network reads a head and shoulders as a banknote (the default model read a photo of a person
    in a navy uniform as 100 yuan at 91%).
    """
    w, h = CANVAS
    if rng.random() < 0.5:
        img = _to_image(_surface(rng))
    else:  # a studio backdrop or a flag: two flat colours
        img = Image.new("RGB", CANVAS, tuple(int(c) for c in rng.integers(0, 256, 3)))
        band = tuple(int(c) for c in rng.integers(0, 256, 3))
        ImageDraw.Draw(img).rectangle((rng.uniform(0, w), 0, w, rng.uniform(0, h)), fill=band)
    draw = ImageDraw.Draw(img)
    skin, cx = _skin(rng), rng.uniform(0.35 * w, 0.65 * w)
    clothes = np.array(_CLOTHES[int(rng.integers(len(_CLOTHES)))], dtype=np.float64)
    clothes = tuple(int(c) for c in np.clip(clothes * rng.uniform(0.8, 1.25), 0, 255))
    fw, fh = rng.uniform(0.1, 0.22) * w, rng.uniform(0.2, 0.38) * h
    cy = rng.uniform(0.3, 0.45) * h
    sw = rng.uniform(2.5, 4.0) * fw  # half the shoulders' width
    draw.rectangle((cx - fw * 0.45, cy, cx + fw * 0.45, cy + fh * 1.5), fill=skin)  # neck
    top = cy + fh * 1.2
    draw.polygon(
        [
            (cx - sw, h),
            (cx - sw * 0.9, top + fh * 0.3),
            (cx, top),
            (cx + sw * 0.9, top + fh * 0.3),
            (cx + sw, h),
        ],
        fill=clothes,
    )
    if rng.random() < 0.5:  # a white collar or shirt front
        draw.polygon(
            [(cx - fw * 0.5, top), (cx, top + fh * 0.8), (cx + fw * 0.5, top)], fill=(235, 235, 230)
        )
    hair = tuple(int(c) for c in rng.integers(0, 140, 3))
    _head(draw, (cx, cy, fw, fh), skin, hair, hair_to=0.5, close_up=False)
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))


MAKERS = {
    "surface": empty_surface,
    "hand": bare_hand,
    "screen": screen,
    "face": face,
    "portrait": portrait,
}
