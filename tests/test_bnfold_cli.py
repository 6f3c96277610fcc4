"""python -m bnfold (bnfold.cli), bnfold.checkpoint and bnfold.atomic: fold ONNX files and
checkpoints, write them atomically, prove parity, and refuse bad input with exit code 2."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from factories import build_conv_bn
from torch import nn

import bnfold.onnx_fold
import bnfold.torch_fold
from bnfold.atomic import atomic_path, atomic_write_bytes
from bnfold.checkpoint import CheckpointError, load_model, save_checkpoint
from bnfold.cli import get_args_parser, main
from bnfold.report import FoldReport

TESTS = Path(__file__).parent
REPO = TESTS.parent
FP32_TOL = {"atol": 1e-5, "rtol": 1e-4}
INPUT_SIZE = [8, 8]
TESTS_FACTORY = "factories:build_conv_bn"  # allowed explicitly, as a user would with a flag


def cli(*argv: str) -> int:
    argv = (*argv, "--allow-factory", TESTS_FACTORY)
    return main(get_args_parser().parse_args([str(a) for a in argv]))


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.5, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)
            m.weight.data.normal_(1, 0.3, generator=generator)
            m.bias.data.normal_(0, 0.3, generator=generator)
    return model.eval()


@pytest.fixture
def tests_factory(monkeypatch) -> str:
    """The factory path of tests/factories.py, importable however pytest was started."""
    monkeypatch.syspath_prepend(str(TESTS))
    return TESTS_FACTORY


def write_checkpoint(path: Path, factory: str, kwargs: dict, input_size=INPUT_SIZE) -> nn.Module:
    """A checkpoint in the python -m train format (format_version 1), with resume state."""
    module_name, _, function_name = factory.partition(":")
    build = getattr(__import__(module_name, fromlist=[function_name]), function_name)
    model = _randomise_bn(build(**kwargs))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ckpt = {
        "format_version": 1,
        "arch": kwargs.get("arch", "tiny"),
        "model": {"factory": factory, "kwargs": kwargs},
        "class_names": ["1", "100"],
        "input_size": list(input_size),
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "state_dict": model.state_dict(),
        "metrics": {"history": [], "test_acc": None},
        "split": {"train": [], "valid": [], "test": []},
        "data": "synthetic",
        "args": {"epochs": 1},
        "folded": False,
        "epoch": 1,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"last_epoch": 1},
        "rng": {"torch": torch.get_rng_state()},
    }
    torch.save(ckpt, path)
    return model


def write_onnx(path: Path, seed: int = 0) -> onnx.ModelProto:
    model = _randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), seed)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, and says so
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 6, 6),),
            buffer,
            dynamo=False,
            do_constant_folding=False,
            opset_version=17,
        )
    path.write_bytes(buffer.getvalue())
    return onnx.load_from_string(buffer.getvalue())


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# ----------------------------------------------------------------------------- ONNX files
def test_onnx_file_is_folded_checked_and_written(tmp_path, capsys):
    source = write_onnx(tmp_path / "m.onnx")
    out = tmp_path / "folded.onnx"

    code = cli(tmp_path / "m.onnx", "-o", out, "--check")

    assert code == 0
    stdout = capsys.readouterr().out
    assert "1/1 BatchNorms folded" in stdout and "into-producer" in stdout
    assert "check: OK" in stdout
    folded = onnx.load(out)
    onnx.checker.check_model(folded, full_check=True)
    assert not [n for n in folded.graph.node if n.op_type == "BatchNormalization"]
    x = np.random.default_rng(0).normal(size=(1, 3, 6, 6)).astype(np.float32)
    torch.testing.assert_close(
        torch.from_numpy(_run(folded, x)), torch.from_numpy(_run(source, x)), **FP32_TOL
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_onnx_check_mismatch_exits_1(tmp_path, monkeypatch, capsys):
    """--check must catch a wrong fold: here one weight is perturbed after folding."""
    write_onnx(tmp_path / "m.onnx")
    real = bnfold.onnx_fold.fold_onnx

    def broken_fold(model):
        folded, report = real(model)
        conv = next(n for n in folded.graph.node if n.op_type == "Conv")
        weight = next(t for t in folded.graph.initializer if t.name == conv.input[1])
        values = onnx.numpy_helper.to_array(weight) * 1.01
        weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
        return folded, report

    monkeypatch.setattr(bnfold.onnx_fold, "fold_onnx", broken_fold)
    assert cli(tmp_path / "m.onnx", "-o", tmp_path / "out.onnx", "--check") == 1
    assert "check: MISMATCH" in capsys.readouterr().out


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("source", ["tests", "train"])
def test_checkpoint_is_folded_into_a_loadable_checkpoint(source, tmp_path, capsys, request):
    if source == "tests":
        factory, kwargs, size = request.getfixturevalue("tests_factory"), {"channels": 4}, [8, 8]
    else:
        factory, kwargs = "train.models:build_model", {"arch": "bn-lenet", "num_classes": 2}
        size = [32, 32]
    n_bn = 3  # both models have three BatchNorms, all foldable
    original = write_checkpoint(tmp_path / "ckpt.pt", factory, kwargs, input_size=size)
    out = tmp_path / "folded.pt"

    assert cli(tmp_path / "ckpt.pt", "-o", out, "--check") == 0

    stdout = capsys.readouterr().out
    assert f"{n_bn}/{n_bn} BatchNorms folded" in stdout and "check: OK" in stdout
    saved = torch.load(out, weights_only=True)
    assert saved["folded"] is True
    assert not {"optimizer", "scheduler", "rng"} & set(saved)
    assert saved["fold_report"]["num_folded"] == n_bn
    assert saved["model"] == {"factory": factory, "kwargs": kwargs}
    assert not any("running_mean" in k for k in saved["state_dict"])
    folded, ckpt = load_model(out, [TESTS_FACTORY])
    assert ckpt.class_names == ("1", "100") and ckpt.folded
    x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), original(x), **FP32_TOL)
    # Folding the folded checkpoint again changes nothing.
    assert cli(out, "-o", tmp_path / "again.pt", "--check") == 0
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert again["state_dict"].keys() == saved["state_dict"].keys()
    for key, value in saved["state_dict"].items():
        torch.testing.assert_close(again["state_dict"][key], value, atol=0, rtol=0)


def test_load_model_rebuilds_an_unfolded_checkpoint_exactly(tmp_path, tests_factory):
    original = write_checkpoint(tmp_path / "ckpt.pt", tests_factory, {"channels": 3})
    model, ckpt = load_model(tmp_path / "ckpt.pt", [TESTS_FACTORY])
    assert not model.training and ckpt.epoch == 1 and not ckpt.folded
    for key, value in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, atol=0, rtol=0)


def test_checkpoint_check_mismatch_exits_1(tmp_path, monkeypatch, tests_factory, capsys):
    write_checkpoint(tmp_path / "ckpt.pt", tests_factory, {"channels": 4})
    real = bnfold.torch_fold.fold

    def broken_fold(model, *args, **kwargs):
        result = real(model, *args, **kwargs)
        with torch.no_grad():
            next(result.model.parameters()).mul_(1.01)
        return result

    monkeypatch.setattr(bnfold.torch_fold, "fold", broken_fold)
    assert cli(tmp_path / "ckpt.pt", "-o", tmp_path / "out.pt", "--check") == 1
    assert "check: MISMATCH" in capsys.readouterr().out


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_check_of_a_non_finite_checkpoint_is_a_mismatch(tmp_path, tests_factory, capsys, value):
    """Hole 2 of issue 10: --check certified a NaN model because NaN == NaN counted as equal."""
    write_checkpoint(tmp_path / "ckpt.pt", tests_factory, {"channels": 4})
    raw = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    raw["state_dict"] = {
        k: torch.full_like(v, value) if v.is_floating_point() else v
        for k, v in raw["state_dict"].items()
    }
    torch.save(raw, tmp_path / "ckpt.pt")
    assert cli(tmp_path / "ckpt.pt", "-o", tmp_path / "out.pt", "--check") == 1
    assert "check: MISMATCH" in capsys.readouterr().out


def test_onnx_check_of_a_non_finite_model_is_a_mismatch(tmp_path, capsys):
    source = write_onnx(tmp_path / "m.onnx")
    for init in source.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and init.name.endswith("weight"):
            array = onnx.numpy_helper.to_array(init).copy()
            array[...] = np.nan
            init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    onnx.save(source, tmp_path / "nan.onnx")
    assert cli(tmp_path / "nan.onnx", "-o", tmp_path / "out.onnx", "--check") == 1
    assert "check: MISMATCH" in capsys.readouterr().out


def test_save_folded_is_atomic_and_keeps_the_old_file_on_failure(
    tmp_path, monkeypatch, tests_factory
):
    write_checkpoint(tmp_path / "ckpt.pt", tests_factory, {"channels": 2})
    model, ckpt = load_model(tmp_path / "ckpt.pt", {TESTS_FACTORY: build_conv_bn})
    out = tmp_path / "folded.pt"
    out.write_bytes(b"previous")

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(ckpt.folded_twin(model, FoldReport()), out)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "folded.pt"]


# ----------------------------------------------------------------------------- bad input
def _missing(tmp_path, factory):
    return tmp_path / "nope.onnx"


def _text_file(tmp_path, factory):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    return path


def _random_bytes(tmp_path, factory):
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _zip_not_checkpoint(tmp_path, factory):
    import zipfile

    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return path


def _pickled_code(tmp_path, factory):
    path = tmp_path / "module.pt"
    torch.save(nn.Conv2d(1, 1, 1), path)  # a whole module: needs pickled classes to load
    return path


def _unknown_arch(tmp_path, factory):
    path = tmp_path / "ckpt.pt"
    write_checkpoint(path, "train.models:build_model", {"arch": "bn-lenet", "num_classes": 2})
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["kwargs"]["arch"] = "resnet-9000"
    torch.save(ckpt, path)
    return path


def _missing_factory_module(tmp_path, factory):
    path = tmp_path / "ckpt.pt"
    write_checkpoint(path, factory, {"channels": 2})
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["factory"] = "no_such_package.models:build"
    torch.save(ckpt, path)
    return path


def _garbage_with_pt_suffix(tmp_path, factory):
    path = tmp_path / "garbage.pt"  # the suffix routes it to the checkpoint reader
    path.write_bytes(bytes(range(101, 256)) * 4)
    return path


def _no_format_version(tmp_path, factory):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    return path


def _wrong_state_dict(tmp_path, factory):
    path = tmp_path / "ckpt.pt"
    write_checkpoint(path, factory, {"channels": 2})
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["kwargs"]["channels"] = 5
    torch.save(ckpt, path)
    return path


BAD_INPUTS = {
    _missing: "no such file",
    _text_file: "neither a valid ONNX model nor a torch checkpoint",
    _random_bytes: "neither a valid ONNX model nor a torch checkpoint",
    _zip_not_checkpoint: "is not a PyTorch checkpoint",
    _garbage_with_pt_suffix: "is not a PyTorch checkpoint",
    _pickled_code: "refused by torch.load(weights_only=True)",
    _unknown_arch: "unknown arch 'resnet-9000'",
    _missing_factory_module: "'no_such_package.models:build' is not on the allow-list",
    _no_format_version: "no format_version",
    _wrong_state_dict: "state_dict does not fit",
}


@pytest.mark.parametrize("make", list(BAD_INPUTS), ids=[f.__name__[1:] for f in BAD_INPUTS])
def test_bad_input_is_one_line_on_stderr_and_exit_2(make, tmp_path, tests_factory, capsys):
    path = make(tmp_path, tests_factory)
    out = tmp_path / ("out.onnx" if path.suffix in (".onnx", ".bin") else "out.pt")
    assert cli(path, "-o", out) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bnfold: error: ")
    assert BAD_INPUTS[make] in lines[0]
    assert not out.exists()


def _shell_factory_checkpoint(path: Path, marker: Path) -> None:
    """A valid weights-only checkpoint whose factory would run ``touch MARKER`` in a shell."""
    from factories import checkpoint_dict

    raw = checkpoint_dict(model={"factory": "os:system", "kwargs": {"command": f"touch {marker}"}})
    torch.save(raw, path)


def test_a_factory_off_the_allow_list_is_refused_and_never_run(tmp_path, capsys):
    """Hole 1 of issue 10: a checkpoint naming os:system ran a shell command under bnfold."""
    marker = tmp_path / "pwned"
    _shell_factory_checkpoint(tmp_path / "evil.pt", marker)
    assert cli(tmp_path / "evil.pt", "-o", tmp_path / "out.pt", "--check") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'os:system' is not on the allow-list" in err[0]
    assert not marker.exists(), "the shell command ran"
    assert not (tmp_path / "out.pt").exists()


def test_a_refused_factory_module_is_not_even_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_factory_module.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).touch()\ndef build():\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "evil.pt"
    from factories import checkpoint_dict

    torch.save(checkpoint_dict(model={"factory": "evil_factory_module:build", "kwargs": {}}), path)
    with pytest.raises(CheckpointError, match="not on the allow-list") as e:
        load_model(path)
    assert "\n" not in str(e.value)
    assert not marker.exists() and "evil_factory_module" not in sys.modules


def test_an_allowed_factory_that_cannot_be_imported_says_so(tmp_path, tests_factory):
    path = tmp_path / "ckpt.pt"
    write_checkpoint(path, tests_factory, {"channels": 2})
    raw = torch.load(path, weights_only=True)
    raw["model"]["factory"] = "no_such_package.models:build"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"cannot import 'no_such_package\.models'"):
        load_model(path, ["no_such_package.models:build"])


@pytest.mark.slow  # a fresh interpreter that imports torch: ~3-5 s
def test_python_m_bnfold_refuses_a_shell_factory_with_exit_2(tmp_path):
    marker = tmp_path / "pwned"
    _shell_factory_checkpoint(tmp_path / "evil.pt", marker)
    result = subprocess.run(
        [sys.executable, "-m", "bnfold", tmp_path / "evil.pt", "-o", tmp_path / "out.pt"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "not on the allow-list" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_output_format_must_match_input(tmp_path, tests_factory, capsys):
    write_checkpoint(tmp_path / "ckpt.pt", tests_factory, {"channels": 2})
    assert cli(tmp_path / "ckpt.pt", "-o", tmp_path / "x.onnx") == 2
    write_onnx(tmp_path / "m.onnx")
    assert cli(tmp_path / "m.onnx", "-o", tmp_path / "x.pt") == 2
    assert cli(tmp_path / "m.onnx", "-o", tmp_path / "missing_dir" / "x.onnx") == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow  # two fresh interpreters that import torch: ~5-10 s
def test_python_m_bnfold_end_to_end(tmp_path):
    """The real entry point: exit codes and no traceback, in a fresh interpreter."""
    write_checkpoint(
        tmp_path / "ckpt.pt",
        "train.models:build_model",
        {"arch": "bn-lenet", "num_classes": 2},
        input_size=[32, 32],
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run(
        [sys.executable, "-m", "bnfold", tmp_path / "ckpt.pt", "-o", tmp_path / "f.pt", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "3/3 BatchNorms folded" in ok.stdout and "check: OK" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bnfold", tmp_path / "nope.pt", "-o", tmp_path / "g.pt"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_help_is_instant_and_bnfold_imports_no_sibling_package():
    code = (
        "import sys, bnfold.cli\n"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'heavy import'\n"
        "import bnfold.checkpoint, bnfold.onnx_fold, bnfold.torch_fold, bnfold.atomic\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('train', 'export', 'demo'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_path_replaces_only_on_success_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"one"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_atomic_path_gives_umask_permissions_and_needs_an_existing_folder(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "no" / "f", b"x")


def test_checkpoint_error_is_a_value_error():
    """export/ catches ValueError subclasses for bad input; CheckpointError must be one."""
    assert issubclass(CheckpointError, ValueError)
