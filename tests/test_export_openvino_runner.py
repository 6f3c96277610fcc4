"""The int8 and OpenVINO entries of the runtime layer: listed, opened, or unavailable with why.

OpenVINO is an optional extra (``pip install -e '.[peers]'``): the tests that run it skip with
that reason where it is not installed; the "not installed" path is tested everywhere.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from factories import bn_lenet_with_running_stats

import bnfold
from export import onnx_writer
from export.quantize import quantize_folded
from export.runtimes.errors import Unavailable
from export.runtimes.open import OPENERS, Sources, open_variant
from export.runtimes.variant import (
    INT8,
    ONNXRUNTIME,
    OPENVINO,
    PYTORCH,
    OpenVinoOptions,
    OrtOptions,
    Variant,
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Sources:
    model = bn_lenet_with_running_stats(seed=0)
    folded = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model.eval()
    folder = tmp_path_factory.mktemp("ov")
    files = {"unfolded": folder / "m.unfolded.onnx", "folded": folder / "m.folded.onnx"}
    onnx_writer.save(onnx_writer.to_onnx(model, (32, 32)), files["unfolded"])
    onnx_writer.save(onnx_writer.to_onnx(folded, (32, 32)), files["folded"])
    calibration = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(3)).numpy()
    files[INT8] = quantize_folded(files["folded"], folder / "m.folded.int8.onnx", calibration)
    return Sources(model, folded, files)


def _batch(n: int = 5) -> np.ndarray:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(n)).numpy()


def test_int8_is_a_folded_onnx_variant_named_int8():
    v = Variant(ONNXRUNTIME, True, "cpu", OrtOptions(), "ort", precision=INT8)
    assert (v.name, v.kind, v.int8, v.exact) == ("ort/int8", "int8", True, False)
    assert Variant(OPENVINO, True).options == OpenVinoOptions()
    assert Variant(OPENVINO, True).exact
    assert not Variant(OPENVINO, True, options=OpenVinoOptions(precision="bf16")).exact
    with pytest.raises(ValueError, match="folded"):
        Variant(ONNXRUNTIME, False, precision=INT8)
    with pytest.raises(ValueError, match="folded"):
        Variant(PYTORCH, True, precision=INT8)
    with pytest.raises(ValueError, match="unknown precision"):
        Variant(ONNXRUNTIME, True, precision="fp8")
    assert set(OPENERS) == {PYTORCH, ONNXRUNTIME, OPENVINO}


def test_ort_int8_runs_the_int8_file_and_decides_as_fp32(sources):
    fp32 = open_variant(Variant(ONNXRUNTIME, True), sources)
    int8 = open_variant(Variant(ONNXRUNTIME, True, precision=INT8), sources)
    x = _batch(64)
    ref, got = fp32(x)["logits"], int8(x)["logits"]
    assert got.shape == ref.shape and got.dtype == np.float32
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert 0 < np.abs(got - ref).max() < 1.0  # quantised: close, not equal


def test_int8_without_an_int8_file_is_unavailable_with_the_fix(sources):
    bare = Sources(
        sources.unfolded, sources.folded, {k: sources.files[k] for k in ("unfolded", "folded")}
    )
    opened = open_variant(Variant(ONNXRUNTIME, True, precision=INT8), bare)
    assert isinstance(opened, Unavailable) and "python -m export" in opened.reason


def test_openvino_not_installed_is_unavailable_with_the_extra_to_install(sources, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    for precision in ("fp32", INT8):
        opened = open_variant(Variant(OPENVINO, True, precision=precision), sources)
        assert isinstance(opened, Unavailable)
        assert "pip install -e '.[peers]'" in opened.reason


def test_openvino_has_no_cuda_variant(sources):
    opened = open_variant(Variant(OPENVINO, True, "cuda"), sources)
    assert isinstance(opened, Unavailable) and "CUDA" in opened.reason


@pytest.mark.parametrize("folded", [False, True])
def test_openvino_fp32_matches_onnxruntime(sources, folded):
    pytest.importorskip("openvino", reason="optional extra: pip install -e '.[peers]'")
    ref = open_variant(Variant(ONNXRUNTIME, folded), sources)
    ov = open_variant(Variant(OPENVINO, folded, options=OpenVinoOptions(threads=1)), sources)
    assert not isinstance(ov, Unavailable), getattr(ov, "reason", "")
    for n in (1, 7):
        x = _batch(n)
        np.testing.assert_allclose(ov(x)["logits"], ref(x)["logits"], atol=1e-5, rtol=1e-4)


def test_openvino_runs_the_int8_file(sources):
    pytest.importorskip("openvino", reason="optional extra: pip install -e '.[peers]'")
    ort_int8 = open_variant(Variant(ONNXRUNTIME, True, precision=INT8), sources)
    ov_int8 = open_variant(Variant(OPENVINO, True, precision=INT8), sources)
    x = _batch(64)
    ref, got = ort_int8(x)["logits"], ov_int8(x)["logits"]
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert np.abs(got - ref).max() < 0.5  # both dequantise the same int8 graph
    bound = ov_int8.bind(x)
    bound.step()
    np.testing.assert_array_equal(bound.read()["logits"], got)  # read is what step made
