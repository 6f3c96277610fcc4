"""Recognise BatchNorms and foldable layers among the nodes of an fx graph.

Both come in two forms: a ``call_module`` of a leaf module, or a ``call_function`` of
``F.batch_norm`` / ``F.conv*`` / ``F.conv_transpose*`` / ``F.linear`` whose weights are
``get_attr`` constants (parameters or buffers). A functional op whose weights are computed in
the graph is not a constant layer and is not folded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx

from bnfold import bn_stats, layers
from bnfold.layers import Kind, LayerGeometry


def _signature(*names: str) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(n, kind) for n in names])


_CONV = _signature("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_T = _signature(
    "input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"
)
# target → (kind, spatial dims, signature)
_FUNCTIONAL_LAYERS: dict[Any, tuple[Kind, int, inspect.Signature]] = {
    torch.conv1d: ("conv", 1, _CONV),
    torch.conv2d: ("conv", 2, _CONV),
    torch.conv3d: ("conv", 3, _CONV),
    torch.conv_transpose1d: ("conv_transpose", 1, _CONV_T),
    torch.conv_transpose2d: ("conv_transpose", 2, _CONV_T),
    torch.conv_transpose3d: ("conv_transpose", 3, _CONV_T),
    F.linear: ("linear", 0, _signature("input", "weight", "bias")),
}
_FUNCTIONAL_BN = {
    F.batch_norm: _signature(
        "input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"
    ),
    torch.batch_norm: _signature(
        "input",
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "training",
        "momentum",
        "eps",
        "cudnn_enabled",
    ),
}
_FUNCTIONAL_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": None}
_NOT_CONSTANT = object()


@dataclass
class BNSite:
    """One BatchNorm node: its name for the report, and its params or why it cannot fold."""

    node: fx.Node
    name: str
    params: bn_stats.BNParams | None
    refusal: str | None


@dataclass
class LayerSite:
    """One Conv/ConvTranspose/Linear node with constant weights."""

    node: fx.Node
    name: str
    geometry: LayerGeometry | None
    refusal: str | None  # set when ``geometry`` is None
    module_target: str | None  # the call_module target, None for a functional layer


def is_bn_node(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return bn_stats.is_batchnorm(gm.get_submodule(node.target))
    return node.op == "call_function" and node.target in _FUNCTIONAL_BN


def bn_site(gm: fx.GraphModule, node: fx.Node, module_calls: dict[str, int]) -> BNSite:
    """The :class:`BNSite` of a node for which :func:`is_bn_node` holds."""
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        calls = module_calls.get(node.target, 1)
        refusal = bn_stats.module_refusal(module)
        if refusal is None and calls > 1:
            refusal = f"the BatchNorm module is called at {calls} places"
        params = bn_stats.module_params(module) if refusal is None else None
        return BNSite(node, node.target, params, refusal)
    return _functional_bn_site(gm, node)


def _functional_bn_site(gm: fx.GraphModule, node: fx.Node) -> BNSite:
    args = _FUNCTIONAL_BN[node.target].bind_partial(*node.args, **node.kwargs).arguments
    name = node.name
    stats = {k: _constant(gm, args.get(k)) for k in ("running_mean", "running_var")}
    affine = {k: _constant(gm, args.get(k)) for k in ("weight", "bias")}
    training = args.get("training", False)
    if training is True:
        return BNSite(node, name, None, "F.batch_norm runs in training mode (training=True)")
    if training is not False:
        return BNSite(node, name, None, "its training flag is not a constant")
    if any(v is None for v in stats.values()):
        return BNSite(node, name, None, "no running statistics (track_running_stats=False)")
    if any(v is _NOT_CONSTANT for v in (*stats.values(), *affine.values())):
        return BNSite(node, name, None, "its statistics or affine parameters are not constants")
    eps = args.get("eps", 1e-5)
    if not isinstance(eps, float | int):
        return BNSite(node, name, None, "its eps is not a constant")
    params = bn_stats.BNParams(
        stats["running_mean"], stats["running_var"], affine["weight"], affine["bias"], float(eps)
    )
    return BNSite(node, name, params if (r := bn_stats.stats_refusal(params)) is None else None, r)


def layer_site(gm: fx.GraphModule, node: object) -> LayerSite | None:
    """The :class:`LayerSite` of ``node``, or None if it is no Conv/ConvTranspose/Linear."""
    if not isinstance(node, fx.Node):
        return None
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if layers.stock_kind(module) is None:
            return None
        refusal = layers.module_refusal(module)
        geometry = layers.module_geometry(module) if refusal is None else None
        return LayerSite(node, node.target, geometry, refusal, node.target)
    if node.op == "call_function" and node.target in _FUNCTIONAL_LAYERS:
        return _functional_layer_site(gm, node)
    return None


def _functional_layer_site(gm: fx.GraphModule, node: fx.Node) -> LayerSite:
    kind, dims, signature = _FUNCTIONAL_LAYERS[node.target]
    args = {**_FUNCTIONAL_DEFAULTS, **signature.bind_partial(*node.args, **node.kwargs).arguments}
    weight, bias = _constant(gm, args["weight"]), _constant(gm, args["bias"])
    if weight is _NOT_CONSTANT or weight is None or bias is _NOT_CONSTANT:
        return LayerSite(node, node.name, None, "its weights are computed in the graph", None)
    groups = args["groups"]
    if not isinstance(groups, int):
        return LayerSite(node, node.name, None, "its groups argument is not a constant", None)
    zero_pads = False
    if kind == "conv":
        kernel = tuple(weight.shape[2:])
        zero_pads = layers.pads_something(args["padding"], kernel, args["dilation"])
    geometry = LayerGeometry(kind, weight, bias, groups, dims, zero_pads)
    return LayerSite(node, node.name, geometry, None, None)


def bind_functional(node: fx.Node) -> inspect.BoundArguments:
    """The bound arguments of a functional layer node, for rewriting its weight/bias."""
    return _FUNCTIONAL_LAYERS[node.target][2].bind_partial(*node.args, **node.kwargs)


def fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    owner = gm
    for part in target.split("."):
        owner = getattr(owner, part)
    return owner


def _constant(gm: fx.GraphModule, arg: object) -> Tensor | object | None:
    """The tensor behind a ``get_attr`` argument, None for None, else ``_NOT_CONSTANT``."""
    if arg is None:
        return None
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        value = fetch_attr(gm, arg.target)
        return value if isinstance(value, Tensor) else _NOT_CONSTANT
    return _NOT_CONSTANT
