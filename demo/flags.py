"""argparse ``type=`` checks for the demo's and the service's flags: a bad value stops parsing
with argparse's own ``error: argument --flag: ...`` line and exit code 2, before any import."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def bounded(
    cast: Callable[[str], float], low: float, high: float = math.inf, *, above: bool = False
) -> Callable[[str], float]:
    """``cast(text)``, finite, from ``low`` (or ``above`` it) up to ``high``."""

    def parse(text: str) -> float:
        value = cast(text)  # a ValueError becomes argparse's "invalid int value: 'x'"
        if math.isfinite(value) and (low < value if above else low <= value) and value <= high:
            return value
        wanted = f"above {low:g}" if above else f"at least {low:g}"
        raise argparse.ArgumentTypeError(
            f"must be {wanted}{'' if high == math.inf else f' and at most {high:g}'}, got {text}"
        )

    parse.__name__ = cast.__name__
    return parse


def image_folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder (expected DIR/<class>/*.jpg)")
    return text
