"""The synthetic set's reason to exist: a BN-LeNet trained only on it recognises real notes."""

from __future__ import annotations

import pytest

from train.evaluate import evaluate_checkpoint, get_args_parser, main
from train.trainer import TrainConfig, fit

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic-transfer")
    cfg = TrainConfig(out=str(out / "bn-lenet.pt"), synthetic_dir=str(out / "data"))
    fit(cfg)  # the defaults of `python -m train` with no --data
    return out / "bn-lenet.pt"


def test_bn_lenet_trained_on_synthetic_notes_classifies_the_real_photos(
    synthetic_checkpoint, rmb_data_dir
):
    result = evaluate_checkpoint(synthetic_checkpoint, str(rmb_data_dir))
    assert result["images"] == 200
    assert result["acc"] >= 0.90, f"synthetic -> real accuracy {result['acc']:.2%} < 90%"


def test_evaluate_cli_reports_accuracy_on_the_recorded_test_split(synthetic_checkpoint, capsys):
    args = get_args_parser().parse_args(
        ["--checkpoint", str(synthetic_checkpoint), "--split", "test"]
    )
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "on 100 images" in out  # 10% of 500 per class


def test_evaluate_refuses_a_folder_with_other_classes(synthetic_checkpoint, tiny_image_folder):
    from train.imagefolder import DataError

    folder = tiny_image_folder()
    (folder / "100").rename(folder / "5")  # classes "1" and "5" instead of "1" and "100"
    with pytest.raises(DataError, match="same class folders"):
        evaluate_checkpoint(synthetic_checkpoint, str(folder))
