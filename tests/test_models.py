"""Protects the course's LeNet / BN-LeNet layer by layer and its weight initialisations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from train.models import ARCHS, INITS, LeNet, build_model, initialize_weights

# (name, expected type, expected parameter shapes) in the course's forward order.
CONV_FC = [
    ("conv1", nn.Conv2d, {"weight": (6, 3, 5, 5), "bias": (6,)}),
    ("conv2", nn.Conv2d, {"weight": (16, 6, 5, 5), "bias": (16,)}),
    ("fc1", nn.Linear, {"weight": (120, 400), "bias": (120,)}),
    ("fc2", nn.Linear, {"weight": (84, 120), "bias": (84,)}),
]
BNS = [("bn1", nn.BatchNorm2d, 6), ("bn2", nn.BatchNorm2d, 16), ("bn3", nn.BatchNorm1d, 120)]


def _param_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


@pytest.mark.parametrize("num_classes", [2, 5])
@pytest.mark.parametrize("arch", ARCHS)
def test_layers_and_parameter_shapes_are_the_courses(arch, num_classes):
    model = build_model(arch, num_classes)
    expected = {}
    for name, cls, shapes in CONV_FC:
        assert type(getattr(model, name)) is cls
        expected.update({f"{name}.{k}": v for k, v in shapes.items()})
    assert type(model.fc3) is nn.Linear
    expected.update({"fc3.weight": (num_classes, 84), "fc3.bias": (num_classes,)})
    for name, cls, channels in BNS:
        layer = getattr(model, name)
        if arch == "bn-lenet":
            assert type(layer) is cls
            assert layer.num_features == channels
            assert layer.affine and layer.track_running_stats
            expected.update({f"{name}.weight": (channels,), f"{name}.bias": (channels,)})
        else:
            assert type(layer) is nn.Identity
    assert _param_shapes(model) == expected
    assert model.conv1.kernel_size == model.conv2.kernel_size == (5, 5)
    assert model.pool.kernel_size == 2


def test_bn_lenet_buffers_are_the_running_statistics():
    buffers = {name for name, _ in build_model("bn-lenet", 2).named_buffers()}
    assert buffers == {
        f"{bn}.{b}" for bn in ("bn1", "bn2", "bn3") for b in ("running_mean", "running_var")
    } | {f"{bn}.num_batches_tracked" for bn in ("bn1", "bn2", "bn3")}
    assert dict(build_model("lenet", 2).named_buffers()) == {}


def _reference_forward(model: LeNet, x: torch.Tensor) -> torch.Tensor:
    """The course's forward written out with functional ops: BN sits between conv/fc and ReLU."""
    f = nn.functional

    def bn(layer, t):
        if isinstance(layer, nn.Identity):
            return t
        return f.batch_norm(
            t,
            layer.running_mean,
            layer.running_var,
            layer.weight,
            layer.bias,
            False,
            0.0,
            layer.eps,
        )

    x = f.max_pool2d(f.relu(bn(model.bn1, f.conv2d(x, model.conv1.weight, model.conv1.bias))), 2)
    x = f.max_pool2d(f.relu(bn(model.bn2, f.conv2d(x, model.conv2.weight, model.conv2.bias))), 2)
    x = x.reshape(x.shape[0], 400)
    x = f.relu(bn(model.bn3, f.linear(x, model.fc1.weight, model.fc1.bias)))
    x = f.relu(f.linear(x, model.fc2.weight, model.fc2.bias))
    return f.linear(x, model.fc3.weight, model.fc3.bias)


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_matches_the_functional_reference(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3)
    for name, _, _ in BNS:
        layer = getattr(model, name)
        if not isinstance(layer, nn.Identity):  # non-trivial statistics make BN's place matter
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.data.uniform_(0.5, 1.5)
            layer.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out, _reference_forward(model, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_other_input_sizes_are_rejected(arch):
    with pytest.raises(RuntimeError):
        build_model(arch, 2).eval()(torch.zeros(1, 3, 28, 28))


def _std(t: torch.Tensor) -> float:
    return t.detach().float().std().item()


@pytest.mark.parametrize(("arch", "linear_std"), [("lenet", 0.1), ("bn-lenet", 1.0)])
def test_course_init_statistics(arch, linear_std):
    torch.manual_seed(0)
    model = build_model(arch, 2)
    initialize_weights(model, "course")
    for name in ("conv1", "conv2"):
        conv = getattr(model, name)
        fan_in = conv.in_channels * 25
        fan_out = conv.out_channels * 25
        expected = math.sqrt(2.0 / (fan_in + fan_out))  # xavier normal, gain 1
        assert _std(conv.weight) == pytest.approx(expected, rel=0.15), name
        assert abs(conv.weight.mean().item()) < 0.2 * expected
        assert torch.count_nonzero(conv.bias) == 0
    for name in ("fc1", "fc2", "fc3"):
        fc = getattr(model, name)
        # fc3 holds only 168 weights; fc1 48000: a 20% band fits all and still tells 0.1 from 1.
        assert _std(fc.weight) == pytest.approx(linear_std, rel=0.2), name
        assert torch.count_nonzero(fc.bias) == 0
    for name, _, _ in BNS:
        layer = getattr(model, name)
        if arch == "bn-lenet":
            assert torch.equal(layer.weight, torch.ones_like(layer.weight))
            assert torch.count_nonzero(layer.bias) == 0


def test_course_init_resets_batchnorm_affine():
    model = build_model("bn-lenet", 2)
    with torch.no_grad():
        for name, _, _ in BNS:
            getattr(model, name).weight.fill_(3.0)
            getattr(model, name).bias.fill_(-1.0)
    initialize_weights(model, "course")
    for name, _, channels in BNS:
        layer = getattr(model, name)
        torch.testing.assert_close(layer.weight.detach(), torch.ones(channels), atol=0, rtol=0)
        assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_kaiming_init_statistics(arch):
    torch.manual_seed(0)
    model = build_model(arch, 2)
    initialize_weights(model, "kaiming")
    for name in ("conv1", "conv2", "fc1", "fc2"):
        layer = getattr(model, name)
        fan_in = layer.weight[0].numel()
        assert _std(layer.weight) == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.15), name
        assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_normal_init_statistics(arch):
    torch.manual_seed(0)
    model = build_model(arch, 2)
    initialize_weights(model, "normal")
    for name in ("conv1", "conv2", "fc1", "fc2"):
        layer = getattr(model, name)
        assert _std(layer.weight) == pytest.approx(1.0, rel=0.15), name
        assert torch.count_nonzero(layer.bias) == 0


def test_default_init_is_pytorchs_own():
    torch.manual_seed(3)
    model = build_model("bn-lenet", 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initialize_weights(model, "default")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # PyTorch's default Linear/Conv init is uniform within 1/sqrt(fan_in), far below N(0, 1).
    bound = 1.0 / math.sqrt(400)
    assert model.fc1.weight.abs().max().item() <= bound + 1e-7


def test_every_init_name_is_accepted():
    for scheme in INITS:
        initialize_weights(build_model("lenet", 2), scheme)


@pytest.mark.parametrize("arch", ["LeNet", "resnet18", ""])
def test_unknown_arch_raises_value_error(arch):
    with pytest.raises(ValueError, match=r"unknown arch.*lenet, bn-lenet"):
        build_model(arch, 2)


@pytest.mark.parametrize("scheme", ["xavier", "Course", ""])
def test_unknown_init_raises_value_error(scheme):
    with pytest.raises(ValueError, match=r"unknown init.*default, course, kaiming, normal"):
        initialize_weights(build_model("lenet", 2), scheme)
