"""LeNet and BN-LeNet exactly as the course builds them, plus its weight initialisations.

The two architectures differ only by the BatchNorm after conv1, conv2 and fc1, which is
what the course's BN lesson (and our folding library) is about.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn

from bnfold.checkpoint import TRAIN_FACTORY, ModelSpec
from train.names import ARCHS, INITS

__all__ = ["ARCHS", "INITS", "LeNet", "build_model", "initialize_weights", "model_spec"]


class LeNet(nn.Module):
    """conv(3→6, 5) → ReLU → pool → conv(6→16, 5) → ReLU → pool → fc 400→120→84→classes.

    With ``batch_norm=True`` a BatchNorm follows conv1, conv2 and fc1 (before their ReLU).
    Expects 3×32×32 inputs.
    """

    def __init__(self, num_classes: int = 2, *, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.bn1 = nn.BatchNorm2d(6) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16) if batch_norm else nn.Identity()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.bn3 = nn.BatchNorm1d(120) if batch_norm else nn.Identity()
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = x.flatten(1)
        x = self.relu(self.bn3(self.fc1(x)))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def build_model(arch: str, num_classes: int) -> LeNet:
    """Build ``lenet`` or ``bn-lenet`` by name (the name stored in checkpoints)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    return LeNet(num_classes, batch_norm=arch == "bn-lenet")


def model_spec(arch: str, num_classes: int) -> ModelSpec:
    """The checkpoint's ``model`` entry: :func:`build_model` (the allowed factory) and its args."""
    return ModelSpec(TRAIN_FACTORY, {"arch": arch, "num_classes": num_classes})


def _course_init(model: nn.Module) -> None:
    # The course's initialize_weights: xavier_normal convs, N(0, 0.1) linears for LeNet and
    # N(0, 1) for BN-LeNet (BN rescues the large init), zero biases.
    linear_std = 1.0 if getattr(model, "batch_norm", False) else 0.1
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def _init_layers(weight_init: Callable[[Tensor], object], model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            weight_init(m.weight)
            nn.init.zeros_(m.bias)


_INITIALISERS: dict[str, Callable[[nn.Module], None]] = {
    "default": lambda model: None,  # PyTorch's own init, applied at construction
    "course": _course_init,
    "kaiming": partial(_init_layers, partial(nn.init.kaiming_normal_, nonlinearity="relu")),
    "normal": partial(_init_layers, partial(nn.init.normal_, mean=0.0, std=1.0)),
}


def initialize_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise ``model`` in place with one of :data:`INITS`."""
    if scheme not in _INITIALISERS:
        raise ValueError(f"unknown init {scheme!r}: choose one of {', '.join(INITS)}")
    _INITIALISERS[scheme](model)
