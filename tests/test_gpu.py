"""The GPU check (``make gpu-check``): every CUDA variant runs on CUDA and computes the network.

Covers the export's parity rows, the inference benchmark's CUDA runners (and its ``--cuda-only
--quick`` run) and the demo's runtimes. Tolerance: export's CUDA tolerance (atol 1e-4, rtol 1e-3,
TF32 off, argmax identical; see export/parity_run.py). Without CUDA every test here is skipped
with the reason; onnxruntime's CUDA variants are skipped, with the reason, where the installed
onnxruntime has no CUDA provider (the CPU wheel), and must run where it has one.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from export.parity_run import CUDA_TOLERANCE
from export.runtimes.sessions import CUDA, ort_cuda_unavailable
from export.runtimes.torch_runner import torch_cuda_unavailable

TORCH_CUDA_REASON = torch_cuda_unavailable()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(TORCH_CUDA_REASON is not None, reason=f"needs CUDA: {TORCH_CUDA_REASON}"),
]


def _needs_ort_cuda(is_ort: bool) -> None:
    reason = ort_cuda_unavailable() if is_ort else None
    if reason:
        pytest.skip(f"needs onnxruntime's CUDA provider: {reason}")


def _assert_close_to_reference(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    tol = CUDA_TOLERANCE
    assert got.shape == ref.shape, what
    np.testing.assert_allclose(got, ref, atol=tol.atol, rtol=tol.rtol, err_msg=what)
    np.testing.assert_array_equal(got.argmax(axis=1), ref.argmax(axis=1), err_msg=what)


@pytest.fixture(scope="module")
def exported(module_image_folder, tmp_path_factory):
    """A one-epoch checkpoint and the real export of it (whose parity run covers CUDA)."""
    from export.pipeline import ExportConfig, export_checkpoint
    from train.trainer import TrainConfig, fit

    data = module_image_folder(per_class=6)
    root = tmp_path_factory.mktemp("gpu")
    checkpoint = root / "bn-lenet.pt"
    fit(TrainConfig(data=str(data), epochs=1, batch_size=4, device="cpu", out=str(checkpoint)))
    result = export_checkpoint(ExportConfig(checkpoint=str(checkpoint), out=str(root / "onnx")))
    return checkpoint, result


@pytest.fixture(scope="module")
def sources(exported):
    import bnfold
    from bnfold.checkpoint import load_checkpoint
    from export.runtimes.open import Sources

    checkpoint, result = exported
    unfolded = load_checkpoint(checkpoint).build_model(allow_folded=False)
    folded = bnfold.fold(unfolded, torch.zeros(2, 3, 32, 32)).model.eval()
    return Sources(unfolded, folded, result.files)


def _cuda_parity_variants():
    from export.parity_run import variants

    return [v for v in variants() if v.cuda]


@pytest.mark.parametrize("variant", _cuda_parity_variants(), ids=lambda v: v.name)
def test_export_parity_passes_on_every_cuda_variant(exported, variant):
    _needs_ort_cuda(variant.runtime == "onnxruntime")
    rows = {r.variant: r for r in exported[1].parity.rows}
    row = rows[variant.name]
    assert row.status == "run", row.reason
    assert row.passed, f"{variant.name}: tolerance ratio {row.tolerance_ratio}"
    assert (row.atol, row.rtol) == (CUDA_TOLERANCE.atol, CUDA_TOLERANCE.rtol)
    assert row.argmax_agreement == 1.0


def _bench_cuda_variants():
    from benchmarks.variants import cuda_variants

    return cuda_variants()


@pytest.mark.parametrize("variant", _bench_cuda_variants(), ids=lambda v: v.name)
def test_benchmark_cuda_runners_run_on_cuda_and_match_the_reference(sources, variant):
    from export.runtimes.open import open_variant

    _needs_ort_cuda(variant.runtime == "onnxruntime")
    runner = open_variant(variant, sources)
    assert not isinstance(runner, Exception), runner
    if variant.runtime == "pytorch":
        assert {p.device.type for p in runner.model.parameters()} == {"cuda"}
    else:
        assert runner.session.get_providers()[0] == CUDA
    reference = copy.deepcopy(sources.unfolded).double()
    generator = torch.Generator().manual_seed(0)
    for n in (1, 7, 64):
        batch = torch.randn(n, 3, 32, 32, generator=generator)
        bound = runner.bind(batch.numpy())
        with bound.setting():  # TF32 off for PyTorch CUDA
            bound.step()
        with torch.no_grad():
            ref = reference(batch.double()).numpy()
        got = bound.read()["logits"]
        _assert_close_to_reference(got, ref, f"{variant.name} at batch {n}")


def test_benchmark_cuda_only_quick_times_every_cuda_variant(exported, tmp_path):
    from benchmarks.inference import JSON_NAME, get_args_parser, main
    from benchmarks.variants import BASELINE

    checkpoint, result = exported
    onnx_dir = result.files["folded"].parent
    argv = ["--checkpoint", str(checkpoint), "--onnx-dir", str(onnx_dir), "--out", str(tmp_path)]
    assert main(get_args_parser().parse_args([*argv, "--cuda-only", "--quick"])) == 0
    data = json.loads((tmp_path / JSON_NAME).read_text())
    assert data["cuda_peak_flops_per_s"] > 0
    names = {r["variant"] for r in data["results"]}
    assert names == {BASELINE} | {v.name for v in _bench_cuda_variants()}
    for r in data["results"]:
        if r["variant"].startswith("ort-cuda") and ort_cuda_unavailable():
            assert r["status"] == "not run" and "onnxruntime" in r["reason"]
            continue
        assert r["status"] == "run", (r["variant"], r["batch"], r["reason"])
        assert r["speedup_vs_baseline"] > 0 and r["tolerance_ratio"] <= 1.0


def test_demo_runtimes_really_run_on_cuda(exported):
    from demo.runtimes import load_runtimes
    from export.runtimes.variant import ONNXRUNTIME, PYTORCH

    checkpoint, result = exported
    runtimes = load_runtimes(
        checkpoint, result.files["unfolded"], result.files["folded"], devices=("cuda",)
    )
    available = {(r.variant.runtime, r.variant.folded): r for r in runtimes.available}
    reasons = {(u.variant.runtime, u.variant.folded): u.reason for u in runtimes.unavailable}
    wanted = [(PYTORCH, False), (PYTORCH, True)]
    if ort_cuda_unavailable() is None:
        wanted += [(ONNXRUNTIME, False), (ONNXRUNTIME, True)]
    else:
        for folded in (False, True):
            assert "onnxruntime" in reasons[(ONNXRUNTIME, folded)].lower()
    for key in wanted:
        assert key in available, f"{key} unavailable on a CUDA machine: {reasons.get(key)}"
        runtime = available[key]
        assert runtime.variant.device == "cuda"
        if key[0] == ONNXRUNTIME:
            assert runtime.device_label == CUDA
    batch = torch.randn(7, 3, 32, 32, generator=torch.Generator().manual_seed(1)).numpy()
    ref = runtimes.reference(batch)
    for key in wanted:
        _assert_close_to_reference(available[key](batch)["logits"], ref, f"demo {key}")
