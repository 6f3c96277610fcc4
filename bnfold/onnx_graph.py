"""Read and rewrite the constants and wiring of one ONNX graph: the plumbing under onnx_fold.

:class:`GraphEditor` owns a graph while it is being rewritten. It answers "who produces this
tensor", "who reads it", "is it a constant, and what is its value", and writes new constant values
without changing them under another node: a constant read elsewhere is cloned under a fresh name.
Subgraphs (If/Loop/Scan bodies) are never edited, but every name they read from the outer scope
counts as a use, so nothing they depend on is rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import ml_dtypes
import numpy as np
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

logger = logging.getLogger(__name__)

#: Element types whose initializers bnfold recomputes (in float64, rounded once).
FLOAT_TYPES = {
    TensorProto.FLOAT16: np.dtype(np.float16),
    TensorProto.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    TensorProto.FLOAT: np.dtype(np.float32),
    TensorProto.DOUBLE: np.dtype(np.float64),
}
DEFAULT_DOMAINS = ("", "ai.onnx")
SUBGRAPH_USE = -1  # input index recorded for a tensor read inside a node's subgraph


class Refused(Exception):
    """A rewrite's precondition does not hold; the message is the reason bnfold reports."""


def is_op(node: NodeProto, op_type: str) -> bool:
    """Whether ``node`` is the standard ONNX operator ``op_type`` (not a custom-domain one)."""
    return node.op_type == op_type and node.domain in DEFAULT_DOMAINS


def attr(node: NodeProto, name: str, default=None):
    """The value of attribute ``name`` of ``node``, or ``default`` when absent."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def set_attr(node: NodeProto, name: str, value) -> None:
    """Set (or add) attribute ``name`` of ``node``."""
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    """The graphs held in ``node``'s attributes (If branches, Loop/Scan bodies)."""
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def nodes_in_subgraphs(node: NodeProto) -> Iterator[NodeProto]:
    """Every node inside ``node``'s subgraphs, recursively."""
    for g in subgraphs(node):
        for inner in g.node:
            yield inner
            yield from nodes_in_subgraphs(inner)


def _has_subgraph(node: NodeProto) -> bool:
    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)


def _names_read_inside(node: NodeProto) -> set[str]:
    # Over-approximates the outer-scope reads (a name defined and read inside also counts):
    # that only makes bnfold more careful, never wrong.
    return {name for inner in nodes_in_subgraphs(node) for name in inner.input if name}


def round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float64 ``values`` once to ``dtype``, to nearest with ties to even.

    numpy rounds float64 straight to float16/float32, but ml_dtypes may go through float32 on
    the way to bfloat16, and rounding twice can land one ulp off: this picks the nearest
    bfloat16 neighbour of the float64 value itself.
    """
    values = np.asarray(values, dtype=np.float64)
    if dtype != np.dtype(ml_dtypes.bfloat16):
        return values.astype(dtype)
    first = values.astype(np.float32).astype(dtype)
    bits = first.view(np.uint16)
    # Neighbours one ulp away in magnitude; the candidates bracket the float64 value.
    candidates = [first, (bits + 1).view(dtype), (bits - 1).view(dtype)]
    best = first.copy()
    best_err = np.abs(first.astype(np.float64) - values)
    for cand in candidates[1:]:
        c64 = cand.astype(np.float64)
        err = np.abs(c64 - values)
        even = (cand.view(np.uint16) & 1) == 0
        better = np.isfinite(c64) & ((err < best_err) | ((err == best_err) & even))
        best = np.where(better, cand, best)
        best_err = np.where(better, err, best_err)
    # Zeros, infinities and NaNs: the float32 route is already exact.
    exact = ~np.isfinite(values) | (values == 0)
    return np.where(exact, first, best).astype(dtype)


class GraphEditor:
    """A graph being rewritten: node list, name index, constant reads and copy-on-write writes.

    The graph's node list is moved into :attr:`nodes` (a plain list, so nodes keep their identity
    while others are inserted or removed) and written back by :meth:`finish`. Every wiring change
    goes through the editor (:meth:`set_input`, :meth:`set_output`, :meth:`insert_after`,
    :meth:`remove_node`), which keeps the producer/use index up to date incrementally, so graphs
    of thousands of nodes fold quickly.
    """

    def __init__(self, graph: GraphProto) -> None:
        self.graph = graph
        self.nodes: list[NodeProto] = []
        for node in graph.node:
            copy = NodeProto()
            copy.CopyFrom(node)
            self.nodes.append(copy)
        del graph.node[:]
        self.initializers: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        self.input_names = {i.name for i in graph.input}
        self.output_names = {o.name for o in graph.output}
        self.removed_names: set[str] = set()  # tensors that no longer exist: drop their value_info
        self._cleanup: set[str] = set()  # tensors that may have become dead: drop if unused
        self._taken = self._all_names()
        self._producers: dict[str, NodeProto] = {}
        self._uses: dict[str, list[tuple[NodeProto, int]]] = {}
        # Subgraphs are never edited, so what they read is computed once.
        self._inner_reads = {id(n): _names_read_inside(n) for n in self.nodes if _has_subgraph(n)}
        for node in self.nodes:
            self._index(node)

    # ----------------------------------------------------------------------------- indexing
    def _all_names(self) -> set[str]:
        names = set(self.initializers) | self.input_names | self.output_names
        names |= {vi.name for vi in self.graph.value_info}
        for node in self.nodes:
            names.update(node.input)
            names.update(node.output)
            names.add(node.name)
            for inner in nodes_in_subgraphs(node):
                names.update(inner.input)
                names.update(inner.output)
                names.add(inner.name)
        return names

    def _index(self, node: NodeProto) -> None:
        for out in node.output:
            if out:
                self._producers[out] = node
        for i, name in enumerate(node.input):
            if name:
                self._uses.setdefault(name, []).append((node, i))
        for name in self._inner_reads.get(id(node), ()):
            self._uses.setdefault(name, []).append((node, SUBGRAPH_USE))

    def _unindex(self, node: NodeProto) -> None:
        for out in node.output:
            if self._producers.get(out) is node:
                del self._producers[out]
        for name in {*node.input, *self._inner_reads.get(id(node), ())}:
            if name in self._uses:
                self._uses[name] = [(n, i) for n, i in self._uses[name] if n is not node]

    def producer(self, name: str) -> NodeProto | None:
        return self._producers.get(name)

    def uses(self, name: str) -> list[tuple[NodeProto, int]]:
        """``(node, input index)`` for every read of ``name``; subgraph reads have index -1."""
        return list(self._uses.get(name, []))

    def is_used(self, name: str) -> bool:
        return bool(self._uses.get(name)) or name in self.output_names

    def fresh_name(self, base: str) -> str:
        """A name no tensor or node of the model has, derived from ``base``."""
        name, i = base, 1
        while name in self._taken:
            name, i = f"{base}_{i}", i + 1
        self._taken.add(name)
        return name

    # ----------------------------------------------------------------------------- constants
    def constant(self, name: str) -> np.ndarray:
        """The value of tensor ``name`` if it is a constant of the graph, else raise Refused.

        Constants are initializers that are not graph inputs, Constant nodes, and Identity
        nodes of those (the TorchScript exporter emits Identity for deduplicated parameters).
        """
        if not name:
            raise Refused("an optional input is missing")
        if name in self.input_names:
            hint = (
                " (an initializer listed as a graph input can be overridden; re-export with "
                "keep_initializers_as_inputs=False)"
                if name in self.initializers
                else ""
            )
            raise Refused(f"'{name}' is a graph input, so it can change at run time{hint}")
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer(name)
        if node is None:
            raise Refused(f"'{name}' is neither an initializer nor computed in this graph")
        if is_op(node, "Identity"):
            return self.constant(node.input[0])
        if is_op(node, "Constant"):
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name == "value_float":
                    return np.array(a.f, dtype=np.float32)
                if a.name == "value_floats":
                    return np.array(a.floats, dtype=np.float32)
            raise Refused(f"'{name}' is a Constant that is not a float tensor")
        raise Refused(f"'{name}' is computed by a {node.op_type} node, not a constant")

    def float_constant(self, name: str) -> np.ndarray:
        """:meth:`constant`, refused unless its element type is one bnfold recomputes."""
        value = self.constant(name)
        if value.dtype not in FLOAT_TYPES.values():
            raise Refused(f"'{name}' has element type {value.dtype}, not a float type")
        return value

    def set_constant(self, node: NodeProto, index: int, value: np.ndarray, base: str) -> None:
        """Make input ``index`` of ``node`` the constant ``value``, changing no other node's input.

        An initializer read only by this node is overwritten in place (its name is kept);
        anything else — a shared initializer, a Constant/Identity output, a missing optional
        input — gets a new initializer named after ``base``.
        """
        name = node.input[index] if index < len(node.input) else ""
        private = (
            name in self.initializers
            and name not in self.input_names
            and name not in self.output_names
            and len(self._uses.get(name, [])) == 1
        )
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        if private:
            old = self.initializers[name]
            tensor.doc_string = old.doc_string
            old.CopyFrom(tensor)
            return
        new_name = self.fresh_name(base)
        tensor.name = new_name
        self.graph.initializer.append(tensor)
        self.initializers[new_name] = self.graph.initializer[-1]
        self.set_input(node, index, new_name)
        if name:
            logger.debug("cloned %s as %s for %s", name, new_name, node.name or node.op_type)

    # ----------------------------------------------------------------------------- wiring
    def set_input(self, node: NodeProto, index: int, name: str) -> None:
        """Make ``node`` read ``name`` as input ``index`` (padding optional inputs with "")."""
        self._unindex(node)
        old = node.input[index] if index < len(node.input) else ""
        while len(node.input) <= index:
            node.input.append("")
        node.input[index] = name
        if old:
            self._cleanup.add(old)
        self._index(node)

    def set_output(self, node: NodeProto, index: int, name: str) -> None:
        """Make ``node`` write ``name`` as output ``index``; the old tensor ceases to exist."""
        self._unindex(node)
        self.removed_names.add(node.output[index])
        node.output[index] = name
        self._taken.add(name)
        self._index(node)

    def remove_node(self, node: NodeProto) -> None:
        """Drop ``node``; its outputs cease to exist and its inputs may become dead."""
        self._unindex(node)
        self.nodes = [n for n in self.nodes if n is not node]
        self.removed_names.update(name for name in node.output if name)
        self._cleanup.update(name for name in node.input if name)

    def insert_after(self, anchor: NodeProto, node: NodeProto) -> None:
        """Insert ``node`` right after ``anchor``, which keeps the list topologically sorted."""
        position = next(i for i, n in enumerate(self.nodes) if n is anchor)
        self.nodes.insert(position + 1, node)
        self._taken.update(node.output)
        self._taken.add(node.name)
        self._index(node)

    def finish(self) -> None:
        """Write the nodes back, drop constants the rewrites left dead, clean value_info."""
        self._drop_dead_constants()
        self.graph.node.extend(self.nodes)
        defined = set(self.initializers) | self.input_names
        defined |= {out for node in self.nodes for out in node.output}
        stale = [vi for vi in self.graph.value_info if vi.name in self.removed_names - defined]
        for vi in stale:
            self.graph.value_info.remove(vi)

    def _drop_dead_constants(self) -> None:
        # Only tensors that a rewrite disconnected are candidates: dead code that was already in
        # the input model is not bnfold's business.
        pending, dropped = set(self._cleanup), set()
        while pending:
            name = pending.pop()
            if self.is_used(name) or name in self.input_names:
                continue
            if name in self.initializers:
                del self.initializers[name]
                dropped.add(name)
                continue
            node = self.producer(name)
            if (
                node is not None
                and node.op_type in ("Constant", "Identity")
                and not any(self.is_used(out) for out in node.output)
            ):
                self.remove_node(node)
                pending.update(i for i in node.input if i)
        # Deleting by index: RepeatedField.remove would compare whole tensors.
        for i in reversed(range(len(self.graph.initializer))):
            if self.graph.initializer[i].name in dropped:
                del self.graph.initializer[i]
