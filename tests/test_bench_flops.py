"""benchmarks.flops: FLOPs counted from the modules, against hand counts and FlopCounterMode.

Convention under test (see the module): Conv/Linear 2·MAC (bias not separate), eval BatchNorm 2
per element, ReLU 1 per element, MaxPool kernel−1 comparisons per output.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import bnfold
from benchmarks.flops import (
    avgpool_flops,
    batchnorm_flops,
    conv_flops,
    count_flops,
    flops_per_image,
    linear_flops,
    maxpool_flops,
    relu_flops,
)
from train.models import build_model

# LeNet on 3×32×32, written out layer by layer (MACs × 2 for conv/linear).
HAND = {
    "conv1": 2 * (6 * 28 * 28) * (3 * 5 * 5),  # 705,600
    "conv2": 2 * (16 * 10 * 10) * (6 * 5 * 5),  # 480,000
    "fc1": 2 * 120 * 400,  # 96,000
    "fc2": 2 * 84 * 120,  # 20,160
    "fc3": 2 * 2 * 84,  # 336
    # one ReLU module called four times: after conv1, conv2, fc1, fc2
    "relu": 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84,  # 6,508
    # one MaxPool2d(2) called twice: 3 comparisons per output
    "pool": 3 * (6 * 14 * 14) + 3 * (16 * 5 * 5),  # 4,728
}
HAND_BN = {"bn1": 2 * 6 * 28 * 28, "bn2": 2 * 16 * 10 * 10, "bn3": 2 * 120}  # 9,408 3,200 240
LENET_TOTAL = 1_313_332
BN_LENET_TOTAL = 1_326_180


def _bn_lenet() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("bn-lenet", 2)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_hand_totals_add_up():
    # Protects the literals below from an arithmetic slip in the table above.
    assert sum(HAND.values()) == LENET_TOTAL
    assert sum(HAND.values()) + sum(HAND_BN.values()) == BN_LENET_TOTAL


@pytest.mark.parametrize(
    ("arch", "expected"),
    [("lenet", HAND), ("bn-lenet", {**HAND, **HAND_BN})],
)
def test_lenet_counts_match_the_hand_count_layer_by_layer(arch, expected):
    count = flops_per_image(build_model(arch, 2).eval(), (32, 32))
    assert count.by_module == expected
    assert count.total == sum(expected.values())
    assert count.uncounted == []


def test_bn_lenet_by_kind():
    count = flops_per_image(_bn_lenet(), (32, 32))
    assert count.by_kind == {
        "conv": HAND["conv1"] + HAND["conv2"],
        "batchnorm": sum(HAND_BN.values()),
        "relu": HAND["relu"],
        "maxpool": HAND["pool"],
        "linear": HAND["fc1"] + HAND["fc2"] + HAND["fc3"],
    }


def test_folding_removes_exactly_the_batchnorm_flops():
    model = _bn_lenet()
    folded = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model.eval()
    assert flops_per_image(folded, (32, 32)).total == LENET_TOTAL
    assert flops_per_image(model, (32, 32)).total == BN_LENET_TOTAL


class _Mixed(nn.Module):
    """Strided, padded, grouped and 1-D convolutions, a bias-free one, and linears."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.b = nn.Conv2d(8, 6, (3, 1), bias=False)
        self.c = nn.Conv1d(6, 5, 3, dilation=2)
        self.fc = nn.Linear(5 * 2, 7)

    def forward(self, x):
        x = self.b(self.a(x))  # N×8×5×5, then N×6×3×5 for a 9×9 input
        x = self.c(x.flatten(2))
        return self.fc(x.flatten(1)[:, :10])


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (lambda: build_model("lenet", 2), (1, 3, 32, 32)),
        (lambda: build_model("bn-lenet", 10), (5, 3, 32, 32)),
        (_Mixed, (3, 4, 9, 9)),
    ],
    ids=["lenet", "bn-lenet-10-classes-batch-5", "strided-grouped-1d"],
)
def test_conv_and_linear_flops_equal_torch_flop_counter(model, shape):
    # FlopCounterMode counts convolutions and matmuls, 2 per MAC: the trusted reference here.
    net = model().eval()
    x = torch.randn(*shape)
    with FlopCounterMode(display=False) as reference:
        net(x)
    count = count_flops(net, x)
    assert count.by_kind.get("conv", 0) + count.by_kind.get("linear", 0) == (
        reference.get_total_flops()
    )


def test_flops_scale_with_the_batch_and_per_image_divides():
    model = build_model("lenet", 2).eval()
    count = count_flops(model, torch.zeros(3, 3, 32, 32))
    assert count.total == 3 * LENET_TOTAL
    assert count.per_image == LENET_TOTAL


def test_unknown_leaf_modules_are_listed_not_guessed():
    model = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Flatten()).eval()
    count = count_flops(model, torch.zeros(2, 4))
    assert count.uncounted == ["1 (GELU)"]
    assert count.total == 2 * linear_flops(3, 4)  # Flatten is free, GELU not counted


def test_training_mode_is_refused_and_the_model_keeps_no_hooks():
    model = build_model("bn-lenet", 2)
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        count_flops(model, torch.zeros(1, 3, 32, 32))
    model.eval()
    with pytest.raises(RuntimeError):  # a wrong input shape fails inside forward...
        count_flops(model, torch.zeros(1, 3, 16, 16))
    # ...and neither call leaves a hook behind.
    assert all(not m._forward_hooks for m in model.modules())
    count_flops(model, torch.zeros(1, 3, 32, 32))
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("formula", "args", "expected"),
    [
        (conv_flops, (10, 3, (5, 5)), 2 * 10 * 75),
        (conv_flops, (4, 2, (3,)), 2 * 4 * 6),
        (linear_flops, (7, 11), 154),
        (batchnorm_flops, (9,), 18),
        (relu_flops, (9,), 9),
        (maxpool_flops, (4, 4), 12),
        (maxpool_flops, (4, 9), 32),
        (avgpool_flops, (4, 4), 16),
    ],
)
def test_formulas(formula, args, expected):
    assert formula(*args) == expected


def test_pool_kernels_of_every_dimension_count():
    model = nn.Sequential(nn.MaxPool1d(3), nn.Flatten(0)).eval()
    assert count_flops(model, torch.zeros(1, 2, 9)).total == maxpool_flops(2 * 3, 3)
    model3d = nn.Sequential(nn.AvgPool3d(2)).eval()
    assert count_flops(model3d, torch.zeros(1, 1, 4, 4, 4)).total == avgpool_flops(8, 8)
