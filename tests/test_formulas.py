"""bnfold.formulas against running the real torch modules in float64.

Each test builds the unfolded pair (layer then BN, or BN then layer) from torch modules, runs it
in float64, and checks that the folded weights computed by the formulas give the same output.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnfold.formulas import bn_scale_shift, fold_into_consumer, fold_into_producer

TIGHT = {"atol": 1e-10, "rtol": 1e-10}
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
FUNC = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
FUNC_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
SPATIAL = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}


def random_bn(channels: int, *, affine: bool = True, eps: float = 1e-5) -> nn.BatchNorm1d:
    """An eval-mode float64 BN with random stats (BatchNorm1d works for any rank via F)."""
    bn = nn.BatchNorm1d(channels, affine=affine, eps=eps).double().eval()
    with torch.no_grad():
        bn.running_mean.normal_(0.0, 2.0)
        bn.running_var.uniform_(0.1, 3.0)
        if affine:
            bn.weight.normal_(0.0, 1.5)
            bn.bias.normal_(0.0, 1.0)
    return bn


def bn_apply(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def scale_shift(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    return bn_scale_shift(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.5])
def test_bn_scale_shift_is_the_bn(affine: bool, eps: float) -> None:
    torch.manual_seed(0)
    bn = random_bn(5, affine=affine, eps=eps)
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    scale, shift = scale_shift(bn)
    assert scale.dtype == torch.float64
    torch.testing.assert_close(scale[:, None] * x + shift[:, None], bn(x), **TIGHT)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dilation", [1, 2])
def test_fold_into_producer_conv(dims: int, groups: int, bias: bool, dilation: int) -> None:
    torch.manual_seed(dims * 10 + groups)
    conv = CONV[dims](4, 6, 3, padding=1, groups=groups, bias=bias, dilation=dilation).double()
    bn = random_bn(6)
    x = torch.randn(2, 4, *SPATIAL[dims], dtype=torch.float64)
    w, b = fold_into_producer(conv.weight, conv.bias, *scale_shift(bn), out_axis=0)
    got = FUNC[dims](x, w, b, padding=1, groups=groups, dilation=dilation)
    torch.testing.assert_close(got, bn_apply(bn, conv(x)), **TIGHT)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    ("in_ch", "out_ch", "groups"), [(4, 6, 1), (4, 6, 2), (6, 9, 3), (6, 4, 2), (4, 4, 4)]
)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("stride", "dilation", "output_padding"), [(1, 1, 0), (2, 2, 1)])
def test_fold_into_producer_conv_transpose(
    dims: int, in_ch: int, out_ch: int, groups: int, bias: bool, stride, dilation, output_padding
) -> None:
    """ConvTranspose weights are (in, out/groups, *k): the out-channel axis is 1 within a group."""
    torch.manual_seed(in_ch * out_ch + groups)
    conv = CONV_T[dims](
        in_ch,
        out_ch,
        3,
        stride=stride,
        padding=1,
        output_padding=output_padding,
        groups=groups,
        bias=bias,
        dilation=dilation,
    ).double()
    bn = random_bn(out_ch)
    x = torch.randn(2, in_ch, *SPATIAL[dims], dtype=torch.float64)
    w, b = fold_into_producer(conv.weight, conv.bias, *scale_shift(bn), out_axis=1, groups=groups)
    assert w.shape == conv.weight.shape
    got = FUNC_T[dims](x, w, b, stride, 1, output_padding, groups, dilation)
    torch.testing.assert_close(got, bn_apply(bn, conv(x)), **TIGHT)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_fold_into_producer_linear(bias: bool, affine: bool) -> None:
    torch.manual_seed(1)
    linear = nn.Linear(5, 7, bias=bias).double()
    bn = random_bn(7, affine=affine)
    x = torch.randn(4, 5, dtype=torch.float64)
    w, b = fold_into_producer(linear.weight, linear.bias, *scale_shift(bn))
    torch.testing.assert_close(F.linear(x, w, b), bn_apply(bn, linear(x)), **TIGHT)


def test_fold_into_producer_rejects_other_axes() -> None:
    w = torch.ones(2, 2)
    with pytest.raises(ValueError, match="out_axis"):
        fold_into_producer(w, None, torch.ones(2), torch.zeros(2), out_axis=2)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("padding", "padding_mode"),
    [(0, "zeros"), (1, "reflect"), (1, "replicate"), (1, "circular"), (2, "circular")],
)
def test_fold_into_consumer_conv(dims, groups, bias, padding, padding_mode) -> None:
    """Exact for no padding and for padding modes that pad with (shifted) input values."""
    torch.manual_seed(dims + groups)
    conv = CONV[dims](
        4, 6, 3, padding=padding, padding_mode=padding_mode, groups=groups, bias=bias
    ).double()
    bn = random_bn(4)
    x = torch.randn(2, 4, *SPATIAL[dims], dtype=torch.float64)
    w, b = fold_into_consumer(conv.weight, conv.bias, *scale_shift(bn), groups=groups)
    folded = CONV[dims](4, 6, 3, padding=padding, padding_mode=padding_mode, groups=groups).double()
    with torch.no_grad():
        folded.weight.copy_(w)
        folded.bias.copy_(b)
    torch.testing.assert_close(folded(x), conv(bn_apply(bn, x)), **TIGHT)


def test_fold_into_consumer_conv_zero_padding_is_wrong_at_borders() -> None:
    """Why zero-padded consumers are refused: the folded shift leaks into the padded border."""
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 2, 3, padding=1).double()
    bn = random_bn(3)
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    w, b = fold_into_consumer(conv.weight, conv.bias, *scale_shift(bn))
    diff = (F.conv2d(x, w, b, padding=1) - conv(bn_apply(bn, x))).abs()
    assert diff[..., 1:-1, 1:-1].max() < 1e-10  # the interior is exact
    assert diff.max() > 1e-3  # the borders are not


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_fold_into_consumer_linear(bias: bool, affine: bool) -> None:
    torch.manual_seed(2)
    linear = nn.Linear(6, 3, bias=bias).double()
    bn = random_bn(6, affine=affine)
    x = torch.randn(4, 6, dtype=torch.float64)
    w, b = fold_into_consumer(linear.weight, linear.bias, *scale_shift(bn))
    torch.testing.assert_close(F.linear(x, w, b), linear(bn_apply(bn, x)), **TIGHT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_results_keep_the_parameter_dtype(dtype: torch.dtype) -> None:
    weight = torch.randn(4, 3, 3, dtype=dtype)
    scale, shift = torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    for w, b in (
        fold_into_producer(weight, None, scale, shift),
        fold_into_consumer(weight.transpose(0, 1).contiguous(), None, scale, shift),
    ):
        assert w.dtype == dtype and b.dtype == dtype
