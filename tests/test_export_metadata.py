"""export.metadata: what an ONNX file says about itself survives a save/load round trip."""

from __future__ import annotations

import hashlib
import json

import onnx
import pytest
import torch
from factories import checkpoint

from export import metadata

CKPT = checkpoint("bn-lenet")
REPORT = {"num_bn": 3, "num_folded": 3, "records": [{"bn": "bn1", "folded": True}]}


def _empty_model() -> onnx.ModelProto:
    graph = onnx.helper.make_graph([], "g", [], [])
    return onnx.helper.make_model(graph)


@pytest.mark.parametrize("folded", [False, True])
def test_metadata_round_trips_through_a_saved_file(tmp_path, folded):
    props = metadata.build_metadata(
        CKPT, checkpoint_sha256="ab" * 32, fold_report=REPORT, folded=folded, exporter="dynamo"
    )
    assert all(isinstance(v, str) for v in props.values())
    path = tmp_path / "m.onnx"
    onnx.save_model(metadata.with_metadata(_empty_model(), props), path)
    read = metadata.read_metadata(onnx.load_model(path))
    assert read == {
        "arch": "bn-lenet",
        "class_names": ["1", "100"],
        "mean": list(CKPT.mean),
        "std": list(CKPT.std),
        "input_size": [32, 32],
        "checkpoint_sha256": "ab" * 32,
        "fold_report": REPORT,
        "folded": folded,
        "exporter": "dynamo",
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
    }
    # Any language can read them: plain JSON strings.
    raw = {p.key: p.value for p in onnx.load_model(path).metadata_props}
    assert json.loads(raw["class_names"]) == ["1", "100"]


def test_with_metadata_copies_and_replaces_same_named_keys():
    model = _empty_model()
    onnx.helper.set_model_props(model, {"keep": "1", "arch": "old"})
    out = metadata.with_metadata(model, {"arch": "new"})
    assert {p.key: p.value for p in out.metadata_props} == {"keep": "1", "arch": "new"}
    assert {p.key: p.value for p in model.metadata_props} == {"keep": "1", "arch": "old"}


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    assert metadata.sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()
