"""Protects ``fit``: a self-describing checkpoint, its reports, determinism and exact resume."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from bnfold.checkpoint import TRAIN_FACTORY, ModelSpec, load_checkpoint, save_checkpoint
from train import recipe, trainer
from train.dataset import ImageSet
from train.engine import NonFiniteLossError, batches, evaluate, train_one_epoch
from train.imagefolder import DataError, scan_image_folder
from train.models import build_model
from train.preprocess import MEAN, STD, normalize
from train.split import stratified_split
from train.trainer import TrainConfig, fit, prepare_data, resolve_device

EPOCHS = 2
# 8 + 9 images: 6 + 7 train (batches of 4, 4, 4 and a dropped 1), 1 + 1 valid, 1 + 1 test.
PER_CLASS = (8, 9)


def _config(data, out, **overrides) -> TrainConfig:
    base = {"data": str(data), "epochs": EPOCHS, "batch_size": 4, "device": "cpu", "out": str(out)}
    # The resume tests stop a run early by asking for fewer epochs, which the step schedule
    # allows; the default cosine spans all epochs (resuming it with other epochs is refused).
    base["schedule"] = "step"
    return TrainConfig(**{**base, **overrides})


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.fixture(scope="module")
def data_dir(module_image_folder):
    return module_image_folder(per_class=PER_CLASS)


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    """One straight 2-epoch BN-LeNet run shared by the tests below (read-only for them)."""
    out = tmp_path_factory.mktemp("run") / "bn-lenet.pt"
    cfg = _config(data_dir, out)
    returned = fit(cfg)
    return {"cfg": cfg, "out": out, "returned": returned, "ckpt": load_checkpoint(out)}


def test_checkpoint_has_every_key_of_the_format(run, data_dir):
    ckpt, cfg = run["ckpt"], run["cfg"]
    assert ckpt.arch == "bn-lenet"
    assert ckpt.model == ModelSpec(TRAIN_FACTORY, {"arch": "bn-lenet", "num_classes": 2})
    assert ckpt.class_names == ("1", "100")
    assert ckpt.input_size == (32, 32)
    assert ckpt.mean == (0.485, 0.456, 0.406)
    assert ckpt.std == (0.229, 0.224, 0.225)
    assert ckpt.folded is False
    assert ckpt.data == str(data_dir)
    assert ckpt.args == dataclasses.asdict(cfg)
    assert ckpt.epoch == EPOCHS
    assert set(ckpt.state_dict) == set(build_model("bn-lenet", 2).state_dict())
    assert None not in (ckpt.optimizer, ckpt.scheduler, ckpt.rng)


def test_metrics_hold_one_history_entry_per_epoch(run):
    metrics = run["ckpt"].metrics
    history = metrics["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    for h in history:
        for key in ("train_loss", "train_acc", "valid_loss", "valid_acc"):
            assert isinstance(h[key], float), key
        assert 0.0 <= h["train_acc"] <= 1.0 and 0.0 <= h["valid_acc"] <= 1.0
        assert h["train_loss"] > 0 and h["valid_loss"] > 0
    assert isinstance(metrics["test_acc"], float)
    # 13 training images in batches of 4: three steps, the trailing single image dropped.
    assert [len(s) for s in metrics["step_losses"]] == [3] * EPOCHS
    for h, steps in zip(history, metrics["step_losses"], strict=True):
        assert h["train_loss"] == pytest.approx(sum(steps) / len(steps), rel=1e-6)


def test_split_is_recorded_as_relative_paths(run, data_dir):
    split = run["ckpt"].split
    files = scan_image_folder(data_dir)
    assert split == stratified_split(files, seed=run["cfg"].seed)
    assert {k: len(v) for k, v in split.items()} == {"train": 13, "valid": 2, "test": 2}
    for paths in split.values():
        for p in paths:
            assert not p.startswith("/") and (data_dir / p).is_file()


def test_returned_checkpoint_is_the_saved_one(run):
    returned, saved = run["returned"], run["ckpt"]
    assert returned.metrics == saved.metrics
    _assert_same_weights(returned.state_dict, saved.state_dict)


def test_reports_are_written_next_to_the_checkpoint(run):
    out = run["out"]
    metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    assert metrics["arch"] == "bn-lenet"
    assert metrics["history"] == run["ckpt"].metrics["history"]
    assert metrics["test_acc"] == run["ckpt"].metrics["test_acc"]
    png = out.with_suffix(".curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "bn-lenet.curves.png",
        "bn-lenet.metrics.json",
        "bn-lenet.pt",
    ]


def test_valid_acc_is_measured_on_the_valid_split(run, data_dir):
    ckpt = run["ckpt"]
    model = ckpt.build_model()
    sets = prepare_data(str(data_dir), seed=0, split=ckpt.split).sets
    last = ckpt.metrics["history"][-1]
    valid_loss, valid_acc = evaluate(model, sets["valid"], ckpt.mean, ckpt.std)
    assert last["valid_acc"] == valid_acc
    assert last["valid_loss"] == pytest.approx(valid_loss, rel=1e-6, abs=0)
    test_loss, test_acc = evaluate(model, sets["test"], ckpt.mean, ckpt.std)
    assert ckpt.metrics["test_acc"] == test_acc
    assert test_loss != pytest.approx(valid_loss, rel=1e-6), "valid and test must differ here"


def test_same_seed_gives_bit_identical_weights(run, data_dir, tmp_path):
    again = fit(_config(data_dir, tmp_path / "again.pt"))
    _assert_same_weights(again.state_dict, run["ckpt"].state_dict)
    assert again.metrics == run["ckpt"].metrics
    other = fit(_config(data_dir, tmp_path / "other.pt", seed=2))
    assert not torch.equal(other.state_dict["fc1.weight"], run["ckpt"].state_dict["fc1.weight"])


def test_the_saved_weights_are_a_moving_average_of_the_live_ones(run, data_dir, tmp_path):
    ckpt = run["ckpt"]
    assert ckpt.ema["decay"] == recipe.EMA_DECAY
    assert ckpt.ema["n_averaged"] == EPOCHS * 3  # 3 full batches of 4 per epoch
    assert not torch.equal(ckpt.state_dict["fc1.weight"], ckpt.ema["live"]["fc1.weight"])
    assert torch.equal(
        ckpt.state_dict["bn1.num_batches_tracked"], ckpt.ema["live"]["bn1.num_batches_tracked"]
    )
    plain = fit(_config(data_dir, tmp_path / "plain.pt", ema_decay=0.0))
    assert plain.ema is None
    _assert_same_weights(plain.state_dict, ckpt.ema["live"])  # same run, nothing averaged


def test_the_average_ramps_its_decay_and_copies_integer_buffers():
    update = trainer._ema_update(0.9995)
    a, c = [torch.zeros(3), torch.tensor(0)], [torch.ones(3), torch.tensor(7)]
    update(a, c, torch.tensor(0))  # decay min(0.9995, 1 / 10): 90% of the way to the new value
    torch.testing.assert_close(a[0], torch.full((3,), 0.9), rtol=0, atol=1e-7)
    assert int(a[1]) == 7
    update(a, c, torch.tensor(10**6))  # the ramp is past: decay 0.9995
    torch.testing.assert_close(a[0], torch.full((3,), 0.9 + 0.1 * 0.0005), rtol=0, atol=1e-7)


def test_resume_continues_bit_identically(run, data_dir, tmp_path):
    out = tmp_path / "resumed.pt"
    first = fit(_config(data_dir, out, epochs=1))
    assert first.epoch == 1 and len(first.metrics["history"]) == 1
    resumed = fit(_config(data_dir, out, resume=True))
    straight = run["ckpt"]
    assert resumed.epoch == EPOCHS
    _assert_same_weights(resumed.state_dict, straight.state_dict)
    for i, state in straight.optimizer["state"].items():
        assert torch.equal(
            resumed.optimizer["state"][i]["momentum_buffer"], state["momentum_buffer"]
        )
    assert torch.equal(resumed.rng, straight.rng)
    assert resumed.ema["n_averaged"] == straight.ema["n_averaged"]
    _assert_same_weights(resumed.ema["live"], straight.ema["live"])
    assert resumed.metrics == straight.metrics
    assert load_checkpoint(out).split == straight.split


def test_resume_of_a_finished_run_keeps_its_weights(run, tmp_path, data_dir):
    out = tmp_path / "done.pt"
    shutil.copy(run["out"], out)
    again = fit(_config(data_dir, out, resume=True))
    _assert_same_weights(again.state_dict, run["ckpt"].state_dict)
    assert again.metrics["history"] == run["ckpt"].metrics["history"]


def test_resume_without_a_checkpoint_starts_from_scratch(run, tmp_path, data_dir):
    fresh = fit(_config(data_dir, tmp_path / "new.pt", epochs=1, resume=True))
    assert fresh.epoch == 1
    assert fresh.metrics["history"][0] == run["ckpt"].metrics["history"][0]


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 0.1},
        {"seed": 3},
        {"model": "lenet"},
        {"batch_size": 8},
        {"init": "course"},
        {"ema_decay": 0.0},
    ],
)
def test_resume_with_different_flags_is_refused(run, tmp_path, data_dir, change):
    out = tmp_path / "model.pt"
    shutil.copy(run["out"], out)
    before = out.read_bytes()
    key = next(iter(change))
    with pytest.raises(ValueError, match=f"--resume: .* was trained with {key}=") as e:
        fit(_config(data_dir, out, epochs=3, resume=True, **change))
    assert "\n" not in str(e.value)
    assert out.read_bytes() == before


def test_resume_without_the_moving_average_state_is_refused(run, tmp_path, data_dir):
    out = tmp_path / "no-ema.pt"
    save_checkpoint(run["ckpt"].replace(ema=None), out)
    with pytest.raises(ValueError, match="lacks its moving-average state") as e:
        fit(_config(data_dir, out, epochs=3, resume=True))
    assert "\n" not in str(e.value)


def test_cosine_resume_recomputes_the_rate_and_refuses_other_epochs(tmp_path, data_dir):
    """The default cosine schedule: a resumed run trains with the rate the straight run had."""
    out = tmp_path / "cosine.pt"
    cfg = _config(data_dir, out, schedule="cosine", outlier_exposure=False)
    straight = fit(cfg)
    rates = [h["lr"] for h in straight.metrics["history"]]
    assert rates == pytest.approx([0.005, 0.0], abs=1e-12)  # 0.01 * (1 + cos(pi e / 2)) / 2
    again = fit(dataclasses.replace(cfg, resume=True))  # a finished run: nothing to train
    _assert_same_weights(again.state_dict, straight.state_dict)
    with pytest.raises(ValueError, match="trained with epochs=2"):
        fit(dataclasses.replace(cfg, resume=True, epochs=3))


def test_fit_restores_the_thread_count(tmp_path, data_dir):
    threads = torch.get_num_threads()
    fit(_config(data_dir, tmp_path / "m.pt", epochs=1, model="lenet", threads=1))
    assert torch.get_num_threads() == threads


def test_bad_data_folder_raises_before_writing(tmp_path):
    out = tmp_path / "out" / "m.pt"
    with pytest.raises(DataError, match="data folder not found"):
        fit(_config(tmp_path / "missing", out))
    assert not out.parent.exists()


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cpu"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    ("n", "batch", "sizes"),
    [(13, 4, [4, 4, 4]), (12, 4, [4, 4, 4]), (14, 4, [4, 4, 4, 2]), (1, 4, [1])],
)
def test_batches_drop_only_a_trailing_single_image(n, batch, sizes):
    out = batches(n, batch, torch.Generator().manual_seed(0))
    assert [len(b) for b in out] == sizes
    flat = torch.cat(out).tolist()
    assert len(set(flat)) == len(flat) and set(flat) <= set(range(n))


def test_evaluate_matches_a_manual_computation():
    torch.manual_seed(0)
    model = build_model("bn-lenet", 2).eval()
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 1, 0, 1])
    data = ImageSet(images, labels, [str(i) for i in range(5)])
    with torch.no_grad():
        logits = model(normalize(images, MEAN, STD))
    loss, acc = evaluate(model, data, MEAN, STD, batch_size=2)
    expected_loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert acc == (logits.argmax(1) == labels).sum().item() / 5


def test_train_one_epoch_updates_the_model_and_reports_step_losses():
    torch.manual_seed(0)
    model = build_model("bn-lenet", 2)
    before = model.fc1.weight.detach().clone()
    data = ImageSet(
        torch.randint(0, 256, (9, 3, 32, 32), dtype=torch.uint8),
        torch.tensor([0, 1] * 4 + [0]),
        [str(i) for i in range(9)],
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    stats = train_one_epoch(
        model, data, optimizer, batch_size=4, generator=generator, mean=MEAN, std=STD
    )
    assert len(stats.step_losses) == 2  # 4 + 4, the trailing single image dropped
    assert stats.loss == pytest.approx(sum(stats.step_losses) / 2, rel=1e-6)
    assert 0.0 <= stats.acc <= 1.0
    assert not torch.equal(model.fc1.weight, before)
    assert model.training


def test_a_loss_going_nan_keeps_the_last_finite_checkpoint(data_dir, tmp_path, monkeypatch):
    """Hole 2 of issue 10: training must stop on a non-finite loss, not save NaN weights."""
    out = tmp_path / "m.pt"
    fit(_config(data_dir, out, epochs=1))
    before = out.read_bytes()
    real = trainer.train_one_epoch

    def poisoned(model, *args, desc, **kwargs):
        if desc.startswith("epoch 2/"):
            with torch.no_grad():
                model.fc3.weight.fill_(float("nan"))
        return real(model, *args, desc=desc, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", poisoned)
    with pytest.raises(NonFiniteLossError, match="epoch 2: the training loss is nan") as e:
        fit(_config(data_dir, out, epochs=3, resume=True))
    assert "keeps epoch 1" in str(e.value) and "\n" not in str(e.value)
    assert out.read_bytes() == before, "the last finite checkpoint was overwritten"
    assert load_checkpoint(out).epoch == 1


def test_train_one_epoch_refuses_to_step_on_a_non_finite_loss():
    torch.manual_seed(0)
    model = build_model("lenet", 2)
    with torch.no_grad():
        model.fc1.weight.fill_(float("inf"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = ImageSet(
        torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8),
        torch.tensor([0, 1, 0, 1]),
        ["a", "b", "c", "d"],
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(NonFiniteLossError, match="step 1"):
        train_one_epoch(
            model, data, optimizer, batch_size=4, generator=torch.Generator(), mean=MEAN, std=STD
        )
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} was updated from a non-finite loss"


def test_a_killed_runs_temp_files_are_removed_on_start_and_only_those(data_dir, tmp_path):
    out = tmp_path / "m.pt"
    ours = [tmp_path / ".m.pt.0123456789ab.tmp", tmp_path / ".m.pt.ba9876543210.tmp"]
    others = [tmp_path / ".other.pt.0123456789ab.tmp", tmp_path / "m.pt.tmp", tmp_path / "x.tmp"]
    others.append(tmp_path / ".m.pt.not-hex-chars.tmp")
    for path in [*ours, *others]:
        path.write_bytes(b"half a checkpoint")
    fit(_config(data_dir, out, epochs=1, model="lenet", resume=True))
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in others)
