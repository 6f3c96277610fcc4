"""Which Conv/ConvTranspose/Linear layers a BatchNorm may be folded into, and their geometry.

A layer is foldable when its forward is the stock one of its torch class: then it computes
exactly ``F.conv*(x, weight, bias, ...)`` / ``F.linear(x, weight, bias)`` and changing
``weight``/``bias`` changes nothing else. Subclasses that only change ``__init__`` (torchvision's
``Conv3DSimple``) qualify; subclasses with their own forward (weight standardisation, custom
padding) do not, and are traced through instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn
from torch.nn.utils import parametrize

Kind = Literal["conv", "conv_transpose", "linear"]

# stock class → (kind, number of spatial dims)
_STOCK: dict[type[nn.Module], tuple[Kind, int]] = {
    nn.Conv1d: ("conv", 1),
    nn.Conv2d: ("conv", 2),
    nn.Conv3d: ("conv", 3),
    nn.ConvTranspose1d: ("conv_transpose", 1),
    nn.ConvTranspose2d: ("conv_transpose", 2),
    nn.ConvTranspose3d: ("conv_transpose", 3),
    nn.Linear: ("linear", 0),
}


@dataclass(frozen=True)
class LayerGeometry:
    """Weight, bias and the layout facts folding needs, for a module or a functional call."""

    kind: Kind
    weight: Tensor
    bias: Tensor | None
    groups: int = 1
    spatial_dims: int = 0  # 0 for Linear
    zero_pads: bool = False  # a conv that pads its input with zeros (a non-zero amount)

    @property
    def out_axis(self) -> int:
        """Axis of ``weight`` that indexes output channels (per group for ConvTranspose)."""
        return 1 if self.kind == "conv_transpose" else 0

    @property
    def out_channels(self) -> int:
        if self.kind == "conv_transpose":
            return self.weight.shape[1] * self.groups
        return self.weight.shape[0]

    @property
    def in_channels(self) -> int:
        if self.kind == "conv_transpose":
            return self.weight.shape[0]
        return self.weight.shape[1] * self.groups

    @property
    def batched_rank(self) -> int:
        """Rank of a batched input/output: the case where the channel axis is axis 1."""
        return self.spatial_dims + 2


def stock_kind(module: nn.Module) -> tuple[Kind, int] | None:
    """``(kind, spatial_dims)`` if ``module`` computes its stock conv/linear forward, else None."""
    for base in type(module).__mro__:
        if base in _STOCK:
            same_forward = type(module).forward is base.forward
            if hasattr(base, "_conv_forward"):
                same_forward = same_forward and type(module)._conv_forward is base._conv_forward
            return _STOCK[base] if same_forward else None
    return None


def module_refusal(module: nn.Module) -> str | None:
    """Why this (stock) layer module must not get new weights, or None."""
    if parametrize.is_parametrized(module):
        return "its weight is parametrised (torch.nn.utils.parametrize); remove the parametrisation"
    if module._forward_hooks or module._forward_pre_hooks:
        return "it has forward hooks, which may depend on or change its weights"
    if isinstance(module.weight, nn.parameter.UninitializedParameter):
        return "lazy module not initialised yet: run one forward pass first"
    return None


def module_geometry(module: nn.Module) -> LayerGeometry:
    """The geometry of a stock Conv/ConvTranspose/Linear module (see :func:`stock_kind`)."""
    found = stock_kind(module)
    if found is None:
        raise TypeError(f"{type(module).__name__} is not a stock Conv/ConvTranspose/Linear")
    kind, dims = found
    if kind == "linear":
        return LayerGeometry("linear", module.weight, module.bias)
    zero_pads = module.padding_mode == "zeros" and pads_something(
        module.padding, module.kernel_size, module.dilation
    )
    return LayerGeometry(kind, module.weight, module.bias, module.groups, dims, zero_pads)


def pads_something(padding: object, kernel_size: object, dilation: object) -> bool:
    """Whether a conv ``padding`` argument (int, tuple, 'valid', 'same') pads by > 0."""
    if padding == "valid":
        return False
    if padding == "same":
        kernels = kernel_size if isinstance(kernel_size, tuple | list) else (kernel_size,)
        dilations = dilation if isinstance(dilation, tuple | list) else (dilation,) * len(kernels)
        return any(d * (k - 1) > 0 for k, d in zip(kernels, dilations, strict=False))
    values = padding if isinstance(padding, tuple | list) else (padding,)
    return any(v != 0 for v in values)


def consumer_refusal(geom: LayerGeometry) -> str | None:
    """Why a BN *before* this layer cannot be folded into it exactly, or None.

    A BN's shift is a constant per input channel. A conv that pads with zeros sees the padded
    border as 0, not as the shift, so the folded bias would be wrong at the borders;
    reflect/replicate/circular padding pads with shifted values and stays exact.
    ConvTranspose spreads each input over a window, so border outputs receive fewer shifted
    contributions than inner ones: not a per-channel bias either.
    """
    if geom.kind == "conv_transpose":
        return "a ConvTranspose after it receives the shift unevenly at its borders"
    if geom.zero_pads:
        return "the conv after it uses zero padding, where a folded shift is wrong at the borders"
    return None


def channel_refusal(
    name: str, geom: LayerGeometry, num_features: int, rank: int | None, which: str
) -> str | None:
    """Why a BN's channel axis (axis 1) may not be the channel axis of layer ``name``'s
    ``which`` ("output": BN after it, "input": BN before it) of rank ``rank``, or None.

    Without a rank a conv is taken to run batched (the unbatched Conv1d → BatchNorm1d case with
    length == channels is the one this cannot tell apart; pass example_inputs).
    """
    channels = geom.out_channels if which == "output" else geom.in_channels
    if channels != num_features:
        return f"{name} has {channels} {which} channels, the BatchNorm {num_features}"
    if geom.kind == "linear":
        if rank is None:
            return (
                f"the rank of {name}'s {which} is unknown, so BatchNorm's channel axis may not be "
                "its feature axis; pass example_inputs"
            )
        if rank != 2:
            return (
                f"BatchNorm normalises axis 1 of {name}'s rank-{rank} {which}, which is not its "
                "feature axis (only (N, C) folds)"
            )
    elif rank is not None and rank != geom.batched_rank:
        return f"{name} runs on unbatched input, so its channel axis is not BatchNorm's axis 1"
    return None
