"""export.parity_run and the runtime layer it uses: every variant against the float64 reference."""

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
from export import onnx_writer, parity_run
from export.inputs import ParityInput, random_inputs
from export.runtimes import sessions, torch_runner
from export.runtimes.errors import Unavailable
from export.runtimes.open import Sources, open_variant
from export.runtimes.sessions import CPU, CUDA
from export.runtimes.variant import ONNXRUNTIME, OrtOptions, Variant

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
    monkeypatch.setattr(torch_runner, "torch_cuda_unavailable", lambda: "no GPU in this test")
    monkeypatch.setattr(sessions, "ort_cuda_unavailable", lambda: "no CUDA EP in this test")
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
    with pytest.raises(Unavailable, match="fell back to CPUExecutionProvider"):
        sessions.ort_session(files["folded"], device="cuda")


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
    monkeypatch.setattr(torch_runner, "torch_cuda_unavailable", lambda: "no GPU")
    monkeypatch.setattr(sessions, "ort_cuda_unavailable", lambda: "no CUDA EP")
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


def test_ort_runner_runs_any_batch_and_opt_levels_agree(models_and_files):
    model, folded, files = models_and_files
    sources = Sources(model, folded, files)
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(3)).numpy()
    outs = [
        open_variant(Variant(ONNXRUNTIME, False, options=OrtOptions(level)), sources)(x)
        for level in sessions.LEVELS
    ]
    assert list(outs[0]) == ["logits"]
    assert outs[0]["logits"].shape == (5, 2) and outs[0]["logits"].dtype == np.float32
    for out in outs[1:]:
        np.testing.assert_allclose(outs[0]["logits"], out["logits"], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="ORT level"):
        sessions.ort_session(files["unfolded"], OrtOptions("extreme"))
    with pytest.raises(ValueError, match="device"):
        sessions.ort_session(files["unfolded"], device="tpu")


def test_a_cpu_variant_that_cannot_open_fails_parity(models_and_files, inputs, tmp_path):
    model, folded, files = models_and_files
    broken = {**files, "folded": tmp_path / "garbage.onnx"}
    broken["folded"].write_bytes(b"not an onnx file")
    report = parity_run.prove_parity(model, folded, broken, inputs, CPU_VARIANTS)
    failed = {r.variant: r for r in report.failing()}
    assert set(failed) == {"ort-cpu-opt-disabled/folded", "ort-cpu-opt-default/folded"}
    assert all(r.status == "failed to open" and "garbage.onnx" in r.reason for r in failed.values())
    assert not report.passed


class _TwoOutputs(torch.nn.Module):
    """A classifier with a second output, as the coming ``ood_score`` (shape N)."""

    def __init__(self, net: torch.nn.Module, ood_offset: float = 0.0) -> None:
        super().__init__()
        self.net, self.ood_offset = net, ood_offset

    def forward(self, x):
        logits = self.net(x)
        return {"ood_score": logits.logsumexp(1) + self.ood_offset, "logits": logits}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_output_of_the_reference_is_compared(models_and_files, inputs, tmp_path):
    model, folded, _ = models_and_files
    files = {k: tmp_path / f"m.{k}.onnx" for k in ("unfolded", "folded")}
    for kind, net in (("unfolded", model), ("folded", folded)):
        torch.onnx.export(
            _TwoOutputs(net).eval(),
            (torch.zeros(1, 3, 32, 32),),
            files[kind],
            input_names=["image"],
            output_names=["ood_score", "logits"],
            dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}, "ood_score": {0: "n"}},
            dynamo=False,
        )
    good = parity_run.prove_parity(
        _TwoOutputs(model), _TwoOutputs(folded), files, inputs, CPU_VARIANTS
    )
    assert good.passed and good.outputs == ["logits", "ood_score"]
    runner = open_variant(CPU_VARIANTS[1], Sources(model, folded, files))
    assert list(runner(inputs[0].images.numpy())) == ["logits", "ood_score"]
    # Only the second output of the folded PyTorch model is off, by 1e-3: parity must see it.
    bad = parity_run.prove_parity(
        _TwoOutputs(model), _TwoOutputs(folded, 1e-3), files, inputs, CPU_VARIANTS
    )
    assert {r.variant for r in bad.failing()} == {"pytorch-cpu/folded"}


def test_nan_anywhere_fails_parity_even_where_outputs_agree(models_and_files, inputs):
    model, _, files = models_and_files
    nan_model = bnfold.fold(model, torch.zeros(2, 3, 32, 32)).model  # a copy to break
    with torch.no_grad():
        next(nan_model.parameters()).fill_(float("nan"))
    report = parity_run.prove_parity(nan_model, nan_model, files, inputs, CPU_VARIANTS[:1])
    (row,) = report.rows
    assert row.status == "run" and row.finite is False and row.passed is False
    assert not report.passed and "non-finite" in report.to_table()


def test_no_tf32_turns_tf32_off_and_restores_it():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with torch_runner.no_tf32():
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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_unknown_decision_is_checked_and_near_threshold_inputs_are_reported(
    models_and_files, inputs, tmp_path
):
    """A variant whose ood_score crosses the threshold fails on the decision too; inputs whose
    reference score sits within the tolerance band of the threshold are counted as near."""
    from export.networks import OODInfo

    model, folded, _ = models_and_files
    files = {k: tmp_path / f"m.{k}.onnx" for k in ("unfolded", "folded")}
    for kind, net in (("unfolded", model), ("folded", folded)):
        proto = onnx_writer.to_onnx(
            _TwoOutputs(net).eval(), (32, 32), output_names=("ood_score", "logits")
        )
        onnx_writer.save(proto, files[kind])
    with torch.no_grad():
        scores = torch.cat([model(i.images).double().logsumexp(1) for i in inputs])
    ordered = scores.sort().values
    at = float(ordered[len(ordered) // 2])  # the threshold is exactly one input's score
    ood = OODInfo(threshold=at, method="energy")
    names = ("logits", "ood_score")
    good = parity_run.prove_parity(
        _TwoOutputs(model), _TwoOutputs(folded), files, inputs, CPU_VARIANTS, ood=ood
    )
    assert good.passed, good.to_table()
    for row in good.rows:
        assert row.decision_agreement == 1.0 and row.decision_disagreements == 0
        assert row.near_threshold >= 1  # the input at the threshold
        assert set(row.outputs) == set(names)
    assert good.to_dict()["ood"] == {"threshold": at, "method": "energy"}
    assert (
        "unknown decision" in good.to_markdown() and "ood_score max abs err" in good.to_markdown()
    )
    # Everything above the threshold falls below it in the folded PyTorch model.
    shift = -float(ordered[-1] - ordered[0]) - 1.0
    bad = parity_run.prove_parity(
        _TwoOutputs(model), _TwoOutputs(folded, shift), files, inputs, CPU_VARIANTS, ood=ood
    )
    (row,) = bad.failing()
    assert row.variant == "pytorch-cpu/folded"
    assert row.decision_disagreements == int((scores > at).sum()) > 0
    assert "differ" in bad.to_table()
