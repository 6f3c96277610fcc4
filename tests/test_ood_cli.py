"""python -m train.ood end to end on a tiny trained model, and the training hook that feeds it.

Protects: ``python -m train`` stores a weights-only-loadable ``ood`` entry; the CLI writes
ood.json / ood.md / ood.png with every method asked for; outlier exposure flattens the softmax on
negatives; bad input is one line on stderr with exit code 2.
"""

from __future__ import annotations

import json

import pytest
import torch

from train.ood.__main__ import cli
from train.ood.fit import DEFAULT_METHOD
from train.preprocess import MEAN, STD, normalize
from train.trainer import TrainConfig, fit


@pytest.fixture(scope="module")
def checkpoint(module_image_folder, tmp_path_factory):
    data = module_image_folder(per_class=12, seed=3)
    run = tmp_path_factory.mktemp("ood-run")
    out = run / "bn-lenet.pt"
    cfg = TrainConfig(data=str(data), epochs=3, batch_size=4, device="cpu", out=str(out))
    cfg.outlier_exposure, cfg.synthetic_dir = True, str(run / "data")  # near negatives go here
    fit(cfg)
    return out


def test_training_stores_a_calibrated_ood_entry_loadable_weights_only(checkpoint):
    raw = torch.load(checkpoint, weights_only=True)
    ood = raw["ood"]
    assert ood["method"] == DEFAULT_METHOD and ood["format"] == 1
    assert all(isinstance(v, torch.Tensor) for v in ood["stats"].values())
    assert ood["calibration"]["split"] == "valid"
    assert ood["calibration"]["false_reject"] <= ood["calibration"]["target_false_reject"]
    assert torch.isfinite(torch.tensor(ood["threshold"]))


def test_cli_writes_json_markdown_and_png_for_every_method(checkpoint, tmp_path, capsys):
    extra = tmp_path / "extra"
    extra.mkdir()
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (40, 30), (20 * i, 200, 30)).save(extra / f"{i}.png")
    out = tmp_path / "report"
    argv = ["--checkpoint", str(checkpoint), "--out", str(out), "--per-kind", "3", "--no-near"]
    argv += ["--methods", "msp,knn,mahalanobis+msp", "--out-dir", str(extra)]
    assert cli(argv) == 0
    report = json.loads((out / "ood.json").read_text())
    # the stored method is measured too, as stored
    assert set(report["methods"]) == {"msp", "knn", "mahalanobis+msp", DEFAULT_METHOD}
    for r in report["methods"].values():
        assert set(r["out"]) == {"far", "extra"}
        assert r["out"]["far"]["images"] == 3 * len(r["out"]["far"]["kinds"])
        assert 0.0 <= r["out"]["far"]["auroc"] <= 1.0
        assert set(r["in"]) == {"valid", "test"}
    table = (out / "ood.md").read_text()
    assert table.count("\n| ") >= 4 and "far AUROC" in table
    assert (out / "ood.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--checkpoint", "missing.pt"], "checkpoint not found"),
        (["--methods", "softmax"], "unknown OOD method"),
        (["--per-kind", "0"], "--per-kind"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, match, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_outlier_exposure_pushes_negatives_towards_a_uniform_softmax(tiny_image_folder):
    """The engine's OE term works: after training with it, negatives get flatter softmaxes."""
    from train.dataset import load_images
    from train.engine import train_one_epoch
    from train.imagefolder import scan_image_folder
    from train.models import build_model
    from train.ood.sets import training_negatives

    files = scan_image_folder(tiny_image_folder(per_class=16, seed=4))
    data = load_images(files, list(files.paths))
    negatives = training_negatives(per_kind=6)
    confidence = {}
    for use in (False, True):
        torch.manual_seed(0)
        model = build_model("bn-lenet", 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        for _ in range(6):
            train_one_epoch(
                model,
                data,
                opt,
                batch_size=8,
                generator=g,
                mean=MEAN,
                std=STD,
                negatives=negatives if use else None,
            )
        with torch.no_grad():
            probs = model.eval()(normalize(negatives, MEAN, STD)).softmax(dim=1)
        confidence[use] = probs.amax(dim=1).mean().item()
    assert confidence[True] < confidence[False] - 0.05, confidence
    assert confidence[True] < 0.75, confidence


def test_training_negatives_share_no_image_with_the_evaluation_sets():
    from train.ood.sets import far_ood, training_negatives

    negatives = training_negatives(per_kind=20).flatten(1)
    evaluation = torch.cat(list(far_ood(per_kind=20).values())).flatten(1)
    same = (negatives[:, None, :] == evaluation[None, :, :]).all(dim=2)
    # flat colours could collide by chance only with p ~ 1e-5; none may be shared
    assert not bool(same.any())
