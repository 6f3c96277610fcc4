"""python -m train.ood end to end on a tiny trained model, and the training hook that feeds it.

Protects: ``python -m train`` stores a weights-only-loadable ``ood`` entry; the CLI writes
ood.json / ood.md / ood.png with every method asked for; flat and noise images are flagged by
the stored scorer; bad input is one line on stderr with exit code 2.
"""

from __future__ import annotations

import json

import pytest
import torch

from train.checkpoint import build_from_checkpoint, load_checkpoint
from train.ood.__main__ import cli
from train.ood.fit import DEFAULT_METHOD
from train.ood.scorer import OODScorer, WithOOD
from train.trainer import TrainConfig, fit
from train.transforms import normalize


@pytest.fixture(scope="module")
def checkpoint(module_image_folder, tmp_path_factory):
    data = module_image_folder(per_class=12, seed=3)
    out = tmp_path_factory.mktemp("ood-run") / "bn-lenet.pt"
    fit(TrainConfig(data=str(data), epochs=3, batch_size=4, device="cpu", out=str(out)))
    return out


def test_training_stores_a_calibrated_ood_entry_loadable_weights_only(checkpoint):
    raw = torch.load(checkpoint, weights_only=True)
    ood = raw["ood"]
    assert ood["method"] == DEFAULT_METHOD and ood["format"] == 1
    assert all(isinstance(v, torch.Tensor) for v in ood["stats"].values())
    assert ood["calibration"]["split"] == "valid"
    assert ood["calibration"]["false_reject"] <= ood["calibration"]["target_false_reject"]
    assert torch.isfinite(torch.tensor(ood["threshold"]))


def _flat(rgb: tuple[int, int, int], n: int = 4) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(n, 3, 32, 32).clone()


def test_blank_green_and_noise_images_are_flagged_unknown(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    model = WithOOD(build_from_checkpoint(ckpt), OODScorer.from_state(ckpt["ood"])).eval()
    noise = torch.randint(0, 256, (8, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    batches = {
        "white": _flat((255, 255, 255)),
        "black": _flat((0, 0, 0)),
        "green": _flat((40, 160, 60)),
        "noise": noise.to(torch.uint8),
    }
    with torch.no_grad():
        for name, images in batches.items():
            _, score = model(normalize(images, ckpt["mean"], ckpt["std"]))
            assert bool((score > ckpt["ood"]["threshold"]).all()), f"{name}: {score.tolist()}"


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
