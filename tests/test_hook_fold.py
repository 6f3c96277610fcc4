"""The hook fallback (bnfold.hook_fold) on models torch.fx cannot trace.

Every model here branches on tensor values in its forward, so ``bnfold.fold`` must use the
fallback; each test checks what it folds, what it refuses and why.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import bnfold
from bnfold import hook_fold

EXACT = {"atol": 1e-10, "rtol": 1e-10}


def randomize(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen))
    return model.double().eval()


def record(result, name: str):
    (found,) = [r for r in result.report.records if r.bn == name]
    return found


class Branchy(nn.Module):
    """conv → bn (foldable), then a branch on values; ``mode`` adds one hazard at a time."""

    def __init__(self, mode: str = "plain") -> None:
        super().__init__()
        self.mode = mode
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.register_buffer("mean", torch.randn(4))
        self.register_buffer("var", torch.rand(4) + 0.5)

    def forward(self, x):
        y = self.conv(x)
        if y.dim() != 4 or y.shape[1] != 4 or y.dtype != x.dtype:  # metadata reads are harmless
            raise ValueError("unexpected conv output")
        if self.mode == "peek" and y.mean() > 100:  # reads y's values outside the BN
            return y
        z = self.bn(y)
        if self.mode == "twice":
            z = z + self.bn(self.conv(x))
        if self.mode == "functional":
            z = F.batch_norm(z, self.mean, self.var, None, None, False)
        out = self.head(z)
        return out * 2 if out.sum() > 0 else out


def fold_with_hooks(model: nn.Module, x: torch.Tensor):
    model = randomize(model)
    x = x.double()
    expected = model(x)
    result = bnfold.fold(model, x)
    assert result.capture == "hooks"
    torch.testing.assert_close(result.model(x), expected, **EXACT)
    return result


def test_conv_bn_pairs_fold() -> None:
    result = fold_with_hooks(Branchy(), torch.randn(2, 3, 5, 5))
    assert record(result, "bn").target == "conv"
    assert record(result, "head.1").target == "head.0"
    assert isinstance(result.model.bn, nn.Identity)
    assert result.model.head[0].bias is not None


def test_a_value_read_elsewhere_is_another_consumer() -> None:
    """``y.mean()`` in the forward reads the conv output: folding would change that branch."""
    result = fold_with_hooks(Branchy("peek"), torch.randn(2, 3, 5, 5))
    assert "other consumers" in record(result, "bn").reason
    assert record(result, "head.1").folded


def test_modules_called_twice_are_left() -> None:
    result = fold_with_hooks(Branchy("twice"), torch.randn(2, 3, 5, 5))
    assert "called at 2 places" in record(result, "bn").reason


def test_functional_batch_norm_is_reported() -> None:
    result = fold_with_hooks(Branchy("functional"), torch.randn(2, 3, 5, 5))
    functional = [r for r in result.report.records if r.bn.startswith("F.batch_norm")]
    assert len(functional) == 1 and "modules only" in functional[0].reason


class LinearBranchy(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(8, features), nn.BatchNorm1d(features)

    def forward(self, x):
        y = self.bn(self.fc(x))
        return y if y.sum() > 0 else -y


def test_linear_bn1d_folds_on_nc_only() -> None:
    assert fold_with_hooks(LinearBranchy(5), torch.randn(3, 8)).report.num_folded == 1
    result = fold_with_hooks(LinearBranchy(4), torch.randn(3, 4, 8))  # (N, L, C), L == C
    assert "not its feature axis" in record(result, "bn").reason


def test_bn_after_a_non_layer_is_left() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.bn(torch.relu(x))
            return y if y.sum() > 0 else -y

    result = fold_with_hooks(Model(), torch.randn(1, 3, 4, 4))
    assert "not the output of a Conv" in record(result, "bn").reason


def test_the_check_forward_catches_a_wrong_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a fold were wrong, the float64 check forward refuses it and nothing is changed."""
    monkeypatch.setattr(hook_fold, "fold_bn_into_producer", lambda layer, scale, shift: layer)
    result = fold_with_hooks(Branchy(), torch.randn(2, 3, 5, 5))
    assert result.report.num_folded == 0
    assert all("check forward disagreed" in r.reason for r in result.report.records)
    assert isinstance(result.model.bn, nn.BatchNorm2d)


def test_inplace_rewrites_the_given_model() -> None:
    model = randomize(Branchy())
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    assert isinstance(bnfold.fold(model, x).model.bn, nn.Identity)
    assert isinstance(model.bn, nn.BatchNorm2d)  # default: a copy was folded
    assert bnfold.fold(model, x, inplace=True).model is model
    assert isinstance(model.bn, nn.Identity)


def test_low_precision_model_is_checked_and_folded() -> None:
    model = randomize(Branchy()).to(torch.bfloat16)
    x = torch.randn(1, 3, 5, 5, dtype=torch.bfloat16)
    result = bnfold.fold(model, x)
    assert result.capture == "hooks" and result.report.num_folded == 2
    assert result.model.conv.weight.dtype == torch.bfloat16
