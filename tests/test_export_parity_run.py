"""export.parity_run and export.runtimes: every variant against the float64 reference."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from factories import bn_lenet_with_running_stats
from onnx import numpy_helper

import bnfold
from export import onnx_writer, parity_run, runtimes
from export.inputs import ParityInput, random_inputs
from export.runtimes import CPU, CUDA, ProviderUnavailable

CPU_VARIANTS = [v for v in parity_run.variants() if not v.cuda]
CUDA_VARIANTS = [v for v in parity_run.variants() if v.cuda]


@pytest.fixture(scope="module")
def models_and_files(tmp_path_factory):
    model = bn_lenet_with_running_stats(seed=0)
    folded = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model
    folder = tmp_path_factory.mktemp("onnx")
    files = {"unfolded": folder / "m.unfolded.onnx", "folded": folder / "m.folded.onnx"}
    onnx_writer.save(onnx_writer.to_onnx(model, (32, 32)), files["unfolded"])
    onnx_writer.save(onnx_writer.to_onnx(folded, (32, 32)), files["folded"])
    return model, folded, files


@pytest.fixture
def inputs():
    return random_inputs((32, 32), batch_sizes=(1, 7))


def test_exact_exports_pass_on_every_cpu_variant(models_and_files, inputs):
    model, folded, files = models_and_files
    report = parity_run.prove_parity(model, folded, files, inputs, CPU_VARIANTS)
    assert [r.variant for r in report.rows] == [v.name for v in CPU_VARIANTS]
    for row in report.rows:
        assert row.status == "run" and row.passed, row
        assert row.max_abs_err <= 1e-5 and row.argmax_agreement == 1.0
        assert (row.atol, row.rtol) == (1e-5, 1e-4)
    assert report.passed and report.failing() == []
    assert {(r.provider, r.opt_level) for r in report.rows} == {
        ("torch-cpu", None),
        (CPU, "disabled"),
        (CPU, "default"),
    }


def test_unavailable_cuda_gives_not_run_rows_with_reasons(models_and_files, inputs, monkeypatch):
    model, folded, files = models_and_files
    monkeypatch.setattr(runtimes, "torch_cuda_unavailable", lambda: "no GPU in this test")
    monkeypatch.setattr(runtimes, "ort_cuda_unavailable", lambda: "no CUDA EP in this test")
    report = parity_run.prove_parity(model, folded, files, inputs, CPU_VARIANTS[:1] + CUDA_VARIANTS)
    not_run = report.rows[1:]
    assert len(not_run) == 4
    for row in not_run:
        assert row.status == "not run" and row.passed is None and row.max_abs_err is None
        assert row.reason == (
            "no GPU in this test" if row.provider == "torch-cuda" else "no CUDA EP in this test"
        )
        assert (row.atol, row.rtol) == (1e-4, 1e-3)
    assert report.passed  # only variants that ran count, and one did
    assert "not run: no GPU in this test" in report.to_table()


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_ort_silent_cpu_fallback_does_not_count_as_cuda(models_and_files, monkeypatch):
    # A CPU-only onnxruntime asked for CUDA runs the graph on the CPU and only logs a warning.
    _, _, files = models_and_files
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    with pytest.raises(ProviderUnavailable, match="fell back to CPUExecutionProvider"):
        runtimes.ort_session(files["folded"], provider=CUDA)


def test_a_corrupted_folded_weight_fails_parity(models_and_files, inputs, tmp_path):
    model, folded, files = models_and_files
    proto = onnx.load_model(files["folded"])
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    weight = next(t for t in proto.graph.initializer if t.name == conv.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
    broken = {**files, "folded": tmp_path / "broken.onnx"}
    onnx.save_model(proto, broken["folded"])
    report = parity_run.prove_parity(model, folded, broken, inputs, CPU_VARIANTS)
    assert not report.passed
    assert {r.variant for r in report.failing()} == {
        "ort-cpu-opt-disabled/folded",
        "ort-cpu-opt-default/folded",
    }
    assert all(r.tolerance_ratio > 1 for r in report.failing())


def test_parity_files_hold_every_row(models_and_files, inputs, tmp_path, monkeypatch):
    model, folded, files = models_and_files
    monkeypatch.setattr(runtimes, "torch_cuda_unavailable", lambda: "no GPU")
    monkeypatch.setattr(runtimes, "ort_cuda_unavailable", lambda: "no CUDA EP")
    report = parity_run.prove_parity(model, folded, files, inputs)
    paths = parity_run.write_parity(report, tmp_path)
    assert [p.name for p in paths] == ["parity.json", "parity.md"]
    data = json.loads(paths[0].read_text())
    assert data["passed"] is True
    assert len(data["rows"]) == len(parity_run.variants()) == 10
    required = {
        "variant",
        "provider",
        "folded",
        "max_abs_err",
        "max_rel_err",
        "argmax_agreement",
        "passed",
        "status",
        "reason",
    }
    assert all(required <= row.keys() for row in data["rows"])
    assert [i["shape"][0] for i in data["inputs"]] == [1, 7]
    markdown = paths[1].read_text()
    assert "**PASSED**" in markdown
    for row in data["rows"]:
        assert f"| {row['variant']} | {row['provider']} |" in markdown


def test_prove_parity_needs_inputs(models_and_files):
    model, folded, files = models_and_files
    with pytest.raises(ValueError, match="at least one input"):
        parity_run.prove_parity(model, folded, files, [])


def test_ort_model_runs_any_batch_and_opt_levels_agree(models_and_files):
    _, _, files = models_and_files
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    outs = [
        runtimes.OrtModel(runtimes.ort_session(files["unfolded"], opt_level=level))(x)
        for level in runtimes.OPT_LEVELS
    ]
    assert outs[0].shape == (5, 2) and outs[0].dtype == torch.float32
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="opt_level"):
        runtimes.ort_session(files["unfolded"], opt_level="extreme")
    with pytest.raises(ValueError, match="provider"):
        runtimes.ort_session(files["unfolded"], provider="TensorrtExecutionProvider")


def test_no_tf32_turns_tf32_off_and_restores_it():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with runtimes.no_tf32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_random_inputs_are_reproducible_batches():
    a, b = random_inputs((32, 32)), random_inputs((32, 32))
    assert [i.images.shape[0] for i in a] == [1, 7, 64]
    for x, y in zip(a, b, strict=True):
        assert isinstance(x, ParityInput) and torch.equal(x.images, y.images)
    assert not np.allclose(a[1].images[0].numpy(), a[1].images[1].numpy())
