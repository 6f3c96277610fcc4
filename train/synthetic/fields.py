"""Numpy fields shared by drawing and photographing: pixel grid, guilloche, smooth noise."""

from __future__ import annotations

import numpy as np
from PIL import Image


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in note units: u across (0..1), v down (0..1)."""
    v = (np.arange(h, dtype=np.float32) + 0.5) / h
    u = (np.arange(w, dtype=np.float32) + 0.5) / w
    return v[:, None], u[None, :]


def guilloche(h: int, w: int, rng: np.random.Generator, *, lines: float, wave: float) -> np.ndarray:
    """Two crossing families of fine wavy lines, in [0, 1] (1 = ink), with a random phase.

    This is the moiré-like security print that covers both notes; its phase and frequency
    change per image so the model cannot key on one exact texture.
    """
    v, u = pixel_grid(h, w)
    out = np.zeros((h, w), dtype=np.float32)
    for sign in (1.0, -1.0):
        f_wave = rng.uniform(2.0, 5.0)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=2)
        t = lines * (u + sign * 0.45 * v) + wave * np.sin(2.0 * np.pi * f_wave * v + phase[0])
        t = t + 0.5 * wave * np.sin(2.0 * np.pi * 3.0 * u + phase[1])
        out = np.maximum(out, np.clip(1.0 - np.abs(np.sin(np.pi * t)) * 3.0, 0.0, 1.0))
    return out


def low_frequency_noise(h: int, w: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(0.0, 255.0, size=(cells, 2 * cells)).astype(np.uint8)
    field = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(field, dtype=np.float32) / 127.5 - 1.0
