"""Model factories that test checkpoints name as ``"factories:<function>"``, and checkpoints.

bnfold rebuilds a checkpoint's model by importing the factory it names; these let the bnfold
tests write checkpoints without depending on the training package.
"""

from __future__ import annotations

from pathlib import Path

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


def checkpoint_dict(
    arch: str = "bn-lenet", seed: int = 0, *, factory: str | None = None, **entries
) -> dict:
    """A ``python -m train`` checkpoint as the dict on disk (format_version 1), for tests that
    need to write one by hand or break one entry; ``entries`` replace or add keys.

    The model is BN-LeNet/LeNet from ``train.models`` unless ``factory`` and ``model`` say
    otherwise.
    """
    import torch

    from train.models import build_model, model_spec

    torch.manual_seed(seed)
    spec = model_spec(arch, 2)
    ckpt = {
        "format_version": 1,
        "arch": arch,
        "model": {"factory": factory or spec.factory, "kwargs": dict(spec.kwargs)},
        "class_names": ["1", "100"],
        "input_size": [32, 32],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "folded": False,
        "state_dict": build_model(arch, 2).state_dict(),
        "metrics": {"history": [], "step_losses": [], "test_acc": None},
        "split": {"train": ["1/a.jpg"], "valid": ["1/b.jpg"], "test": ["1/c.jpg"]},
        "data": "synthetic",
        "args": {"seed": seed},
    }
    ckpt.update(entries)
    return ckpt


def checkpoint(arch: str = "bn-lenet", seed: int = 0, **entries):
    """The same checkpoint as a validated :class:`bnfold.checkpoint.Checkpoint` record."""
    from bnfold.checkpoint import Checkpoint

    return Checkpoint.from_dict(checkpoint_dict(arch, seed, **entries))


def bn_lenet_onnx_pair(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Path]]:
    """BN-LeNet with non-trivial BN statistics, its fold, and both ONNX files in ``folder``."""
    import torch

    import bnfold
    from export import onnx_writer

    model = bn_lenet_with_running_stats(seed=0)
    folded = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model.eval()
    files = {"unfolded": folder / "m.unfolded.onnx", "folded": folder / "m.folded.onnx"}
    onnx_writer.save(onnx_writer.to_onnx(model, (32, 32)), files["unfolded"])
    onnx_writer.save(onnx_writer.to_onnx(folded, (32, 32)), files["folded"])
    return model, folded, files
