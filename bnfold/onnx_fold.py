"""Fold BatchNormalization nodes of an ONNX graph into the Conv/Gemm/MatMul before or after them.

Works on ONNX files from anywhere (opset 9 up to the newest onnx knows). Every
BatchNormalization of the input gets one record in the returned :class:`FoldReport`; the ones left
say why. Only the main graph is rewritten: BatchNorms inside If/Loop/Scan bodies and model-local
functions are left alone (and reported so).

Throughout, BN(x) = s * x + t per channel (axis 1), with s = gamma / sqrt(var + eps) and
t = beta - mean * s (bnfold.formulas.bn_scale_shift). All arithmetic is float64; each new
initializer is rounded once to its original element type (float16, bfloat16, float, double).

Into the producer (tried first)
-------------------------------
Conv
    Before: Y = BN(Conv(X, W, b))             After: Y = Conv(X, W', b')
    Formula: W'[o] = W[o] * s[o];  b' = b * s + t  (b = 0 when absent; created)
ConvTranspose (any group)
    Before: Y = BN(ConvTranspose(X, W, b))    After: Y = ConvTranspose(X, W', b')
    Formula: W is (C_in, C_out / group, k...): output channel g * C_out/group + j of W[g-th block,
    j] is scaled by s;  b' = b * s + t
Gemm (transA, transB, alpha, beta)
    Before: Y = BN(alpha * A' @ B' + beta * C) After: Y = alpha * A' @ B'' + 1 * C'
    Formula: B''[:, n] = B'[:, n] * s[n] (stored back in B's own layout);
    C' = beta * C * s + t (C broadcast; created when absent); beta set to 1
MatMul, MatMul + Add
    Before: Y = BN(X @ W [+ c])               After: Y = X @ W' + c'  (Add created when absent)
    Formula: W'[:, n] = W[:, n] * s[n];  c' = c * s + t
Conditions: the layer's output feeds only this BN and is not a graph output; its weight (and bias)
are constants (initializers that are not graph inputs, Constant nodes, or Identity of those);
for MatMul the weight is 2-D [K, N] and shape inference proves the MatMul output 2-D (so the BN
channel axis 1 is the feature axis N).

Into the consumer (tried when the producer is not foldable)
-----------------------------------------------------------
Conv
    Before: Z = Conv(BN(X), W, b)             After: Z = Conv(X, W', b')
    Formula: W'[o, i] = W[o, i] * s[i];  b'[o] = b[o] + sum_{i,k} W[o, i, k] * t[i]  (grouped)
    Conditions: all pads 0 and auto_pad NOTSET/VALID. ONNX Conv pads with zeros, and a zero
    pad of BN(X) is not BN of a zero pad, so any padding is refused ("zero padding").
Gemm
    Before: Z = alpha * BN(A)' @ B' + beta * C After: Z = alpha * A @ B'' + 1 * C'
    Formula: B''[k, :] = s[k] * B'[k, :];  C' = beta * C + alpha * (t @ B'); beta set to 1
    Conditions: the BN output is Gemm's A with transA = 0 (BN channel = feature axis K).
MatMul
    Before: Z = BN(X) @ W                     After: Z = X @ W' + c'  (an Add is created)
    Formula: W'[k, :] = s[k] * W[k, :];  c' = t @ W
    Conditions: W is a 2-D constant and shape inference proves X 2-D.
Conditions for both: the BN output feeds only this layer, as its data input, and is not a graph
output; the layer's weights are constants.

Always left (with the reason): training_mode=1; running mean/var outputs read by another node or
returned; BN parameters that are not constants (graph inputs, computed tensors); non-finite
parameters or negative variance; models with an opset below 9.

Constants read by several nodes are cloned under a new name before being changed, so no other
node sees a changed value. Graph inputs/outputs, names, metadata and the opset are kept; the
value_info of tensors that disappear is dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import NodeProto, helper
from torch import Tensor

from bnfold.formulas import bn_scale_shift, fold_into_consumer, fold_into_producer
from bnfold.onnx_graph import (
    DEFAULT_DOMAINS,
    SUBGRAPH_USE,
    GraphEditor,
    Refused,
    attr,
    is_op,
    nodes_in_subgraphs,
    round_to,
    set_attr,
)
from bnfold.report import BNRecord, Direction, FoldReport

__all__ = ["fold_onnx"]

logger = logging.getLogger(__name__)

MIN_OPSET = 9
_SUBGRAPH_REASON = "inside a subgraph (If/Loop/Scan body): bnfold folds the main graph only"
_FUNCTION_REASON = "inside a model-local function: bnfold folds the main graph only"


def fold_onnx(model: onnx.ModelProto | str | os.PathLike) -> tuple[onnx.ModelProto, FoldReport]:
    """Fold the BatchNormalization nodes of ``model``; return ``(folded copy, report)``.

    ``model`` is a ModelProto (not modified) or the path of an ``.onnx`` file. See the module
    docstring for the patterns, their conditions and formulas.
    """
    source = _load(model)
    folded = onnx.ModelProto()
    folded.CopyFrom(source)
    opset = _default_opset(folded)
    ranks = _Ranks(source)
    editor = GraphEditor(folded.graph)
    records: list[BNRecord] = []
    for index, node in enumerate(list(editor.nodes)):
        if is_op(node, "BatchNormalization"):
            name = node.name or f"BatchNormalization_{index}({node.output[0]})"
            records.append(_fold_one(editor, node, name, opset, ranks))
        records += [
            BNRecord(
                inner.name or f"{node.name or node.op_type}/{inner.output[0]}",
                Direction.LEFT,
                reason=_SUBGRAPH_REASON,
            )
            for inner in nodes_in_subgraphs(node)
            if is_op(inner, "BatchNormalization")
        ]
    editor.finish()
    for function in folded.functions:
        records += [
            BNRecord(
                f"{function.name}/{n.name or n.output[0]}", Direction.LEFT, reason=_FUNCTION_REASON
            )
            for n in function.node
            if is_op(n, "BatchNormalization")
        ]
    report = FoldReport(records)
    logger.info("folded %d/%d BatchNormalization nodes", report.num_folded, report.num_bn)
    return folded, report


# --------------------------------------------------------------------------------- model level
def _load(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}")
        return onnx.load(path)
    raise TypeError(f"fold_onnx takes an onnx.ModelProto or a path, not {type(model).__name__}")


def _default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS:
            return opset.version
    raise ValueError("the model imports no default-domain opset: it is not a valid ONNX model")


class _Ranks:
    """Tensor ranks that shape inference can prove; only the MatMul patterns need them, so
    inference runs on the first question (on the input model: the names asked about exist
    there with the same meaning)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._model = model
        self._ranks: _Ranks | None = None

    def get(self, name: str) -> int | None:
        if self._ranks is None:
            self._ranks = self._infer()
        return self._ranks.get(name)

    def _infer(self) -> dict[str, int]:
        try:
            inferred = onnx.shape_inference.infer_shapes(self._model)
        except (onnx.shape_inference.InferenceError, ValueError) as error:
            logger.warning("shape inference failed (%s); MatMul patterns will be left", error)
            inferred = self._model
        graph = inferred.graph
        ranks = {t.name: len(t.dims) for t in graph.initializer}
        for vi in (*graph.input, *graph.output, *graph.value_info):
            tensor_type = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tensor_type.HasField("shape"):
                ranks[vi.name] = len(tensor_type.shape.dim)
        return ranks


# --------------------------------------------------------------------------------- one BN
def _fold_one(editor: GraphEditor, bn: NodeProto, name: str, opset: int, ranks: _Ranks) -> BNRecord:
    try:
        scale, shift = _bn_affine(editor, bn, opset)
    except Refused as why:
        return BNRecord(name, Direction.LEFT, reason=str(why))
    try:
        target = _into_producer(editor, bn, scale, shift, ranks)
        return BNRecord(name, Direction.INTO_PRODUCER, target=target)
    except Refused as why:
        not_producer = str(why)
    try:
        target = _into_consumer(editor, bn, scale, shift, ranks)
        return BNRecord(
            name,
            Direction.INTO_CONSUMER,
            target=target,
            reason=f"not into producer: {not_producer}",
        )
    except Refused as why:
        reason = f"not into producer: {not_producer}; not into consumer: {why}"
        return BNRecord(name, Direction.LEFT, reason=reason)


def _bn_affine(editor: GraphEditor, bn: NodeProto, opset: int) -> tuple[Tensor, Tensor]:
    """The BN's float64 (s, t), or Refused when it cannot be treated as a constant affine map."""
    if opset < MIN_OPSET:
        raise Refused(
            f"opset {opset} < {MIN_OPSET} is not supported: upgrade the model with "
            "onnx.version_converter.convert_version"
        )
    if attr(bn, "training_mode", 0) == 1:
        raise Refused("training_mode=1: it normalises with batch statistics")
    extra = [out for out in bn.output[1:] if out and editor.is_used(out)]
    if extra:
        raise Refused(f"its running mean/var outputs are used ({', '.join(extra)})")
    if len(bn.input) != 5:
        raise Refused(f"it has {len(bn.input)} inputs, expected 5")
    try:
        gamma, beta, mean, var = (editor.float_constant(n) for n in bn.input[1:5])
    except Refused as why:
        raise Refused(f"BN parameter {why}") from None
    if not np.all(np.isfinite(var.astype(np.float64))) or np.any(var.astype(np.float64) < 0):
        raise Refused("non-finite or negative variance")
    params = [torch.from_numpy(p.astype(np.float64).reshape(-1)) for p in (mean, var, gamma, beta)]
    if len({p.numel() for p in params}) != 1:
        raise Refused("its parameters have different lengths")
    scale, shift = bn_scale_shift(*params, eps=float(attr(bn, "epsilon", 1e-5)))
    if not (torch.isfinite(scale).all() and torch.isfinite(shift).all()):
        raise Refused("non-finite scale or shift (non-finite parameters, or var + eps = 0)")
    return scale, shift


def _label(node: NodeProto) -> str:
    return node.name or f"{node.op_type}({node.output[0]})"


def _t64(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float64))


def _np(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _channel_vector(c: np.ndarray, n: int) -> np.ndarray | None:
    """``c`` as an (n,) vector if it is the same for every row (scalar, (n,), (1, n)), else None."""
    if c.size == 1:
        return np.full(n, float(c.reshape(())), dtype=np.float64)
    if c.ndim >= 1 and c.shape[-1] == n and c.size == n:
        return c.reshape(n).astype(np.float64)
    return None


def _check_channels(op: str, channels: int, scale: Tensor) -> None:
    if channels != scale.numel():
        raise Refused(f"{op} has {channels} channels but the BN has {scale.numel()}")


# --------------------------------------------------------------------------------- into producer
def _into_producer(editor: GraphEditor, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks) -> str:
    x = bn.input[0]
    if x in editor.output_names:
        raise Refused("its input is also a graph output")
    layer = editor.producer(x)
    if layer is None:
        raise Refused("its input is not computed by a node")
    if len(editor.uses(x)) > 1:
        raise Refused(f"{layer.op_type} output also feeds other nodes")
    rewrite = _PRODUCERS.get(layer.op_type) if layer.domain in DEFAULT_DOMAINS else None
    if rewrite is None:
        raise Refused(f"{layer.op_type} is not Conv/ConvTranspose/Gemm/MatMul(+Add)")
    target = rewrite(editor, layer, bn, s, t, ranks)
    editor.remove_node(bn)
    return target


def _producer_conv(
    editor: GraphEditor, layer: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    w = editor.float_constant(layer.input[1])
    b = editor.float_constant(layer.input[2]) if _has_input(layer, 2) else None
    group = attr(layer, "group", 1)
    transposed = layer.op_type == "ConvTranspose"
    _check_channels(layer.op_type, w.shape[1] * group if transposed else w.shape[0], s)
    new_w, new_b = fold_into_producer(
        _t64(w),
        None if b is None else _t64(b),
        s,
        t,
        out_axis=1 if transposed else 0,
        groups=group if transposed else 1,
    )
    editor.set_constant(layer, 1, round_to(_np(new_w), w.dtype), f"{layer.input[1]}_folded")
    bias_dtype = w.dtype if b is None else b.dtype
    editor.set_constant(layer, 2, round_to(_np(new_b), bias_dtype), _bias_name(layer))
    editor.set_output(layer, 0, bn.output[0])  # downstream names stay the same
    return _label(layer)


def _producer_gemm(
    editor: GraphEditor, layer: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    w = editor.float_constant(layer.input[1])
    trans_b = attr(layer, "transB", 0)
    n = w.shape[0] if trans_b else w.shape[1]
    _check_channels("Gemm", n, s)
    c = editor.float_constant(layer.input[2]) if _has_input(layer, 2) else None
    beta = float(attr(layer, "beta", 1.0))
    new_w, _ = fold_into_producer(_t64(w), None, s, t, out_axis=0 if trans_b else 1)
    new_c = _scaled_bias(c, beta, s, t, n)
    editor.set_constant(layer, 1, round_to(_np(new_w), w.dtype), f"{layer.input[1]}_folded")
    editor.set_constant(
        layer, 2, round_to(new_c, w.dtype if c is None else c.dtype), _bias_name(layer)
    )
    set_attr(layer, "beta", 1.0)
    editor.set_output(layer, 0, bn.output[0])  # downstream names stay the same
    return _label(layer)


def _producer_matmul(
    editor: GraphEditor, layer: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    w = _matmul_weight(editor, layer, bn.input[0], ranks)
    _check_channels("MatMul", w.shape[1], s)
    new_w, new_b = fold_into_producer(_t64(w), None, s, t, out_axis=1)
    editor.set_constant(layer, 1, round_to(_np(new_w), w.dtype), f"{layer.input[1]}_folded")
    add = helper.make_node(
        "Add", [layer.output[0], ""], [bn.output[0]], name=editor.fresh_name(f"{_label(layer)}_add")
    )
    editor.insert_after(layer, add)
    editor.set_constant(add, 1, round_to(_np(new_b), w.dtype), _bias_name(layer))
    return _label(layer)


def _producer_add(
    editor: GraphEditor, add: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    """MatMul + Add(constant bias) → BN: the bias lives in the Add."""
    matmul, c, const_index = _matmul_and_bias(editor, add)
    mm_out = add.input[1 - const_index]
    if mm_out in editor.output_names or len(editor.uses(mm_out)) > 1:
        raise Refused("the MatMul before the Add also feeds other nodes")
    w = _matmul_weight(editor, matmul, bn.input[0], ranks)
    n = w.shape[1]
    _check_channels("MatMul", n, s)
    if ranks.get(mm_out) != 2 or c.ndim > 2:
        raise Refused("MatMul + Add output is not proven 2-D")
    new_w, _ = fold_into_producer(_t64(w), None, s, t, out_axis=1)
    new_c = _scaled_bias(c, 1.0, s, t, n)
    editor.set_constant(matmul, 1, round_to(_np(new_w), w.dtype), f"{matmul.input[1]}_folded")
    editor.set_constant(
        add, const_index, round_to(new_c, c.dtype), f"{add.input[const_index]}_folded"
    )
    editor.set_output(add, 0, bn.output[0])
    return f"{_label(matmul)} + {_label(add)}"


def _matmul_and_bias(editor: GraphEditor, add: NodeProto) -> tuple[NodeProto, np.ndarray, int]:
    """The MatMul feeding ``add``, the constant bias and its input index, or Refused."""
    for data, const in ((0, 1), (1, 0)):
        candidate = editor.producer(add.input[data])
        if candidate is not None and is_op(candidate, "MatMul"):
            try:
                return candidate, editor.float_constant(add.input[const]), const
            except Refused:
                continue
    raise Refused("Add is not MatMul + constant bias")


_PRODUCERS: dict[str, Callable[..., str]] = {
    "Conv": _producer_conv,
    "ConvTranspose": _producer_conv,
    "Gemm": _producer_gemm,
    "MatMul": _producer_matmul,
    "Add": _producer_add,
}


def _scaled_bias(c: np.ndarray | None, beta: float, s: Tensor, t: Tensor, n: int) -> np.ndarray:
    """float64 ``beta * c * s + t`` for a bias ``c`` that broadcasts against (rows, n)."""
    if c is None:
        return _np(t)
    vector = _channel_vector(c, n)
    if vector is not None:
        _, new_b = fold_into_producer(
            torch.ones(n, 1, dtype=torch.float64), _t64(beta * vector), s, t
        )
        return _np(new_b)
    if c.ndim != 2 or c.shape[1] not in (1, n):
        raise Refused(f"bias of shape {list(c.shape)} does not broadcast to (rows, {n})")
    return beta * c.astype(np.float64) * _np(s) + _np(t)  # per-row bias: same formula, 2-D


def _matmul_weight(editor: GraphEditor, matmul: NodeProto, out: str, ranks: _Ranks) -> np.ndarray:
    w = editor.float_constant(matmul.input[1])
    if w.ndim != 2:
        raise Refused(f"MatMul weight is {w.ndim}-D, not 2-D [K, N]")
    rank = ranks.get(out)
    if rank != 2:
        shown = "unknown" if rank is None else f"{rank}-D"
        raise Refused(
            f"MatMul output rank is {shown}: BN channel axis 1 is the feature axis only in 2-D"
        )
    return w


def _has_input(node: NodeProto, index: int) -> bool:
    return len(node.input) > index and bool(node.input[index])


def _bias_name(node: NodeProto) -> str:
    return f"{node.name or node.output[0]}.bias_folded"


# --------------------------------------------------------------------------------- into consumer
def _into_consumer(editor: GraphEditor, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks) -> str:
    y = bn.output[0]
    if y in editor.output_names:
        raise Refused("its output is a graph output")
    uses = editor.uses(y)
    if len(uses) != 1:
        raise Refused(f"its output feeds {len(uses)} inputs, not one")
    layer, index = uses[0]
    if index == SUBGRAPH_USE:
        raise Refused(f"its output is read inside the subgraph of {_label(layer)}")
    rewrite = _CONSUMERS.get(layer.op_type) if layer.domain in DEFAULT_DOMAINS else None
    if rewrite is None:
        raise Refused(f"{layer.op_type} is not Conv/Gemm/MatMul")
    if index != 0:
        raise Refused(f"it feeds {layer.op_type} input {index}, not its data input")
    target = rewrite(editor, layer, bn, s, t, ranks)
    editor.set_input(layer, 0, bn.input[0])
    editor.remove_node(bn)
    return target


def _consumer_conv(
    editor: GraphEditor, layer: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    pads = attr(layer, "pads", [])
    auto_pad = attr(layer, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if any(pads) or auto_pad not in ("NOTSET", "VALID"):
        raise Refused("zero padding: Conv pads BN's output with zeros, not with BN(0)")
    w = editor.float_constant(layer.input[1])
    b = editor.float_constant(layer.input[2]) if _has_input(layer, 2) else None
    group = attr(layer, "group", 1)
    _check_channels("Conv input", w.shape[1] * group, s)
    new_w, new_b = fold_into_consumer(_t64(w), None if b is None else _t64(b), s, t, groups=group)
    editor.set_constant(layer, 1, round_to(_np(new_w), w.dtype), f"{layer.input[1]}_folded")
    bias_dtype = w.dtype if b is None else b.dtype
    editor.set_constant(layer, 2, round_to(_np(new_b), bias_dtype), _bias_name(layer))
    return _label(layer)


def _consumer_gemm(
    editor: GraphEditor, layer: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    if attr(layer, "transA", 0):
        raise Refused("Gemm has transA=1: the BN channel axis is not its feature axis")
    w = editor.float_constant(layer.input[1])
    trans_b = attr(layer, "transB", 0)
    w_out_in = w if trans_b else w.T  # (N, K), the Linear layout fold_into_consumer expects
    _check_channels("Gemm input", w_out_in.shape[1], s)
    n = w_out_in.shape[0]
    alpha, beta = float(attr(layer, "alpha", 1.0)), float(attr(layer, "beta", 1.0))
    c = editor.float_constant(layer.input[2]) if _has_input(layer, 2) else None
    new_w, shift_term = fold_into_consumer(_t64(w_out_in), None, s, t)
    new_w = _np(new_w) if trans_b else _np(new_w).T
    new_c = alpha * _np(shift_term)
    if c is not None:
        vector = _channel_vector(c, n)
        if vector is None and (c.ndim != 2 or c.shape[1] not in (1, n)):
            raise Refused(f"Gemm bias of shape {list(c.shape)} does not broadcast")
        new_c = new_c + beta * (vector if vector is not None else c.astype(np.float64))
    editor.set_constant(layer, 1, round_to(new_w, w.dtype), f"{layer.input[1]}_folded")
    editor.set_constant(
        layer, 2, round_to(new_c, w.dtype if c is None else c.dtype), _bias_name(layer)
    )
    set_attr(layer, "beta", 1.0)
    return _label(layer)


def _consumer_matmul(
    editor: GraphEditor, layer: NodeProto, bn: NodeProto, s: Tensor, t: Tensor, ranks: _Ranks
) -> str:
    w = _matmul_weight(editor, layer, bn.output[0], ranks)
    _check_channels("MatMul input", w.shape[0], s)
    new_w, shift_term = fold_into_consumer(_t64(w.T), None, s, t)
    editor.set_constant(layer, 1, round_to(_np(new_w).T, w.dtype), f"{layer.input[1]}_folded")
    out = layer.output[0]
    editor.set_output(layer, 0, editor.fresh_name(f"{out}_matmul"))
    editor.removed_names.discard(out)  # the new Add writes it
    add = helper.make_node(
        "Add", [layer.output[0], ""], [out], name=editor.fresh_name(f"{_label(layer)}_add")
    )
    editor.insert_after(layer, add)
    editor.set_constant(add, 1, round_to(_np(shift_term), w.dtype), _bias_name(layer))
    return _label(layer)


_CONSUMERS: dict[str, Callable[..., str]] = {
    "Conv": _consumer_conv,
    "Gemm": _consumer_gemm,
    "MatMul": _consumer_matmul,
}
