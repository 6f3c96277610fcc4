"""The checkpoint record: one typed, validated view of a ``python -m train`` checkpoint file.

On disk a checkpoint is a plain dict, loadable with ``torch.load(path, weights_only=True)``
(tensors, numbers, strings, lists and dicts, never pickled code). :class:`Checkpoint` is that
dict checked once, at the edge, so no caller indexes raw keys. ``format_version`` 1 entries:

- ``arch``, ``model`` ({"factory": "module:function", "kwargs": {...}}): how to rebuild the
  network from the checkpoint alone. Only factories on an allow-list are ever imported and
  called (a factory name is code: ``"os:system"`` would run a shell command).
- ``class_names``, ``input_size`` [H, W], ``mean``, ``std``: what preprocessing needs.
- ``state_dict``; ``folded`` (True in checkpoints written by ``python -m bnfold``, whose
  ``state_dict`` is the folded structure's) and ``fold_report``.
- ``metrics``, ``split``, ``data``, ``data_dir``, ``args``: results and provenance.
- ``epoch``, ``optimizer``, ``scheduler``, ``rng``: training state for ``--resume``; ``ema``
  ({"decay", "n_averaged", "live"}) too when ``state_dict`` is a moving average of the
  weights, ``live`` being the optimiser's own.
- ``ood``: parameters of an out-of-distribution scorer, or absent; carried through unchanged.

A folded checkpoint is loaded by rebuilding the unfolded network, folding it (the structure
depends on the architecture, not the values) and loading the stored weights strictly into that.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bnfold.atomic import atomic_path
from bnfold.report import FoldReport

__all__ = [
    "DEFAULT_FACTORIES",
    "FORMAT_VERSION",
    "TRAIN_FACTORY",
    "Checkpoint",
    "CheckpointError",
    "ModelSpec",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

FORMAT_VERSION = 1
TRAIN_FACTORY = "train.models:build_model"
DEFAULT_FACTORIES = (TRAIN_FACTORY,)
Factories = Iterable[str] | Mapping[str, Callable[..., nn.Module]]
REQUIRED_KEYS = (
    "format_version",
    "arch",
    "model",
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
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch bolds part of its weights-only refusal


class CheckpointError(ValueError):
    """A file is missing, not a checkpoint, or a checkpoint this version cannot use."""


@dataclass(frozen=True)
class ModelSpec:
    """The function that builds the network ("module:function") and its keyword arguments."""

    factory: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """A validated checkpoint; see the module docstring for what each field means."""

    arch: str
    model: ModelSpec
    class_names: tuple[str, ...]
    input_size: tuple[int, int]  # (height, width)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    state_dict: dict[str, Tensor]
    folded: bool = False
    fold_report: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    split: dict[str, list[str]] = field(default_factory=dict)
    data: str = ""
    data_dir: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: Any = None
    ema: dict[str, Any] | None = None
    ood: dict[str, Any] | None = None

    def replace(self, **changes: Any) -> Checkpoint:
        """A copy with ``changes`` applied (the record itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The on-disk form: plain types only, absent optional entries left out."""
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, ModelSpec):
                value = {"factory": value.factory, "kwargs": dict(value.kwargs)}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: Any, source: str | Path = "checkpoint") -> Checkpoint:
        """Validate ``raw`` (read from ``source``); :class:`CheckpointError` if unusable."""
        if not isinstance(raw, dict) or "format_version" not in raw:
            raise CheckpointError(f"{source} is not an rmb-bnfold checkpoint (no format_version)")
        if raw["format_version"] != FORMAT_VERSION:
            raise CheckpointError(
                f"{source} has format_version {raw['format_version']!r}; this version reads "
                f"{FORMAT_VERSION}: retrain with python -m train"
            )
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise CheckpointError(f"{source} lacks key(s) {', '.join(missing)}: retrain it")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in raw if k not in names and k != "format_version")
        if unknown:
            raise CheckpointError(
                f"{source} has unknown key(s) {', '.join(map(str, unknown))}: it was written by "
                "another version of rmb-bnfold"
            )
        try:
            values = {k: v for k, v in raw.items() if k in names}
            values["model"] = _model_spec(raw["model"])
            values["class_names"] = _strings(raw["class_names"])
            values["input_size"] = _size(raw["input_size"])
            values["mean"], values["std"] = _stats(raw["mean"], raw["std"])
            values["state_dict"] = _state_dict(raw["state_dict"])
            if raw.get("ema") is not None:
                values["ema"] = _ema(raw["ema"])
            if not isinstance(raw.get("folded", False), bool):
                raise ValueError("'folded' must be true or false")
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: {error}") from error

    def build_model(self, factories: Factories = (), *, allow_folded: bool = True) -> nn.Module:
        """The network, weights loaded, in eval mode (the folded structure if ``folded``).

        ``factories`` adds allowed factory names (or a name → function registry) to
        :data:`DEFAULT_FACTORIES`; ``allow_folded=False`` refuses a folded checkpoint, for
        callers that need the unfolded network (export, the demo's reference).
        """
        if self.folded and not allow_folded:
            raise CheckpointError(
                "this checkpoint holds a folded model (written by python -m bnfold): use the "
                "training checkpoint it came from"
            )
        model = _call_factory(self.model, factories).eval()
        if self.folded:
            from bnfold.torch_fold import fold

            model = fold(model).model
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise CheckpointError(
                f"the checkpoint's state_dict does not fit the model its factory builds ({first})"
            ) from error
        return model.eval()

    def folded_twin(self, folded_model: nn.Module, report: FoldReport) -> Checkpoint:
        """This checkpoint with ``folded_model``'s weights and the report, minus resume state."""
        state = {k: v.detach().cpu().clone() for k, v in folded_model.state_dict().items()}
        return self.replace(
            folded=True,
            state_dict=state,
            fold_report=report.to_dict(),
            optimizer=None,
            scheduler=None,
            rng=None,
            ema=None,
        )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate the checkpoint at ``path`` (no model is built, no code is imported)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train one with: python -m train)")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path} was refused by torch.load(weights_only=True): it holds pickled code or is "
            f"not a checkpoint ({_unpickling_reason(error)})"
        ) from error
    except Exception as error:
        # Bytes that are not a checkpoint reach torch's restricted unpickler as arbitrary
        # opcodes, which fail with KeyError, IndexError, struct.error, ... besides the zip
        # reader's errors: every one of them means "not a checkpoint" here.
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (or it is truncated): {type(error).__name__}"
        ) from error
    return Checkpoint.from_dict(raw, path)


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> None:
    """Write ``ckpt`` atomically: killing the process at any moment never truncates ``path``."""
    with atomic_path(path) as tmp:
        torch.save(ckpt.to_dict(), tmp)


def load_model(path: str | Path, factories: Factories = ()) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model stored at ``path``; return ``(model in eval mode, checkpoint)``."""
    ckpt = load_checkpoint(path)
    try:
        return ckpt.build_model(factories), ckpt
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from error


def _unpickling_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's multi-line weights-only refusal that says what was refused."""
    lines = [_ANSI.sub("", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(error).__name__
    reason = next((line for line in lines if "WeightsUnpickler error:" in line), lines[0])
    reason = reason.removeprefix("WeightsUnpickler error:").strip()
    return reason.split(". ")[0][:160]  # "Unsupported global: GLOBAL x.Y was not an allowed ..."


def _model_spec(spec: Any) -> ModelSpec:
    if not (isinstance(spec, dict) and isinstance(spec.get("factory"), str)):
        raise ValueError("its 'model' entry must be {'factory': 'module:function', 'kwargs': {}}")
    kwargs = spec.get("kwargs", {})
    module_name, sep, function_name = spec["factory"].partition(":")
    if not (sep and module_name and function_name) or not isinstance(kwargs, dict):
        raise ValueError(f"model factory {spec['factory']!r} is not 'module:function' with kwargs")
    return ModelSpec(spec["factory"], dict(kwargs))


def _strings(values: Any) -> tuple[str, ...]:
    if not (
        isinstance(values, list | tuple) and values and all(isinstance(v, str) for v in values)
    ):
        raise ValueError("'class_names' must be a non-empty list of strings")
    return tuple(values)


def _size(values: Any) -> tuple[int, int]:
    ok = isinstance(values, list | tuple) and len(values) == 2
    if not (ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)):
        raise ValueError(f"'input_size' must be [height, width] in pixels, not {values!r}")
    return int(values[0]), int(values[1])


def _stats(mean: Any, std: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    def floats(name: str, values: Any) -> tuple[float, ...]:
        ok = isinstance(values, list | tuple) and len(values) == 3
        if not (ok and all(isinstance(v, int | float) and math.isfinite(v) for v in values)):
            raise ValueError(f"{name!r} must be three finite numbers (R, G, B), not {values!r}")
        return tuple(float(v) for v in values)

    out_std = floats("std", std)
    if min(out_std) <= 0:
        raise ValueError(f"'std' must be positive, not {list(out_std)}")
    return floats("mean", mean), out_std


def _ema(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not {"decay", "n_averaged", "live"} <= set(raw):
        raise ValueError("'ema' must be a dict with decay, n_averaged and live")
    if not isinstance(raw["n_averaged"], int) or raw["n_averaged"] < 0:
        raise ValueError("'ema' n_averaged must be a non-negative integer")
    return {**raw, "live": _state_dict(raw["live"])}


def _state_dict(values: Any) -> dict[str, Tensor]:
    if not (isinstance(values, dict) and all(isinstance(v, Tensor) for v in values.values())):
        raise ValueError("'state_dict' must map parameter names to tensors")
    return values


def _allowed_factory(name: str, factories: Factories) -> Callable[..., nn.Module] | None:
    """The registered function for ``name``, None to import it; refuse names not allowed.

    Checked before any import: importing a module runs its code, and a factory name is just a
    string in a file (``"os:system"`` with ``{"command": ...}`` would run a shell command).
    """
    extra = (factories,) if isinstance(factories, str) else tuple(factories)
    allowed = {*DEFAULT_FACTORIES, *extra}
    if name not in allowed:
        raise CheckpointError(
            f"model factory {name!r} is not on the allow-list ({', '.join(sorted(allowed))}): "
            f"refused without importing it; allow it (python -m bnfold --allow-factory {name}) "
            "only for a checkpoint you trust"
        )
    return factories.get(name) if isinstance(factories, Mapping) else None


def _call_factory(spec: ModelSpec, factories: Factories) -> nn.Module:
    function = _allowed_factory(spec.factory, factories)
    module_name, _, function_name = spec.factory.partition(":")
    try:
        if function is None:
            function = getattr(importlib.import_module(module_name), function_name)
    except ImportError as error:
        raise CheckpointError(
            f"cannot import {module_name!r} for model factory {spec.factory!r}: {error} (install "
            "the package that defines it)"
        ) from error
    except AttributeError as error:
        raise CheckpointError(f"{module_name!r} has no {function_name!r}") from error
    try:
        model = function(**spec.kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{spec.factory}(**{spec.kwargs!r}) failed: {error}") from error
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{spec.factory} returned {type(model).__name__}, not an nn.Module")
    return model
