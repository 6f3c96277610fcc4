"""The demo's library layer, without Gradio: runtimes, timing, inference, folding views, artifacts.

The trusted references: a float64 PyTorch forward of the checkpoint built independently, the
BatchNorm folding formula written out here, ``numpy.percentile``, and the files on disk.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from bnfold.checkpoint import save_checkpoint
from demo import folding, plots
from demo.artifacts import ArtifactError, find_artifacts
from demo.examples import prepare_examples
from demo.images import load_upload
from demo.inference import classify, latencies, model_input, softmax, sweep
from demo.runtimes import demo_variants, load_runtimes, title
from export.pipeline import onnx_paths
from export.runtimes.sessions import CUDA, ORT_GPU_HINT
from export.runtimes.variant import ONNXRUNTIME, PYTORCH
from train.preprocess import normalize, open_image, to_uint8_tensor

pytest_plugins = ["demo_fixtures"]


@pytest.fixture(scope="module")
def runtimes(demo_artifacts):
    a = demo_artifacts
    return load_runtimes(a.checkpoint, a.unfolded_onnx, a.folded_onnx, int8_onnx=a.int8_onnx)


@pytest.fixture(scope="module")
def photo_batch(demo_artifacts):
    """Eight held-out photos as evaluation preprocesses them, float32 N×3×32×32."""
    photos = [path for _, path in demo_artifacts.test_photos()][::2][:8]
    pixels = torch.stack([to_uint8_tensor(open_image(p)) for p in photos])
    return normalize(pixels, demo_artifacts.ckpt.mean, demo_artifacts.ckpt.std).numpy()


def test_latencies_warm_up_then_time_each_runner_once_per_round():
    calls: list[str] = []
    runners = [lambda x, n=n: calls.append(n) for n in "ab"]
    stats = latencies(runners, np.zeros(1), runs=3, warmup=2)
    assert calls[:4] == ["a", "a", "b", "b"]  # warm-up, runner by runner
    assert [sorted(calls[i : i + 2]) for i in (4, 6, 8)] == [["a", "b"]] * 3 and len(calls) == 10
    assert [(s.calls, s.rounds) for s in stats] == [(3, 3), (3, 3)]
    assert all(0 <= s.median_s <= s.p90_s for s in stats)


@pytest.mark.parametrize(("runs", "warmup"), [(0, 1), (1, 0)])
def test_latencies_reject_impossible_counts(runs, warmup):
    with pytest.raises(ValueError, match="rounds and warmup must be >= 1"):
        latencies([lambda x: None], np.zeros(1), runs=runs, warmup=warmup)


def available_variants(runtimes):
    return {r.variant for r in runtimes.available}


def facts_by_title(runtimes):
    return {title(r.variant): runtimes.facts[r.variant] for r in runtimes.available}


# ----------------------------------------------------------------------------------------------
# Which variants run, and what they compute


def test_every_variant_is_loaded_or_listed_unavailable_with_a_reason(runtimes):
    seen = [variant for variant, _ in runtimes.variants()]
    assert seen == demo_variants() and len(seen) == 9
    assert any(v.int8 for v in available_variants(runtimes)), "the int8 file runs on the CPU"
    available = {r.variant for r in runtimes.available}
    assert {v for v in demo_variants() if v.device == "cpu"} <= available
    assert (
        any(v.runtime == PYTORCH and v.device == "cuda" for v in available)
        == torch.cuda.is_available()
    )
    import onnxruntime

    if CUDA not in onnxruntime.get_available_providers():
        ort_cuda = [u for u in runtimes.unavailable if u.variant.runtime == ONNXRUNTIME]
        assert len(ort_cuda) == 2
        assert all(ORT_GPU_HINT in u.reason for u in ort_cuda)
    for item in runtimes.unavailable:
        assert item.variant.device == "cuda"
        assert len(item.reason) > 20


def test_devices_not_asked_for_are_listed_as_not_loaded(demo_artifacts):
    a = demo_artifacts
    cpu_only = load_runtimes(
        a.checkpoint, a.unfolded_onnx, a.folded_onnx, int8_onnx=a.int8_onnx, devices=("cpu",)
    )
    assert [variant for variant, _ in cpu_only.variants()] == demo_variants()
    assert {u.variant.device for u in cpu_only.unavailable} == {"cuda"}
    assert all("--cpu-only" in u.reason for u in cpu_only.unavailable)
    assert {r.variant.device for r in cpu_only.available} == {"cpu"}
    with pytest.raises(ValueError, match="unknown device"):
        load_runtimes(a.checkpoint, a.unfolded_onnx, a.folded_onnx, devices=("tpu",))


def _with_ood(ckpt) -> torch.nn.Module:
    from train.ood.scorer import OODScorer, WithOOD

    model = ckpt.build_model(allow_folded=False)
    return WithOOD(model, OODScorer.from_state(ckpt.ood)).eval()


def test_the_reference_is_the_checkpoint_in_float64(runtimes, demo_artifacts, photo_batch):
    model = _with_ood(demo_artifacts.ckpt).double()
    with torch.no_grad():
        logits, score = model(torch.from_numpy(photo_batch).double())
    np.testing.assert_array_equal(runtimes.reference(photo_batch), logits.numpy())
    np.testing.assert_array_equal(runtimes.reference_outputs(photo_batch)["ood_score"], score)
    assert runtimes.ood.threshold == demo_artifacts.ckpt.ood["threshold"]


def test_every_runtime_matches_the_float64_reference(runtimes, photo_batch):
    """fp32 variants match the reference's every output to 1e-4; the int8 one decides as the
    reference on every photo, its logits within 0.5 (a few quantisation steps of layers whose
    outputs span ~10)."""
    reference = runtimes.reference_outputs(photo_batch)
    assert list(reference) == ["logits", "ood_score"]
    for runtime in runtimes.available:
        outputs = runtime(photo_batch)
        assert list(outputs) == ["logits", "ood_score"]
        if runtime.variant.int8:
            logits, expected = outputs["logits"], reference["logits"]
            np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))
            np.testing.assert_allclose(logits, expected, atol=0.5, rtol=0)
            continue
        for name, expected in reference.items():
            got = outputs[name]
            assert got.shape == expected.shape and got.dtype == np.float32
            torch.testing.assert_close(
                torch.from_numpy(got).double(),
                torch.from_numpy(expected),
                atol=1e-4,
                rtol=1e-4,
                msg=lambda m, r=runtime, n=name: f"{r.variant.name} {n}: {m}",
            )


def test_model_facts_count_what_folding_removed(runtimes, demo_artifacts):
    facts = facts_by_title(runtimes)
    torch_unfolded = facts["PyTorch eager · unfolded · CPU"]
    torch_folded = facts["PyTorch eager · folded · CPU"]
    ort_unfolded = facts["ONNX Runtime · unfolded · CPU"]
    ort_folded = facts["ONNX Runtime · folded · CPU"]
    assert (torch_unfolded.batchnorm_ops, torch_folded.batchnorm_ops) == (3, 0)
    assert (ort_unfolded.batchnorm_ops, ort_folded.batchnorm_ops) == (3, 0)
    assert torch_folded.ops == torch_unfolded.ops - 3
    # The 3 BNs go; fx may also pre-compute the kNN bank's transpose (one Transpose fewer).
    assert ort_unfolded.ops - 4 <= ort_folded.ops <= ort_unfolded.ops - 3
    # ORT fuses Conv+BN itself when it loads the graph, but runs at least no more BN than stored.
    assert ort_unfolded.batchnorm_ops_run is not None
    assert 0 <= ort_unfolded.batchnorm_ops_run < 3
    assert ort_folded.batchnorm_ops_run == 0
    assert ort_unfolded.size_bytes == demo_artifacts.unfolded_onnx.stat().st_size
    assert ort_folded.size_bytes == demo_artifacts.folded_onnx.stat().st_size
    assert 0 < torch_folded.size_bytes < torch_unfolded.size_bytes


def test_loading_does_not_touch_the_caller_model_or_cuda_without_need(runtimes):
    assert not runtimes.unfolded.training
    assert next(runtimes.unfolded.parameters()).device.type == "cpu"
    assert next(runtimes.unfolded.parameters()).dtype == torch.float32
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in runtimes.unfolded.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runtimes.folded.modules())


# ----------------------------------------------------------------------------------------------
# Classification and the sweep


def test_model_input_is_evaluations_preprocessing(runtimes, demo_artifacts):
    _, path = demo_artifacts.test_photos()[0]
    pixels = to_uint8_tensor(open_image(path)).unsqueeze(0)
    expected = normalize(pixels, demo_artifacts.ckpt.mean, demo_artifacts.ckpt.std).numpy()
    np.testing.assert_array_equal(model_input(load_upload(path), runtimes), expected)


def test_classify_reports_every_variant_against_the_reference(runtimes, demo_artifacts):
    _, path = demo_artifacts.test_photos()[0]
    image = load_upload(path)
    result = classify(runtimes, image, runs=3, warmup=1)
    batch = model_input(image, runtimes)
    reference = runtimes.reference(batch)[0]
    expected = softmax(reference[None])[0]
    assert list(result.probabilities) == runtimes.class_names
    np.testing.assert_allclose(list(result.probabilities.values()), expected, rtol=0, atol=1e-12)
    assert result.network_label == runtimes.class_names[int(expected.argmax())]
    score = float(runtimes.reference_outputs(batch)["ood_score"][0])
    assert result.ood_score == score and result.ood == runtimes.ood
    assert result.label == ("unknown" if score > runtimes.ood.threshold else result.network_label)
    assert [r.variant for r in result.results] == [r.variant for r in runtimes.available]
    for row, runtime in zip(result.results, runtimes.available, strict=True):
        logits = runtime(batch)["logits"][0].astype(np.float64)
        assert row.max_abs_dlogits == pytest.approx(np.abs(logits - reference).max(), abs=1e-6)
        assert row.max_abs_dlogits < (0.5 if row.variant.int8 else 1e-4)
        assert row.prediction == result.network_label
        if not row.variant.int8:
            assert row.ood_score == pytest.approx(score, abs=1e-4, rel=1e-4)
        assert 0 < row.p50_ms <= row.p90_ms
    assert result.unavailable == runtimes.unavailable


def test_sweep_times_every_variant_at_every_batch_size(runtimes):
    points = sweep(runtimes, (1, 3, 8), runs=2, warmup=1)
    assert len(points) == 3 * len(runtimes.available)
    assert {(p.variant, p.batch_size) for p in points} == {
        (r.variant, b) for r in runtimes.available for b in (1, 3, 8)
    }
    for p in points:
        assert p.images_per_s == pytest.approx(p.batch_size / (p.p50_ms / 1e3))
    with pytest.raises(ValueError, match="positive"):
        sweep(runtimes, (0, 4))


# ----------------------------------------------------------------------------------------------
# What folding did


def test_fold_report_rows_and_op_counts(runtimes, demo_artifacts):
    rows = folding.report_rows(runtimes.fold_report)
    assert [row[:3] for row in rows] == [
        ["bn1", "into-producer", "conv1"],
        ["bn2", "into-producer", "conv2"],
        ["bn3", "into-producer", "fc1"],
    ]
    assert folding.report_summary(runtimes.fold_report) == "3 of 3 BatchNorms folded"
    counts = {
        row[0]: row[1:]
        for row in folding.op_count_rows(
            *onnx_paths(demo_artifacts.onnx_dir, demo_artifacts.checkpoint).values()
        )
    }
    assert counts["BatchNormalization"] == [3, 0, -3]
    assert counts["Conv"] == [2, 2, 0]
    # Only the BNs go, and perhaps the kNN bank's transpose, which fx pre-computes when folding.
    changed = {op for op, (_, _, change) in counts.items() if change and op != "all nodes"}
    assert changed <= {"BatchNormalization", "Transpose"}
    assert (
        counts["all nodes"][2]
        == -3 - counts.get("Transpose", [0, 0, 0])[0] + counts.get("Transpose", [0, 0, 0])[1]
    )


@pytest.mark.parametrize(("layer", "bn"), [("conv1", "bn1"), ("conv2", "bn2"), ("fc1", "bn3")])
def test_layer_weights_show_the_folding_formula(runtimes, layer, bn):
    """w' = w·s, b' = (b − μ)·s + β with s = γ/√(σ² + ε), per output channel."""
    weights = folding.layer_weights(runtimes.unfolded, runtimes.folded, layer, runtimes.fold_report)
    norm = getattr(runtimes.unfolded, bn)
    conv = getattr(runtimes.unfolded, layer)
    s = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach()
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    assert weights.folded_from == bn
    torch.testing.assert_close(weights.weight_before, conv.weight.detach())
    torch.testing.assert_close(
        weights.weight_after, conv.weight.detach() * s.view(shape), atol=1e-6, rtol=1e-5
    )
    expected_bias = (conv.bias.detach() - norm.running_mean) * s + norm.bias.detach()
    torch.testing.assert_close(weights.bias_after, expected_bias, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.channel_scale, s.abs(), atol=1e-5, rtol=1e-5)


def test_layers_with_nothing_folded_in_are_unchanged_and_unknown_layers_refused(runtimes):
    assert folding.weight_layers(runtimes.unfolded, runtimes.folded) == [
        "conv1",
        "conv2",
        "fc1",
        "fc2",
        "fc3",
    ]
    fc2 = folding.layer_weights(runtimes.unfolded, runtimes.folded, "fc2", runtimes.fold_report)
    assert fc2.folded_from is None
    torch.testing.assert_close(fc2.weight_after, fc2.weight_before, atol=0, rtol=0)
    with pytest.raises(ValueError, match="conv1, conv2"):
        folding.layer_weights(runtimes.unfolded, runtimes.folded, "bn1")


def test_figures_draw_what_they_are_given(runtimes):
    points = sweep(runtimes, (1, 2), runs=1, warmup=1)
    fig = plots.throughput_figure(points)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == len(runtimes.available)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    layer = folding.layer_weights(runtimes.unfolded, runtimes.folded, "conv1", runtimes.fold_report)
    fig = plots.weights_figure(layer)
    scatter, bars = fig.axes
    assert len(scatter.collections) == 6  # one per output channel of conv1
    assert len(bars.patches) == 12  # 6 biases before, 6 after
    image = plots.init_study_image({"bn": {"std": [0.5, 0.6, None], "nan_layer": 2}})
    assert image.mode == "RGB" and min(image.size) > 100


# ----------------------------------------------------------------------------------------------
# Artifacts, examples and the CLI's refusals


def test_missing_artifacts_name_the_command_that_makes_them(demo_artifacts, tmp_path):
    with pytest.raises(ArtifactError, match=r"python -m train --out .*make demo"):
        find_artifacts(tmp_path / "none.pt", tmp_path / "onnx")
    with pytest.raises(ArtifactError, match=r"unfolded.onnx not found: .*python -m export"):
        find_artifacts(demo_artifacts.checkpoint, tmp_path / "onnx")
    found = find_artifacts(demo_artifacts.checkpoint, demo_artifacts.onnx_dir)
    assert found.folded_onnx == demo_artifacts.folded_onnx


def test_onnx_files_of_another_checkpoint_are_refused(demo_artifacts, tmp_path):
    ckpt = demo_artifacts.ckpt.replace(epoch=99)  # a different file: different sha256
    other = tmp_path / demo_artifacts.checkpoint.name
    save_checkpoint(ckpt, other)
    with pytest.raises(ArtifactError, match=r"another checkpoint.*python -m export"):
        find_artifacts(other, demo_artifacts.onnx_dir)


@pytest.mark.parametrize("change", ["no parity.json", "failed parity", "file changed"])
def test_onnx_files_without_a_passing_proof_are_refused(demo_artifacts, tmp_path, change):
    import json

    folder = tmp_path / "onnx"
    shutil.copytree(demo_artifacts.onnx_dir, folder)
    proof = folder / "parity.json"
    if change == "no parity.json":
        proof.unlink()
    elif change == "failed parity":
        proof.write_text(json.dumps({**json.loads(proof.read_text()), "passed": False}))
    else:
        path = onnx_paths(folder, demo_artifacts.checkpoint)["folded"]
        path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match=r"python -m export --checkpoint") as caught:
        find_artifacts(demo_artifacts.checkpoint, folder)
    assert "\n" not in str(caught.value)


def test_cli_exits_2_with_one_line_when_artifacts_are_missing(tmp_path, capsys):
    from demo.__main__ import main

    code = main(["--checkpoint", str(tmp_path / "none.pt"), "--onnx-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "python -m train" in err and "make demo" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--port", "0", "argument --port: must be at least 1 and at most 65535, got 0"),
        ("--threads", "0", "argument --threads: must be at least 1, got 0"),
        ("--max-upload-mb", "nan", "argument --max-upload-mb: must be above 0, got nan"),
        ("--upload-max-age-s", "x", "argument --upload-max-age-s: invalid int value: 'x'"),
        ("--data", "/nowhere", "argument --data: /nowhere is not a folder"),
    ],
)
def test_cli_refuses_bad_flags_with_exit_2(demo_artifacts, capsys, flag, value, message):
    from demo.__main__ import main

    args = [
        "--checkpoint",
        str(demo_artifacts.checkpoint),
        "--onnx-dir",
        str(demo_artifacts.onnx_dir),
        flag,
        value,
    ]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_examples_are_held_out_photos_or_synthetic_notes(demo_artifacts, tmp_path):
    ckpt = demo_artifacts.ckpt
    paths = prepare_examples(ckpt, tmp_path / "real")
    test_split = {p.split("/")[1]: p for p in ckpt.split["test"]}
    assert len(paths) == 4
    for path in paths:
        cls, name = path.name.split("_", 1)
        assert test_split[name].startswith(f"{cls}/")
        assert path.read_bytes() == (demo_artifacts.data_dir / test_split[name]).read_bytes()
    gone = ckpt.replace(data_dir=str(tmp_path / "gone"))
    synthetic = prepare_examples(gone, tmp_path / "synthetic")
    assert [p.name.split("_")[0] for p in synthetic] == ["1", "1", "100", "100"]
    assert all(load_upload(p).size[0] > 32 for p in synthetic)
