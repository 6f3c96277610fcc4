"""export.onnx_writer: BatchNorm kept (unfolded) or gone (folded), dynamic batch, atomic saves."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import bnfold
from export import onnx_writer
from export.errors import ExportError
from train.models import build_model

BN_COUNT = {"lenet": 0, "bn-lenet": 3}


def _trained_like(arch: str, seed: int = 0) -> torch.nn.Module:
    """A LeNet whose BatchNorms have non-trivial statistics, as after training, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(arch, 2)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _run(proto: onnx.ModelProto, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    return torch.from_numpy(out)


@pytest.mark.parametrize("arch", ["lenet", "bn-lenet"])
def test_unfolded_export_keeps_every_batchnorm_in_inference_mode(arch):
    proto = onnx_writer.to_onnx(_trained_like(arch), (32, 32))
    bns = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == BN_COUNT[arch]
    for node in bns:
        modes = [a.i for a in node.attribute if a.name == "training_mode"]
        assert modes in ([], [0]), f"{node.name} exported in training mode"
        assert len(node.output) == 1  # training mode would add running-stat outputs
    onnx_writer.check(proto)


@pytest.mark.parametrize("arch", ["lenet", "bn-lenet"])
def test_folded_export_has_no_batchnorm_and_same_outputs(arch):
    model = _trained_like(arch)
    folded = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model
    proto = onnx_writer.to_onnx(folded, (32, 32))
    assert onnx_writer.count_ops(proto, "BatchNormalization") == 0
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_run(proto, x), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 5])
def test_graph_io_names_and_dynamic_batch(batch):
    model = _trained_like("bn-lenet")
    proto = onnx_writer.to_onnx(model, (32, 32))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("image", "logits")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32]
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = model(x)
    got = _run(proto, x)
    assert got.shape == (batch, 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_dynamo_exporter_keeps_batchnorm_and_matches():
    model = _trained_like("bn-lenet")
    proto = onnx_writer.to_onnx(model, (32, 32), opset=18, exporter="dynamo")
    assert onnx_writer.count_ops(proto, "BatchNormalization") == 3
    onnx_writer.check(proto)
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_run(proto, x), expected, atol=1e-5, rtol=1e-4)


def test_export_refuses_training_mode_and_leaves_model_alone():
    model = _trained_like("bn-lenet").train()
    with pytest.raises(ExportError, match="eval"):
        onnx_writer.to_onnx(model, (32, 32))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    onnx_writer.to_onnx(model, (32, 32))
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("exporter", onnx_writer.EXPORTERS)
def test_check_opset_accepts_its_range_and_rejects_outside(exporter):
    low, high = onnx_writer.opset_range(exporter)
    assert low >= 17 and high <= onnx.defs.onnx_opset_version()
    onnx_writer.check_opset(low, exporter)
    onnx_writer.check_opset(high, exporter)
    for bad in (16, high + 1):
        with pytest.raises(ExportError, match=f"--opset {bad} is not supported"):
            onnx_writer.check_opset(bad, exporter)
    with pytest.raises(ExportError, match="unknown exporter"):
        onnx_writer.check_opset(18, "tflite")


def test_save_writes_one_self_contained_file(tmp_path):
    proto = onnx_writer.to_onnx(_trained_like("bn-lenet"), (32, 32))
    path = tmp_path / "m.onnx"
    onnx_writer.save(proto, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    loaded = onnx.load_model(path, load_external_data=False)
    for tensor in loaded.graph.initializer:
        assert tensor.data_location == onnx.TensorProto.DEFAULT
        assert not tensor.external_data
    assert loaded.SerializeToString() == proto.SerializeToString()


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_save_never_leaves_a_partial_file(tmp_path, monkeypatch, error, existing):
    proto = onnx_writer.to_onnx(_trained_like("bn-lenet"), (32, 32))
    path = tmp_path / "m.onnx"
    old = b"the previous, complete export"
    if existing:
        path.write_bytes(old)

    def half_then_fail(target, data):
        target.write_bytes(data[: len(data) // 2])
        raise error

    monkeypatch.setattr(onnx_writer, "_write", half_then_fail)
    with pytest.raises(type(error)):
        onnx_writer.save(proto, path)
    assert [p.name for p in tmp_path.iterdir()] == (["m.onnx"] if existing else [])
    if existing:
        assert path.read_bytes() == old


def test_check_rejects_a_broken_graph():
    proto = onnx_writer.to_onnx(_trained_like("lenet"), (32, 32))
    proto.graph.node[0].input[0] = "no_such_tensor"
    with pytest.raises(ExportError, match=r"onnx\.checker"):
        onnx_writer.check(proto)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(ExportError, match="not found"):
        onnx_writer.load(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(ExportError, match="not a readable ONNX model"):
        onnx_writer.load(junk)
