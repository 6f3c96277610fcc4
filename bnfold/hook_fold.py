"""Fallback for models torch.fx cannot trace: fold layer → BN pairs seen on a forward pass.

What it does: runs ``example_inputs`` once with forward hooks on every module and a
TorchFunctionMode watching every torch op. A stock Conv/ConvTranspose/Linear module and a
BatchNorm module form a pair when the BN's input tensor *is* the layer's output tensor object,
no other op read it (metadata like ``.shape`` aside), it is not a model output, both modules ran
exactly once and each is registered under one name. Pairs are folded in the module tree (the
layer replaced by a folded copy, the BN by ``nn.Identity``), after a check forward — in float64
when the model runs in float64, else in its own dtype — agrees with the unfolded model.

What it cannot do: see paths the example inputs did not take. If on other inputs a data-dependent
branch ran the layer without its BN, the folded layer would be wrong there; only fold such
models with this fallback when no branch separates a layer from its BN. It does not fold a BN
into the layer after it, functional ``F.batch_norm``/``F.conv*``, or modules called more than
once; all of those are left and reported.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from bnfold import bn_stats, layers
from bnfold.module_fold import fold_bn_into_producer
from bnfold.report import BNRecord, Direction

# Ops that only read metadata: they cannot observe the values folding changes.
_METADATA_METHODS = frozenset(
    {
        "dim",
        "size",
        "numel",
        "ndimension",
        "nelement",
        "stride",
        "is_contiguous",
        "is_floating_point",
        "element_size",
        "get_device",
        "__len__",
    }
)
_METADATA_ATTRS = frozenset(
    {"shape", "dtype", "device", "ndim", "requires_grad", "is_cuda", "layout", "names"}
)
_FUNCTIONAL_BN = (F.batch_norm, torch.batch_norm)
# Check-forward tolerance on max|Δ| / max|y|, by the dtype the check ran in.
_TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


@dataclass
class _Call:
    call_id: int
    name: str
    inputs: tuple
    output: object


@dataclass
class _Recording:
    names: dict[int, str]  # id(module) → qualified name, for the modules that ran
    calls: dict[str, list[_Call]] = field(default_factory=lambda: defaultdict(list))
    uses: dict[int, set] = field(default_factory=lambda: defaultdict(set))  # id(tensor) → readers
    functional_bn: list[str] = field(default_factory=list)
    stack: list[tuple[int, str]] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)


class _Watcher(TorchFunctionMode):
    """Records, for every tensor, which module call (or bare op) read its values."""

    def __init__(self, rec: _Recording, bn_ids: set[int]) -> None:
        super().__init__()
        self.rec = rec
        self.bn_ids = bn_ids

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rec = self.rec
        if not _is_metadata(func):
            reader = rec.stack[-1][0] if rec.stack else f"op{next(rec.counter)}"
            for value in tree_flatten((args, kwargs))[0]:
                if isinstance(value, Tensor):
                    rec.uses[id(value)].add(reader)
            if func in _FUNCTIONAL_BN and (not rec.stack or rec.stack[-1][1] not in self.bn_ids):
                where = rec.names.get(rec.stack[-1][1], "") if rec.stack else ""
                rec.functional_bn.append(where)
        return func(*args, **kwargs)


def _is_metadata(func: object) -> bool:
    name = getattr(func, "__name__", "")
    if name == "__get__":
        return getattr(getattr(func, "__self__", None), "__name__", "") in _METADATA_ATTRS
    return name in _METADATA_METHODS


def fold_by_hooks(model: nn.Module, inputs: tuple) -> tuple[nn.Module, list[BNRecord]]:
    """Fold the layer → BN pairs of ``model`` (modified in place) seen on ``inputs``."""
    modules = dict(model.named_modules())
    rec, output = _record(model, inputs)
    out_ids = {id(t) for t in tree_flatten(output)[0] if isinstance(t, Tensor)}
    producers = {
        id(c.output): c
        for name, cs in rec.calls.items()
        for c in cs
        if layers.stock_kind(modules[name]) is not None
    }
    aliases = _aliased_names(model)
    records: dict[str, BNRecord] = {}
    plan: list[tuple[str, str]] = []
    for name, module in modules.items():
        if not bn_stats.is_batchnorm(module):
            continue
        reason, layer = _pair_refusal(name, module, rec, producers, out_ids, aliases, modules)
        if reason is not None:
            records[name] = BNRecord(name, Direction.LEFT, reason=reason)
        else:
            plan.append((layer, name))
    mismatch = _check(model, plan, inputs, output) if plan else None
    for layer, name in plan:
        if mismatch is None:
            records[name] = BNRecord(name, Direction.INTO_PRODUCER, layer)
        else:
            records[name] = BNRecord(name, Direction.LEFT, reason=mismatch)
    if mismatch is None:
        _apply(model, plan)
    result = list(records.values())
    result += [
        BNRecord(
            f"F.batch_norm in {where or 'forward'}#{i}",
            Direction.LEFT,
            reason=("a functional batch_norm: the hook fallback folds BatchNorm modules only"),
        )
        for i, where in enumerate(rec.functional_bn)
    ]
    return model, result


def _record(model: nn.Module, inputs: tuple) -> tuple[_Recording, object]:
    rec = _Recording(names={id(m): n for n, m in model.named_modules()})
    bn_ids = {id(m) for m in model.modules() if bn_stats.is_batchnorm(m)}

    def pre_hook(module: nn.Module, args: tuple) -> None:
        rec.stack.append((next(rec.counter), id(module)))

    def post_hook(module: nn.Module, args: tuple, output: object) -> None:
        call_id, _ = rec.stack.pop()
        name = rec.names[id(module)]
        if isinstance(output, Tensor) and layers.stock_kind(module) is not None:
            rec.uses[id(output)] = set()  # a fresh tensor: forget readers of a freed namesake
        rec.calls[name].append(_Call(call_id, name, args, output))

    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook, always_call=True))
        with torch.no_grad(), _Watcher(rec, bn_ids):
            output = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return rec, output


def _pair_refusal(name, bn, rec, producers, out_ids, aliases, modules) -> tuple:
    """``(reason, None)`` if the BN ``name`` cannot fold into its producer, else (None, layer)."""
    reason = bn_stats.module_refusal(bn)
    if reason is not None:
        return reason, None
    calls = rec.calls.get(name, [])
    if not calls:
        return "it did not run on the example forward", None
    if len(calls) > 1:
        return f"the BatchNorm module is called at {len(calls)} places", None
    x = calls[0].inputs[0] if calls[0].inputs else None
    producer = producers.get(id(x))
    if producer is None or producer.output is not x:
        return (
            "its input is not the output of a Conv/ConvTranspose/Linear module (the hook "
            "fallback folds only such pairs)"
        ), None
    layer = modules[producer.name]
    reason = layers.module_refusal(layer)
    if reason is not None:
        return f"{producer.name}: {reason}", None
    if len(rec.calls[producer.name]) > 1:
        return f"{producer.name} is called at {len(rec.calls[producer.name])} places", None
    if rec.uses[id(x)] != {calls[0].call_id} or id(x) in out_ids:
        return f"the output of {producer.name} has other consumers", None
    if name in aliases or producer.name in aliases:
        return "the BatchNorm or its layer is registered under several names", None
    geom = layers.module_geometry(layer)
    reason = layers.channel_refusal(producer.name, geom, bn.num_features, x.dim(), "output")
    return (reason, None) if reason is not None else (None, producer.name)


def _aliased_names(model: nn.Module) -> set[str]:
    seen: dict[int, list[str]] = defaultdict(list)
    for name, module in model.named_modules(remove_duplicate=False):
        seen[id(module)].append(name)
    return {n for names in seen.values() if len(names) > 1 for n in names}


def _apply(model: nn.Module, plan: list[tuple[str, str]]) -> None:
    for layer, bn in plan:
        scale, shift = bn_stats.module_params(model.get_submodule(bn)).scale_shift()
        model.set_submodule(layer, fold_bn_into_producer(model.get_submodule(layer), scale, shift))
        model.set_submodule(bn, nn.Identity())


def _check(model: nn.Module, plan: list, inputs: tuple, output: object) -> str | None:
    """Why the folded model may be wrong (its check forward disagrees), or None."""
    try:  # float64 first: then any disagreement is structural, not rounding
        reference = copy.deepcopy(model).double()
        candidate = copy.deepcopy(reference)
        _apply(candidate, plan)
        args = tuple(_double(a) for a in inputs)
        with torch.no_grad():
            expected, got = reference(*args), candidate(*args)
        dtype = torch.float64
    except Exception:  # the model does not run in float64: check in its own dtype
        candidate = copy.deepcopy(model)
        _apply(candidate, plan)
        with torch.no_grad():
            expected, got = output, candidate(*inputs)
        dtype = _float_dtype(model)
    error = _relative_error(expected, got)
    tolerance = _TOLERANCE.get(dtype, 1e-4)
    if error <= tolerance:
        return None
    return (
        f"the hook fallback's check forward disagreed after folding (max|Δ|/max|y| = "
        f"{error:.2e} > {tolerance:g} in {dtype}); left unfolded"
    )


def _double(value: object) -> object:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.double()
    return value


def _float_dtype(model: nn.Module) -> torch.dtype:
    for p in itertools.chain(model.parameters(), model.buffers()):
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _relative_error(expected: object, got: object) -> float:
    ref, out = tree_flatten(expected)[0], tree_flatten(got)[0]
    if len(ref) != len(out):
        return float("inf")
    worst = 0.0
    for a, b in zip(ref, out, strict=True):
        if not isinstance(a, Tensor):
            if a != b:
                return float("inf")
            continue
        if not isinstance(b, Tensor) or a.shape != b.shape:
            return float("inf")
        a, b = a.double(), b.double()
        scale = a.abs().max().item() if a.numel() else 0.0
        delta = (a - b).abs().max().item() if a.numel() else 0.0
        if delta != delta:  # nan
            return float("inf")
        worst = max(worst, delta / scale if scale > 0 else delta)
    return worst
