"""Rebuild a model from a ``python -m train`` checkpoint, and write its folded twin.

The checkpoint names the function that builds its network (``model.factory``, "module:function",
with ``model.kwargs``), so bnfold rebuilds it without importing the training code by name: only
the module the checkpoint names is imported. Loading uses ``torch.load(weights_only=True)``, so a
file holding pickled code is refused rather than run.

A folded checkpoint (``folded: True``) stores the state_dict of the folded structure. To load it,
the unfolded network is rebuilt, folded (the structure depends on the architecture, not on the
values, so the fresh running statistics give the same one) and the stored weights are loaded
strictly into that.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnfold.atomic import atomic_path
from bnfold.report import FoldReport

__all__ = ["FORMAT_VERSION", "CheckpointError", "build_model", "load_model", "read", "save_folded"]

FORMAT_VERSION = 1
RESUME_KEYS = ("optimizer", "scheduler", "rng")  # training state a folded model cannot resume


class CheckpointError(ValueError):
    """A file is missing, not a checkpoint, or a checkpoint whose model cannot be rebuilt."""


def read(path: str | Path) -> dict[str, Any]:
    """Load and sanity-check the checkpoint dict at ``path`` (no model is built)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(
            f"{path} was refused by torch.load(weights_only=True): it holds pickled code, which "
            f"bnfold does not run ({first[:160]})"
        ) from error
    except Exception as error:
        # Arbitrary bytes reach torch's restricted unpickler as random opcodes and fail with
        # KeyError, IndexError, struct.error, ... besides the zip reader's errors: all of them
        # mean "not a checkpoint" here.
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (or it is truncated): {type(error).__name__}"
        ) from error
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a python -m train checkpoint (no format_version)")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {ckpt['format_version']!r}; bnfold reads "
            f"{FORMAT_VERSION}: re-save it with a matching version of python -m train"
        )
    for key in ("model", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path} lacks the {key!r} entry: it cannot be rebuilt")
    return ckpt


def build_model(ckpt: dict[str, Any]) -> nn.Module:
    """The network of checkpoint dict ``ckpt``, weights loaded, in eval mode."""
    model = _call_factory(ckpt["model"]).eval()
    if ckpt.get("folded"):
        from bnfold.torch_fold import fold

        model = fold(model).model
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"the checkpoint's state_dict does not fit the model its factory builds ({first})"
        ) from error
    return model.eval()


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored at ``path``; return ``(model in eval mode, checkpoint dict)``."""
    ckpt = read(path)
    try:
        return build_model(ckpt), ckpt
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from error


def save_folded(
    ckpt: dict[str, Any], folded_model: nn.Module, report: FoldReport, path: str | Path
) -> None:
    """Write the folded twin of ``ckpt`` atomically to ``path``.

    Same dict minus the resume state (optimizer, scheduler, rng), with ``folded: True``, the
    folded model's ``state_dict`` and ``fold_report`` (``report.to_dict()``).
    """
    out = {key: value for key, value in ckpt.items() if key not in RESUME_KEYS}
    out["folded"] = True
    out["state_dict"] = {k: v.detach().cpu().clone() for k, v in folded_model.state_dict().items()}
    out["fold_report"] = report.to_dict()
    with atomic_path(path) as tmp:
        torch.save(out, tmp)


def _call_factory(spec: Any) -> nn.Module:
    if not (isinstance(spec, dict) and isinstance(spec.get("factory"), str)):
        raise CheckpointError(
            "its 'model' entry must be {'factory': 'module:function', 'kwargs': {...}}"
        )
    factory, kwargs = spec["factory"], spec.get("kwargs", {})
    module_name, sep, function_name = factory.partition(":")
    if not (sep and module_name and function_name) or not isinstance(kwargs, dict):
        raise CheckpointError(f"model factory {factory!r} is not 'module:function' with kwargs")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except ImportError as error:
        raise CheckpointError(
            f"cannot import {module_name!r} for model factory {factory!r}: {error} (install the "
            "package that defines it)"
        ) from error
    except AttributeError as error:
        raise CheckpointError(f"{module_name!r} has no {function_name!r} ({factory!r})") from error
    try:
        model = function(**kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{factory}(**{kwargs!r}) failed: {error}") from error
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{factory} returned {type(model).__name__}, not an nn.Module")
    return model
