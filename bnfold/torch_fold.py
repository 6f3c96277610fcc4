"""``bnfold.fold``: fold the BatchNorms of a PyTorch model into neighbouring layers.

Capture is torch.fx first (:mod:`bnfold.capture`, rewrites in :mod:`bnfold.fx_fold`). A model fx
cannot trace falls back, when ``example_inputs`` are given, to recording module calls on a
forward pass (:mod:`bnfold.hook_fold`); without them :class:`bnfold.capture.CaptureError` names
the part that could not be traced.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from bnfold import hook_fold
from bnfold.bn_stats import is_batchnorm
from bnfold.capture import CaptureError, trace
from bnfold.fx_fold import fold_graph
from bnfold.report import BNRecord, Direction, FoldReport

logger = logging.getLogger(__name__)

__all__ = ["CaptureError", "FoldResult", "fold"]


@dataclass
class FoldResult:
    """The folded model and what happened to every BatchNorm of the input."""

    model: nn.Module  # an fx.GraphModule, or the module tree itself after the hook fallback
    report: FoldReport
    capture: Literal["fx", "hooks"]  # how the model's dataflow was captured


def fold(
    model: nn.Module,
    example_inputs: Tensor | Sequence[object] | None = None,
    *,
    inplace: bool = False,
) -> FoldResult:
    """Fold every BatchNorm of ``model`` that can be folded exactly; report all of them.

    ``model`` must be in eval mode. ``example_inputs`` (a tensor or a tuple of forward
    arguments) are optional: with them, shapes are recorded so Linear↔BatchNorm1d folds can be
    checked, and a model fx cannot trace can still be folded by the hook fallback.

    The input model is not modified unless ``inplace=True``: then it is not deep-copied first,
    the returned GraphModule shares the untouched submodules with it, and the hook fallback
    rewrites its module tree directly. Folding an already folded model changes nothing.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"bnfold.fold expects an nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError(
            "bnfold.fold: the model is in training mode, where BatchNorm uses batch statistics "
            "and cannot be folded; call model.eval() first"
        )
    inputs = _as_args(example_inputs)
    bn_names = [name for name, m in model.named_modules() if is_batchnorm(m)]
    work = model if inplace else copy.deepcopy(model)
    try:
        gm = trace(work)
    except CaptureError as err:
        if inputs is None:
            raise CaptureError(
                f"{err}. Pass example_inputs to fold it with the hook fallback instead, or make "
                "that part traceable",
                err.module,
            ) from err
        logger.warning("%s; falling back to recording module calls on example_inputs", err)
        folded, records = hook_fold.fold_by_hooks(work, inputs)
        return _finish(FoldResult(folded, FoldReport(records), "hooks"))
    if inputs is not None:
        _record_shapes(gm, inputs)
    called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    records = fold_graph(gm)
    seen = {r.bn for r in records}
    records += [_unseen(name, called) for name in bn_names if name not in seen]
    return _finish(FoldResult(gm, FoldReport(records), "fx"))


def _as_args(example_inputs: Tensor | Sequence[object] | None) -> tuple | None:
    if example_inputs is None:
        return None
    if isinstance(example_inputs, Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, list | tuple):
        return tuple(example_inputs)
    raise TypeError(
        "example_inputs must be a tensor or a tuple/list of forward arguments, "
        f"got {type(example_inputs).__name__}"
    )


def _record_shapes(gm: fx.GraphModule, inputs: tuple) -> None:
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*inputs)
    except Exception as err:
        raise ValueError(f"example_inputs do not run through the model: {err}") from err


def _unseen(name: str, called: set[str]) -> BNRecord:
    """The record of a BatchNorm module the traced graph never calls directly."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        owner = ".".join(parts[:i])
        if owner in called:
            reason = f"it runs inside {owner}, which fx keeps as one unit (it is not traceable)"
            return BNRecord(name, Direction.LEFT, reason=reason)
    reason = "it is not called in the traced forward (the folded GraphModule does not contain it)"
    return BNRecord(name, Direction.LEFT, reason=reason)


def _finish(result: FoldResult) -> FoldResult:
    report = result.report
    by = {d: sum(r.direction is d for r in report.records) for d in Direction}
    logger.info(
        "Fused BatchNorm: %d of %d (into producer: %d, into consumer: %d; left: %d) [capture=%s]",
        report.num_folded,
        report.num_bn,
        by[Direction.INTO_PRODUCER],
        by[Direction.INTO_CONSUMER],
        len(report.left),
        result.capture,
    )
    for record in report.left:
        logger.debug("BatchNorm %s left: %s", record.bn, record.reason)
    return result
