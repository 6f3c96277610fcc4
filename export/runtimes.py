"""The runtimes a parity run compares: onnxruntime sessions and PyTorch devices, chosen at run time.

Each ``*_unavailable`` function returns ``None`` when the runtime can run here, or the reason it
cannot, which the parity table prints in place of numbers. onnxruntime falls back to the CPU
silently when its CUDA provider fails to load, so a CUDA session only counts when
``session.get_providers()[0]`` is the CUDA provider.

TF32 is off for every CUDA variant: PyTorch lets cuDNN convolutions use TF32 by default
(``torch.backends.cudnn.allow_tf32`` is True; matmuls default to full fp32), and onnxruntime's
CUDA provider enables it too (``use_tf32``). TF32 keeps a 10-bit mantissa, a relative error of
~5e-4 per product, which no fp32 tolerance should absorb.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: Options for ORT's CUDA provider: full fp32 (no TF32), cuDNN's default algorithm choice.
ORT_CUDA_OPTIONS = {"use_tf32": "0", "cudnn_conv_algo_search": "DEFAULT"}
ORT_GPU_HINT = "on a GPU host install onnxruntime-gpu instead of onnxruntime"
#: The ORT optimisation levels a parity run covers: none at all, and what a session gets by default.
OPT_LEVELS = ("disabled", "default")


class ProviderUnavailable(RuntimeError):
    """The runtime asked for cannot run on this machine; the message is the reason."""


def torch_cuda_unavailable() -> str | None:
    """Why PyTorch cannot run on CUDA here, or None when it can."""
    if not torch.cuda.is_available():
        built = torch.version.cuda
        build = f"a CUDA {built} build" if built else "a CPU-only build"
        return f"torch.cuda.is_available() is False (torch {torch.__version__}, {build})"
    return None


def ort_cuda_reason(
    available_providers: list[str], session_providers: list[str] | None
) -> str | None:
    """Why ORT's CUDA provider does not run a session, or None when it does.

    ``session_providers`` is ``InferenceSession.get_providers()`` of a session asked for CUDA
    first (None when no session was made because the provider is not even installed). ORT
    falls back to the CPU silently, so only ``session_providers[0]`` tells.
    """
    if CUDA not in available_providers:
        import onnxruntime

        return (
            f"onnxruntime {onnxruntime.__version__} has no {CUDA} (it offers "
            f"{', '.join(available_providers)}): {ORT_GPU_HINT}"
        )
    if not session_providers or session_providers[0] != CUDA:
        return (
            f"{CUDA} is installed but did not start: onnxruntime fell back to "
            f"{', '.join(session_providers or ['nothing'])}; check that the CUDA and cuDNN "
            "libraries onnxruntime-gpu needs are installed and a GPU is visible"
        )
    return None


def ort_cuda_unavailable() -> str | None:
    """Why onnxruntime cannot even try CUDA here, or None when its CUDA provider is built in."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return ort_cuda_reason(available, None) if CUDA not in available else None


def ort_session(path: str | Path, *, provider: str = CPU, opt_level: str = "default"):
    """An ``onnxruntime.InferenceSession`` on ``provider`` at ``opt_level`` (see OPT_LEVELS).

    Raises :class:`ProviderUnavailable` when CUDA is asked for and is not what runs the graph.
    """
    import onnxruntime as ort

    if opt_level not in OPT_LEVELS:
        raise ValueError(f"unknown opt_level {opt_level!r}: choose one of {', '.join(OPT_LEVELS)}")
    options = ort.SessionOptions()
    if opt_level == "disabled":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3  # errors only: a failed CUDA load is reported below instead
    if provider == CPU:
        return ort.InferenceSession(str(path), options, providers=[CPU])
    if provider != CUDA:
        raise ValueError(f"unknown provider {provider!r}: use {CPU} or {CUDA}")
    reason = ort_cuda_unavailable()
    if reason:
        raise ProviderUnavailable(reason)
    try:
        session = ort.InferenceSession(
            str(path), options, providers=[(CUDA, ORT_CUDA_OPTIONS), CPU]
        )
    except Exception as e:  # onnxruntime raises its own pybind types (Fail, RuntimeException)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ProviderUnavailable(f"onnxruntime could not start {CUDA}: {first[:200]}") from e
    reason = ort_cuda_reason(ort.get_available_providers(), session.get_providers())
    if reason:
        raise ProviderUnavailable(reason)
    return session


class OrtModel:
    """An ORT session as a callable on torch tensors, so parity treats it like a module."""

    def __init__(self, session) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, x: Tensor) -> Tensor:
        feed = {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)}
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full fp32 for cuDNN convolutions and CUDA matmuls inside the block, restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
