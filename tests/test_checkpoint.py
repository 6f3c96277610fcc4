"""Protects the checkpoint format: weights-only loadable, validated, and written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from train.atomic import atomic_open, atomic_path
from train.checkpoint import (
    FACTORY,
    FORMAT_VERSION,
    REQUIRED_KEYS,
    CheckpointError,
    build_from_checkpoint,
    load_checkpoint,
    model_spec,
    save_checkpoint,
    validate,
)
from train.models import build_model

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


def _checkpoint(arch: str = "bn-lenet", seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = build_model(arch, 2)
    return {
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model": model_spec(arch, 2),
        "class_names": ["1", "100"],
        "input_size": [32, 32],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "folded": False,
        "state_dict": model.state_dict(),
        "metrics": {"history": [], "step_losses": [], "test_acc": None},
        "split": {"train": ["1/a.jpg"], "valid": ["1/b.jpg"], "test": ["1/c.jpg"]},
        "data": "synthetic",
        "args": {"seed": seed},
    }


def _one_line(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message
    assert "\x1b" not in message, "terminal escape codes leaked into the message"
    return message


@pytest.mark.parametrize("arch", ["lenet", "bn-lenet"])
def test_round_trip_is_weights_only_and_rebuilds_the_model(tmp_path, arch):
    path = tmp_path / "model.pt"
    ckpt = _checkpoint(arch)
    save_checkpoint(ckpt, path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(ckpt)
    loaded = load_checkpoint(path)
    assert loaded["model"] == {"factory": FACTORY, "kwargs": {"arch": arch, "num_classes": 2}}
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value)
    model = build_from_checkpoint(loaded)
    assert not model.training
    x = torch.randn(2, 3, 32, 32)
    reference = build_model(arch, 2)
    reference.load_state_dict(ckpt["state_dict"])
    torch.testing.assert_close(model(x), reference.eval()(x), atol=0, rtol=0)


def test_the_factory_named_in_the_checkpoint_rebuilds_the_network():
    module_name, function = FACTORY.split(":")
    factory = getattr(__import__(module_name, fromlist=[function]), function)
    model = factory(**model_spec("bn-lenet", 3)["kwargs"])
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
    ckpt = _checkpoint()
    ckpt["extra"] = payload()
    torch.save(ckpt, path)
    CODE_RAN.clear()
    with pytest.raises(CheckpointError, match="weights_only=True") as e:
        load_checkpoint(path)
    message = _one_line(e, path)
    assert payload.__name__ in message or "_record" in message, "say what was refused"
    assert CODE_RAN == []


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_format_version(tmp_path, version):
    path = tmp_path / "model.pt"
    save_checkpoint({**_checkpoint(), "format_version": version}, path)
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
    ckpt = _checkpoint()
    del ckpt[key]
    save_checkpoint(ckpt, path)
    with pytest.raises(CheckpointError, match=f"lacks key.*{key}") as e:
        load_checkpoint(path)
    _one_line(e, path)


@pytest.mark.parametrize("arch", ["resnet18", "LeNet", ""])
def test_unknown_arch(arch):
    with pytest.raises(CheckpointError, match="unknown arch"):
        validate({**_checkpoint(), "arch": arch})


def test_a_folded_checkpoint_is_not_rebuilt_as_unfolded():
    with pytest.raises(CheckpointError, match="folded"):
        build_from_checkpoint({**_checkpoint(), "folded": True})


def test_load_maps_to_the_requested_device(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(_checkpoint(), path)
    loaded = load_checkpoint(path, map_location=torch.device("cpu"))
    assert all(t.device.type == "cpu" for t in loaded["state_dict"].values())


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
        load_checkpoint(path)["state_dict"]["fc1.weight"],
        _checkpoint(seed=0)["state_dict"]["fc1.weight"],
    )


def test_save_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "nested" / "model.pt"  # missing parents are created
    save_checkpoint(_checkpoint(seed=0), path)
    save_checkpoint(_checkpoint(seed=1), path)
    assert torch.equal(
        load_checkpoint(path)["state_dict"]["fc1.weight"],
        _checkpoint(seed=1)["state_dict"]["fc1.weight"],
    )
    assert _leftovers(path.parent, "model.pt") == []


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
