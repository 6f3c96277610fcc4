"""export.decision: the unknown decision must agree, except where rounding may flip it.

Protects the rule that makes the parity check strict without flaking: an input whose reference
score lies within the tolerance band of the threshold is reported as near, never failed; any
other input whose decision differs is a disagreement.
"""

from __future__ import annotations

import numpy as np
import pytest

from export.decision import DecisionCount

ATOL, RTOL = 1e-5, 1e-4


def test_clear_inputs_must_agree_and_near_ones_are_only_counted():
    threshold = 2.0
    band = ATOL + RTOL * 2.0  # the tolerance at a score of 2
    ref = np.array([0.5, 1.9, 2.0 + band / 2, 2.0 - band / 2, 3.0])
    got = np.array([0.5, 2.1, 2.0 - band / 4, 2.0 + band / 4, 3.0])  # 1.9 flips; near ones too
    count = DecisionCount().add(ref, got.astype(np.float32), threshold, ATOL, RTOL)
    assert (count.counted, count.near, count.disagreements) == (3, 2, 1)
    assert count.agreement == pytest.approx(2 / 3)


def test_a_score_exactly_at_the_threshold_is_known_for_both_sides():
    """``unknown`` is ``score > threshold``: equal is known, in the reference and the variant."""
    count = DecisionCount().add(np.array([1.0]), np.array([1.0]), 1.0, 0.0, 0.0)
    assert (count.counted, count.near, count.disagreements) == (0, 1, 0)
    count = DecisionCount().add(np.array([1.5]), np.array([1.0]), 1.0, 0.0, 0.0)
    assert (count.counted, count.disagreements) == (1, 1)


def test_counts_add_up_over_batches_and_shapes_must_match():
    count = DecisionCount()
    count.add(np.array([0.0, 5.0]), np.array([0.0, 5.0]), 1.0, ATOL, RTOL)
    count.add(np.array([5.0]), np.array([0.0]), 1.0, ATOL, RTOL)
    assert (count.counted, count.disagreements, count.agreement) == (3, 1, pytest.approx(2 / 3))
    assert DecisionCount().agreement == 1.0
    with pytest.raises(ValueError, match="2 scores to compare with 1"):
        count.add(np.array([1.0]), np.array([1.0, 2.0]), 1.0, ATOL, RTOL)
