"""Shared fixtures: a tiny two-class ImageFolder written on the fly, and the real RMB photos."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_CLASSES = ("1", "100")  # the RMB class names: "1" yuan is reddish here, "100" bluish
TinyFolder = Callable[..., Path]


def _tiny_image(rng: np.random.Generator, label: int, width: int, height: int) -> Image.Image:
    """A noisy reddish (label 0) or bluish (label 1) picture with a bright row somewhere."""
    base = np.array([190, 70, 60] if label == 0 else [60, 80, 190], dtype=np.float64)
    pixels = base + rng.normal(0.0, 25.0, size=(height, width, 3))
    row = int(rng.integers(0, height))
    pixels[row, :, :] = 235.0
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_tiny_image_folder(
    root: Path,
    per_class: int | tuple[int, ...] = 8,
    size: tuple[int, int] = (48, 24),
    fmt: str = "jpg",
    seed: int = 0,
) -> Path:
    """Write ``root/<class>/<class>_<i>.<fmt>`` for the classes "1" and "100"; return ``root``.

    ``size`` is (width, height); ``per_class`` an int or one count per class. Same arguments,
    same bytes.
    """
    counts = per_class if isinstance(per_class, tuple) else (per_class,) * len(TINY_CLASSES)
    rng = np.random.default_rng(seed)
    for label, (cls, count) in enumerate(zip(TINY_CLASSES, counts, strict=True)):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            options = {"quality": 95} if fmt in ("jpg", "jpeg") else {}
            _tiny_image(rng, label, *size).save(folder / f"{cls}_{i:03d}.{fmt}", **options)
    return root


@pytest.fixture
def tiny_image_folder(tmp_path: Path) -> TinyFolder:
    """Factory: ``make(per_class=8, size=(48, 24), fmt="jpg", name="data", seed=0) -> root``.

    A two-class ImageFolder ("1" reddish, "100" bluish) under this test's ``tmp_path``.
    """

    def make(name: str = "data", **kwargs) -> Path:
        return write_tiny_image_folder(tmp_path / name, **kwargs)

    return make


@pytest.fixture(scope="module")
def module_image_folder(tmp_path_factory: pytest.TempPathFactory) -> TinyFolder:
    """The same factory for module-scoped fixtures (e.g. one training run shared by tests)."""

    def make(name: str = "data", **kwargs) -> Path:
        return write_tiny_image_folder(tmp_path_factory.mktemp(name), **kwargs)

    return make


@pytest.fixture(scope="session")
def rmb_data_dir() -> Path:
    """The real RMB photos (``DIR/1/*.jpg``, ``DIR/100/*.jpg``) named by env RMB_DATA_DIR.

    ``make test`` and ``.ci/run`` set it when the shared data folder sits beside the checkout.
    """
    value = os.environ.get("RMB_DATA_DIR", "")
    if not value:
        pytest.skip("RMB_DATA_DIR is not set: point it at the real RMB photos (DIR/1, DIR/100)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"RMB_DATA_DIR={value} is not a folder: the real RMB photos are missing")
    return path


@pytest.fixture(scope="session")
def default_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, trained once per test session: ``python -m train`` with no flags.

    Generates the default synthetic set (4000 notes) and trains with the product recipe
    (train.recipe: outlier exposure on); about 2 minutes here (1m50s, 2 shared cores), 3-4 on
    one busy core. Its folder also holds the synthetic caches (``data/``) the tests add to.
    Without the real photos the demo tests serve this model too (tests/demo_fixtures.py).
    """
    from train.trainer import TrainConfig, fit

    out = tmp_path_factory.mktemp("default-model")
    fit(TrainConfig(out=str(out / "bn-lenet.pt"), synthetic_dir=str(out / "data")))
    return out / "bn-lenet.pt"
