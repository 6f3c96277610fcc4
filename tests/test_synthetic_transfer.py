"""The synthetic set's reason to exist: a BN-LeNet trained only on it recognises real notes.

The default model (``python -m train`` with no flags, trained once per session by the
``default_checkpoint`` fixture) is scored on the 200 real 4th-series photos and on 600
5th-series synthetic notes from a seed it never saw, the reproducible stand-in for photos of
today's notes (``python -m train.evaluate --synthetic-series 5``).
"""

from __future__ import annotations

import pytest

from train.evaluate import evaluate_checkpoint, get_args_parser, main
from train.synthetic import ensure_synthetic

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

# Issue 9's targets: >= 99 % on the course photos and >= 98 % on unseen 5th-series notes. The
# default model (seed 1) scores 100 % and 98.7 % (README "The synthetic set": seeds 1-3 give
# 100 % and 98.7 / 98.8 / 98.7 %).
REAL_FLOOR = 0.99
FIFTH_SERIES_FLOOR = 0.98
UNSEEN = {"seed": 101, "per_class": 300, "series": "5"}


@pytest.fixture(scope="module")
def synthetic_checkpoint(default_checkpoint):
    return default_checkpoint


def test_bn_lenet_trained_on_synthetic_notes_classifies_the_real_photos(
    synthetic_checkpoint, rmb_data_dir
):
    result = evaluate_checkpoint(synthetic_checkpoint, str(rmb_data_dir))
    assert result["images"] == 200
    assert result["acc"] >= REAL_FLOOR, f"synthetic -> real accuracy {result['acc']:.2%}"


def test_it_reads_fifth_series_notes_it_never_saw(synthetic_checkpoint, capsys):
    data = synthetic_checkpoint.parent / "data"
    unseen = ensure_synthetic(data, **UNSEEN, progress=False)
    result = evaluate_checkpoint(synthetic_checkpoint, str(unseen))
    assert result["images"] == 600
    assert result["acc"] >= FIFTH_SERIES_FLOOR, f"unseen 5th-series accuracy {result['acc']:.2%}"
    # The CLI's way to the same figure, reusing the cached set.
    args = ["--checkpoint", str(synthetic_checkpoint), "--synthetic-series", "5"]
    args += ["--synthetic-seed", "101", "--synthetic-per-class", "300"]
    assert main(get_args_parser().parse_args([*args, "--synthetic-dir", str(data)])) == 0
    assert f"accuracy {result['acc']:.2%} on 600 images" in capsys.readouterr().out


def test_evaluate_refuses_data_and_a_synthetic_series_together(synthetic_checkpoint, tmp_path):
    args = ["--checkpoint", str(synthetic_checkpoint), "--data", str(tmp_path)]
    with pytest.raises(ValueError, match="not both"):
        main(get_args_parser().parse_args([*args, "--synthetic-series", "5"]))


def test_evaluate_cli_reports_accuracy_on_the_recorded_test_split(synthetic_checkpoint, capsys):
    args = get_args_parser().parse_args(
        ["--checkpoint", str(synthetic_checkpoint), "--split", "test"]
    )
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "on 400 images" in out  # 10% of 2000 per class


def test_evaluate_refuses_a_folder_with_other_classes(synthetic_checkpoint, tiny_image_folder):
    from train.imagefolder import DataError

    folder = tiny_image_folder()
    (folder / "100").rename(folder / "5")  # classes "1" and "5" instead of "1" and "100"
    with pytest.raises(DataError, match="same class folders"):
        evaluate_checkpoint(synthetic_checkpoint, str(folder))
