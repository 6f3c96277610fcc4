"""What an opened variant is: numpy in, every named output out, the same for every runtime.

Every runner takes a float32 N×3×H×W array, already normalised, and returns a dict of
float32 host arrays, one per model output, ``logits`` first (a model may add outputs, such as
an ``ood_score`` of shape N). ``runner(batch)`` is one complete call, host copies included.
For timing, ``runner.bind(batch)`` does once what a deployment does once (copies to the
device, IO binding, compiling for the shape) and gives a :class:`Bound` whose ``step()`` is
what every request pays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np

LOGITS = "logits"
OOD_SCORE = "ood_score"  # the second output of a file with an OOD score
Outputs = dict[str, np.ndarray]


def logits_first(names: list[str]) -> list[str]:
    """``names`` with ``logits`` moved to the front (the order of the rest kept)."""
    return sorted(names, key=lambda n: n != LOGITS)


@dataclass
class Bound:
    """A runner bound to one input batch.

    ``step()`` runs one inference and returns once the result is ready (CUDA synchronised);
    ``read()`` returns the latest outputs as float32 host arrays (not timed); ``setting()`` is
    held around every block of calls, for process-wide settings such as torch's thread count.
    """

    step: Callable[[], None]
    read: Callable[[], Outputs]
    setting: Callable[[], AbstractContextManager[None]] = field(default=contextlib.nullcontext)


class Runner:
    """An opened variant. Subclasses implement :meth:`bind`."""

    def __init__(self, variant, device_label: str) -> None:
        self.variant = variant  # export.runtimes.variant.Variant
        self.device_label = device_label  # the device name or the ORT execution provider

    def bind(self, batch: np.ndarray) -> Bound:
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> Outputs:
        """All outputs for ``batch``: bind, one step, read."""
        bound = self.bind(batch)
        with bound.setting():
            bound.step()
        return bound.read()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.variant.name!r}, {self.device_label!r})"
