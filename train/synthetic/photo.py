"""Photograph a drawn note virtually, so the network learns what survives real cameras.

Print texture, colour jitter, creases, the kind of shot (scan, on a table, in a hand), distance,
perspective, rotation, lighting, background, blur and noise vary per image; the JPEG step is left
to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

from train.synthetic.fields import low_frequency_noise, pixel_grid
from train.synthetic.handling import crease, hand, room, wood

IMAGE_SIZE = (192, 96)  # (width, height): about 2:1 like the photos; training shrinks to 32×32


# How a note gets photographed: a flat frame-filling scan (the course photos), a phone photo of a
# note lying on a table (any distance, any angle), or one held in a hand (often partly out of
# frame). Scans keep the largest share: they are the case the real course photos test densely.
SHOTS = ("scan", "table", "hand")
_SHOT_SHARE = (0.45, 0.3, 0.25)


def photograph_note(
    note: Image.Image, hue_shift: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """The drawn ``note`` as an RGB photo of ``IMAGE_SIZE``, drawn from ``rng``.

    ``hue_shift`` is the range of the print's hue jitter on PIL's 0..255 hue scale.
    """
    note = _jitter_colour(_print_texture(note, rng), hue_shift, rng)
    shot = SHOTS[int(rng.choice(len(SHOTS), p=_SHOT_SHARE))]
    if shot != "scan" and rng.random() < 0.35:
        note = crease(note, rng)
    img, corners = _place(note, _background(rng, shot), rng, shot)
    if shot == "hand":
        img = hand(img, corners, rng)
    return _photograph(img, rng)


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


def _jitter_colour(
    note: Image.Image, hue_shift: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """Shift hue, scale saturation and brightness in HSV: print and ageing variation."""
    hsv = np.asarray(note.convert("HSV"), dtype=np.float32).copy()
    lo, hi = hue_shift
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(lo, hi), 256.0)
    hsv[..., 1] *= rng.uniform(0.5, 1.2)
    hsv[..., 2] *= rng.uniform(0.7, 1.08)
    hsv = np.clip(hsv, 0.0, 255.0).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _background(rng: np.random.Generator, shot: str) -> np.ndarray:
    """The surface behind the note: scanner lid or card, a table, or a blurred room."""
    w, h = IMAGE_SIZE
    if shot == "hand":
        return room(h, w, rng)
    if shot == "table" and rng.random() < 0.4:
        return wood(h, w, rng)
    if shot == "scan":
        level = rng.uniform(170.0, 240.0)
    elif rng.random() < 0.7:
        level = rng.uniform(150.0, 250.0)
    else:
        level = rng.uniform(30.0, 150.0)
    tint = rng.normal(0.0, 10.0 if shot == "scan" else 25.0, size=3)
    bg = np.empty((h, w, 3), dtype=np.float32)
    bg[:] = level + tint
    bg += (
        rng.uniform(0.0, 20.0) * low_frequency_noise(h, w, rng, int(rng.integers(2, 6)))[..., None]
    )
    if rng.random() < 0.3:  # fine grain, e.g. fabric
        bg += rng.normal(0.0, rng.uniform(2.0, 8.0), size=(h, 1, 1)).astype(np.float32)
    return bg


def _pose(rng: np.random.Generator, shot: str) -> tuple[float, float, float, float, bool]:
    """Width in pixels, rotation (radians), perspective skew, roam, and whether it may leave."""
    w = IMAGE_SIZE[0]
    if shot == "scan":  # flat and upright, filling most of the frame
        return w * rng.uniform(0.88, 0.98), math.radians(rng.normal(0.0, 1.0)), 0.004, 0.3, False
    if shot == "table":  # near or far, at an angle, seen at a slant
        tw = w * rng.uniform(0.6, 1.0)
        return tw, math.radians(rng.uniform(-20.0, 20.0)), 0.035, 1.0, rng.random() < 0.25
    tw = w * rng.uniform(0.8, 1.15)  # held up close: sometimes bigger than the frame
    return tw, math.radians(rng.uniform(-12.0, 12.0)), 0.04, 1.0, True


def _place(
    note: Image.Image, bg: np.ndarray, rng: np.random.Generator, shot: str
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Warp the note onto the background; also return where its corners landed.

    Scale, aspect, rotation, perspective and position vary with the kind of shot; a note that
    may leave the frame is shifted by up to a sixth of its size past the image border.
    """
    w, h = IMAGE_SIZE
    nw, nh = note.size
    tw, angle, skew, roam, leave = _pose(rng, shot)
    th = min(h * (0.98 if shot == "scan" else 1.3), tw / (2.15 * rng.uniform(0.9, 1.1)))
    cos, sin = math.cos(angle), math.sin(angle)
    ext_w = abs(tw * cos) + abs(th * sin)
    ext_h = abs(tw * sin) + abs(th * cos)
    slack_w = max(1.0, (w - ext_w) / 2 + 2) + (ext_w / 6 if leave else 0.0)
    slack_h = max(1.0, (h - ext_h) / 2 + 2) + (ext_h / 6 if leave else 0.0)
    cx = w / 2 + rng.uniform(-roam, roam) * slack_w
    cy = h / 2 + rng.uniform(-roam, roam) * slack_h
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
    if shot == "table":  # a soft shadow: the note lies a little above the surface
        shadow = Image.fromarray((alpha[..., 0] * 255).astype(np.uint8), "L")
        shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0)))
        dx, dy = (int(d) for d in rng.integers(-3, 4, size=2))
        s = np.roll(np.asarray(shadow, dtype=np.float32) / 255.0, (dy, dx), axis=(0, 1))
        bg = bg * (1.0 - rng.uniform(0.1, 0.35) * s[..., None])
    return bg * (1.0 - alpha) + arr[..., :3] * alpha, corners


def _photograph(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Exposure and lighting gradient, white balance, contrast, blur and sensor noise."""
    h, w = img.shape[:2]
    v, u = pixel_grid(h, w)
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
