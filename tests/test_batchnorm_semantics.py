"""Pins the BatchNorm semantics the course teaches against nn.BatchNorm1d/2d/3d.

Everything the folding library relies on is checked here against formulas computed by hand in
float64: which variance normalises (biased) and which is stored (unbiased), PyTorch's momentum
convention, the cumulative average of ``momentum=None``, eval vs train statistics, and where eps,
gamma and beta enter. The modules also run in float64, so tolerances can be tight.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

DTYPE = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}
C = 3

# (module class, input shape): 1d covers both (N, C) and (N, C, L). Few elements per channel
# make the biased/unbiased distinction large (n/(n-1) is 4/3 for the (4, 3) input).
CASES = [
    pytest.param(nn.BatchNorm1d, (4, C), id="1d-NC"),
    pytest.param(nn.BatchNorm1d, (4, C, 5), id="1d-NCL"),
    pytest.param(nn.BatchNorm2d, (2, C, 3, 4), id="2d-NCHW"),
    pytest.param(nn.BatchNorm3d, (2, C, 2, 3, 2), id="3d-NCDHW"),
]


def _batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    # Offset and scale per channel so mean 0 / var 1 defaults could not pass by accident.
    g = torch.Generator().manual_seed(seed)
    view = (1, C) + (1,) * (len(shape) - 2)
    offset = torch.tensor([1.5, -2.0, 0.25], dtype=DTYPE).view(view)
    scale = torch.tensor([0.5, 3.0, 1.25], dtype=DTYPE).view(view)
    return torch.randn(shape, generator=g, dtype=DTYPE) * scale + offset


def _reduce_dims(x: torch.Tensor) -> list[int]:
    return [d for d in range(x.dim()) if d != 1]


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view((1, C) + (1,) * (x.dim() - 2))


def _batch_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean, biased variance and unbiased variance, by hand."""
    dims = _reduce_dims(x)
    n = x.numel() // x.shape[1]
    mean = x.mean(dim=dims)
    sq = ((x - _per_channel(mean, x)) ** 2).sum(dim=dims)
    return mean, sq / n, sq / (n - 1)


def _normalise(x, mean, var, eps, weight=None, bias=None) -> torch.Tensor:
    """(x − mean) / √(var + eps), then · gamma + beta."""
    y = (x - _per_channel(mean, x)) / torch.sqrt(_per_channel(var, x) + eps)
    if weight is not None:
        y = y * _per_channel(weight, x) + _per_channel(bias, x)
    return y


def _make(cls, **kwargs) -> nn.Module:
    bn = cls(C, dtype=DTYPE, **kwargs)
    if bn.affine:
        with torch.no_grad():  # non-trivial gamma/beta so that their placement matters
            bn.weight.copy_(torch.tensor([2.0, -0.5, 1.5], dtype=DTYPE))
            bn.bias.copy_(torch.tensor([0.3, 1.0, -2.0], dtype=DTYPE))
    return bn


@pytest.mark.parametrize(("cls", "shape"), CASES)
def test_train_forward_normalises_with_biased_batch_variance(cls, shape):
    bn = _make(cls, eps=1e-3).train()
    x = _batch(shape)
    mean, biased, unbiased = _batch_stats(x)
    y = bn(x)
    torch.testing.assert_close(y, _normalise(x, mean, biased, 1e-3, bn.weight, bn.bias), **TOL)
    # The unbiased variance would give a visibly different output: the check above can fail.
    wrong = _normalise(x, mean, unbiased, 1e-3, bn.weight, bn.bias)
    assert (y - wrong).abs().max() > 1e-3


@pytest.mark.parametrize(("cls", "shape"), CASES)
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_running_stats_follow_momentum_with_unbiased_variance(cls, shape, momentum):
    # PyTorch's convention: new = (1 − momentum)·old + momentum·batch (the opposite of Keras's).
    bn = _make(cls, momentum=momentum).train()
    expected_mean = torch.zeros(C, dtype=DTYPE)
    expected_var = torch.ones(C, dtype=DTYPE)
    for step, seed in enumerate((0, 1), start=1):
        x = _batch(shape, seed)
        mean, _, unbiased = _batch_stats(x)
        bn(x)
        expected_mean = (1 - momentum) * expected_mean + momentum * mean
        expected_var = (1 - momentum) * expected_var + momentum * unbiased
        torch.testing.assert_close(bn.running_mean, expected_mean, **TOL)
        torch.testing.assert_close(bn.running_var, expected_var, **TOL)
        assert bn.num_batches_tracked.item() == step


@pytest.mark.parametrize(("cls", "shape"), CASES)
def test_momentum_none_is_a_cumulative_moving_average(cls, shape):
    # momentum=None uses 1/num_batches_tracked: the running stats are the plain average of the
    # batch statistics seen so far (the initial 0 / 1 are forgotten after the first batch).
    bn = _make(cls, momentum=None).train()
    means, variances = [], []
    for step, seed in enumerate((0, 1, 2), start=1):
        x = _batch(shape, seed)
        mean, _, unbiased = _batch_stats(x)
        means.append(mean)
        variances.append(unbiased)
        bn(x)
        assert bn.num_batches_tracked.item() == step
        torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0), **TOL)
        torch.testing.assert_close(bn.running_var, torch.stack(variances).mean(0), **TOL)


@pytest.mark.parametrize(("cls", "shape"), CASES)
def test_eval_uses_running_stats_and_leaves_them_alone(cls, shape):
    bn = _make(cls, eps=1e-2)
    running_mean = torch.tensor([0.5, -1.0, 2.0], dtype=DTYPE)
    running_var = torch.tensor([4.0, 0.25, 1.5], dtype=DTYPE)
    with torch.no_grad():
        bn.running_mean.copy_(running_mean)
        bn.running_var.copy_(running_var)
    bn.eval()
    x = _batch(shape)
    y = bn(x)
    expected = _normalise(x, running_mean, running_var, 1e-2, bn.weight, bn.bias)
    torch.testing.assert_close(y, expected, **TOL)
    torch.testing.assert_close(bn.running_mean, running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, running_var, rtol=0, atol=0)
    assert bn.num_batches_tracked.item() == 0
    # The same input in training mode is normalised by its own statistics instead.
    mean, biased, _ = _batch_stats(x)
    torch.testing.assert_close(
        bn.train()(x), _normalise(x, mean, biased, 1e-2, bn.weight, bn.bias), **TOL
    )


@pytest.mark.parametrize(("cls", "shape"), CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_without_running_stats_batch_stats_are_used_even_in_eval(cls, shape, mode):
    bn = _make(cls, track_running_stats=False)
    bn.train(mode == "train")
    assert bn.running_mean is None
    assert bn.running_var is None
    assert bn.num_batches_tracked is None
    assert dict(bn.named_buffers()) == {}
    x = _batch(shape)
    mean, biased, _ = _batch_stats(x)
    expected = _normalise(x, mean, biased, bn.eps, bn.weight, bn.bias)
    torch.testing.assert_close(bn(x), expected, **TOL)


@pytest.mark.parametrize(("cls", "shape"), CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_affine_false_has_no_gamma_beta(cls, shape, mode):
    bn = _make(cls, affine=False)
    assert bn.weight is None
    assert bn.bias is None
    assert list(bn.parameters()) == []
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0], dtype=DTYPE))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.5], dtype=DTYPE))
    bn.train(mode == "train")
    x = _batch(shape)
    if mode == "train":
        mean, var, _ = _batch_stats(x)
    else:
        mean, var = bn.running_mean.clone(), bn.running_var.clone()
    torch.testing.assert_close(bn(x), _normalise(x, mean, var, bn.eps), **TOL)


@pytest.mark.parametrize(("cls", "shape"), CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_eps_is_added_inside_the_square_root(cls, shape, mode):
    eps = 0.5  # large, so that inside vs outside the sqrt differ clearly
    bn = _make(cls, eps=eps)
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.5], dtype=DTYPE))
    bn.train(mode == "train")
    x = _batch(shape)
    if mode == "train":
        mean, var, _ = _batch_stats(x)
    else:
        mean, var = bn.running_mean.clone(), bn.running_var.clone()
    y = bn(x)
    torch.testing.assert_close(y, _normalise(x, mean, var, eps, bn.weight, bn.bias), **TOL)
    outside = (x - _per_channel(mean, x)) / (torch.sqrt(_per_channel(var, x)) + eps)
    outside = outside * _per_channel(bn.weight, x) + _per_channel(bn.bias, x)
    assert (y - outside).abs().max() > 1e-2


@pytest.mark.parametrize(("cls", "shape"), CASES)
def test_gamma_and_beta_apply_after_normalisation(cls, shape):
    # In training mode each output channel therefore has mean beta and biased std
    # |gamma|·√(var / (var + eps)), whatever the input's own mean and scale.
    bn = _make(cls, eps=1e-5).train()
    x = _batch(shape)
    _, biased, _ = _batch_stats(x)
    y = bn(x)
    out_mean, out_biased, _ = _batch_stats(y)
    torch.testing.assert_close(out_mean, bn.bias.detach(), **TOL)
    expected_std = bn.weight.detach().abs() * torch.sqrt(biased / (biased + 1e-5))
    torch.testing.assert_close(out_biased.sqrt(), expected_std, **TOL)
    # Applying gamma/beta before normalising would cancel them: the output would not match.
    x_affine = x * _per_channel(bn.weight.detach(), x) + _per_channel(bn.bias.detach(), x)
    m, v, _ = _batch_stats(x_affine)
    assert (y - _normalise(x_affine, m, v, 1e-5)).abs().max() > 1e-1


@pytest.mark.parametrize(
    ("cls", "bad_shape"),
    [
        (nn.BatchNorm1d, (2, C, 2, 2)),
        (nn.BatchNorm2d, (2, C, 4)),
        (nn.BatchNorm3d, (2, C, 2, 2)),
    ],
)
def test_wrong_input_rank_is_rejected(cls, bad_shape):
    with pytest.raises(ValueError, match="expected"):
        cls(C)(torch.zeros(bad_shape))


def test_single_value_per_channel_cannot_be_normalised_in_training():
    # The reason the course's demo batches hold more than one sample: a (1, C) batch has no
    # variance to estimate, so BatchNorm1d refuses it in training mode (eval mode is fine).
    bn = nn.BatchNorm1d(C)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn.train()(torch.zeros(1, C))
    assert bn.eval()(torch.zeros(1, C)).shape == (1, C)
