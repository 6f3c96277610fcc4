"""Protects ``python -m train.evaluate``: its flags and what it scores."""

from __future__ import annotations

import pytest

from train.evaluate import evaluate_checkpoint, get_args_parser, main
from train.trainer import TrainConfig, fit


@pytest.fixture(scope="module")
def trained(module_image_folder, tmp_path_factory):
    root = module_image_folder(per_class=5)
    out = tmp_path_factory.mktemp("eval") / "m.pt"
    fit(TrainConfig(data=str(root), epochs=1, batch_size=4, device="cpu", out=str(out)))
    return root, out


def test_a_corrupt_image_names_a_flag_that_exists_and_the_flag_skips_it(trained, tmp_path):
    """Issue 10: the error suggested --skip-bad-images, which train.evaluate did not have."""
    root, checkpoint = trained
    data = tmp_path / "data"
    data.mkdir()
    for folder in root.iterdir():
        (data / folder.name).mkdir()
        for image in folder.iterdir():
            (data / folder.name / image.name).write_bytes(image.read_bytes())
    (data / "100" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    from train.imagefolder import DataError

    with pytest.raises(DataError, match="--skip-bad-images"):
        evaluate_checkpoint(checkpoint, str(data))
    args = get_args_parser().parse_args(
        ["--checkpoint", str(checkpoint), "--data", str(data), "--skip-bad-images"]
    )
    assert args.skip_bad_images is True
    assert main(args) == 0
    result = evaluate_checkpoint(checkpoint, str(data), skip_bad_images=True)
    assert result["images"] == 10


def test_own_split_is_scored_with_the_recorded_images(trained):
    _, checkpoint = trained
    result = evaluate_checkpoint(checkpoint, split="test")
    assert result["images"] == 2 and 0.0 <= result["acc"] <= 1.0
