"""The checkpoint format: a plain, versioned dict that rebuilds the model on its own.

Loadable with ``torch.load(path, weights_only=True)``: only tensors, numbers, strings, lists
and dicts, never pickled code. Keys (``format_version`` 1):

- ``arch``, ``model`` ({"factory": "module:function", "kwargs": {...}}): how to rebuild the
  network without outside knowledge (bnfold and export call the factory).
- ``class_names``, ``input_size`` [H, W], ``mean``, ``std``: what the demo needs to feed it.
- ``state_dict``, ``folded`` (False here; True in checkpoints written by ``python -m bnfold``).
- ``metrics``: {"history": [per-epoch train/valid loss/acc], "test_acc": float | None}.
- ``split`` ({"train"|"valid"|"test": [paths relative to the data folder]}), ``data``
  (the data folder, or "synthetic"), ``data_dir`` (the folder actually read), ``args``.
- ``epoch`` (completed epochs), ``optimizer``, ``scheduler``, ``rng``: for ``--resume``.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from train.atomic import atomic_path
from train.models import ARCHS, build_model

FORMAT_VERSION = 1
FACTORY = "train.models:build_model"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch bolds part of its weights-only refusal
REQUIRED_KEYS = (
    "format_version",
    "arch",
    "class_names",
    "input_size",
    "mean",
    "std",
    "state_dict",
    "metrics",
    "split",
    "data",
    "args",
)


class CheckpointError(ValueError):
    """A file is missing, not a checkpoint, or a checkpoint this version cannot use."""


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    """Write ``ckpt`` atomically: killing the process at any moment never truncates ``path``."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by ``python -m train``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train one with: python -m train)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} was refused by torch.load(weights_only=True): it holds pickled code or is "
            f"not a checkpoint ({_unpickling_reason(e)})"
        ) from e
    except Exception as e:
        # Bytes that are not a checkpoint reach torch's restricted unpickler as arbitrary
        # opcodes, which fail with KeyError, IndexError, struct.error, ... not only the types
        # a zip reader raises; every one of them means "not a checkpoint" here.
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (or it is truncated): {type(e).__name__}"
        ) from e
    validate(ckpt, path)
    return ckpt


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's multi-line weights-only refusal that says what was refused."""
    lines = [_ANSI.sub("", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(error).__name__
    reason = next((line for line in lines if "WeightsUnpickler error:" in line), lines[0])
    reason = reason.removeprefix("WeightsUnpickler error:").strip()
    return reason.split(". ")[0][:160]  # "Unsupported global: GLOBAL x.Y was not an allowed ..."


def validate(ckpt: Any, path: str | Path = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` is a format this version understands."""
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not an rmb-bnfold checkpoint (no format_version)")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {ckpt['format_version']!r}; this version reads "
            f"{FORMAT_VERSION}: retrain with python -m train"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks key(s) {', '.join(missing)}: retrain it")
    if ckpt["arch"] not in ARCHS:
        raise CheckpointError(
            f"{path} has unknown arch {ckpt['arch']!r}; known: {', '.join(ARCHS)}"
        )


def model_spec(arch: str, num_classes: int) -> dict[str, Any]:
    """The ``model`` entry: the factory that rebuilds this network and its arguments."""
    return {"factory": FACTORY, "kwargs": {"arch": arch, "num_classes": num_classes}}


def build_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """The unfolded network of a training checkpoint, weights loaded, in eval mode."""
    if ckpt.get("folded"):
        raise CheckpointError(
            "this checkpoint holds a folded model: load it with bnfold.checkpoint.load_model"
        )
    model = build_model(ckpt["arch"], len(ckpt["class_names"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
