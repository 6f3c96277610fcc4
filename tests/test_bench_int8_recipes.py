"""benchmarks.int8_recipes: every recipe quantised, checked and timed beside fp32 (no timing
asserted: the table's rows and the agreement column)."""

from __future__ import annotations

import pytest

from benchmarks.int8_recipes import RECIPES, get_args_parser, main
from export.__main__ import get_args_parser as export_parser
from export.__main__ import main as export_main
from train.trainer import TrainConfig, fit


@pytest.mark.slow
def test_every_recipe_gets_a_row_in_onnxruntime(module_image_folder, tmp_path, capsys):
    data = module_image_folder(per_class=6)
    ckpt, onnx_dir = tmp_path / "bn-lenet.pt", tmp_path / "onnx"
    fit(TrainConfig(data=str(data), epochs=1, batch_size=4, device="cpu", out=str(ckpt)))
    assert (
        export_main(export_parser().parse_args(["--checkpoint", str(ckpt), "--out", str(onnx_dir)]))
        == 0
    )
    capsys.readouterr()
    argv = ["--checkpoint", str(ckpt), "--onnx-dir", str(onnx_dir), "--batch", "4"]
    assert main(get_args_parser().parse_args([*argv, "--rounds", "2"])) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ort ")]
    assert [r.split(" | ")[0].removeprefix("| ort ") for r in rows] == ["fp32", *RECIPES]
    assert all(r.split(" | ")[1].endswith("%") for r in rows)


def test_a_checkpoint_without_proven_files_is_a_usage_error(tmp_path, capsys):
    argv = ["--checkpoint", str(tmp_path / "none.pt"), "--onnx-dir", str(tmp_path)]
    assert main(get_args_parser().parse_args(argv)) == 2
    assert capsys.readouterr().err.startswith("error: ")
