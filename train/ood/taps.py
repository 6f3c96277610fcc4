"""The activations the OOD scores read, taken inside LeNet's own forward so folding keeps them.

Every tap sits *after* a BatchNorm (before its ReLU). Folding moves each BN into the conv or
linear before it, so the folded layer's output is exactly the BN's output: the taps, and every
score computed from them, are the same function of the input before and after
``bnfold.fold``. (A tap *before* a BN would vanish with folding and would also stop the BN from
folding, since its producer would gain a second consumer.) For plain LeNet the "BN" is an
``nn.Identity`` and the taps are the conv / linear outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

# (tapped module, channels) in forward order; conv taps are (N, C, H, W), bn3's is (N, 120).
CONV_TAPS = (("bn1", 6), ("bn2", 16))


@dataclass
class Taps:
    """One forward pass of LeNet with the intermediate values the scores need."""

    logits: Tensor  # (N, classes)
    conv: tuple[Tensor, ...]  # post-BN conv activations, one per CONV_TAPS entry
    hidden: Tensor  # post-BN fc1 activation (N, 120), before its ReLU
    penultimate: Tensor  # post-ReLU fc2 output (N, 84): what fc3 reads


def check_lenet(model: nn.Module) -> None:
    """Raise ValueError unless ``model`` has LeNet's layers (the only architecture tapped)."""
    needed = ("conv1", "bn1", "conv2", "bn2", "fc1", "bn3", "fc2", "fc3", "relu", "pool")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise ValueError(
            f"OOD scoring taps LeNet / BN-LeNet (train.models.LeNet); {type(model).__name__} "
            f"lacks {', '.join(missing)}"
        )


def lenet_taps(model: nn.Module, x: Tensor) -> Taps:
    """LeNet's forward, step by step as :meth:`train.models.LeNet.forward`, keeping the taps.

    Written with module calls only, so torch.fx traces it into the same leaves (conv, BN,
    linear) that ``bnfold.fold`` rewrites.
    """
    a1 = model.bn1(model.conv1(x))
    h = model.pool(model.relu(a1))
    a2 = model.bn2(model.conv2(h))
    h = model.pool(model.relu(a2)).flatten(1)
    hidden = model.bn3(model.fc1(h))
    penultimate = model.relu(model.fc2(model.relu(hidden)))
    return Taps(model.fc3(penultimate), (a1, a2), hidden, penultimate)
