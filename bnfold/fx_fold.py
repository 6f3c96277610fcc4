"""Fold the BatchNorms of an fx GraphModule into neighbouring Conv/ConvTranspose/Linear layers.

Two rewrites, tried in this order for every BN and repeated until nothing changes (so a BN
after a BN, or a BN before a layer already folded with its own BN, are handled too):

Into the producer
    Before: y = layer(x); z = BN(y)         After: z = layer'(x)
    Conditions: the BN's input is a stock Conv/ConvTranspose/Linear node (module or functional
    with constant weights) whose output feeds nothing else; its output channels are the BN's
    channel axis (batched conv output; rank-2 Linear output).
    Formula: :func:`bnfold.formulas.fold_into_producer`.

Into the consumer(s)
    Before: y = BN(x); z_i = layer_i(y)     After: z_i = layer_i'(x)
    Conditions: every user of the BN's output is a stock Conv (no zero padding) or Linear taking
    it as its input; the BN's channel axis is their input-channel axis (rank-2 for Linear).
    Formula: :func:`bnfold.formulas.fold_into_consumer`.

Layers are never modified: each fold installs a new module (or new ``get_attr`` parameters for a
functional layer). A module called at several places is cloned for the call site that folds, so
its other call sites and any tied weights keep the original values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from torch import Tensor, fx, nn

from bnfold.formulas import fold_into_consumer, fold_into_producer
from bnfold.fx_sites import (
    BNSite,
    LayerSite,
    bind_functional,
    bn_site,
    fetch_attr,
    is_bn_node,
    layer_site,
)
from bnfold.layers import channel_refusal, consumer_refusal
from bnfold.module_fold import with_parameters
from bnfold.ranks import node_rank
from bnfold.report import BNRecord, Direction

_MAX_ROUNDS = 16


@dataclass
class _Pending:
    site: BNSite
    producer_reason: str = ""
    consumer_reason: str = ""


def fold_graph(gm: fx.GraphModule) -> list[BNRecord]:
    """Fold in place every BN node of ``gm`` that folds exactly; one record per BN, graph order.

    BatchNorm modules called at several places get one record. The caller owns ``gm``.
    """
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    rewriter = _Rewriter(gm, calls)
    sites: dict[str, BNSite] = {}
    for node in gm.graph.nodes:
        if is_bn_node(gm, node):
            site = bn_site(gm, node, calls)
            sites.setdefault(site.name, site)
    records: dict[str, BNRecord] = {
        name: BNRecord(name, Direction.LEFT, reason=site.refusal)
        for name, site in sites.items()
        if site.refusal is not None
    }
    pending = [_Pending(site) for site in sites.values() if site.refusal is None]
    steps = ((_into_producer, Direction.INTO_PRODUCER), (_into_consumers, Direction.INTO_CONSUMER))
    for _ in range(_MAX_ROUNDS):
        folded_any = False
        for step, direction in steps:
            for item in list(pending):
                target, reason = step(gm, rewriter, item.site)
                if target is not None:
                    records[item.site.name] = BNRecord(item.site.name, direction, target)
                    pending.remove(item)
                    folded_any = True
                elif direction is Direction.INTO_PRODUCER:
                    item.producer_reason = reason
                else:
                    item.consumer_reason = reason
        if not folded_any:
            break
    for item in pending:
        reason = (
            f"not foldable into the layer before it ({item.producer_reason}) "
            f"nor into the layer after it ({item.consumer_reason})"
        )
        records[item.site.name] = BNRecord(item.site.name, Direction.LEFT, reason=reason)
    rewriter.clean_up()
    return [records[name] for name in sites]


def _into_producer(gm: fx.GraphModule, rewriter: _Rewriter, site: BNSite) -> tuple:
    bn, params = site.node, site.params
    src = _bn_input(bn)
    layer = layer_site(gm, src)
    if layer is None:
        return None, f"its input comes from {describe(gm, src)}, not a Conv/ConvTranspose/Linear"
    if layer.geometry is None:
        return None, f"{layer.name}: {layer.refusal}"
    others = [u.name for u in src.users if u is not bn]
    if others:
        return None, f"the output of {layer.name} has other consumers ({', '.join(others)})"
    geom = layer.geometry
    rank = node_rank(gm, src)
    refusal = channel_refusal(layer.name, geom, params.num_features, rank, "output")
    if refusal is not None:
        return None, refusal
    scale, shift = params.scale_shift()
    w, b = fold_into_producer(
        geom.weight, geom.bias, scale, shift, out_axis=geom.out_axis, groups=geom.groups
    )
    target = rewriter.install(layer, w, b)
    rewriter.remove_bn(bn, src)
    return target, None


def _into_consumers(gm: fx.GraphModule, rewriter: _Rewriter, site: BNSite) -> tuple:
    bn, params = site.node, site.params
    src = _bn_input(bn)
    if not bn.users:
        return None, "its output is unused"
    found: list[LayerSite] = []
    for user in bn.users:
        layer = layer_site(gm, user)
        if layer is None:
            return None, f"its output goes to {describe(gm, user)}, not a Conv/Linear"
        if layer.geometry is None:
            return None, f"{layer.name}: {layer.refusal}"
        if not _is_only_input(user, bn):
            return None, f"its output is used by {layer.name} other than as its input"
        geom = layer.geometry
        refusal = consumer_refusal(geom)
        if refusal is not None:
            return None, f"{refusal} ({layer.name})"
        rank = node_rank(gm, src)
        refusal = channel_refusal(layer.name, geom, params.num_features, rank, "input")
        if refusal is not None:
            return None, refusal
        found.append(layer)
    scale, shift = params.scale_shift()
    targets = []
    for layer in found:
        geom = layer.geometry
        w, b = fold_into_consumer(geom.weight, geom.bias, scale, shift, groups=geom.groups)
        targets.append(rewriter.install(layer, w, b))
    rewriter.remove_bn(bn, src)
    return ", ".join(targets), None


def _bn_input(bn: fx.Node) -> fx.Node:
    return bn.args[0] if bn.args else bn.kwargs["input"]


def _is_only_input(user: fx.Node, bn: fx.Node) -> bool:
    first = user.args[0] if user.args else user.kwargs.get("input")
    rest = (user.args[1:], {k: v for k, v in user.kwargs.items() if k != "input"})
    used: list[fx.Node] = []
    fx.node.map_arg(rest, used.append)
    return first is bn and bn not in used


def describe(gm: fx.GraphModule, node: object) -> str:
    """A short human name for what produces or consumes a value, for report reasons."""
    if not isinstance(node, fx.Node):
        return repr(node)
    if node.op == "placeholder":
        return f"the model input {node.target!r}"
    if node.op == "output":
        return "the model output"
    if node.op == "get_attr":
        return f"the constant {node.target}"
    if node.op == "call_module":
        return f"{node.target} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f".{node.target}() ({node.name})"
    return f"{getattr(node.target, '__name__', node.target)} ({node.name})"


class _Rewriter:
    """Installs folded layers in a GraphModule without mutating any existing module/tensor."""

    def __init__(self, gm: fx.GraphModule, calls: Counter) -> None:
        self.gm = gm
        self.calls = calls
        self.stale: list[fx.Node] = []  # get_attr nodes that may have lost their last user

    def install(self, layer: LayerSite, weight: Tensor, bias: Tensor) -> str:
        """Give ``layer``'s call site the folded ``weight`` and ``bias``; its target's name."""
        if layer.module_target is None:
            return self.replace_functional(layer.node, weight, bias)
        new = with_parameters(self.gm.get_submodule(layer.module_target), weight, bias)
        return self.replace_module(layer.node, new)

    def replace_module(self, node: fx.Node, new: nn.Module) -> str:
        """Install ``new`` for this call site; clone the target if it has other call sites."""
        target = node.target
        if self.calls[target] > 1:
            self.calls[target] -= 1
            target = self._fresh_name(f"{target}_bnfold")
            node.target = target
            self.calls[target] = 1
        self.gm.add_submodule(target, new)
        return target

    def replace_functional(self, node: fx.Node, weight: Tensor, bias: Tensor) -> str:
        """Point a functional layer at new ``get_attr`` weight/bias holding the folded values."""
        bound = bind_functional(node)
        old_w, old_b = bound.arguments["weight"], bound.arguments.get("bias")
        like_w = fetch_attr(self.gm, old_w.target)
        like_b = like_w if old_b is None else fetch_attr(self.gm, old_b.target)
        with self.gm.graph.inserting_before(node):
            bound.arguments["weight"] = self.gm.graph.get_attr(
                self._register(f"{node.name}_weight", weight, like_w)
            )
            bound.arguments["bias"] = self.gm.graph.get_attr(
                self._register(f"{node.name}_bias", bias, like_b)
            )
        node.args, node.kwargs = bound.args, bound.kwargs
        self.stale += [n for n in (old_w, old_b) if isinstance(n, fx.Node)]
        return node.name

    def remove_bn(self, bn: fx.Node, replacement: fx.Node) -> None:
        self.stale += [a for a in bn.all_input_nodes if a.op == "get_attr"]
        bn.replace_all_uses_with(replacement)
        self.gm.graph.erase_node(bn)

    def clean_up(self) -> None:
        """Drop constants and modules nothing uses any more, then regenerate the code."""
        graph = self.gm.graph
        for node in dict.fromkeys(self.stale):
            if node.users:
                continue
            target = node.target
            graph.erase_node(node)
            if not any(n.op == "get_attr" and n.target == target for n in graph.nodes):
                self._drop_attr(target)
        self.gm.delete_all_unused_submodules()
        graph.lint()
        self.gm.recompile()

    def _drop_attr(self, target: str) -> None:
        owner_path, _, field = target.rpartition(".")
        called = {n.target for n in self.gm.graph.nodes if n.op == "call_module"}
        if any(owner_path == c or owner_path.startswith(c + ".") for c in called):
            return  # the tensor belongs to a module that still runs and may use it
        delattr(self.gm.get_submodule(owner_path), field)

    def _register(self, base: str, value: Tensor, like: Tensor) -> str:
        name = self._fresh_name(f"bnfold_{base}")
        if isinstance(like, nn.Parameter):
            param = nn.Parameter(value, requires_grad=like.requires_grad)
            self.gm.register_parameter(name, param)
        else:
            self.gm.register_buffer(name, value)
        return name

    def _fresh_name(self, base: str) -> str:
        name, i = base, 1
        while _has_attr(self.gm, name):
            name, i = f"{base}{i}", i + 1
        return name


def _has_attr(gm: fx.GraphModule, name: str) -> bool:
    try:
        fetch_attr(gm, name)
    except AttributeError:
        return False
    return True
