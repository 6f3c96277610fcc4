"""A BatchNorm's inference-time statistics, and whether they may be folded at all.

Folding replaces ``BN(x)`` by ``scale * x + shift`` baked into a neighbour. That is only the
same function when the BN normalises with its running statistics (eval mode, tracked stats)
and those statistics are finite, so every reason to refuse lives here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnfold.formulas import bn_scale_shift

# BatchNorm classes whose forward is the stock one: in eval mode they compute exactly
# F.batch_norm(x, running_mean, running_var, weight, bias, False, _, eps).
_STOCK_FORWARDS = (_BatchNorm.forward, nn.SyncBatchNorm.forward)


@dataclass(frozen=True)
class BNParams:
    """What a BatchNorm computes at inference: per-channel stats, gamma/beta and eps."""

    running_mean: Tensor
    running_var: Tensor
    weight: Tensor | None  # gamma; None for affine=False
    bias: Tensor | None  # beta; None for affine=False
    eps: float

    @property
    def num_features(self) -> int:
        return self.running_mean.numel()

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """The float64 per-channel ``(scale, shift)`` with ``BN(x) == scale * x + shift``."""
        return bn_scale_shift(self.running_mean, self.running_var, self.weight, self.bias, self.eps)


def is_batchnorm(module: nn.Module) -> bool:
    """True for every BatchNorm module (1d/2d/3d, SyncBatchNorm, lazy and custom subclasses)."""
    return isinstance(module, _BatchNorm)


def module_params(bn: nn.Module) -> BNParams:
    """The parameters of a BatchNorm module; call :func:`module_refusal` first."""
    return BNParams(bn.running_mean, bn.running_var, bn.weight, bn.bias, float(bn.eps))


def module_refusal(bn: nn.Module) -> str | None:
    """Why this BatchNorm module cannot be folded anywhere, or None if it can."""
    if type(bn).forward not in _STOCK_FORWARDS:
        return f"{type(bn).__name__} has a custom forward, so it may not compute a BatchNorm"
    if bn.training:
        return (
            "the BatchNorm is in training mode (it normalises with batch statistics); "
            "call .eval() on it"
        )
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        return "track_running_stats=False: it normalises with batch statistics even in eval mode"
    if isinstance(bn.running_mean, nn.parameter.UninitializedBuffer):
        return "lazy BatchNorm not initialised yet: run one forward pass first"
    if bn._forward_hooks or bn._forward_pre_hooks:
        return "the BatchNorm has forward hooks, which folding would silently drop"
    return stats_refusal(module_params(bn))


def stats_refusal(params: BNParams) -> str | None:
    """Why these statistics cannot be folded (non-finite or negative values), or None."""
    if not bool(torch.isfinite(params.running_mean).all()):
        return "running_mean has non-finite values (nan/inf)"
    if not bool(torch.isfinite(params.running_var).all()):
        return "running_var has non-finite values (nan/inf)"
    if bool((params.running_var < 0).any()):
        return "running_var has negative values"
    for name, value in (("weight", params.weight), ("bias", params.bias)):
        if value is not None and not bool(torch.isfinite(value).all()):
            return f"the BatchNorm {name} has non-finite values (nan/inf)"
    return None
