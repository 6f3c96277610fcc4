"""The ways of running the network that the inference benchmark compares, and what runs one.

A :class:`Variant` names a runtime, the unfolded or folded network, a device and the options a
user would set. :func:`load` turns it into a backend once (a moved model, an ORT session); the
backend's ``bind(batch)`` gives a :class:`Runner` whose ``step()`` runs one inference on that
batch. Setup a user pays once (copies to the device, IO binding, compilation for the shape)
happens in ``bind``, not in ``step``; everything a user pays per request stays in ``step``.

CUDA is chosen at run time: a variant that cannot run here raises :class:`Unavailable` with the
reason, which the report prints in place of numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from torch import nn

UNFOLDED = "unfolded"
FOLDED = "folded"
BASELINE = "pytorch-eager/unfolded"


class Unavailable(RuntimeError):
    """This variant cannot run on this machine (or at this batch size); the message says why."""


@dataclass(frozen=True)
class TorchOptions:
    """How PyTorch runs the model.

    ``mode``: "no_grad" (plain eager under ``torch.no_grad()``), "inference_mode",
    "channels_last" (inference mode, model and input in NHWC; the input conversion is timed),
    "no_mkldnn" (inference mode with ``torch.backends.mkldnn`` off: ATen's own conv kernels),
    "jit_freeze" (``torch.jit.freeze(torch.jit.trace(...))``) or "compile" (``torch.compile``,
    inductor with ``freezing=True``, one graph per batch size). ``threads``: torch's intra-op
    thread count while this variant runs (None: the process default).
    """

    mode: str = "no_grad"
    threads: int | None = None


@dataclass(frozen=True)
class OrtOptions:
    """How onnxruntime runs the model.

    ``level``: "disabled" (ORT_DISABLE_ALL), "default" (a plain ``SessionOptions()``, which is
    ORT_ENABLE_ALL) or "all" (ORT_ENABLE_ALL, said explicitly). ``threads``: intra-op threads
    (None: ORT's default, one per physical core); with a number, inter-op threads are 1 and
    execution is sequential. ``io_binding``: input bound once as an OrtValue and the output
    written into a pre-allocated OrtValue, instead of numpy in and out on every call.
    """

    level: str = "default"
    threads: int | None = None
    io_binding: bool = False


@dataclass(frozen=True)
class Variant:
    """One way of running one of the two networks."""

    name: str
    runtime: str  # "pytorch" | "onnxruntime"
    folded: bool
    options: TorchOptions | OrtOptions
    how: str  # what a user writes to get it, for the report
    device: str = "cpu"

    @property
    def kind(self) -> str:
        return FOLDED if self.folded else UNFOLDED

    @property
    def family(self) -> str:
        """The name without the "/folded" or "/unfolded": what pairs a folded and unfolded run."""
        return self.name.rsplit("/", 1)[0]

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


def _noop() -> AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclass
class Runner:
    """One variant bound to one input batch.

    ``step()`` runs one inference and returns once the result is ready (CUDA synchronised);
    ``read()`` returns the latest result as a float32 host array (not timed); ``setting()`` is
    held around every block of calls, for process-wide settings such as torch's thread count.
    """

    step: Callable[[], None]
    read: Callable[[], np.ndarray]
    setting: Callable[[], AbstractContextManager[None]] = field(default=_noop)


class Backend(Protocol):
    def bind(self, batch: np.ndarray) -> Runner: ...


@dataclass
class Sources:
    """What every variant is built from: the two networks (eval, CPU) and their ONNX files."""

    unfolded: nn.Module
    folded: nn.Module
    files: dict[str, Path]  # "unfolded" / "folded" → .onnx

    def model(self, folded: bool) -> nn.Module:
        return self.folded if folded else self.unfolded

    def onnx(self, folded: bool) -> Path:
        return self.files[FOLDED if folded else UNFOLDED]


def _pair(family: str, runtime: str, options, how: str, device: str = "cpu") -> list[Variant]:
    return [
        Variant(f"{family}/{kind}", runtime, kind == FOLDED, options, how, device)
        for kind in (UNFOLDED, FOLDED)
    ]


def _folded(family: str, runtime: str, options, how: str, device: str = "cpu") -> Variant:
    return Variant(f"{family}/{FOLDED}", runtime, True, options, how, device)


def cpu_variants() -> list[Variant]:
    """Every CPU variant, the baseline (plain eager, unfolded) first."""
    torch_opts, ort_opts = TorchOptions, OrtOptions
    return [
        *_pair("pytorch-eager", "pytorch", torch_opts("no_grad"), "with torch.no_grad(): model(x)"),
        *_pair(
            "pytorch-eager-t1",
            "pytorch",
            torch_opts("no_grad", threads=1),
            "torch.set_num_threads(1); with torch.no_grad(): model(x)",
        ),
        *_pair(
            "pytorch-inference-mode",
            "pytorch",
            torch_opts("inference_mode"),
            "with torch.inference_mode(): model(x)",
        ),
        _folded(
            "pytorch-channels-last",
            "pytorch",
            torch_opts("channels_last"),
            "model.to(memory_format=torch.channels_last); inference mode; input converted per call",
        ),
        _folded(
            "pytorch-no-mkldnn",
            "pytorch",
            torch_opts("no_mkldnn"),
            "torch.backends.mkldnn.flags(enabled=False); inference mode",
        ),
        _folded(
            "pytorch-jit-freeze",
            "pytorch",
            torch_opts("jit_freeze"),
            "torch.jit.freeze(torch.jit.trace(model, x)) (deprecated in torch 2.x)",
        ),
        _folded(
            "pytorch-compile",
            "pytorch",
            torch_opts("compile"),
            "torch.compile(model, dynamic=False), inductor freezing=True, default threads",
        ),
        _folded(
            "pytorch-compile-t1",
            "pytorch",
            torch_opts("compile", threads=1),
            "as pytorch-compile, compiled and run with torch.set_num_threads(1)",
        ),
        *_pair(
            "ort-disabled",
            "onnxruntime",
            ort_opts("disabled"),
            "SessionOptions.graph_optimization_level = ORT_DISABLE_ALL; session.run",
        ),
        *_pair(
            "ort-default",
            "onnxruntime",
            ort_opts("default"),
            "InferenceSession(path) with default SessionOptions (ORT_ENABLE_ALL); session.run",
        ),
        _folded(
            "ort-all-t1",
            "onnxruntime",
            ort_opts("all", threads=1),
            "ORT_ENABLE_ALL, intra_op_num_threads=1, sequential; session.run",
        ),
        _folded(
            "ort-all-t1-iobind",
            "onnxruntime",
            ort_opts("all", threads=1, io_binding=True),
            "ORT_ENABLE_ALL, intra_op_num_threads=1, IO binding, pre-allocated output",
        ),
        _folded(
            "ort-all-t2-iobind",
            "onnxruntime",
            ort_opts("all", threads=2, io_binding=True),
            "ORT_ENABLE_ALL, intra_op_num_threads=2, IO binding, pre-allocated output",
        ),
    ]


def cuda_variants() -> list[Variant]:
    """PyTorch eager and the ORT CUDA provider (IO binding, device-resident input and output)."""
    return [
        *_pair(
            "pytorch-cuda",
            "pytorch",
            TorchOptions("no_grad"),
            "model.cuda(); input on the GPU; torch.no_grad(); TF32 off",
            "cuda",
        ),
        *_pair(
            "ort-cuda-iobind",
            "onnxruntime",
            OrtOptions("default", io_binding=True),
            "CUDAExecutionProvider, input and output OrtValues on the GPU (IO binding), TF32 off",
            "cuda",
        ),
    ]


def all_variants() -> list[Variant]:
    return cpu_variants() + cuda_variants()


def load(variant: Variant, sources: Sources) -> Backend:
    """The backend of ``variant``: its model copy or session; :class:`Unavailable` if none."""
    if variant.runtime == "pytorch":
        from benchmarks.torch_runners import TorchBackend

        return TorchBackend(sources.model(variant.folded), variant.options, variant.device)
    if variant.runtime == "onnxruntime":
        from benchmarks.ort_runners import OrtBackend

        return OrtBackend(sources.onnx(variant.folded), variant.options, variant.device)
    raise ValueError(f"unknown runtime {variant.runtime!r} in variant {variant.name}")


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an error message, for a "not run" reason."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
