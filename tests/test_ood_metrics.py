"""train.ood.metrics and train.ood.calibrate against hand-computed cases and brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from train.ood.calibrate import false_reject, threshold_for
from train.ood.metrics import accuracy_among_accepted, auroc, flagged, fpr_at_tpr


def _pairwise_auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    wins = [
        1.0 if o > i else 0.5 if o == i else 0.0
        for i, o in itertools.product(inside.tolist(), outside.tolist())
    ]
    return sum(wins) / len(wins)


@pytest.mark.parametrize(
    ("inside", "outside", "expected"),
    [
        ([0.1, 0.2, 0.3], [0.4, 0.5], 1.0),  # perfectly separated
        ([0.4, 0.5], [0.1, 0.2, 0.3], 0.0),  # perfectly reversed
        ([1.0, 1.0], [1.0, 1.0, 1.0], 0.5),  # all tied
        # 6 (in, out) pairs: out wins (0.1, 0.5), (0.1, 0.7), (0.5, 0.7); ties (0.5, 0.5)
        ([0.1, 0.5, 0.9], [0.5, 0.7], 3.5 / 6),
    ],
)
def test_auroc_matches_hand_computed_cases(inside, outside, expected):
    got = auroc(torch.tensor(inside), torch.tensor(outside))
    assert got == pytest.approx(expected, abs=1e-12)


def test_auroc_equals_brute_force_pair_count_with_many_ties():
    g = torch.Generator().manual_seed(0)
    inside = torch.randint(0, 20, (137,), generator=g).float()
    outside = torch.randint(5, 25, (91,), generator=g).float()
    assert auroc(inside, outside) == pytest.approx(_pairwise_auroc(inside, outside), abs=1e-12)


def test_auroc_refuses_an_empty_side():
    with pytest.raises(ValueError, match="at least one"):
        auroc(torch.tensor([]), torch.tensor([1.0]))


def test_fpr_at_95_tpr_hand_computed():
    inside = torch.arange(1, 21, dtype=torch.float32)  # 1..20: 95% of them are <= 19
    outside = torch.tensor([0.5, 18.0, 19.0, 19.5, 30.0])  # 0.5, 18, 19 are accepted (<= 19)
    assert fpr_at_tpr(inside, outside) == pytest.approx(3 / 5)
    assert fpr_at_tpr(inside, outside, tpr=1.0) == pytest.approx(4 / 5)  # t = 20


def test_flagged_and_accuracy_among_accepted():
    scores = torch.tensor([0.1, 0.9, 0.2, 0.8])
    predicted, labels = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 0, 0])
    assert flagged(scores, 0.5) == pytest.approx(0.5)
    # accepted: index 0 (right) and index 2 (wrong)
    assert accuracy_among_accepted(scores, 0.5, predicted, labels) == pytest.approx(0.5)
    assert accuracy_among_accepted(scores, 0.0, predicted, labels) is None


@pytest.mark.parametrize("n", [1, 7, 50, 100, 333])
@pytest.mark.parametrize("target", [0.0, 0.02, 0.05, 0.5])
def test_threshold_rejects_at_most_the_target_and_not_needlessly_fewer(n, target):
    scores = torch.randn(n, generator=torch.Generator().manual_seed(n))
    t = threshold_for(scores, target)
    rejected = false_reject(scores, t)
    assert rejected <= target + 1e-12
    # tight: exactly floor(target * n) images lie above it (distinct scores)
    assert round(rejected * n) == int(target * n + 1e-9)


def test_too_few_images_for_the_target_extrapolate_with_a_normal_fit():
    """20 images cannot show a 2% quantile: their max would reject ~1/21 of new images."""
    scores = torch.randn(20, generator=torch.Generator().manual_seed(7)).double()
    t = threshold_for(scores, 0.02)
    assert t == pytest.approx(float(scores.mean() + 2.0537489 * scores.std()), abs=1e-6)
    assert t > float(scores.max())  # the max alone (1.36 here) would reject far more
    outlier = torch.randn(20, generator=torch.Generator().manual_seed(5)).double()
    assert threshold_for(outlier, 0.02) == float(outlier.max())  # never below the max
    fresh = torch.randn(200_000, generator=torch.Generator().manual_seed(6)).double()
    fresh = fresh * scores.std() + scores.mean()  # new images from the fitted distribution
    assert false_reject(fresh, t) == pytest.approx(0.02, abs=0.002)
    assert threshold_for(scores[:2], 0.02) == float(scores[:2].max())  # no fit from 2 images


def test_threshold_with_ties_never_exceeds_target():
    scores = torch.tensor([1.0] * 50 + [2.0] * 50)
    assert false_reject(scores, threshold_for(scores, 0.02)) <= 0.02


@pytest.mark.parametrize(
    ("scores", "match"),
    [(torch.tensor([]), "zero held-out"), (torch.tensor([1.0, float("nan")]), "NaN")],
)
def test_threshold_refuses_broken_scores(scores, match):
    with pytest.raises(ValueError, match=match):
        threshold_for(scores)
