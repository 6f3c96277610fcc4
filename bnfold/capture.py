"""Capture a model as a torch.fx graph in which every foldable layer is one node.

The stock fx tracer inlines any module not defined in ``torch.nn``, so a subclass such as
torchvision's ``Conv3DSimple`` becomes a functional conv on a ``get_attr`` weight and fx's own
fuser misses it. Here stock Conv/ConvTranspose/Linear modules (subclasses included, as long as
they keep the stock forward, see :mod:`bnfold.layers`) and all BatchNorms stay leaves.

When a submodule cannot be traced (data-dependent control flow, say), it is retried as a leaf
if it contains no BatchNorm — nothing foldable is lost by not looking inside it. Otherwise
:class:`CaptureError` names the module that failed.
"""

from __future__ import annotations

import logging

from torch import fx, nn

from bnfold.bn_stats import is_batchnorm
from bnfold.layers import stock_kind

logger = logging.getLogger(__name__)

_MAX_RETRIES = 32


class CaptureError(RuntimeError):
    """torch.fx could not trace the model; ``module`` is the qualified name that failed."""

    def __init__(self, message: str, module: str) -> None:
        super().__init__(message)
        self.module = module


class FoldTracer(fx.Tracer):
    """An fx tracer that keeps BatchNorms, stock layers and ``extra_leaves`` as leaves."""

    def __init__(self, extra_leaves: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.extra_leaves = extra_leaves
        self.failed_at: str | None = None  # innermost module whose tracing raised

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_batchnorm(m) or stock_kind(m) is not None:
            return True
        if module_qualified_name in self.extra_leaves:
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):  # type: ignore[override]
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at = self.path_of_module(m)
            raise


def trace(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` with :class:`FoldTracer`; raise :class:`CaptureError` if impossible."""
    leaves: frozenset[str] = frozenset()
    for _ in range(_MAX_RETRIES):
        tracer = FoldTracer(leaves)
        try:
            graph = tracer.trace(model)
        except Exception as err:
            where = tracer.failed_at or ""
            if where and where not in leaves and not _contains_batchnorm(model, where):
                logger.debug("fx could not trace %s (%s); keeping it as a leaf", where, err)
                leaves = leaves | {where}
                continue
            part = f"module {where!r} ({_type_name(model, where)})" if where else "the forward"
            part += f" of {type(model).__name__}"
            raise CaptureError(
                f"torch.fx could not trace {part}: {type(err).__name__}: {err}", where
            ) from err
        gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
        _copy_training_flags(model, gm)
        return gm
    raise CaptureError(f"torch.fx gave up after {_MAX_RETRIES} untraceable submodules", "")


def _contains_batchnorm(model: nn.Module, path: str) -> bool:
    return any(is_batchnorm(m) for m in model.get_submodule(path).modules())


def _type_name(model: nn.Module, path: str) -> str:
    return type(model.get_submodule(path)).__name__


def _copy_training_flags(model: nn.Module, gm: fx.GraphModule) -> None:
    """GraphModule builds fresh container modules (training=True); mirror the model's flags.

    Leaves are the model's own objects and keep theirs: a BN left in training mode must stay so.
    """
    original = dict(model.named_modules())
    for name, module in gm.named_modules():
        if name in original and module is not original[name]:
            module.training = original[name].training
