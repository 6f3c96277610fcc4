"""Evaluation sets for the OOD score, built by the project itself (never downloaded at run time).

- far-OOD, drawn here from a seed: ``noise`` (uniform, Gaussian and blotchy), ``solid``
  colours, ``gradient`` (linear and radial), ``blank`` sheets (white / black / grey paper with
  lighting falloff and sensor noise), ``text`` (printed-page-like lines of characters) and
  ``photo`` (random crops and rescales of the natural photos that ship inside installed
  packages: matplotlib's sample data, gradio's media assets);
- near-OOD: synthetic notes of other denominations from ``train.synthetic.ensure_near_ood``;
- any folder of images (``--out-dir``), read recursively.

Every image goes through the same path a user's photo takes: a PIL RGB image, resized to the
model's input size by :func:`train.preprocess.to_uint8_tensor` (then normalised by the caller).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor
from tqdm import tqdm

from train.dataset import decode_file
from train.preprocess import IMAGE_SUFFIXES, INPUT_SIZE, to_uint8_tensor

log = logging.getLogger(__name__)

EVAL_SEED = 2000  # far from NEGATIVES_SEED, the training negatives' seed
NEGATIVES_SEED = 100
PHOTO_SHARE = 4  # training negatives: photo crops per image of every other kind
CANVAS = (96, 64)  # (width, height) drawn before the resize, about a phone photo's aspect
# (package, path inside it) of natural photos that ship with installed packages.
BUNDLED_PHOTOS = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("gradio", "media_assets/images/cheetah.jpg"),
    ("gradio", "media_assets/images/cheetah1.jpg"),
    ("gradio", "media_assets/images/groot.jpeg"),
    ("gradio", "media_assets/images/lion.jpg"),
    ("gradio", "media_assets/images/tower.jpg"),
    ("gradio", "test_data/cheetah2.jpg"),
)


def package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it (gradio imports slowly)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_photos() -> list[Path]:
    """The bundled natural photos present in this environment (a missing package is skipped)."""
    found = []
    for package, rel in BUNDLED_PHOTOS:
        root = package_dir(package)
        if root is not None and (root / rel).is_file():
            found.append(root / rel)
    return found


def _noise(rng: np.random.Generator) -> Image.Image:
    w, h = CANVAS
    kind = rng.integers(3)
    if kind == 0:
        pixels = rng.integers(0, 256, size=(h, w, 3))
    elif kind == 1:
        pixels = rng.normal(rng.uniform(60, 200), rng.uniform(20, 80), size=(h, w, 3))
    else:  # blotches: coarse noise blown up, like a stained surface
        coarse = rng.integers(0, 256, size=(int(rng.integers(3, 12)),) * 2 + (3,))
        img = Image.fromarray(coarse.astype(np.uint8)).resize(CANVAS, Image.Resampling.BICUBIC)
        pixels = np.asarray(img, dtype=np.float64) + rng.normal(0, 10, size=(h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _solid(rng: np.random.Generator) -> Image.Image:
    return Image.new("RGB", CANVAS, tuple(int(c) for c in rng.integers(0, 256, 3)))


def _gradient(rng: np.random.Generator) -> Image.Image:
    w, h = CANVAS
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(angle) + y * np.sin(angle)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(x - cx, y - cy)
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    pixels = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return Image.fromarray(pixels.astype(np.uint8))


def _blank(rng: np.random.Generator) -> Image.Image:
    w, h = CANVAS
    base = rng.choice([rng.uniform(225, 255), rng.uniform(0, 30), rng.uniform(110, 200)])
    tint = rng.uniform(-8, 8, 3)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    falloff = 1 - rng.uniform(0, 0.25) * np.hypot(x / w - rng.random(), y / h - rng.random())
    pixels = (base + tint[None, None, :]) * falloff[..., None]
    pixels += rng.normal(0, rng.uniform(0, 4), size=(h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _text(rng: np.random.Generator) -> Image.Image:
    paper = tuple(int(c) for c in rng.integers(200, 256, 3))
    ink = tuple(int(c) for c in rng.integers(0, 90, 3))
    scale = 2
    img = Image.new("RGB", (CANVAS[0] * scale, CANVAS[1] * scale), paper)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=int(rng.integers(9, 22)))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,"))
    y = int(rng.integers(0, 10))
    while y < img.height:
        line = "".join(rng.choice(letters, size=int(rng.integers(10, 40))))
        draw.text((int(rng.integers(0, 12)), y), line, fill=ink, font=font)
        y += int(rng.integers(12, 30))
    return img.resize(CANVAS, Image.Resampling.BILINEAR)


def _photo_crops(photos: list[Image.Image]) -> Maker:
    def crop(rng: np.random.Generator) -> Image.Image:
        img = photos[int(rng.integers(len(photos)))]
        side = min(img.size) * rng.uniform(0.25, 1.0)
        aspect = rng.uniform(0.6, 1.6)
        cw, ch = min(img.width, side * aspect**0.5), min(img.height, side / aspect**0.5)
        left, top = rng.uniform(0, img.width - cw), rng.uniform(0, img.height - ch)
        out = img.crop((int(left), int(top), int(left + cw), int(top + ch)))
        if rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if rng.random() < 0.3:
            out = out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
        return out

    return crop


def _dead_leaves(rng: np.random.Generator) -> Image.Image:
    """Overlapping random discs and boxes: a classic stand-in for natural-image statistics.

    Used only for training negatives (outlier exposure), never in the evaluation sets.
    """
    img = _solid(rng)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(20, 120))):
        r = float(CANVAS[0] * rng.uniform(0.02, 0.3) ** 1.5)
        cx, cy = rng.uniform(-r, CANVAS[0] + r), rng.uniform(-r, CANVAS[1] + r)
        box = (cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.2))))


Maker = Callable[[np.random.Generator], Image.Image]
_DRAWN: dict[str, Maker] = {  # the kinds drawn from a seed alone, in draw order
    "noise": _noise,
    "solid": _solid,
    "gradient": _gradient,
    "blank": _blank,
    "text": _text,
}


def _draw(
    makers: dict[str, Maker],
    per_kind: int,
    seed: int,
    size: tuple[int, int],
) -> dict[str, Tensor]:
    if per_kind < 1:
        raise ValueError(f"per_kind must be >= 1, got {per_kind}")
    sets = {}
    kinds = tqdm(list(makers.items()), desc="draw OOD images", leave=False, disable=None)
    for i, (kind, make) in enumerate(kinds):
        rng = np.random.default_rng([seed, i])
        sets[kind] = torch.stack([to_uint8_tensor(make(rng), size) for _ in range(per_kind)])
    return sets


def far_ood(
    per_kind: int = 100, seed: int = EVAL_SEED, size: tuple[int, int] = INPUT_SIZE
) -> dict[str, Tensor]:
    """The far-OOD kinds as uint8 (N, 3, H, W) tensors; ``photo`` is absent with no photos."""
    makers = dict(_DRAWN)
    photos = [Image.open(p).convert("RGB") for p in bundled_photos()]
    if photos:
        makers["photo"] = _photo_crops(photos)
    else:
        log.warning("no bundled photos found (matplotlib / gradio): far-OOD has no 'photo' kind")
    return _draw(makers, per_kind, seed, size)


def training_negatives(
    per_kind: int = 150, seed: int = NEGATIVES_SEED, size: tuple[int, int] = INPUT_SIZE
) -> Tensor:
    """Non-note images for outlier exposure: other seeds and other photos than the evaluation's.

    The evaluation's kinds drawn from another seed, dead leaves, the scenes of
    :mod:`train.ood.scenes` (empty surfaces, bare hands, screens, faces), and crops of
    scikit-image's bundled photos (:mod:`train.ood.training_photos`): the evaluation's photo
    kind comes from matplotlib and gradio, a source training never sees. Photos get
    ``PHOTO_SHARE`` times ``per_kind`` images, being the most varied kind.
    """
    from train.ood import scenes
    from train.ood.training_photos import training_faces, training_photos

    makers = {**_DRAWN, "dead-leaves": _dead_leaves, **scenes.MAKERS}
    drawn = _draw(makers, per_kind, seed, size)
    photos, faces = training_photos(), training_faces()
    if photos:
        drawn |= _draw({"photo": _photo_crops(photos)}, PHOTO_SHARE * per_kind, seed + 1, size)
    if faces:
        drawn |= _draw({"face-photo": _photo_crops(faces)}, per_kind, seed + 2, size)
    log.debug("outlier exposure: %s", {k: len(v) for k, v in drawn.items()})
    return torch.cat(list(drawn.values()))


def folder_images(root: str | Path, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """Every image under ``root`` (recursively) as uint8 (N, 3, H, W); unreadable ones skipped."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--out-dir {root} is not a folder: pass a folder of images")
    files = [
        p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    ]
    images = [t for t in (decode_file(p, size) for p in files) if not isinstance(t, str)]
    if len(images) < len(files):
        log.warning("skipped %d unreadable image(s) under %s", len(files) - len(images), root)
    if not images:
        raise FileNotFoundError(f"no readable images under {root}: pass a folder of images")
    return torch.stack(images)


def near_ood(cache_dir: str | Path | None = None, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """Synthetic other-denomination notes (5/10/20/50 yuan), cached under ``cache_dir``."""
    from train.synthetic import ensure_near_ood

    return folder_images(ensure_near_ood(cache_dir), size)
