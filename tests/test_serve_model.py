"""serve.model: the served answers equal evaluation's, and the optional OOD output is honoured.

Protects: metadata (classes, mean, std, input size) is read from the ONNX file; one batched ORT
call gives each image the probabilities the float64 PyTorch model gives it; a file with an
``ood_score`` output and ``ood_threshold`` metadata answers ``ood_score`` and ``unknown``, and a
file without them answers neither; a file without metadata is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from bnfold.checkpoint import Checkpoint
from demo.inference import softmax
from export.metadata import with_metadata
from serve.model import OOD_SCORE, ModelFileError, ServedModel, read_info
from train.preprocess import normalize, open_image, to_uint8_tensor

pytest_plugins = ["demo_fixtures"]
pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def photos(demo_artifacts) -> list[Path]:
    return [path for _, path in demo_artifacts.test_photos()[:12]]


def reference_probabilities(ckpt: Checkpoint, paths: list[Path]) -> np.ndarray:
    """What evaluation computes: open_image → resize → normalise → float64 PyTorch."""
    model = ckpt.build_model(allow_folded=False).double().eval()
    batch = torch.stack([to_uint8_tensor(open_image(p)) for p in paths])
    with torch.no_grad():
        return softmax(model(normalize(batch, ckpt.mean, ckpt.std).double()).numpy())


def logits_only(path: Path, out: Path) -> Path:
    """The folded file without its ``ood_score`` output and OOD metadata (an older export)."""
    proto = onnx.load(str(path))
    graph = proto.graph
    kept = [o for o in graph.output if o.name != OOD_SCORE]
    del graph.output[:]
    graph.output.extend(kept)
    needed, nodes = {o.name for o in kept}, []
    for node in reversed(graph.node):  # topological order: keep what the logits depend on
        if needed.intersection(node.output):
            nodes.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(nodes))
    meta = [p for p in proto.metadata_props if not p.key.startswith("ood_")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(meta)
    onnx.save(proto, str(out))
    return out


def with_ood_output(path: Path, out: Path, threshold: float) -> Path:
    """A logits-only copy plus ``ood_score`` = the largest logit (shape N) and OOD metadata."""
    proto = onnx.load(str(logits_only(path, out)))
    graph = proto.graph
    logits = graph.output[0].name
    axes = helper.make_tensor("ood_axes", TensorProto.INT64, [1], [1])
    graph.initializer.append(axes)
    graph.node.append(helper.make_node("ReduceMax", [logits, "ood_axes"], [OOD_SCORE], keepdims=0))
    graph.output.append(helper.make_tensor_value_info(OOD_SCORE, TensorProto.FLOAT, ["batch"]))
    meta = {"ood_threshold": repr(threshold), "ood_method": "max-logit"}
    onnx.save(with_metadata(proto, meta), str(out))
    return out


def test_metadata_is_read_from_the_file(demo_artifacts):
    info = read_info(demo_artifacts.folded_onnx)
    ckpt = demo_artifacts.ckpt
    assert info.class_names == tuple(ckpt.class_names)
    assert info.mean == pytest.approx(ckpt.mean) and info.std == pytest.approx(ckpt.std)
    assert info.input_size == tuple(ckpt.input_size)
    assert info.ood_threshold == float(ckpt.ood["threshold"])
    assert info.ood_method == ckpt.ood["method"]
    assert read_info(demo_artifacts.folded_onnx.read_bytes()) == info


def test_one_batched_call_gives_evaluations_probabilities(demo_artifacts, photos, tmp_path):
    expected = reference_probabilities(demo_artifacts.ckpt, photos)
    names = demo_artifacts.ckpt.class_names
    threshold = float(demo_artifacts.ckpt.ood["threshold"])
    plain = ServedModel(logits_only(demo_artifacts.folded_onnx, tmp_path / "plain.onnx"))
    for model in (ServedModel(demo_artifacts.folded_onnx), plain):
        got = model.predict([model.pixels(p.read_bytes()) for p in photos])
        for answer, probs in zip(got, expected, strict=True):
            assert [answer["probabilities"][c] for c in names] == pytest.approx(probs, abs=1e-5)
            if model is plain:
                assert set(answer) == {"label", "probabilities"}, "no OOD output: no OOD keys"
            else:  # real notes: known, labelled as evaluation labels them
                assert answer["unknown"] is False and answer["ood_score"] <= threshold
            assert answer["label"] == names[int(probs.argmax())]


def test_batch_answers_equal_single_answers(demo_artifacts, photos):
    model = ServedModel(demo_artifacts.folded_onnx.read_bytes())
    pixels = [model.pixels(p.read_bytes()) for p in photos]
    batched = model.predict(pixels)
    for one, answer in zip(pixels, batched, strict=True):
        (single,) = model.predict([one])
        assert single["label"] == answer["label"]
        for c, p in single["probabilities"].items():
            assert answer["probabilities"][c] == pytest.approx(p, abs=1e-6)


def test_ood_output_gives_score_and_unknown(demo_artifacts, photos, tmp_path):
    plain = ServedModel(demo_artifacts.folded_onnx)
    pixels = [plain.pixels(p.read_bytes()) for p in photos]
    x = normalize(torch.from_numpy(np.stack(pixels)), plain.info.mean, plain.info.std).numpy()
    session = ort.InferenceSession(str(demo_artifacts.folded_onnx))
    max_logit = session.run(None, {session.get_inputs()[0].name: x})[0].max(axis=1)
    threshold = float(np.median(max_logit))  # some photos on each side
    path = with_ood_output(demo_artifacts.folded_onnx, tmp_path / "ood.onnx", threshold)
    model = ServedModel(path)
    assert model.info.ood_threshold == threshold and model.info.ood_method == "max-logit"
    got = model.predict(pixels)
    for answer, score, plain_answer in zip(got, max_logit, plain.predict(pixels), strict=True):
        assert answer["ood_score"] == pytest.approx(float(score), rel=1e-6)
        assert answer["unknown"] is bool(score > threshold)
        assert answer["probabilities"] == pytest.approx(plain_answer["probabilities"], abs=1e-7)
        network = max(answer["probabilities"], key=answer["probabilities"].get)
        assert answer["label"] == ("unknown" if answer["unknown"] else network)
    assert {a["unknown"] for a in got} == {True, False}


def test_second_output_without_threshold_is_ignored(demo_artifacts, photos, tmp_path):
    path = with_ood_output(demo_artifacts.folded_onnx, tmp_path / "ood.onnx", 0.0)
    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != "ood_threshold"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(path))
    model = ServedModel(path)
    (answer,) = model.predict([model.pixels(photos[0].read_bytes())])
    assert set(answer) == {"label", "probabilities"}


def test_file_without_metadata_is_refused(demo_artifacts, tmp_path):
    proto = onnx.load(str(demo_artifacts.folded_onnx))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelFileError, match="lacks metadata class_names"):
        read_info(bare)
    with pytest.raises(ModelFileError, match="not a readable ONNX file"):
        read_info(b"not onnx")
