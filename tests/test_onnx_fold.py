"""bnfold.fold_onnx: every pattern folds exactly (onnxruntime before == after), every refusal says
why and changes nothing, across opsets and float types; torch exports fold too."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from bnfold import Direction, fold_onnx
from bnfold.onnx_graph import round_to

NEWEST = onnx.defs.onnx_opset_version()
OPSETS = sorted({9, 11, 13, 15, 17, 21, NEWEST})
FP32_TOL = {"atol": 1e-5, "rtol": 1e-4}
EPS = 1e-5
BF16 = np.dtype(ml_dtypes.bfloat16)


# ----------------------------------------------------------------------------- graph building
class Graph:
    """Collects nodes and initializers for one onnx.helper graph."""

    def __init__(self, opset: int, dtype=np.float32, seed: int = 0) -> None:
        self.opset, self.dtype = opset, np.dtype(dtype)
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    @property
    def elem(self) -> int:
        return helper.np_dtype_to_tensor_dtype(self.dtype)

    def const(self, name: str, array) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array).astype(self.dtype), name))
        return name

    def rand(self, name: str, shape, scale: float = 0.5) -> str:
        return self.const(name, self.rng.normal(0, scale, size=shape))

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> onnx.NodeProto:
        node = helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}", **attrs)
        self.nodes.append(node)
        return node

    def bn(self, x: str, y: str, channels: int, prefix: str = "bn", **attrs) -> onnx.NodeProto:
        gamma = self.const(f"{prefix}.gamma", self.rng.normal(1, 0.3, channels))
        beta = self.const(f"{prefix}.beta", self.rng.normal(0, 0.3, channels))
        mean = self.const(f"{prefix}.mean", self.rng.normal(0, 0.5, channels))
        var = self.const(f"{prefix}.var", self.rng.uniform(0.5, 2.0, channels))
        return self.node(
            "BatchNormalization", [x, gamma, beta, mean, var], [y], epsilon=EPS, **attrs
        )

    def model(
        self, inputs: dict[str, list | None], outputs: dict[str, list | None]
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info(n, self.elem, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(n, self.elem, s) for n, s in outputs.items()],
            self.inits,
        )
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(
            graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets)
        )
        # Old IR versions require output shapes: take the ones shape inference finds.
        inferred = onnx.shape_inference.infer_shapes(model).graph
        found = {vi.name: vi for vi in (*inferred.value_info, *inferred.output)}
        for out in model.graph.output:
            if not out.type.tensor_type.HasField("shape") and out.name in found:
                out.CopyFrom(found[out.name])
        return model


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def random_feeds(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        shape = [d.dim_value or 2 for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.normal(0, 1, size=shape).astype(dtype)
    return feeds


def assert_same_outputs(before: onnx.ModelProto, after: onnx.ModelProto, **tol) -> None:
    feeds = random_feeds(before)
    for a, b in zip(run(before, feeds), run(after, feeds), strict=True):
        torch.testing.assert_close(torch.from_numpy(b), torch.from_numpy(a), **(tol or FP32_TOL))


def count_bn(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "BatchNormalization" for n in model.graph.node)


# ----------------------------------------------------------------------------- patterns
def conv_bn(opset: int) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 3, 3)), g.rand("b", (4,))], ["c"], pads=[1, 1, 1, 1])
    g.bn("c", "y", 4)
    return g.model({"x": [2, 3, 6, 6]}, {"y": [2, 4, 6, 6]})


def grouped_conv_no_bias_bn(opset: int) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (6, 2, 3, 3))], ["c"], group=2, strides=[2, 2])
    g.bn("c", "y", 6)
    return g.model({"x": [2, 4, 7, 7]}, {"y": None})


def conv_transpose_groups_bn(opset: int) -> onnx.ModelProto:
    g = Graph(opset)
    weights = [g.rand("w", (4, 3, 3, 3)), g.rand("b", (6,))]  # in 4, out 3 per group x 2
    g.node("ConvTranspose", ["x", *weights], ["c"], group=2, strides=[2, 2], output_padding=[1, 1])
    g.bn("c", "y", 6)
    return g.model({"x": [2, 4, 4, 4]}, {"y": None})


def gemm_bn(trans_a: int, trans_b: int, c_shape: tuple | None) -> Callable[[int], onnx.ModelProto]:
    def build(opset: int) -> onnx.ModelProto:
        g = Graph(opset)
        m, k, n = 3, 5, 4
        inputs = ["x", g.rand("w", (n, k) if trans_b else (k, n))]
        if c_shape is not None:
            inputs.append(g.rand("c0", c_shape))
        g.node("Gemm", inputs, ["c"], transA=trans_a, transB=trans_b, alpha=0.7, beta=1.3)
        g.bn("c", "y", n)
        return g.model({"x": [k, m] if trans_a else [m, k]}, {"y": [m, n]})

    build.__name__ = f"gemm_bn_tA{trans_a}_tB{trans_b}_C{c_shape}".replace(" ", "")
    build.min_opset = 11 if c_shape is None else 9  # C became optional in opset 11
    return build


def matmul_bn(opset: int) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("MatMul", ["x", g.rand("w", (5, 4))], ["c"])
    g.bn("c", "y", 4)
    return g.model({"x": [3, 5]}, {"y": [3, 4]})


def matmul_add_bn(bias_first: bool) -> Callable[[int], onnx.ModelProto]:
    def build(opset: int) -> onnx.ModelProto:
        g = Graph(opset)
        g.node("MatMul", ["x", g.rand("w", (5, 4))], ["mm"])
        bias = g.rand("bias", (4,))
        g.node("Add", [bias, "mm"] if bias_first else ["mm", bias], ["c"])
        g.bn("c", "y", 4)
        return g.model({"x": [3, 5]}, {"y": [3, 4]})

    build.__name__ = f"matmul_add_bn_bias_first{bias_first}"
    return build


def bn_conv(group: int) -> Callable[[int], onnx.ModelProto]:
    def build(opset: int) -> onnx.ModelProto:
        g = Graph(opset)
        g.bn("x", "b0", 4)
        w = g.rand("w", (6, 4 // group, 3, 3))
        g.node(
            "Conv",
            ["b0", w, g.rand("b", (6,))],
            ["y"],
            group=group,
            strides=[2, 1],
            pads=[0, 0, 0, 0],
        )
        return g.model({"x": [2, 4, 7, 7]}, {"y": None})

    build.__name__ = f"bn_conv_group{group}"
    return build


def bn_gemm(trans_b: int) -> Callable[[int], onnx.ModelProto]:
    def build(opset: int) -> onnx.ModelProto:
        g = Graph(opset)
        g.bn("x", "b0", 5)
        w = g.rand("w", (4, 5) if trans_b else (5, 4))
        g.node("Gemm", ["b0", w, g.rand("c0", (4,))], ["y"], transB=trans_b, alpha=0.5, beta=2.0)
        return g.model({"x": [3, 5]}, {"y": [3, 4]})

    build.__name__ = f"bn_gemm_tB{trans_b}"
    return build


def bn_matmul(opset: int) -> onnx.ModelProto:
    g = Graph(opset)
    g.bn("x", "b0", 5)
    g.node("MatMul", ["b0", g.rand("w", (5, 4))], ["y"])
    return g.model({"x": [3, 5]}, {"y": [3, 4]})


def conv_bn_constant_params(opset: int) -> onnx.ModelProto:
    """BN parameters from Constant nodes and an Identity of an initializer (TorchScript style)."""
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    rng = np.random.default_rng(5)
    for name, value in [
        ("gamma", rng.normal(1, 0.3, 4)),
        ("beta", rng.normal(0, 0.3, 4)),
        ("mean", rng.normal(0, 0.5, 4)),
    ]:
        g.node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32)))
    g.node("Identity", [g.const("var0", rng.uniform(0.5, 2, 4))], ["var"])
    g.node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], epsilon=EPS)
    return g.model({"x": [2, 3, 5, 5]}, {"y": None})


PATTERNS: list[tuple[Callable[[int], onnx.ModelProto], Direction, str]] = [
    (conv_bn, Direction.INTO_PRODUCER, "Conv"),
    (grouped_conv_no_bias_bn, Direction.INTO_PRODUCER, "Conv"),
    (conv_transpose_groups_bn, Direction.INTO_PRODUCER, "ConvTranspose"),
    *[
        (gemm_bn(ta, tb, c), Direction.INTO_PRODUCER, "Gemm")
        for ta, tb, c in [
            (0, 0, (4,)),
            (0, 1, None),
            (1, 0, (1, 4)),
            (1, 1, ()),
            (0, 1, (3, 4)),
            (0, 0, (3, 1)),
        ]
    ],
    (matmul_bn, Direction.INTO_PRODUCER, "MatMul"),
    (matmul_add_bn(False), Direction.INTO_PRODUCER, "MatMul"),
    (matmul_add_bn(True), Direction.INTO_PRODUCER, "MatMul"),
    (bn_conv(1), Direction.INTO_CONSUMER, "Conv"),
    (bn_conv(2), Direction.INTO_CONSUMER, "Conv"),
    (bn_gemm(0), Direction.INTO_CONSUMER, "Gemm"),
    (bn_gemm(1), Direction.INTO_CONSUMER, "Gemm"),
    (bn_matmul, Direction.INTO_CONSUMER, "MatMul"),
    (conv_bn_constant_params, Direction.INTO_PRODUCER, "Conv"),
]


# Every pattern at every opset where it is valid ONNX (Gemm without C needs opset 11).
PATTERN_CASES = [
    pytest.param(build, direction, op, opset, id=f"{build.__name__}-opset{opset}")
    for build, direction, op in PATTERNS
    for opset in OPSETS
    if opset >= getattr(build, "min_opset", 9)
]


@pytest.mark.parametrize(("build", "direction", "target_op", "opset"), PATTERN_CASES)
def test_pattern_folds_exactly(build, direction, target_op, opset):
    """Each pattern folds at each opset: no BN left, full_check passes, same outputs, idempotent."""
    model = build(opset)
    onnx.checker.check_model(model, full_check=True)
    before = model.SerializeToString()

    folded, report = fold_onnx(model)

    assert model.SerializeToString() == before, "fold_onnx must not modify its input"
    assert report.num_bn == 1 and report.num_folded == 1
    record = report.records[0]
    assert record.direction is direction
    assert target_op in record.target
    assert count_bn(folded) == 0
    assert folded.opset_import == model.opset_import
    assert folded.graph.input == model.graph.input
    assert folded.graph.output == model.graph.output
    onnx.checker.check_model(folded, full_check=True)
    assert_same_outputs(model, folded)
    refolded, again = fold_onnx(folded)
    assert refolded.SerializeToString() == folded.SerializeToString()
    assert again.num_bn == 0


# ----------------------------------------------------------------------------- refusals
def training_mode(opset: int = 15) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    g.bn("c", "y", 4, training_mode=1)
    return g.model({"x": [2, 3, 4, 4]}, {"y": None})


def running_stats_used(opset: int = 9) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    bn = g.bn("c", "y", 4)
    bn.output.extend(["running_mean_out"])
    return g.model({"x": [2, 3, 4, 4]}, {"y": None, "running_mean_out": None})


def param_is_graph_input(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    bn = g.bn("c", "y", 4)
    bn.input[4] = "var_in"
    return g.model({"x": [2, 3, 4, 4], "var_in": [4]}, {"y": None})


def param_is_computed(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    bn = g.bn("c", "y", 4)
    g.node("Abs", [bn.input[4]], ["var_abs"])
    bn.input[4] = "var_abs"
    return g.model({"x": [2, 3, 4, 4]}, {"y": None})


def bad_variance(value: float) -> Callable[[], onnx.ModelProto]:
    def build(opset: int = 17) -> onnx.ModelProto:
        g = Graph(opset)
        g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
        bn = g.bn("c", "y", 4)
        var = next(t for t in g.inits if t.name == bn.input[4])
        values = numpy_helper.to_array(var).copy()
        values[2] = value
        var.CopyFrom(numpy_helper.from_array(values, var.name))
        return g.model({"x": [2, 3, 4, 4]}, {"y": None})

    build.__name__ = f"variance_{value}"
    return build


def producer_feeds_others(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    g.node("Relu", ["c"], ["r"])
    g.bn("c", "y", 4)
    return g.model({"x": [2, 3, 4, 4]}, {"y": None, "r": None})


def producer_is_graph_output(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    g.bn("c", "y", 4)
    return g.model({"x": [2, 3, 4, 4]}, {"y": None, "c": None})


def bn_conv_padded(**pad) -> Callable[[], onnx.ModelProto]:
    def build(opset: int = 17) -> onnx.ModelProto:
        g = Graph(opset)
        g.bn("x", "b0", 3)
        g.node("Conv", ["b0", g.rand("w", (4, 3, 3, 3))], ["y"], **pad)
        return g.model({"x": [2, 3, 5, 5]}, {"y": None})

    build.__name__ = f"bn_conv_{next(iter(pad))}"
    return build


def bn_gemm_trans_a(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.bn("x", "b0", 5)
    g.node("Gemm", ["b0", g.rand("w", (5, 4))], ["y"], transA=1)
    return g.model({"x": [3, 5]}, {"y": None})


def matmul_3d_bn(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("MatMul", ["x", g.rand("w", (5, 4))], ["c"])
    g.bn("c", "y", 3)  # channel axis 1 of (2, 3, 4) is not MatMul's feature axis
    return g.model({"x": [2, 3, 5]}, {"y": None})


def bn_matmul_unknown_rank(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.bn("x", "b0", 5)
    g.node("MatMul", ["b0", g.rand("w", (5, 4))], ["y"])
    model = g.model({"x": None}, {"y": None})
    model.graph.input[0].type.tensor_type.ClearField("shape")
    return model


def conv_weight_is_input(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", "w_in"], ["c"])
    g.bn("c", "y", 4)
    return g.model({"x": [2, 3, 4, 4], "w_in": [4, 3, 1, 1]}, {"y": None})


def old_opset(opset: int = 8) -> onnx.ModelProto:
    g = Graph(opset)
    g.node("Conv", ["x", g.rand("w", (4, 3, 1, 1))], ["c"])
    g.bn("c", "y", 4)
    return g.model({"x": [2, 3, 4, 4]}, {"y": None})


def bn_relu(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.bn("x", "b0", 3)
    g.node("Relu", ["b0"], ["y"])
    return g.model({"x": [2, 3, 4, 4]}, {"y": None})


def bn_two_convs(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.bn("x", "b0", 3)
    g.node("Conv", ["b0", g.rand("w1", (4, 3, 1, 1))], ["y1"])
    g.node("Conv", ["b0", g.rand("w2", (4, 3, 1, 1))], ["y2"])
    return g.model({"x": [2, 3, 4, 4]}, {"y1": None, "y2": None})


def bn_conv_transpose(opset: int = 17) -> onnx.ModelProto:
    g = Graph(opset)
    g.bn("x", "b0", 3)
    g.node("ConvTranspose", ["b0", g.rand("w", (3, 4, 3, 3))], ["y"])
    return g.model({"x": [2, 3, 4, 4]}, {"y": None})


REFUSALS: list[tuple[Callable[..., onnx.ModelProto], str]] = [
    (training_mode, "training_mode=1"),
    (running_stats_used, "running mean/var outputs are used"),
    (param_is_graph_input, "'var_in' is a graph input"),
    (param_is_computed, "computed by a Abs node"),
    (bad_variance(-0.5), "non-finite or negative variance"),
    (bad_variance(float("nan")), "non-finite or negative variance"),
    (bad_variance(float("inf")), "non-finite or negative variance"),
    (producer_feeds_others, "Conv output also feeds other nodes"),
    (producer_is_graph_output, "its input is also a graph output"),
    (bn_conv_padded(pads=[1, 1, 1, 1]), "zero padding"),
    (bn_conv_padded(auto_pad="SAME_UPPER"), "zero padding"),
    (bn_gemm_trans_a, "transA=1"),
    (matmul_3d_bn, "MatMul output rank is 3-D"),
    (bn_matmul_unknown_rank, "MatMul output rank is unknown"),
    (conv_weight_is_input, "'w_in' is a graph input"),
    (old_opset, "opset 8 < 9"),
    (bn_relu, "Relu is not Conv/Gemm/MatMul"),
    (bn_two_convs, "its output feeds 2 inputs"),
    (bn_conv_transpose, "ConvTranspose is not Conv/Gemm/MatMul"),
]


@pytest.mark.parametrize(("build", "reason"), REFUSALS, ids=[r[0].__name__ for r in REFUSALS])
def test_refusal_leaves_the_graph_unchanged_and_says_why(build, reason):
    model = build()
    folded, report = fold_onnx(model)
    assert report.num_bn == 1 and report.num_folded == 0
    record = report.records[0]
    assert record.direction is Direction.LEFT
    assert reason in record.reason
    assert folded.SerializeToString() == model.SerializeToString()


def test_unsafe_bn_is_left_while_its_neighbours_fold():
    """One refused BN does not stop the others; the runtime outputs stay the same."""
    g = Graph(17)
    g.node("Conv", ["x", g.rand("w", (4, 3, 3, 3))], ["c"], pads=[1, 1, 1, 1])
    g.bn("c", "b1", 4, prefix="bn1")
    g.node("Relu", ["b1"], ["r"])
    g.bn("r", "b2", 4, prefix="bn2")  # after a Relu, before a padded conv: left
    g.node("Conv", ["b2", g.rand("w2", (5, 4, 3, 3))], ["c2"], pads=[1, 1, 1, 1])
    g.bn("c2", "y", 5, prefix="bn3")
    model = g.model({"x": [2, 3, 6, 6]}, {"y": None})
    folded, report = fold_onnx(model)
    assert [r.direction for r in report.records] == [
        Direction.INTO_PRODUCER,
        Direction.LEFT,
        Direction.INTO_PRODUCER,
    ]
    assert "zero padding" in report.records[1].reason
    assert count_bn(folded) == 1
    onnx.checker.check_model(folded, full_check=True)
    assert_same_outputs(model, folded)


def test_subgraph_batchnorm_is_left_and_outer_constants_it_reads_are_not_changed():
    """A BN inside an If branch is reported and left; the branch still reads the original W."""
    g = Graph(17)
    g.node("Conv", ["x", g.rand("w", (3, 3, 1, 1))], ["c"])
    g.bn("c", "main_y", 3, prefix="bn_main")
    # The branch reads the main graph's conv weight and BN parameters from the outer scope.
    then_nodes = [
        helper.make_node("Conv", ["x", "w"], ["tc"], name="then_conv"),
        helper.make_node(
            "BatchNormalization",
            ["tc", "bn_main.gamma", "bn_main.beta", "bn_main.mean", "bn_main.var"],
            ["t_out"],
            name="then_bn",
        ),
    ]
    out_info = [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)]
    then_graph = helper.make_graph(then_nodes, "then", [], out_info)
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e_out"], name="else_id")],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
    )
    g.node("If", ["cond"], ["branch_y"], then_branch=then_graph, else_branch=else_graph)
    model = g.model({"x": [2, 3, 4, 4]}, {"main_y": None, "branch_y": None})
    model.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))

    folded, report = fold_onnx(model)

    by_name = {r.bn: r for r in report.records}
    assert by_name["then_bn"].direction is Direction.LEFT
    assert "subgraph" in by_name["then_bn"].reason
    assert report.num_folded == 1
    onnx.checker.check_model(folded, full_check=True)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4)).astype(np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        for a, b in zip(run(model, feeds), run(folded, feeds), strict=True):
            torch.testing.assert_close(torch.from_numpy(b), torch.from_numpy(a), **FP32_TOL)


# ----------------------------------------------------------------------------- sharing, metadata
def test_shared_initializers_are_cloned_not_changed_under_another_node():
    g = Graph(17)
    w, b = g.rand("w", (4, 3, 3, 3)), g.rand("b", (4,))
    g.node("Conv", ["x", w, b], ["c1"])
    g.bn("c1", "y1", 4, prefix="bn1")
    g.node("Conv", ["x", w, b], ["c2"])
    g.bn("c2", "y2", 4, prefix="bn2")
    g.node("Conv", ["x", w, b], ["y3"])  # not followed by BN: must keep reading w and b
    model = g.model({"x": [2, 3, 5, 5]}, {"y1": None, "y2": None, "y3": None})

    folded, report = fold_onnx(model)

    assert report.num_folded == 2
    inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    original = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits["w"], original["w"])
    np.testing.assert_array_equal(inits["b"], original["b"])
    convs = [n for n in folded.graph.node if n.op_type == "Conv"]
    assert list(convs[2].input) == ["x", "w", "b"]
    weight_names = {c.input[1] for c in convs[:2]}
    assert len(weight_names) == 2 and "w" not in weight_names
    onnx.checker.check_model(folded, full_check=True)
    assert_same_outputs(model, folded)


def test_metadata_names_and_opset_are_kept_and_stale_value_info_dropped():
    model = conv_bn(17)
    model.producer_name, model.producer_version = "someone", "1.2"
    model.doc_string, model.graph.doc_string = "model doc", "graph doc"
    onnx.helper.set_model_props(model, {"author": "me", "license": "MIT"})
    model.graph.value_info.extend(
        [
            helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 4, 6, 6]),  # removed by fold
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 6, 6]),  # still exists
        ]
    )

    folded, _ = fold_onnx(model)

    for field in (
        "producer_name",
        "producer_version",
        "doc_string",
        "ir_version",
        "metadata_props",
        "opset_import",
    ):
        assert getattr(folded, field) == getattr(model, field), field
    assert folded.graph.doc_string == "graph doc" and folded.graph.name == model.graph.name
    assert [vi.name for vi in folded.graph.value_info] == ["y"]
    assert folded.graph.node[0].name == model.graph.node[0].name
    onnx.checker.check_model(folded, full_check=True)


def test_accepts_paths_and_rejects_what_is_not_a_model(tmp_path):
    model = conv_bn(17)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    expected = fold_onnx(model)[0].SerializeToString()
    assert fold_onnx(path)[0].SerializeToString() == expected
    assert fold_onnx(str(path))[0].SerializeToString() == expected
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        fold_onnx(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="ModelProto or a path"):
        fold_onnx(42)


# ----------------------------------------------------------------------------- float types
def _bn_reference(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    """float64 (s, t) of the model's only BN, computed independently of bnfold."""
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    gamma, beta, mean, var = (inits[name] for name in bn.input[1:])
    eps = float(np.float32(EPS))  # the attribute is stored as float32
    s = gamma / np.sqrt(var + eps)
    return s, beta - mean * s


def _low_precision_conv_bn(opset: int, dtype: np.dtype) -> onnx.ModelProto:
    g = Graph(opset, dtype)
    g.node("Conv", ["x", g.rand("w", (4, 3, 3, 3)), g.rand("b", (4,))], ["c"])
    g.bn("c", "y", 4)
    return g.model({"x": [2, 3, 5, 5]}, {"y": None})


def _low_precision_gemm_bn(opset: int, dtype: np.dtype) -> onnx.ModelProto:
    g = Graph(opset, dtype)
    g.node("Gemm", ["x", g.rand("w", (4, 5)), g.rand("b", (4,))], ["c"], transB=1)
    g.bn("c", "y", 4)
    return g.model({"x": [3, 5]}, {"y": None})


def _expected_weights(model, dtype):
    """Folded weight and bias rounded once from float64, computed independently of bnfold."""
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    s, t = _bn_reference(model)
    w, b = inits["w"], inits["b"]
    new_w = w * s.reshape(-1, *[1] * (w.ndim - 1))
    return round_to(new_w, dtype), round_to(b * s + t, dtype)


def _folded_weights(folded):
    layer = folded.graph.node[0]
    inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    return inits[layer.input[1]], inits[layer.input[2]]


@pytest.mark.parametrize("opset", [13, 17, NEWEST])
@pytest.mark.parametrize("build", [_low_precision_conv_bn, _low_precision_gemm_bn])
def test_fp16_initializers_are_computed_in_float64_and_rounded_once(build, opset):
    model = build(opset, np.dtype(np.float16))
    folded, report = fold_onnx(model)
    assert report.num_folded == 1
    onnx.checker.check_model(folded, full_check=True)
    new_w, new_b = _folded_weights(folded)
    exp_w, exp_b = _expected_weights(model, np.dtype(np.float16))
    assert new_w.dtype == np.float16 and new_b.dtype == np.float16
    np.testing.assert_array_equal(new_w, exp_w)
    np.testing.assert_array_equal(new_b, exp_b)
    # fp16 runtime: the unfolded graph rounds after Conv and again after BN
    assert_same_outputs(model, folded, atol=2e-2, rtol=1e-2)


def _as_float32(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with every bfloat16 tensor widened exactly to float32."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    for vi in (*out.graph.input, *out.graph.output, *out.graph.value_info):
        vi.type.tensor_type.elem_type = TensorProto.FLOAT
    return out


@pytest.mark.parametrize("build", [_low_precision_conv_bn, _low_precision_gemm_bn])
def test_bf16_initializers_are_computed_in_float64_and_rounded_once(build):
    # onnxruntime's CPU provider has no bfloat16 Conv/Gemm/BatchNormalization kernels, so the
    # arithmetic is checked against float64 bit for bit, and the rewired graph by widening the
    # bf16 tensors exactly to float32 and running both graphs.
    model = build(NEWEST, BF16)
    folded, report = fold_onnx(model)
    assert report.num_folded == 1
    onnx.checker.check_model(folded, full_check=True)
    new_w, new_b = _folded_weights(folded)
    exp_w, exp_b = _expected_weights(model, BF16)
    assert new_w.dtype == BF16 and new_b.dtype == BF16
    np.testing.assert_array_equal(new_w.view(np.uint16), exp_w.view(np.uint16))
    np.testing.assert_array_equal(new_b.view(np.uint16), exp_b.view(np.uint16))
    assert_same_outputs(_as_float32(model), _as_float32(folded), atol=3e-2, rtol=2e-2)


def test_round_to_bf16_picks_the_nearest_value_even_just_above_a_tie():
    """float64 → float32 → bf16 would round these just-above-midpoint values down (double
    rounding); round_to must pick the nearest bf16 of the float64 value."""
    lo = np.array([1.0, 1.5, -3.0, 0.0078125], dtype=BF16)
    hi = (lo.view(np.uint16) + 1).view(BF16)
    lo64, hi64 = lo.astype(np.float64), hi.astype(np.float64)
    just_above = (lo64 + hi64) / 2 + (hi64 - lo64) * 2.0**-30  # rounds to the tie in float32
    got = round_to(just_above, BF16)
    np.testing.assert_array_equal(got.view(np.uint16), hi.view(np.uint16))
    rng = np.random.default_rng(0)
    values = rng.normal(0, 10, 2000)
    got = round_to(values, BF16).astype(np.float64)
    bits = round_to(values, BF16).view(np.uint16)
    for step in (1, -1):
        neighbour = (bits + np.uint16(step & 0xFFFF)).view(BF16).astype(np.float64)
        assert np.all(np.abs(got - values) <= np.abs(neighbour - values))


# ----------------------------------------------------------------------------- torch exports
class ConvStack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=4),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 6 * 6, 10),
            nn.BatchNorm1d(10),
        )

    def forward(self, x):
        return self.body(x)


class SharedConv(nn.Module):
    """One conv module applied twice, each time followed by its own BN."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn1, self.bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, x):
        # Different inputs, so the exporter keeps two Conv nodes sharing one weight.
        return self.bn1(self.conv(x)) + self.bn2(self.conv(torch.relu(x)))


TORCH_MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "conv_stack": (ConvStack, (2, 3, 6, 6)),
    "conv_transpose_groups": (
        lambda: nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), nn.BatchNorm2d(6)),
        (2, 4, 4, 4),
    ),
    "linear_bn_no_affine": (
        lambda: nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, affine=False)),
        (3, 6),
    ),
    "bn_then_conv": (lambda: nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3)), (2, 3, 6, 6)),
    "shared_conv": (SharedConv, (2, 3, 6, 6)),
}


def _randomise_bn(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)
            if m.affine:
                m.weight.data.normal_(1, 0.3, generator=generator)
                m.bias.data.normal_(0, 0.3, generator=generator)
    return model.eval()


def _export(model: nn.Module, x: torch.Tensor, opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, and says so
        torch.onnx.export(
            model, (x,), buffer, dynamo=False, do_constant_folding=False, opset_version=opset
        )
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("opset", [9, 13, 17])
@pytest.mark.parametrize("name", list(TORCH_MODELS))
def test_torchscript_exports_fold_completely(name, opset):
    factory, shape = TORCH_MODELS[name]
    model = _randomise_bn(factory())
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    n_calls = 2 if name == "shared_conv" else n_bn
    exported = _export(model, torch.randn(shape), opset)
    assert count_bn(exported) == n_calls, "do_constant_folding=False must keep the BN nodes"

    folded, report = fold_onnx(exported)

    assert report.num_bn == n_calls and report.num_folded == n_calls, report.to_table()
    assert count_bn(folded) == 0
    onnx.checker.check_model(folded, full_check=True)
    assert_same_outputs(exported, folded)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    (onnx_out,) = run(folded, {folded.graph.input[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(onnx_out), model(x), **FP32_TOL)
    assert fold_onnx(folded)[0].SerializeToString() == folded.SerializeToString()
