"""export.triton: config.pbtxt parses with Triton's own ModelConfig schema and matches the ONNX."""

from __future__ import annotations

import onnx
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export import onnx_writer, triton
from export.errors import ExportError
from train.models import build_model
from train.ood.scorer import OUTPUT_NAMES, OODScorer, WithOOD

ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for arch, classes in (("bn-lenet", 2), ("lenet", 5)):
        proto = onnx_writer.to_onnx(build_model(arch, classes).eval(), (32, 32))
        files[arch] = folder / f"{arch}.onnx"
        onnx_writer.save(proto, files[arch])
    scored = WithOOD(build_model("bn-lenet", 2), OODScorer("msp", {}, 0.5)).eval()
    proto = onnx_writer.to_onnx(scored, (32, 32), output_names=OUTPUT_NAMES)
    files["with-ood"] = folder / "with-ood.onnx"
    onnx_writer.save(proto, files["with-ood"])
    return files


def _parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _io(values) -> list[tuple[str, int, list[int]]]:
    """(name, type, dims) as Triton must see them: a batch-only tensor is dims [1] (reshaped)."""
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim[1:]] or [1]
        out.append((v.name, ONNX_TO_TRITON[t.elem_type], dims))
    return out


@pytest.mark.parametrize("arch", ["bn-lenet", "lenet", "with-ood"])
@pytest.mark.parametrize("cpu_only", [False, True])
def test_config_matches_the_onnx_file(exported, arch, cpu_only):
    proto = onnx.load_model(exported[arch])
    config = _parse(triton.model_config("m", proto, max_batch_size=16, cpu_only=cpu_only))
    assert config.name == "m"
    assert config.backend == "onnxruntime"
    assert config.max_batch_size == 16
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == _io(proto.graph.input)
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == _io(proto.graph.output)
    assert config.HasField("dynamic_batching")
    kinds = [g.kind for g in config.instance_group]
    expected = [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    if not cpu_only:
        expected.insert(0, model_config_pb2.ModelInstanceGroup.KIND_GPU)
    assert kinds == expected
    assert all(g.count == 1 for g in config.instance_group)


def test_a_batch_only_output_is_dims_1_reshaped_to_nothing_and_has_no_labels(exported):
    """Triton rejects empty dims with max_batch_size > 0; its guide's form is dims [1] +
    reshape { shape: [] }. Labels belong to the class axis of the logits only."""
    proto = onnx.load_model(exported["with-ood"])
    config = _parse(triton.model_config("m", proto))
    logits, score = config.output
    assert (logits.name, list(logits.dims), logits.label_filename) == ("logits", [2], "labels.txt")
    assert (score.name, list(score.dims), score.data_type) == (
        "ood_score",
        [1],
        model_config_pb2.TYPE_FP32,
    )
    assert score.HasField("reshape") and list(score.reshape.shape) == []
    assert not score.label_filename
    assert not logits.HasField("reshape")


def test_repository_layout_and_labels(exported, tmp_path):
    models = {"bn-lenet_folded": exported["bn-lenet"], "bn-lenet_unfolded": exported["bn-lenet"]}
    written = triton.write_repository(tmp_path / "repo", models, ["1", "100"], cpu_only=True)
    assert written == [tmp_path / "repo" / name for name in models]
    for name, source in models.items():
        folder = tmp_path / "repo" / name
        assert (folder / "1" / "model.onnx").read_bytes() == source.read_bytes()
        config = _parse((folder / "config.pbtxt").read_text())
        assert config.name == name
        assert config.max_batch_size == triton.DEFAULT_MAX_BATCH_SIZE
        assert config.output[0].label_filename == "labels.txt"
        assert (folder / "labels.txt").read_text().splitlines() == ["1", "100"]


def test_static_batch_and_bad_max_batch_size_are_refused(exported):
    proto = onnx.load_model(exported["lenet"])
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 8
    with pytest.raises(ExportError, match="no dynamic batch axis"):
        triton.model_config("m", proto)
    with pytest.raises(ExportError, match="max-batch-size"):
        triton.model_config("m", onnx.load_model(exported["lenet"]), max_batch_size=0)
