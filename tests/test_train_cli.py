"""Protects ``python -m train``: a light --help, stated defaults, one-line errors, flag plumbing."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest

from bnfold.checkpoint import load_checkpoint
from train.__main__ import cli, get_args_parser, main

HEAVY_MODULES = ("gradio", "onnx", "onnxruntime", "onnxscript", "matplotlib")


@pytest.fixture
def keep_root_logging():
    """``cli`` configures the root logger (force=True) as a CLI should; undo it after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _python(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_help_imports_neither_gradio_nor_onnx():
    script = (
        "import json, runpy, sys\n"
        "sys.argv = ['train', '--help']\n"
        "try:\n"
        "    runpy.run_module('train', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    result = _python("-c", script)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert "usage: python -m train" in result.stdout


def _help_blocks(help_text: str) -> dict[str, str]:
    """Option → its whole help text (argparse wraps long help over several lines)."""
    blocks: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        match = re.match(r"^  (-[\w-]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = line
        elif current and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


def test_every_flag_states_its_default():
    parser = get_args_parser()
    blocks = _help_blocks(parser.format_help())
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"}
    assert flags <= set(blocks), f"unparsed help: {sorted(flags - set(blocks))}"
    for flag in flags:
        assert "default" in blocks[flag], f"{flag}: {blocks[flag]!r}"
    for flag in ("--data", "--model", "--epochs", "--batch-size", "--lr", "--seed", "--out"):
        assert flag in blocks


def test_defaults_are_the_products_recipe():
    from train import recipe

    args = get_args_parser().parse_args([])
    assert (args.data, args.model, args.init) == (None, "bn-lenet", "default")
    assert (args.epochs, args.batch_size, args.lr, args.seed) == (recipe.EPOCHS, 16, recipe.LR, 1)
    assert (args.schedule, args.augment) == ("cosine", "product")
    assert args.outlier_exposure is True
    assert args.out == "artifacts/bn-lenet.pt"
    assert not args.resume and not args.skip_bad_images


def test_bad_data_exits_2_with_one_line_in_a_subprocess(tmp_path):
    data = tmp_path / "data"
    result = _python("-m", "train", "--data", str(data), "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m train: error: data folder not found: ")
    assert str(data) in lines[0]
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.usefixtures("keep_root_logging")
@pytest.mark.parametrize("layout", ["file", "no-classes", "single-class", "empty-class"])
def test_bad_data_layouts_exit_2_naming_the_place(tmp_path, capsys, layout):
    data = tmp_path / "data"
    named = data
    if layout == "file":
        data.write_bytes(b"not a folder")
    else:
        data.mkdir()
        (data / "a.jpg").write_bytes(b"x")
    if layout in ("single-class", "empty-class"):
        (data / "1").mkdir()
        (data / "1" / "a.jpg").write_bytes(b"x")
    if layout == "empty-class":
        (data / "100").mkdir()
        named = data / "100"
    assert cli(["--data", str(data), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("python -m train: error: ") and str(named) in err
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.usefixtures("keep_root_logging")
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "1"], "--batch-size"),
        (["--lr", "nan"], "--lr must be a positive finite number, got nan"),
        (["--lr", "-0.1"], "--lr"),
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1), got 1.0"),
        (["--ema-decay", "nan"], "--ema-decay must be in [0, 1), got nan"),
        (["--device", "tpu9"], "--device 'tpu9' is not a device"),
        (["--device", "meta"], "--device 'meta' is not supported"),
    ],
)
def test_bad_numbers_exit_2(tmp_path, capsys, argv, needle):
    assert cli([*argv, "--data", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m train: error:") and needle in err
    assert "\n" not in err


def test_unknown_model_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        get_args_parser().parse_args(["--model", "resnet"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _with_a_corrupt_file(tiny_image_folder):
    root = tiny_image_folder(per_class=5)
    (root / "100" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.mark.usefixtures("keep_root_logging")
def test_a_corrupt_image_stops_the_cli_and_names_the_flag(tiny_image_folder, tmp_path, capsys):
    root = _with_a_corrupt_file(tiny_image_folder)
    out = tmp_path / "m.pt"
    assert cli(["--data", str(root), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "--skip-bad-images" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.usefixtures("keep_root_logging")
def test_skip_bad_images_through_the_cli(tiny_image_folder, tmp_path, capsys):
    root = _with_a_corrupt_file(tiny_image_folder)
    out = tmp_path / "m.pt"
    argv = ["--data", str(root), "--out", str(out), "--epochs", "1", "--batch-size", "4"]
    assert cli([*argv, "--skip-bad-images", "--device", "cpu"]) == 0
    ckpt = load_checkpoint(out)
    recorded = [p for paths in ckpt.split.values() for p in paths]
    assert len(recorded) == 10 and "100/broken.jpg" not in recorded
    assert ckpt.args["skip_bad_images"] is True
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().err


def test_main_passes_every_flag_to_the_trainer(tiny_image_folder, tmp_path):
    root = tiny_image_folder(per_class=4)
    out = tmp_path / "lenet.pt"
    argv = ["--data", str(root), "--model", "lenet", "--init", "course", "--epochs", "1"]
    argv += ["--batch-size", "3", "--lr", "0.05", "--seed", "7", "--device", "cpu"]
    argv += ["--threads", "1", "--out", str(out), "--synthetic-dir", str(tmp_path / "syn")]
    argv += ["--series", "5", "--schedule", "step"]
    argv += ["--augment", "course", "--no-outlier-exposure"]
    assert main(get_args_parser().parse_args(argv)) == 0
    args = load_checkpoint(out).args
    expected = {
        "data": str(root),
        "model": "lenet",
        "init": "course",
        "epochs": 1,
        "batch_size": 3,
        "lr": 0.05,
        "seed": 7,
        "device": "cpu",
        "threads": 1,
        "out": str(out),
        "resume": False,
        "skip_bad_images": False,
        "synthetic_dir": str(tmp_path / "syn"),
        "series": "5",
        "schedule": "step",
        "augment": "course",
        "outlier_exposure": False,
    }
    assert {k: args[k] for k in expected} == expected
    assert load_checkpoint(out).arch == "lenet"
    assert out.with_suffix(".metrics.json").is_file()


@pytest.mark.usefixtures("keep_root_logging")
def test_a_diverging_run_exits_2_and_writes_no_checkpoint(tiny_image_folder, tmp_path, capsys):
    """Hole 2 of issue 10: a run whose loss became NaN wrote the NaN weights and exited 0."""
    root = tiny_image_folder(per_class=4)
    out = tmp_path / "m.pt"
    argv = ["--data", str(root), "--out", str(out), "--epochs", "2", "--batch-size", "4"]
    assert cli([*argv, "--lr", "1e30", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]  # the lines before are the run's INFO log
    assert re.match(r"python -m train: error: epoch 1: the (training|validation) loss is", line)
    assert "was not written" in line and "lower --lr" in line
    assert not out.exists()


def test_device_errors_are_one_line_in_a_subprocess(tmp_path):
    result = _python("-m", "train", "--device", "tpu9", "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "python -m train: error: --device 'tpu9' is not a device: use auto, cpu, cuda or cuda:N"
    ]
