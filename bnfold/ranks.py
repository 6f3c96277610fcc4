"""The rank (number of dims) of a tensor in an fx graph, when it can be known.

BatchNorm normalises axis 1; a Linear works on the last axis. They are the same axis only for
rank-2 (N, C) tensors, so a Linear↔BN fold needs the rank. Shapes recorded by a ShapeProp run on
``example_inputs`` are used when present; otherwise a few rank-fixing ops (flatten, view,
reshape) and rank-preserving ones (activations, dropout, Linear, BN) are followed backwards.
Anything else is "unknown", and the caller refuses rather than guesses.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

_PRESERVING_MODULES = (
    nn.Linear,
    _BatchNorm,
    nn.Identity,
    nn.Dropout,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softmax,
)
_PRESERVING_FUNCTIONS = {
    F.linear,
    F.batch_norm,
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.dropout,
    F.softmax,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    operator.neg,
}
_PRESERVING_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone", "detach", "softmax"}
_MAX_DEPTH = 64


def node_rank(gm: fx.GraphModule, node: object, depth: int = 0) -> int | None:
    """Rank of the tensor ``node`` produces, or None if it cannot be known."""
    if not isinstance(node, fx.Node) or depth > _MAX_DEPTH:
        return None
    meta = node.meta.get("tensor_meta")
    if meta is not None and hasattr(meta, "shape"):
        return len(meta.shape)
    flattened = _flatten_rank(gm, node, depth)
    if flattened is not None:
        return flattened
    if node.op == "call_method" and node.target in ("view", "reshape"):
        return _shape_arg_rank(node.args[1:])
    if node.op == "call_function" and node.target is torch.reshape:
        return _shape_arg_rank(node.args[1:])
    if _preserves_rank(gm, node) and node.args:
        return node_rank(gm, node.args[0], depth + 1)
    return None


def _preserves_rank(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), _PRESERVING_MODULES)
    if node.op == "call_function":
        return node.target in _PRESERVING_FUNCTIONS
    return node.op == "call_method" and node.target in _PRESERVING_METHODS


def _flatten_rank(gm: fx.GraphModule, node: fx.Node, depth: int) -> int | None:
    if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.Flatten):
        module = gm.get_submodule(node.target)
        start, end = module.start_dim, module.end_dim
    elif (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        rest = list(node.args[1:])
        start = node.kwargs.get("start_dim", rest[0] if rest else 0)
        end = node.kwargs.get("end_dim", rest[1] if len(rest) > 1 else -1)
    else:
        return None
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    if end == -1 and start >= 0:
        return start + 1  # flattening everything from ``start`` on, whatever the input rank
    rank = node_rank(gm, node.args[0], depth + 1)
    if rank is None:
        return None
    start, end = start % rank, end % rank
    return rank - (end - start)


def _shape_arg_rank(args: tuple) -> int | None:
    if len(args) == 1:
        only = args[0]
        if isinstance(only, tuple | list):
            return len(only)
        return 1 if isinstance(only, int) else None  # a Node may be an int or a whole shape
    return len(args) if args else None
