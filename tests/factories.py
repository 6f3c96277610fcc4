"""Model factories that test checkpoints name as ``"factories:<function>"``.

bnfold rebuilds a checkpoint's model by importing the factory it names; these let the bnfold
tests write checkpoints without depending on the training package.
"""

from __future__ import annotations

from torch import nn


def build_conv_bn(channels: int = 4, num_classes: int = 2) -> nn.Module:
    """conv → BN → ReLU → conv → BN → ReLU → pool → linear → BN1d, for (N, 3, H, W) inputs."""
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * channels, num_classes),
        nn.BatchNorm1d(num_classes),
    )


def bn_lenet_with_running_stats(seed: int = 0) -> nn.Module:
    """BN-LeNet in eval mode with non-trivial running statistics, so folding changes weights."""
    import torch

    from train.models import build_model

    torch.manual_seed(seed)
    model = build_model("bn-lenet", 2)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()
