"""python -m export end to end: tiny trained checkpoint → two ONNX files, parity, Triton, errors."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from google.protobuf import text_format
from onnx import numpy_helper
from PIL import Image
from tritonclient.grpc import model_config_pb2

from bnfold.checkpoint import load_checkpoint, save_checkpoint
from export import metadata, onnx_writer
from export.__main__ import get_args_parser, main
from train.models import build_model, model_spec
from train.trainer import TrainConfig, fit

REPO = Path(__file__).resolve().parents[1]


def _run_main(*argv: str) -> int:
    return main(get_args_parser().parse_args(list(argv)))


def _write_tiny_folder(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for label, cls in enumerate(("1", "100")):
        (root / cls).mkdir(parents=True)
        base = np.array([190, 70, 60] if label == 0 else [60, 80, 190], dtype=np.float64)
        for i in range(per_class):
            pixels = np.clip(base + rng.normal(0, 25, (36, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    data = _write_tiny_folder(tmp / "data")
    out = tmp / "bn-lenet.pt"
    fit(TrainConfig(data=str(data), epochs=1, batch_size=4, device="cpu", out=str(out)))
    return out


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("export")
    out, repo = tmp / "onnx", tmp / "triton"
    rc = _run_main("--checkpoint", str(checkpoint), "--out", str(out), "--triton-repo", str(repo))
    assert rc == 0
    return {
        "out": out,
        "repo": repo,
        "unfolded": out / "bn-lenet.unfolded.onnx",
        "folded": out / "bn-lenet.folded.onnx",
        "int8": out / "bn-lenet.folded.int8.onnx",
    }


@pytest.mark.parametrize(("kind", "num_bn"), [("unfolded", 3), ("folded", 0)])
def test_both_files_are_checked_self_describing_and_keep_or_drop_bn(
    exported, checkpoint, kind, num_bn
):
    proto = onnx.load_model(exported[kind])
    onnx.checker.check_model(proto, full_check=True)
    assert onnx_writer.count_ops(proto, "BatchNormalization") == num_bn
    meta = metadata.read_metadata(proto)
    ckpt = load_checkpoint(checkpoint)
    assert meta["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta["class_names"] == list(ckpt.class_names) == ["1", "100"]
    assert (meta["mean"], meta["std"]) == (list(ckpt.mean), list(ckpt.std))
    assert meta["input_size"] == [32, 32]
    assert meta["folded"] is (kind == "folded")
    assert meta["fold_report"]["num_bn"] == 3 and meta["fold_report"]["num_folded"] == 3
    assert meta["torch_version"] == torch.__version__
    assert meta["onnx_version"] == onnx.__version__
    # The OOD threshold travels as the exact float (repr), with its method.
    assert float(meta["ood_threshold"]) == ckpt.ood["threshold"]
    assert meta["ood_threshold"] == repr(float(ckpt.ood["threshold"]))
    assert meta["ood_method"] == ckpt.ood["method"]
    assert [o.name for o in proto.graph.output] == ["logits", "ood_score"]
    score = proto.graph.output[1].type.tensor_type
    assert score.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in score.shape.dim] == ["batch"]
    assert sorted(p.name for p in exported["out"].iterdir()) == [
        "bn-lenet.folded.int8.onnx",
        "bn-lenet.folded.onnx",
        "bn-lenet.unfolded.onnx",
        "parity.json",
        "parity.md",
    ]


@pytest.mark.parametrize("kind", ["unfolded", "folded"])
@pytest.mark.parametrize("batch", [1, 5])
def test_files_match_the_checkpoint_at_any_batch(exported, checkpoint, kind, batch):
    from train.ood.scorer import OODScorer, WithOOD

    ckpt = load_checkpoint(checkpoint)
    model = WithOOD(ckpt.build_model(allow_folded=False), OODScorer.from_state(ckpt.ood)).eval()
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    session = ort.InferenceSession(str(exported[kind]), providers=["CPUExecutionProvider"])
    logits, score = session.run(["logits", "ood_score"], {"image": x.numpy()})
    with torch.no_grad():
        expected_logits, expected_score = model(x)
    assert score.shape == (batch,) and score.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(logits), expected_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(score), expected_score, atol=1e-5, rtol=1e-4)


def test_parity_passes_on_the_trained_checkpoint(exported):
    parity = json.loads((exported["out"] / "parity.json").read_text())
    assert parity["passed"] is True
    names = [i["name"] for i in parity["inputs"]]
    assert names == [
        "valid images",
        "test images",
        "random batch 1",
        "random batch 7",
        "random batch 64",
    ]
    ran = [r for r in parity["rows"] if r["status"] == "run"]
    assert {r["variant"] for r in ran} >= {
        "pytorch-cpu/unfolded",
        "pytorch-cpu/folded",
        "ort-cpu-opt-disabled/unfolded",
        "ort-cpu-opt-default/unfolded",
        "ort-cpu-opt-disabled/folded",
        "ort-cpu-opt-default/folded",
    }
    assert parity["outputs"] == ["logits", "ood_score"]
    assert parity["ood"]["method"] and "unknown" in parity["criterion"]
    for row in parity["rows"]:
        if row["status"] == "run":
            assert row["passed"] and row["argmax_agreement"] == 1.0
            assert row["max_abs_err"] <= row["atol"] + row["rtol"] * 100
            assert set(row["outputs"]) == {"logits", "ood_score"}
            assert row["outputs"]["ood_score"]["tolerance_ratio"] <= 1.0
            assert row["decision_agreement"] == 1.0 and row["decision_disagreements"] == 0
            assert row["near_threshold"] >= 0
        else:
            assert row["reason"] and row["passed"] is None
    md = (exported["out"] / "parity.md").read_text()
    assert "| ort-cpu-opt-default/folded |" in md
    assert "ood_score max abs err" in md and "unknown decision" in md


@pytest.mark.parametrize("kind", ["unfolded", "folded"])
def test_triton_repository_matches_the_exported_files(exported, kind):
    folder = exported["repo"] / f"bn-lenet_{kind}"
    assert (folder / "1" / "model.onnx").read_bytes() == exported[kind].read_bytes()
    config = text_format.Parse(
        (folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert config.name == f"bn-lenet_{kind}" and config.backend == "onnxruntime"
    assert [(i.name, list(i.dims), i.data_type) for i in config.input] == [
        ("image", [3, 32, 32], model_config_pb2.TYPE_FP32)
    ]
    assert [(o.name, list(o.dims), o.data_type) for o in config.output] == [
        ("logits", [2], model_config_pb2.TYPE_FP32),
        ("ood_score", [1], model_config_pb2.TYPE_FP32),  # the batch axis only: see reshape
    ]
    assert config.output[1].HasField("reshape") and list(config.output[1].reshape.shape) == []
    assert not config.output[1].label_filename


def test_a_checkpoint_without_ood_exports_logits_only_with_a_notice(checkpoint, tmp_path, capsys):
    """Older checkpoints (no 'ood' entry) still export, prove parity and make a Triton repo."""
    path = tmp_path / "old.pt"
    save_checkpoint(load_checkpoint(checkpoint).replace(ood=None), path)
    out, repo = tmp_path / "onnx", tmp_path / "triton"
    rc = _run_main("--checkpoint", str(path), "--out", str(out), "--triton-repo", str(repo))
    assert rc == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if "no 'ood' entry" in line]
    assert len(notices) == 1 and "logits only" in notices[0]
    for kind in ("unfolded", "folded"):
        proto = onnx.load_model(out / f"old.{kind}.onnx")
        assert [o.name for o in proto.graph.output] == ["logits"]
        assert not {"ood_threshold", "ood_method"} & set(metadata.read_metadata(proto))
        config = text_format.Parse(
            (repo / f"old_{kind}" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        assert [o.name for o in config.output] == ["logits"]
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] and parity["outputs"] == ["logits"] and parity["ood"] is None
    assert all(r["decision_agreement"] is None for r in parity["rows"])


def test_verify_only_passes_and_writes_nothing(exported, checkpoint, capsys):
    before = {p: p.stat().st_mtime_ns for p in exported["out"].iterdir()}
    rc = _run_main("--checkpoint", str(checkpoint), "--out", str(exported["out"]), "--verify-only")
    assert rc == 0
    assert "ort-cpu-opt-default/folded" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in exported["out"].iterdir()} == before


def _copy_export(exported, tmp_path) -> Path:
    out = tmp_path / "copy"
    out.mkdir()
    for kind in ("unfolded", "folded"):
        shutil.copy(exported[kind], out / exported[kind].name)
    return out


def test_a_corrupted_folded_weight_exits_1_with_the_failing_rows(
    exported, checkpoint, tmp_path, capsys
):
    out = _copy_export(exported, tmp_path)
    path = out / "bn-lenet.folded.onnx"
    proto = onnx.load_model(path)
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    weight = next(t for t in proto.graph.initializer if t.name == gemm.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.001, weight.name))
    onnx.save_model(proto, path)
    rc = _run_main("--checkpoint", str(checkpoint), "--out", str(out), "--verify-only")
    assert rc == 1
    err = capsys.readouterr().err
    assert "parity FAILED" in err
    assert "ort-cpu-opt-disabled/folded" in err and "FAIL" in err
    assert "pytorch-cpu/unfolded" not in err.split("parity FAILED")[1]


def test_verify_only_refuses_files_of_another_checkpoint(exported, checkpoint, tmp_path, capsys):
    out = _copy_export(exported, tmp_path)
    path = out / "bn-lenet.unfolded.onnx"
    proto = metadata.with_metadata(onnx.load_model(path), {"checkpoint_sha256": "0" * 64})
    onnx.save_model(proto, path)
    rc = _run_main("--checkpoint", str(checkpoint), "--out", str(out), "--verify-only")
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "sha256 000000000000" in err[-1] and "re-export" in err[-1]


def test_lenet_without_its_data_exports_zero_bn_on_random_inputs(checkpoint, tmp_path):
    ckpt = load_checkpoint(checkpoint)
    torch.manual_seed(0)
    lenet = build_model("lenet", 2)
    path = tmp_path / "lenet.pt"
    save_checkpoint(
        ckpt.replace(
            arch="lenet",
            model=model_spec("lenet", 2),
            state_dict=lenet.state_dict(),
            data_dir=str(tmp_path / "moved"),
        ),
        path,
    )
    rc = _run_main("--checkpoint", str(path), "--out", str(tmp_path / "onnx"))
    assert rc == 0
    for kind in ("unfolded", "folded"):
        proto = onnx.load_model(tmp_path / "onnx" / f"lenet.{kind}.onnx")
        assert onnx_writer.count_ops(proto, "BatchNormalization") == 0
    parity = json.loads((tmp_path / "onnx" / "parity.json").read_text())
    assert parity["passed"] and parity["inputs"][0]["name"] == "random batch 1"
    # No training images, no calibration: no int8 file, and the report says why.
    assert not (tmp_path / "onnx" / "lenet.folded.int8.onnx").exists()
    assert parity["int8"]["status"] == "not run" and "--data" in parity["int8"]["reason"]
    assert "int8" not in parity["files"]


def test_the_int8_file_is_proven_and_published_with_its_row(exported):
    proof = json.loads((exported["out"] / "parity.json").read_text())
    row = proof["int8"]
    assert row["passed"] is True and row["status"] == "run"
    assert row["agreement"] >= row["min_agreement"] == 0.995
    assert row["size_ratio"] <= 0.35
    assert row["max_abs_logit_diff"] > 0  # reported, not held to the fp32 tolerance
    by_name = {r["name"]: r for r in row["inputs"]}
    assert {"valid images", "test images", "random batch 64"} <= set(by_name)
    assert by_name["test images"]["int8_accuracy"] is not None
    assert by_name["random batch 64"]["int8_accuracy"] is None  # no labels
    entry = proof["files"]["int8"]
    assert entry["sha256"] == hashlib.sha256(exported["int8"].read_bytes()).hexdigest()
    ops = {n.op_type for n in onnx.load_model(exported["int8"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_a_broken_quantisation_fails_the_export_and_publishes_nothing(
    checkpoint, tmp_path, monkeypatch, capsys
):
    from export import quantize

    real = quantize.quantize_folded

    def broken(folded, out, calibration, config=None):
        """The real int8 file with the layer that writes the logits negated (weight and bias)."""
        path = real(folded, out, calibration, config)
        proto = onnx.load_model(path)
        producer = {o: n for n in proto.graph.node for o in n.output}
        for name in producer["logits"].input[1:]:  # fc3 stays fp32: initialisers, no Q/DQ
            init = next(i for i in proto.graph.initializer if i.name == name)
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), name))
        onnx.save_model(proto, path)
        return path

    monkeypatch.setattr(quantize, "quantize_folded", broken)
    rc = _run_main("--checkpoint", str(checkpoint), "--out", str(tmp_path / "onnx"))
    assert rc == 1
    err = capsys.readouterr().err
    assert "parity FAILED (nothing was published)" in err and "int8:" in err and "FAIL" in err
    assert list((tmp_path / "onnx").iterdir()) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_an_interrupted_export_leaves_no_onnx_file(checkpoint, tmp_path, monkeypatch, error):
    def half_then_fail(target: Path, data: bytes) -> None:
        target.write_bytes(data[: len(data) // 2])
        raise error("interrupted mid-write")

    monkeypatch.setattr(onnx_writer, "_write", half_then_fail)
    rc = _run_main("--checkpoint", str(checkpoint), "--out", str(tmp_path / "onnx"))
    assert rc == (130 if error is KeyboardInterrupt else 2)
    assert list((tmp_path / "onnx").iterdir()) == []


def test_parity_json_records_the_checkpoint_and_files_it_proves(exported, checkpoint):
    from export.proof import proven_files

    proof = json.loads((exported["out"] / "parity.json").read_text())
    assert proof["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    for kind in ("unfolded", "folded"):
        entry = proof["files"][kind]
        assert entry["name"] == exported[kind].name
        assert entry["sha256"] == hashlib.sha256(exported[kind].read_bytes()).hexdigest()
    assert proven_files(checkpoint, exported["out"]) == {
        k: exported[k] for k in ("unfolded", "folded", "int8")
    }
    assert not [p for p in exported["out"].iterdir() if p.name.startswith(".export-")]


def test_a_nan_checkpoint_fails_parity_and_publishes_nothing(checkpoint, tmp_path, capsys):
    ckpt = torch.load(checkpoint, weights_only=True)
    state = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in ckpt["state_dict"].items()
    }
    path = tmp_path / "nan.pt"
    torch.save({**ckpt, "state_dict": state}, path)
    rc = _run_main("--checkpoint", str(path), "--out", str(tmp_path / "onnx"))
    assert rc == 1
    assert "parity FAILED (nothing was published)" in capsys.readouterr().err
    assert list((tmp_path / "onnx").iterdir()) == []


@pytest.mark.parametrize("how", ["bad --data", "killed during parity"])
def test_unproven_files_are_never_published(checkpoint, tmp_path, monkeypatch, how):
    from export import parity_run

    argv = ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "onnx")]
    if how == "bad --data":
        (tmp_path / "empty").mkdir()
        argv += ["--data", str(tmp_path / "empty")]
    else:

        def killed(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(parity_run, "prove_parity", killed)
    assert _run_main(*argv) == (2 if how == "bad --data" else 130)
    assert list((tmp_path / "onnx").iterdir()) == []


# ----------------------------------------------------------------------------- errors, subprocess
def _error_cases(tmp: Path, checkpoint: Path) -> dict[str, tuple[list[str], str]]:
    """name → (argv, a phrase the one-line error must contain)."""
    ckpt = torch.load(checkpoint, weights_only=True)
    (tmp / "text.pt").write_text("not a checkpoint\n")
    torch.save({**ckpt, "format_version": 99}, tmp / "v99.pt")
    resnet = {**ckpt["model"], "kwargs": {**ckpt["model"]["kwargs"], "arch": "resnet9"}}
    torch.save({**ckpt, "arch": "resnet9", "model": resnet}, tmp / "arch.pt")
    torch.save({**ckpt, "folded": True}, tmp / "folded.pt")
    torch.save({"format_version": 1, "code": argparse.Namespace(x=1)}, tmp / "pickled.pt")
    (tmp / "a_file").write_text("")
    good = str(checkpoint)
    return {
        "missing": (["--checkpoint", str(tmp / "nope.pt")], "checkpoint not found"),
        "not_a_checkpoint": (["--checkpoint", str(tmp / "text.pt")], "not a checkpoint"),
        "format_version": (["--checkpoint", str(tmp / "v99.pt")], "format_version 99"),
        "arch": (["--checkpoint", str(tmp / "arch.pt")], "unknown arch 'resnet9'"),
        "folded": (["--checkpoint", str(tmp / "folded.pt")], "already folded"),
        "pickled": (["--checkpoint", str(tmp / "pickled.pt")], "weights_only=True"),
        "unwritable_out": (
            ["--checkpoint", good, "--out", str(tmp / "a_file" / "x")],
            "cannot write to --out",
        ),
        "opset_low": (["--checkpoint", good, "--opset", "16"], "--opset 16 is not supported"),
        "opset_high": (["--checkpoint", good, "--opset", "99"], "--opset 99 is not supported"),
    }


ERROR_CASES = [
    "missing",
    "not_a_checkpoint",
    "format_version",
    "arch",
    "folded",
    "pickled",
    "unwritable_out",
    "opset_low",
    "opset_high",
]


@pytest.fixture(scope="module")
def error_cases(checkpoint, tmp_path_factory) -> dict[str, tuple[list[str], str]]:
    return _error_cases(tmp_path_factory.mktemp("errors"), checkpoint)


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_errors_are_one_line_and_exit_2(error_cases, case, tmp_path, capsys):
    argv, phrase = error_cases[case]
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "onnx")]
    assert _run_main(*argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("python -m export: error: ")
    assert phrase in errors[0]
    assert not (tmp_path / "onnx").exists() or not any((tmp_path / "onnx").iterdir())


def test_a_real_process_prints_no_traceback(error_cases, tmp_path):
    # One real process is enough: every case above goes through the same main().
    argv, phrase = error_cases["pickled"]
    proc = subprocess.run(
        [sys.executable, "-m", "export", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("python -m export: error: ")
    assert phrase in proc.stderr


def test_help_is_fast_and_imports_neither_torch_nor_onnx():
    code = (
        "import sys, contextlib, io\n"
        "from export.__main__ import get_args_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    get_args_parser().parse_args(['--help'])\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cli_defaults_match_the_library():
    from export.triton import DEFAULT_MAX_BATCH_SIZE

    args = get_args_parser().parse_args(["--checkpoint", "x.pt"])
    assert args.opset == onnx_writer.DEFAULT_OPSET
    assert args.triton_max_batch_size == DEFAULT_MAX_BATCH_SIZE
    assert args.out == "artifacts/onnx"
