"""Does a variant decide *unknown* (``ood_score > threshold``) as the float64 reference does?

The rule: an input counts only when its reference score lies outside the tolerance band around
the threshold, ``|ref - threshold| > atol + rtol·|ref|``. Inside the band, a variant within
tolerance of the reference may fall on either side, so a flipped decision there is rounding,
not a wrong model: such inputs are counted as *near* and reported, never failed (a check that
failed on them would flake with the inputs). Outside the band every decision must agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DecisionCount:
    """Decisions compared so far: counted inputs, near-threshold inputs, disagreements."""

    counted: int = 0
    near: int = 0
    disagreements: int = 0

    @property
    def agreement(self) -> float:
        """Fraction of counted inputs decided as the reference decides (1.0 if none)."""
        return 1.0 - self.disagreements / self.counted if self.counted else 1.0

    def add(self, ref: np.ndarray, got: np.ndarray, threshold: float, atol: float, rtol: float):
        """Compare the decisions on one batch of scores (``ref`` float64, ``got`` any float)."""
        ref = np.asarray(ref, np.float64).reshape(-1)
        got = np.asarray(got, np.float64).reshape(-1)
        if ref.shape != got.shape:
            raise ValueError(f"{got.size} scores to compare with {ref.size} reference scores")
        near = np.abs(ref - threshold) <= atol + rtol * np.abs(ref)
        differ = (got > threshold) != (ref > threshold)  # a NaN score decides "known": differs
        self.near += int(near.sum())
        self.counted += int((~near).sum())
        self.disagreements += int((differ & ~near).sum())
        return self
