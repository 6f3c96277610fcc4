"""export.quantize and export.int8_proof: the int8 file, what stays fp32, and the agreement rule."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from factories import bn_lenet_with_running_stats
from onnx import TensorProto, helper, numpy_helper

import bnfold
from export import onnx_writer
from export.inputs import ParityInput
from export.int8_proof import MIN_AGREEMENT, prove_int8
from export.quantize import QuantConfig, int8_path, non_logits_nodes, quantize_folded


@pytest.fixture(scope="module")
def folded_file(tmp_path_factory):
    """A folded BN-LeNet (non-trivial BN statistics) as ONNX, and images to calibrate on."""
    model = bn_lenet_with_running_stats(seed=0)
    folded = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model.eval()
    path = tmp_path_factory.mktemp("q") / "m.folded.onnx"
    onnx_writer.save(onnx_writer.to_onnx(folded, (32, 32)), path)
    calibration = torch.randn(48, 3, 32, 32, generator=torch.Generator().manual_seed(1)).numpy()
    return path, calibration


def _inputs(n: int = 64, seed: int = 2) -> list[ParityInput]:
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return [ParityInput("random", x, torch.zeros(n, dtype=torch.int64))]


def test_int8_path_is_beside_the_folded_file():
    assert int8_path("out", "ckpt/bn-lenet.pt").as_posix() == "out/bn-lenet.folded.int8.onnx"


def test_the_int8_file_is_quantised_small_and_decides_as_fp32(folded_file, tmp_path):
    path, calibration = folded_file
    out = quantize_folded(path, tmp_path / "m.int8.onnx", calibration)
    ops = {n.op_type for n in onnx.load_model(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= ops
    proof = prove_int8(path, out, _inputs())
    assert proof.passed, proof.summary()
    assert proof.agreement >= MIN_AGREEMENT and proof.finite
    assert proof.size_ratio <= 0.35
    # int8 is not fp32: the logits move, by less than a few quantisation steps.
    assert 0 < proof.max_abs_logit_diff < 1.0
    assert proof.inputs[0].int8_accuracy is not None


def test_the_layer_that_writes_the_logits_stays_fp32(folded_file, tmp_path):
    path, calibration = folded_file
    proto = onnx.load_model(quantize_folded(path, tmp_path / "m.int8.onnx", calibration))
    producer = {o: n for n in proto.graph.node for o in n.output}
    last = producer["logits"]
    assert last.op_type == "Gemm"
    initializers = {i.name: i for i in proto.graph.initializer}
    assert initializers[last.input[1]].data_type == TensorProto.FLOAT  # weight: fp32, no QDQ
    assert producer[last.input[0]].op_type == "DequantizeLinear"  # reads int8 fc2 dequantised
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm" and n is not last]
    assert all(producer[n.input[1]].op_type == "DequantizeLinear" for n in gemms)


def test_the_file_keeps_the_folded_files_metadata(folded_file, tmp_path):
    path, calibration = folded_file
    proto = onnx.load_model(path)
    proto.metadata_props.add(key="class_names", value='["1", "100"]')
    tagged = tmp_path / "tagged.onnx"
    onnx.save_model(proto, tagged)
    out = quantize_folded(tagged, tmp_path / "t.int8.onnx", calibration)
    meta = {p.key: p.value for p in onnx.load_model(out).metadata_props}
    assert meta["class_names"] == '["1", "100"]' and "int8" in meta["quantization"]


def _corrupt_last_weight_scale(path) -> None:
    """Negate the per-channel scales of the last quantised Gemm's weight (fc2: its ReLU then
    zeroes every feature, so the logits are fc3's bias whatever the image)."""
    proto = onnx.load_model(path)
    producer = {o: n for n in proto.graph.node for o in n.output}
    gemm = [
        n
        for n in proto.graph.node
        if n.op_type == "Gemm"
        and getattr(producer.get(n.input[1]), "op_type", "") == "DequantizeLinear"
    ][-1]
    scale_name = producer[gemm.input[1]].input[1]
    init = next(i for i in proto.graph.initializer if i.name == scale_name)
    init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), scale_name))
    onnx.save_model(proto, path)


def test_a_corrupted_scale_fails_the_agreement_rule(folded_file, tmp_path):
    path, calibration = folded_file
    out = quantize_folded(path, tmp_path / "bad.int8.onnx", calibration)
    _corrupt_last_weight_scale(out)
    proof = prove_int8(path, out, _inputs())
    assert proof.agreement < MIN_AGREEMENT
    assert proof.passed is False and "FAIL" in proof.summary()


def test_no_calibration_images_is_an_error(folded_file, tmp_path):
    from export.errors import ExportError

    path, _ = folded_file
    with pytest.raises(ExportError, match="--data"):
        quantize_folded(path, tmp_path / "x.onnx", np.zeros((0, 3, 32, 32), np.float32))


def _two_output_model(weight: np.ndarray | None = None) -> onnx.ModelProto:
    """logits = Gemm(x); ood_score = ReduceMax(logits): the second output reads the first."""
    if weight is None:
        weight = np.random.default_rng(0).normal(size=(2, 8))
    w = numpy_helper.from_array(weight.astype("f4"), "w")
    b = numpy_helper.from_array(np.zeros(2, "f4"), "b")
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="fc", transB=1),
        helper.make_node("ReduceMax", ["logits"], ["ood_score"], name="score", keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["N"]),
        ],
        [w, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_only_the_logits_path_is_quantised_a_second_output_stays_fp32(tmp_path):
    model = _two_output_model()
    assert non_logits_nodes(model) == ["score"]
    src = tmp_path / "two.onnx"
    onnx.save_model(model, src)
    x = np.random.default_rng(1).normal(size=(32, 8)).astype("f4")
    out = quantize_folded(src, tmp_path / "two.int8.onnx", x, QuantConfig(per_channel=False))
    proto = onnx.load_model(out)
    assert [o.name for o in proto.graph.output] == ["logits", "ood_score"]
    producer = {o: n for n in proto.graph.node for o in n.output}
    assert producer["ood_score"].op_type == "ReduceMax"  # not wrapped in Q/DQ
    assert producer["ood_score"].input[0] == "logits"  # reads the dequantised fp32 logits
    inputs = [ParityInput("random", torch.from_numpy(x))]
    proof = prove_int8(src, out, inputs)
    assert proof.outputs == ["logits", "ood_score"]
    assert set(proof.other_outputs_max_abs_diff) == {"ood_score"}


def test_inputs_both_files_call_unknown_agree_whatever_their_top1(tmp_path):
    """Noise that both files call unknown is one answer to a user, whichever logit is larger."""
    rows = np.eye(2, 8)
    files = {}
    for name, weight in (("fp32", rows), ("swapped", rows[::-1])):  # top-1 always differs
        files[name] = tmp_path / f"{name}.onnx"
        onnx.save_model(_two_output_model(weight), files[name])
    x = torch.from_numpy(np.random.default_rng(3).uniform(1.0, 2.0, (16, 8)).astype("f4"))
    inputs = [ParityInput("scores 1 to 2", x)]
    assert prove_int8(files["fp32"], files["swapped"], inputs).agreement == 0.0  # top-1 only
    both_unknown = prove_int8(files["fp32"], files["swapped"], inputs, threshold=0.5)
    assert both_unknown.agreement == 1.0 and both_unknown.passed
    assert "top-1 (or both unknown)" in both_unknown.summary()
    both_known = prove_int8(files["fp32"], files["swapped"], inputs, threshold=10.0)
    assert both_known.agreement == 0.0 and both_known.passed is False
