"""bnfold.fold on small models: every pattern folds exactly, every unsafe case is refused.

Exactness is checked in float64 against the unfolded model (tolerance 1e-10), so any wrong
axis, group layout or bias term fails loudly; refusals assert the reason in the report.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrizations
from torchvision.models.video.resnet import Conv3DSimple

import bnfold
from bnfold import module_fold
from bnfold.capture import CaptureError
from bnfold.formulas import bn_scale_shift, fold_into_producer
from bnfold.report import Direction

EXACT = {"atol": 1e-10, "rtol": 1e-10}
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
SPATIAL = {1: (10,), 2: (6, 7), 3: (4, 5, 6)}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine parameters (var in [0.5, 2]); returns the model in eval."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen))
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.randn(n, generator=gen))
                    m.bias.copy_(torch.randn(n, generator=gen))
    return model.eval()


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def fold_exact(model: nn.Module, x: torch.Tensor, *, with_inputs: bool = True):
    """Fold a float64 copy of ``model`` and check it computes the same function; return result."""
    model = randomize(model).double()
    x = x.double()
    expected = model(x)
    result = bnfold.fold(model, x if with_inputs else None)
    torch.testing.assert_close(result.model(x), expected, **EXACT)
    names = [r.bn for r in result.report.records]
    assert len(set(names)) == len(names)  # one record per BatchNorm, every module has one
    assert {n for n, m in model.named_modules() if isinstance(m, _BatchNorm)} <= set(names)
    present = {n for n, m in result.model.named_modules() if isinstance(m, _BatchNorm)}
    assert not {r.bn for r in result.report.records if r.folded} & present  # folded means gone
    return result


def record(result, name: str):
    (found,) = [r for r in result.report.records if r.bn == name]
    return found


class Seq(nn.Sequential):
    """A Sequential so BN names are "1", "2", ..."""


# --- pattern 1: Conv → BN, subclasses, functional forms ------------------------------------


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_conv_bn_folds_into_conv(dims, groups, bias, affine, eps) -> None:
    model = Seq(
        CONV[dims](4, 6, 3, padding=1, groups=groups, bias=bias),
        BN[dims](6, affine=affine, eps=eps),
        nn.ReLU(),
    )
    result = fold_exact(model, torch.randn(2, 4, *SPATIAL[dims]))
    assert record(result, "1").direction is Direction.INTO_PRODUCER
    assert record(result, "1").target == "0"
    assert result.model.get_submodule("0").bias is not None  # created when missing
    assert result.capture == "fx"


def test_conv_subclass_is_recognised() -> None:
    """torchvision's Conv3DSimple subclasses nn.Conv3d; fx's own fuser misses it."""
    model = Seq(Conv3DSimple(3, 5, stride=1), nn.BatchNorm3d(5))
    result = fold_exact(model, torch.randn(1, 3, 4, 5, 6))
    assert result.report.num_folded == 1
    assert type(result.model.get_submodule("0")) is Conv3DSimple


class WSConv2d(nn.Conv2d):
    """Weight-standardised conv: its forward computes a new weight, so it is not a stock conv."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def test_conv_subclass_with_own_forward_is_left() -> None:
    result = fold_exact(Seq(WSConv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.randn(1, 3, 6, 6))
    assert record(result, "1").direction is Direction.LEFT
    assert "computed in the graph" in record(result, "1").reason


class FunctionalConvBN(nn.Module):
    """F.conv*/F.linear on parameters, then F.batch_norm on buffers: all get_attr constants."""

    def __init__(self, dims: int, eps: float, training: bool = False) -> None:
        super().__init__()
        self.dims, self.eps, self.bn_training = dims, eps, training
        if dims == 0:
            self.weight = nn.Parameter(torch.randn(6, 4))
        else:
            self.weight = nn.Parameter(torch.randn(6, 2, *([3] * dims)))
        self.bias = nn.Parameter(torch.randn(6))
        self.register_buffer("mean", torch.randn(6))
        self.register_buffer("var", torch.rand(6) + 0.5)
        self.gamma = nn.Parameter(torch.randn(6))
        self.beta = nn.Parameter(torch.randn(6))

    def forward(self, x):
        if self.dims == 0:
            y = F.linear(x, self.weight, self.bias)
        else:
            conv = (F.conv1d, F.conv2d, F.conv3d)[self.dims - 1]
            y = conv(x, self.weight, self.bias, 1, 1, 1, 2)
        return F.batch_norm(
            y, self.mean, self.var, self.gamma, self.beta, self.bn_training, 0.1, self.eps
        )


@pytest.mark.parametrize("dims", [0, 1, 2, 3])
def test_functional_conv_and_batch_norm_fold(dims: int) -> None:
    x = torch.randn(2, 4, *SPATIAL[dims]) if dims else torch.randn(3, 4)
    result = fold_exact(FunctionalConvBN(dims, eps=1e-3), x)
    (rec,) = result.report.records
    assert rec.direction is Direction.INTO_PRODUCER
    assert rec.target == ("linear" if dims == 0 else f"conv{dims}d")
    names = dict(result.model.named_parameters())
    assert "weight" not in names and "mean" not in dict(result.model.named_buffers())


def test_functional_batch_norm_in_training_mode_is_left() -> None:
    model = FunctionalConvBN(2, eps=1e-5, training=True).double().eval()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    result = bnfold.fold(model, x)
    (rec,) = result.report.records
    assert rec.direction is Direction.LEFT and "training mode" in rec.reason
    torch.testing.assert_close(result.model(x), model(x), **EXACT)


# --- pattern 2: ConvTranspose → BN -----------------------------------------------------------


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(("in_ch", "out_ch", "groups"), [(4, 6, 1), (4, 6, 2), (6, 9, 3)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("stride", "dilation", "output_padding"), [(1, 1, 0), (2, 2, 1)])
def test_conv_transpose_bn_folds(
    dims, in_ch, out_ch, groups, bias, stride, dilation, output_padding
) -> None:
    layer = CONV_T[dims](in_ch, out_ch, 3, stride, 1, output_padding, groups, bias, dilation)
    result = fold_exact(Seq(layer, BN[dims](out_ch)), torch.randn(2, in_ch, *SPATIAL[dims]))
    assert record(result, "1").direction is Direction.INTO_PRODUCER


def test_functional_conv_transpose_folds() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3, 3, 3))  # in=4, out = 3 * groups(2) = 6
            self.bn = nn.BatchNorm2d(6)

        def forward(self, x):
            return self.bn(F.conv_transpose2d(x, self.w, None, 2, 1, 1, 2))

    result = fold_exact(Model(), torch.randn(1, 4, 5, 5))
    assert record(result, "bn").target == "conv_transpose2d"


# --- pattern 3: Linear → BatchNorm1d -----------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("with_inputs", [True, False])
def test_linear_bn1d_folds_for_nc_outputs(bias: bool, affine: bool, with_inputs: bool) -> None:
    """(N, C) Linear output: BN's channel axis is the feature axis. Flatten fixes the rank even
    without example_inputs."""
    model = Seq(nn.Flatten(), nn.Linear(12, 5, bias=bias), nn.BatchNorm1d(5, affine=affine))
    result = fold_exact(model, torch.randn(3, 3, 2, 2), with_inputs=with_inputs)
    assert record(result, "2").direction is Direction.INTO_PRODUCER
    assert record(result, "2").target == "1"


def test_linear_bn1d_on_nlc_output_is_refused() -> None:
    """(N, L, C) Linear output: BatchNorm1d normalises L, not the Linear's features."""
    model = Seq(nn.Linear(8, 4), nn.BatchNorm1d(4))  # L == C == 4: shapes alone can't tell
    result = fold_exact(model, torch.randn(2, 4, 8))
    rec = record(result, "1")
    assert rec.direction is Direction.LEFT
    assert "not its feature axis" in rec.reason


def test_linear_bn1d_without_known_rank_asks_for_inputs() -> None:
    result = fold_exact(
        Seq(nn.Linear(8, 4), nn.BatchNorm1d(4)), torch.randn(2, 8), with_inputs=False
    )
    rec = record(result, "1")
    assert rec.direction is Direction.LEFT and "pass example_inputs" in rec.reason


def test_unbatched_conv1d_is_not_folded() -> None:
    """Conv1d on (C, L) puts channels on axis 0; BatchNorm1d on that 2-D tensor uses axis 1."""
    model = Seq(nn.Conv1d(3, 5, 1), nn.BatchNorm1d(5))
    result = fold_exact(model, torch.randn(3, 5))
    assert "unbatched" in record(result, "1").reason


# --- pattern 4: BN → Conv/Linear (into the consumer) -----------------------------------------


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("padding", "mode"), [(0, "zeros"), (1, "reflect"), (1, "replicate"), (1, "circular")]
)
def test_bn_conv_folds_into_consumer(dims, groups, bias, padding, mode) -> None:
    conv = CONV[dims](4, 6, 3, padding=padding, padding_mode=mode, groups=groups, bias=bias)
    result = fold_exact(Seq(BN[dims](4), conv), torch.randn(2, 4, *SPATIAL[dims]))
    rec = record(result, "0")
    assert rec.direction is Direction.INTO_CONSUMER and rec.target == "1"


def test_bn_before_zero_padded_conv_is_left() -> None:
    result = fold_exact(
        Seq(nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3, padding=1)), torch.randn(1, 4, 5, 5)
    )
    rec = record(result, "0")
    assert rec.direction is Direction.LEFT and "zero padding" in rec.reason


def test_bn_before_same_padded_1x1_conv_folds() -> None:
    """padding='same' with a 1x1 kernel pads nothing, so it is exact."""
    result = fold_exact(
        Seq(nn.BatchNorm2d(4), nn.Conv2d(4, 6, 1, padding="same")), torch.randn(1, 4, 5, 5)
    )
    assert record(result, "0").direction is Direction.INTO_CONSUMER


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_bn1d_linear_folds_into_consumer(bias: bool, affine: bool) -> None:
    model = Seq(nn.BatchNorm1d(6, affine=affine), nn.Linear(6, 3, bias=bias))
    result = fold_exact(model, torch.randn(4, 6))
    assert record(result, "0").direction is Direction.INTO_CONSUMER


def test_bn1d_before_linear_on_ncl_is_refused() -> None:
    """BatchNorm1d on (N, C, L) then Linear over L: the channel axis is not the feature axis."""
    result = fold_exact(Seq(nn.BatchNorm1d(4), nn.Linear(4, 3)), torch.randn(2, 4, 4))
    assert "not its feature axis" in record(result, "0").reason


class Fan(nn.Module):
    """BN output read by two layers, or by a layer and a ReLU."""

    def __init__(self, second: nn.Module) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.a = nn.Conv2d(4, 4, 1)
        self.b = second

    def forward(self, x):
        y = self.bn(x)
        return self.a(y) + self.b(y)


def test_bn_feeding_two_convs_folds_into_both() -> None:
    result = fold_exact(
        Fan(nn.Conv2d(4, 4, 3, padding_mode="reflect", padding=1)), torch.randn(1, 4, 5, 5)
    )
    rec = record(result, "bn")
    assert rec.direction is Direction.INTO_CONSUMER and rec.target == "a, b"


def test_bn_feeding_a_non_layer_is_left() -> None:
    """Pattern 5: no neighbour to fold into (here a ReLU after the BN, as in densenet)."""
    result = fold_exact(Fan(nn.ReLU()), torch.randn(1, 4, 5, 5))
    rec = record(result, "bn")
    assert rec.direction is Direction.LEFT
    assert "relu" in rec.reason.lower() and "model input" in rec.reason


def test_bn_after_concat_is_left() -> None:
    class Cat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))

    result = fold_exact(Cat(), torch.randn(1, 3, 4, 4))
    assert "cat" in record(result, "bn").reason


def test_bn_before_conv_transpose_is_left() -> None:
    result = fold_exact(
        Seq(nn.BatchNorm2d(4), nn.ConvTranspose2d(4, 3, 3)), torch.randn(1, 4, 4, 4)
    )
    assert "ConvTranspose" in record(result, "0").reason


def test_pre_norm_and_post_norm_around_one_conv_both_fold() -> None:
    """maxvit's MBConv: BN → conv → BN. The second folds into the conv, then the first too."""
    model = Seq(nn.BatchNorm2d(4), nn.Conv2d(4, 6, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU())
    result = fold_exact(model, torch.randn(1, 4, 5, 5))
    assert record(result, "0").direction is Direction.INTO_CONSUMER
    assert record(result, "2").direction is Direction.INTO_PRODUCER
    assert count_bn(result.model) == 0


def test_two_bns_in_a_row_both_fold() -> None:
    model = Seq(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.BatchNorm2d(4, eps=0.3), nn.ReLU())
    result = fold_exact(model, torch.randn(1, 3, 6, 6))
    assert result.report.num_folded == 2


# --- pattern 7: refusals -----------------------------------------------------------------------


def test_model_in_training_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"call model\.eval\(\) first"):
        bnfold.fold(Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train())


def test_bn_module_in_training_mode_is_left() -> None:
    model = randomize(Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    model[1].train()
    x = torch.randn(2, 3, 4, 4)
    result = bnfold.fold(model, x)
    assert "training mode" in record(result, "1").reason
    assert result.model.get_submodule("1").training  # still normalises with batch stats
    torch.testing.assert_close(result.model(x), model(x))


def test_bn_without_running_stats_is_left() -> None:
    model = Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    result = bnfold.fold(model)
    assert "track_running_stats" in record(result, "1").reason


@pytest.mark.parametrize(
    ("buffer", "value", "expected"),
    [
        ("running_var", float("nan"), "non-finite"),
        ("running_var", float("inf"), "non-finite"),
        ("running_var", -0.5, "negative"),
        ("running_mean", float("nan"), "non-finite"),
        ("running_mean", float("-inf"), "non-finite"),
    ],
)
def test_bad_running_stats_are_left(buffer: str, value: float, expected: str) -> None:
    model = randomize(Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    getattr(model[1], buffer)[2] = value
    result = bnfold.fold(model)
    rec = record(result, "1")
    assert rec.direction is Direction.LEFT and expected in rec.reason


def test_producer_with_other_consumers_is_left() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    result = fold_exact(Model(), torch.randn(1, 3, 5, 5))
    rec = record(result, "bn")
    assert rec.direction is Direction.LEFT and "other consumers" in rec.reason


class SharedConv(nn.Module):
    """One conv module called at two places (fx's fuser folds both BNs into it: wrong)."""

    def __init__(self, second_bn: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.bn2 = nn.BatchNorm2d(4) if second_bn else nn.Identity()

    def forward(self, x):
        return self.bn2(self.conv(self.bn1(self.conv(x))))


@pytest.mark.parametrize("second_bn", [True, False])
def test_layer_called_at_two_places_is_cloned_per_call_site(second_bn: bool) -> None:
    model = SharedConv(second_bn)
    result = fold_exact(model, torch.randn(1, 4, 5, 5))
    targets = [r.target for r in result.report.records]
    assert all(r.folded for r in result.report.records)
    assert len(set(targets)) == len(targets)  # each BN got its own copy of the conv
    convs = [m for m in result.model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2


def test_bn_called_at_two_places_is_left() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.bn = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.a(x)) + self.bn(self.b(x))

    result = fold_exact(Model(), torch.randn(1, 3, 4, 4))
    (rec,) = result.report.records
    assert "called at 2 places" in rec.reason


def test_tied_weights_are_not_mutated() -> None:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.bn = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.bn(self.a(x)))

    model = randomize(Model()).double()
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    result = bnfold.fold(model, x, inplace=True)  # no deep copy: sharing is real
    assert record(result, "bn").target in ("a", "b")
    torch.testing.assert_close(result.model(x), model(x), **EXACT)


def test_parametrized_layer_is_left() -> None:
    model = Seq(parametrizations.weight_norm(nn.Conv2d(3, 4, 1)), nn.BatchNorm2d(4))
    result = fold_exact(model, torch.randn(1, 3, 4, 4))
    assert "parametri" in record(result, "1").reason


def test_layer_with_hooks_is_left() -> None:
    model = Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model[0].register_forward_hook(lambda m, i, o: o * 2)
    result = fold_exact(model, torch.randn(1, 3, 4, 4))
    assert "hooks" in record(result, "1").reason


# --- pattern 8 and the contract: dtype, device, requires_grad, copies, idempotence -----------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtype_and_requires_grad_are_kept(dtype: torch.dtype) -> None:
    model = randomize(
        Seq(
            nn.Conv2d(3, 4, 3, bias=False),
            nn.BatchNorm2d(4),
            nn.Flatten(),
            nn.Linear(16, 5),
            nn.BatchNorm1d(5),
        )
    ).to(dtype)
    model[3].weight.requires_grad_(False)
    x = torch.randn(2, 3, 4, 4, dtype=dtype)
    result = bnfold.fold(model, x)
    assert result.report.num_folded == 2
    conv, linear = result.model.get_submodule("0"), result.model.get_submodule("3")
    for p in (conv.weight, conv.bias, linear.weight, linear.bias):
        assert p.dtype == dtype and p.device == x.device
    assert conv.weight.requires_grad and conv.bias.requires_grad
    assert not linear.weight.requires_grad and linear.bias.requires_grad
    tol = {torch.float16: 2e-2, torch.bfloat16: 1e-1}.get(dtype, 1e-4)
    torch.testing.assert_close(result.model(x).float(), model(x).float(), atol=tol, rtol=tol)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_is_kept() -> None:
    model = randomize(Seq(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))).cuda()
    x = torch.randn(1, 3, 5, 5, device="cuda")
    result = bnfold.fold(model, x)
    assert result.model.get_submodule("0").weight.device == x.device
    torch.testing.assert_close(result.model(x), model(x), atol=1e-5, rtol=1e-4)


def _weight_errors(dtype: torch.dtype) -> tuple[float, float, float]:
    """Mean |W' - exact| for: bnfold, the optimum (exact rounded once), and an own-dtype fold."""
    torch.manual_seed(0)
    model = randomize(Seq(nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64))).to(dtype)
    with torch.no_grad():
        model[0].weight.normal_(0.0, 1.0)
    conv, bn = model
    scale, _ = bn_scale_shift(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    exact = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
    ours = bnfold.fold(model).model.get_submodule("0").weight.double()
    optimum = exact.to(dtype).double()
    own_scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # every step rounded in dtype
    own = (conv.weight * own_scale.reshape(-1, 1, 1, 1)).double()

    def err(w: torch.Tensor) -> float:
        return (w - exact).abs().mean().item()

    return err(ours), err(optimum), err(own)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_fold_is_rounded_once(dtype: torch.dtype) -> None:
    """fp16/bf16 weights within 1.05x of the optimum; folding in the own dtype is clearly worse."""
    ours, optimum, own = _weight_errors(dtype)
    assert ours <= 1.05 * optimum
    assert own >= 1.2 * optimum  # the margin rounding once buys


def test_low_precision_bias_is_rounded_once() -> None:
    model = randomize(Seq(nn.Conv2d(4, 64, 1), nn.BatchNorm2d(64))).half()
    conv, bn = model
    scale, shift = bn_scale_shift(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    exact = conv.bias.double() * scale + shift
    folded = bnfold.fold(model).model.get_submodule("0").bias
    torch.testing.assert_close(folded, exact.half(), atol=0, rtol=0)


def test_input_model_is_untouched() -> None:
    model = randomize(Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
    before = copy.deepcopy(model.state_dict())
    modules = list(model.modules())
    bnfold.fold(model)
    assert list(model.modules()) == modules
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key], atol=0, rtol=0)


def test_inplace_skips_the_copy() -> None:
    model = randomize(Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 3)))
    assert bnfold.fold(model, inplace=True).model.get_submodule("2") is model[2]
    assert bnfold.fold(model).model.get_submodule("2") is not model[2]


def test_folding_twice_changes_nothing() -> None:
    model = Seq(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 3, padding=1),
    )
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    once = fold_exact(model, x)
    twice = bnfold.fold(once.model, x)
    assert twice.report.num_folded == 0
    assert [r.reason for r in twice.report.records] == [r.reason for r in once.report.left]
    first, second = once.model.state_dict(), twice.model.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], atol=0, rtol=0)


def test_every_bn_gets_one_record() -> None:
    class TorchNNLeaf(nn.Module):  # fx keeps modules "from torch.nn" whole
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(x)

    TorchNNLeaf.__module__ = "torch.nn.custom"

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
            self.unused = nn.BatchNorm2d(3)
            self.leaf = TorchNNLeaf()

        def forward(self, x):
            return self.leaf(self.bn(self.conv(x)))

    result = fold_exact(Model(), torch.randn(1, 3, 4, 4))
    assert [r.bn for r in result.report.records] == ["bn", "unused", "leaf.bn"]
    assert count_bn(result.model) == 1  # the unused one is not in the GraphModule
    assert "not called" in record(result, "unused").reason
    assert "inside leaf" in record(result, "leaf.bn").reason
    assert result.report.to_dict()["num_folded"] == 1


def test_a_summary_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    model = randomize(Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4)))
    with caplog.at_level(logging.INFO, logger="bnfold"):
        bnfold.fold(model)
    assert "Fused BatchNorm: 1 of 2" in caplog.text


@pytest.mark.parametrize(
    "fn", [module_fold.fold_bn_into_producer, module_fold.fold_bn_into_consumer]
)
def test_fold_functions_document_the_rewrite(fn) -> None:
    for word in ("Before:", "After:", "Conditions:", "Formula:"):
        assert word in fn.__doc__


def test_module_fold_returns_a_new_module() -> None:
    conv = nn.Conv2d(3, 4, 3, bias=False)
    weight = conv.weight.detach().clone()
    scale, shift = torch.rand(4, dtype=torch.float64) + 0.5, torch.randn(4, dtype=torch.float64)
    new = module_fold.fold_bn_into_producer(conv, scale, shift)
    assert conv.bias is None and new.bias is not None
    torch.testing.assert_close(conv.weight, weight, atol=0, rtol=0)
    expected, _ = fold_into_producer(weight, None, scale, shift)
    torch.testing.assert_close(new.weight, expected, atol=0, rtol=0)


# --- pattern 9: capture ------------------------------------------------------------------------


class Branchy(nn.Module):
    """Data-dependent control flow: fx cannot trace it."""

    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_untraceable_submodule_without_bn_becomes_a_leaf() -> None:
    model = Seq(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), Branchy())
    result = fold_exact(model, torch.rand(1, 3, 4, 4), with_inputs=False)
    assert result.capture == "fx" and result.report.num_folded == 1


class BranchyWithBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y * 2 if x.sum() > 0 else y


def test_untraceable_part_is_named_without_example_inputs() -> None:
    model = Seq(nn.Conv2d(3, 3, 1), BranchyWithBN()).eval()
    with pytest.raises(CaptureError, match=r"module '1' \(BranchyWithBN\)") as info:
        bnfold.fold(model)
    assert "example_inputs" in str(info.value)
    with pytest.raises(CaptureError, match="forward of BranchyWithBN"):
        bnfold.fold(BranchyWithBN().eval())


def test_untraceable_model_falls_back_to_hooks_with_example_inputs() -> None:
    result = fold_exact(BranchyWithBN(), torch.rand(1, 3, 4, 4))
    assert result.capture == "hooks"
    assert record(result, "bn").target == "conv"
