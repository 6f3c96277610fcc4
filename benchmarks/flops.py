"""FLOPs of one forward pass, counted from the modules a network really calls.

Why count rather than hard-code: the benchmark divides each variant's FLOP rate by the machine's
sgemm peak, and a hard-coded number silently goes stale when the network changes.

Convention (one FLOP = one fp32 multiply, add, or comparison; a multiply-accumulate is 2):

- Conv / Linear: 2 × MACs, i.e. ``2 · out.numel() · (C_in / groups) · prod(kernel)`` and
  ``2 · out.numel() · in_features``. The bias add is not counted separately (it takes the place
  of the first add of each dot product). ``torch.utils.flop_counter.FlopCounterMode`` counts
  these two the same way, which the tests use as the reference.
- BatchNorm (eval): 2 per element, ``x · scale + shift`` with scale and shift precomputed.
- ReLU: 1 per element (a comparison). MaxPool: ``prod(kernel) - 1`` comparisons per output.
  AvgPool: ``prod(kernel)`` per output (adds and one multiply).
- Identity, Flatten, Dropout (eval): 0.

Forward hooks on leaf modules see every call (a ReLU module used four times counts four times).
Operations written as functions inside ``forward`` (``x.flatten(1)``, ``F.relu``) are not seen;
leaf modules without a formula are listed in :attr:`FlopCount.uncounted`, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------
# Math layer: FLOPs from shapes.


def conv_flops(out_numel: int, in_channels_per_group: int, kernel: tuple[int, ...]) -> int:
    """2 · MACs of a convolution whose output has ``out_numel`` elements."""
    return 2 * out_numel * in_channels_per_group * math.prod(kernel)


def linear_flops(out_numel: int, in_features: int) -> int:
    """2 · MACs of a fully connected layer whose output has ``out_numel`` elements."""
    return 2 * out_numel * in_features


def batchnorm_flops(numel: int) -> int:
    """Eval-mode BatchNorm: one multiply and one add per element."""
    return 2 * numel


def relu_flops(numel: int) -> int:
    """One comparison per element."""
    return numel


def maxpool_flops(out_numel: int, window: int) -> int:
    """``window - 1`` comparisons per output element."""
    return out_numel * (window - 1)


def avgpool_flops(out_numel: int, window: int) -> int:
    """``window - 1`` adds and one multiply per output element."""
    return out_numel * window


# ----------------------------------------------------------------------------------------------
# Module layer: which formula a module call gets.

_FREE = (nn.Identity, nn.Flatten, nn.Unflatten, nn.Dropout)


def _tuple(value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _window(module: nn.Module, dims: int) -> int:
    return math.prod(_tuple(module.kernel_size, dims))


def _pool_dims(module: nn.Module) -> int:
    name = type(module).__name__  # MaxPool1d / AvgPool3d / ...
    return int(name[-2])


_Formula = Callable[[nn.Module, Tensor, Tensor], int]
_FORMULAS: tuple[tuple[type | tuple[type, ...], str, _Formula], ...] = (
    (
        (nn.Conv1d, nn.Conv2d, nn.Conv3d),
        "conv",
        lambda m, x, y: conv_flops(y.numel(), m.in_channels // m.groups, m.kernel_size),
    ),
    (nn.Linear, "linear", lambda m, x, y: linear_flops(y.numel(), m.in_features)),
    (nn.modules.batchnorm._BatchNorm, "batchnorm", lambda m, x, y: batchnorm_flops(y.numel())),
    (nn.ReLU, "relu", lambda m, x, y: relu_flops(y.numel())),
    (
        (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
        "maxpool",
        lambda m, x, y: maxpool_flops(y.numel(), _window(m, _pool_dims(m))),
    ),
    (
        (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
        "avgpool",
        lambda m, x, y: avgpool_flops(y.numel(), _window(m, _pool_dims(m))),
    ),
    (_FREE, "free", lambda m, x, y: 0),
)


@dataclass
class FlopCount:
    """FLOPs of one forward pass, per module call site and per kind of layer."""

    total: int
    batch: int  # the batch the pass ran on
    by_module: dict[str, int] = field(default_factory=dict)  # qualified name → FLOPs (all calls)
    by_kind: dict[str, int] = field(default_factory=dict)  # "conv", "linear", "batchnorm", ...
    uncounted: list[str] = field(default_factory=list)  # "name (Type)" of leaf modules skipped

    @property
    def per_image(self) -> float:
        return self.total / self.batch

    def to_dict(self) -> dict:
        return {**asdict(self), "per_image": self.per_image}


def _formula(module: nn.Module) -> tuple[str, _Formula] | None:
    for types, kind, formula in _FORMULAS:
        if isinstance(module, types):
            return kind, formula
    return None


def count_flops(model: nn.Module, example: Tensor) -> FlopCount:
    """FLOPs of ``model(example)``, in eval mode; ``model`` is left as it was.

    The hooks are removed afterwards, so nothing about the model changes. A model in training
    mode is refused: its BatchNorms would normalise with batch statistics, another formula.
    """
    if model.training:
        raise ValueError("count_flops counts inference FLOPs: call model.eval() first")
    if example.dim() < 1 or example.shape[0] < 1:
        raise ValueError(
            f"example needs a batch axis of at least 1, got shape {tuple(example.shape)}"
        )
    by_module: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    uncounted: list[str] = []
    handles = []

    def hook_for(name: str, kind: str, formula: _Formula):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            flops = formula(module, inputs[0], output)
            by_module[name] += flops
            by_kind[kind] += flops

        return hook

    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue  # containers: their leaves are counted
        found = _formula(module)
        if found is None:
            uncounted.append(f"{name} ({type(module).__name__})")
            continue
        handles.append(module.register_forward_hook(hook_for(name, *found)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    by_kind.pop("free", None)
    return FlopCount(
        total=sum(by_kind.values()),
        batch=int(example.shape[0]),
        by_module={k: v for k, v in by_module.items() if v},
        by_kind=dict(by_kind),
        uncounted=uncounted,
    )


def flops_per_image(model: nn.Module, input_size: tuple[int, int], channels: int = 3) -> FlopCount:
    """:func:`count_flops` on one ``channels``×H×W image of zeros (values do not change FLOPs)."""
    return count_flops(model, torch.zeros(1, channels, *input_size))
