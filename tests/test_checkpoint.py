"""Protects the checkpoint record (bnfold.checkpoint): weights-only loadable, validated, typed,
written atomically, and never running code a file names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from factories import checkpoint_dict

from bnfold.checkpoint import (
    FORMAT_VERSION,
    REQUIRED_KEYS,
    TRAIN_FACTORY,
    Checkpoint,
    CheckpointError,
    ModelSpec,
    load_checkpoint,
    save_checkpoint,
)
from train.atomic import atomic_open, atomic_path
from train.models import build_model, model_spec

CODE_RAN: list[str] = []


def _record(what: str) -> str:
    CODE_RAN.append(what)
    return what


class Payload:
    """A plain object: unpickling it needs this module's code, which weights_only refuses."""

    def __init__(self) -> None:
        self.value = 1


class Exploit:
    """Unpickling this calls a function: exactly what weights_only exists to stop."""

    def __reduce__(self):
        return (_record, ("exploit ran",))


def _checkpoint(arch: str = "bn-lenet", seed: int = 0, **entries) -> Checkpoint:
    return Checkpoint.from_dict(checkpoint_dict(arch, seed, **entries))


def _one_line(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    assert "\x1b" not in message, "terminal escape codes leaked into the message"
    return message


@pytest.mark.parametrize("arch", ["lenet", "bn-lenet"])
def test_round_trip_is_weights_only_typed_and_rebuilds_the_model(tmp_path, arch):
    path = tmp_path / "model.pt"
    raw = checkpoint_dict(arch, ood={"kind": "energy", "threshold": 1.5})
    save_checkpoint(Checkpoint.from_dict(raw), path)
    on_disk = torch.load(path, weights_only=True)
    assert set(on_disk) == set(raw) | {"epoch"}  # the record fills in defaults
    loaded = load_checkpoint(path)
    assert loaded.model == ModelSpec(TRAIN_FACTORY, {"arch": arch, "num_classes": 2})
    assert loaded.class_names == ("1", "100") and loaded.input_size == (32, 32)
    assert loaded.mean == (0.485, 0.456, 0.406) and loaded.std == (0.229, 0.224, 0.225)
    assert loaded.ood == {"kind": "energy", "threshold": 1.5}, "ood is carried unchanged"
    for key, value in raw["state_dict"].items():
        assert torch.equal(loaded.state_dict[key], value)
    model = loaded.build_model()
    assert not model.training
    x = torch.randn(2, 3, 32, 32)
    reference = build_model(arch, 2)
    reference.load_state_dict(raw["state_dict"])
    torch.testing.assert_close(model(x), reference.eval()(x), atol=0, rtol=0)


def test_the_record_is_frozen_and_replace_copies():
    ckpt = _checkpoint()
    with pytest.raises(AttributeError):
        ckpt.epoch = 3
    assert ckpt.replace(epoch=3).epoch == 3 and ckpt.epoch == 0
    assert ckpt.ood is None and "ood" not in ckpt.to_dict(), "absent stays absent on disk"


def test_the_factory_named_in_the_checkpoint_rebuilds_the_network():
    module_name, function = TRAIN_FACTORY.split(":")
    factory = getattr(__import__(module_name, fromlist=[function]), function)
    model = factory(**model_spec("bn-lenet", 3).kwargs)
    assert model.fc3.out_features == 3
    assert model.batch_norm


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_no_file(tmp_path, kind):
    path = tmp_path / "model.pt"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(CheckpointError, match="not found") as e:
        load_checkpoint(path)
    _one_line(e, path)


def _truncated(tmp_path: Path) -> bytes:
    save_checkpoint(_checkpoint(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is not a checkpoint\n" * 4,  # torch's unpickler fails with a KeyError
        b"\x80\x02garbage",
        b"PK\x03\x04 looks like a zip but is not",
        "truncated",
    ],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(_truncated(tmp_path) if content == "truncated" else content)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    _one_line(e, path)


@pytest.mark.parametrize("payload", [Payload, Exploit])
def test_pickled_code_is_refused_and_never_run(tmp_path, payload):
    path = tmp_path / "model.pt"
    torch.save(checkpoint_dict(extra=payload()), path)
    CODE_RAN.clear()
    with pytest.raises(CheckpointError, match="weights_only=True") as e:
        load_checkpoint(path)
    message = _one_line(e, path)
    assert payload.__name__ in message or "_record" in message, "say what was refused"
    assert CODE_RAN == []


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_format_version(tmp_path, version):
    path = tmp_path / "model.pt"
    torch.save(checkpoint_dict(format_version=version), path)
    with pytest.raises(CheckpointError, match="format_version") as e:
        load_checkpoint(path)
    _one_line(e, path)


@pytest.mark.parametrize("obj", [[1, 2], {"state_dict": {}}, torch.zeros(2)])
def test_not_an_rmb_checkpoint(tmp_path, obj):
    path = tmp_path / "model.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="no format_version") as e:
        load_checkpoint(path)
    _one_line(e, path)


@pytest.mark.parametrize("key", REQUIRED_KEYS[1:])
def test_missing_key(tmp_path, key):
    path = tmp_path / "model.pt"
    raw = checkpoint_dict()
    del raw[key]
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=f"lacks key.*{key}") as e:
        load_checkpoint(path)
    _one_line(e, path)


BAD_ENTRIES = {
    "unknown key": ({"learning_rate": 0.1}, "unknown key"),
    "class names": ({"class_names": "1,100"}, "class_names"),
    "input size": ({"input_size": [32]}, "input_size"),
    "negative size": ({"input_size": [32, -1]}, "input_size"),
    "mean length": ({"mean": [0.5]}, "'mean'"),
    "nan std": ({"std": [0.2, float("nan"), 0.2]}, "'std'"),
    "zero std": ({"std": [0.2, 0.0, 0.2]}, "positive"),
    "state dict": ({"state_dict": {"w": [1.0]}}, "state_dict"),
    "model spec": ({"model": "train.models:build_model"}, "'model' entry"),
    "factory": ({"model": {"factory": "build_model", "kwargs": {}}}, "module:function"),
    "folded": ({"folded": "yes"}, "folded"),
    "ema keys": ({"ema": {"decay": 0.9}}, "'ema' must be a dict"),
    "ema count": ({"ema": {"decay": 0.9, "n_averaged": -1, "live": {}}}, "n_averaged"),
    "ema live": ({"ema": {"decay": 0.9, "n_averaged": 3, "live": {"w": 1.0}}}, "state_dict"),
}


@pytest.mark.parametrize("name", list(BAD_ENTRIES))
def test_malformed_entries_are_one_line_errors(tmp_path, name):
    entries, reason = BAD_ENTRIES[name]
    path = tmp_path / "model.pt"
    torch.save(checkpoint_dict(**entries), path)
    with pytest.raises(CheckpointError, match=reason) as e:
        load_checkpoint(path)
    _one_line(e, path)


@pytest.mark.parametrize("arch", ["resnet18", "LeNet", ""])
def test_unknown_arch_is_refused_when_building(arch):
    ckpt = _checkpoint()
    ckpt = ckpt.replace(model=ModelSpec(TRAIN_FACTORY, {"arch": arch, "num_classes": 2}))
    with pytest.raises(CheckpointError, match="unknown arch"):
        ckpt.build_model()


def test_a_folded_checkpoint_is_not_rebuilt_as_unfolded():
    with pytest.raises(CheckpointError, match="folded"):
        _checkpoint(folded=True).build_model(allow_folded=False)


def test_load_maps_to_the_requested_device(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(), path)
    loaded = load_checkpoint(path, map_location=torch.device("cpu"))
    assert all(t.device.type == "cpu" for t in loaded.state_dict.values())


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_a_crash_mid_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(seed=0), path)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(before[: len(before) // 3])  # half a file, then the process "dies"
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(_checkpoint(seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, "model.pt") == []
    assert torch.equal(
        load_checkpoint(path).state_dict["fc1.weight"],
        _checkpoint(seed=0).state_dict["fc1.weight"],
    )


def test_save_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(seed=0), path)
    save_checkpoint(_checkpoint(seed=1), path)
    assert torch.equal(
        load_checkpoint(path).state_dict["fc1.weight"],
        _checkpoint(seed=1).state_dict["fc1.weight"],
    )
    assert _leftovers(path.parent, "model.pt") == []


def test_format_version_is_the_one_written(tmp_path):
    save_checkpoint(_checkpoint(), tmp_path / "model.pt")
    assert torch.load(tmp_path / "model.pt", weights_only=True)["format_version"] == FORMAT_VERSION


def test_atomic_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "report.json") as fh:
            fh.write("{}")
        with atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(umask)
    for name in ("report.json", "model.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_atomic_open_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(ValueError, match="boom"), atomic_open(path) as fh:
        fh.write("new, half-written")
        raise ValueError("boom")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path, "metrics.json") == []
    with atomic_open(path) as fh:
        fh.write("new")
    assert path.read_text() == "new"


def test_the_payloads_really_need_code_to_load(tmp_path):
    # Guards the refusal tests above: an unrestricted load does run Exploit's code.
    path = tmp_path / "evil.pt"
    torch.save({"x": Exploit()}, path)
    CODE_RAN.clear()
    torch.load(path, weights_only=False)
    assert CODE_RAN == ["exploit ran"]
    CODE_RAN.clear()
