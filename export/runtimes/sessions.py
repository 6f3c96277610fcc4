"""The one onnxruntime session factory: level, threads, providers, profiling, CUDA checked.

onnxruntime falls back to the CPU silently when its CUDA provider fails to load, so a CUDA
session only counts when ``session.get_providers()[0]`` is the CUDA provider; otherwise
:class:`~export.runtimes.errors.Unavailable` says why. TF32 is off (``use_tf32=0``), as for
PyTorch (see :mod:`export.runtimes.torch_runner`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from export.runtimes.errors import Unavailable, first_line
from export.runtimes.variant import OrtOptions

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PROVIDERS = {"cpu": CPU, "cuda": CUDA}
#: Options for ORT's CUDA provider: full fp32 (no TF32), cuDNN's default algorithm choice.
ORT_CUDA_OPTIONS = {"use_tf32": "0", "cudnn_conv_algo_search": "DEFAULT"}
ORT_GPU_HINT = "on a GPU host install onnxruntime-gpu instead of onnxruntime"
LEVELS = ("disabled", "extended", "default", "all")


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


def _session_options(
    options: OrtOptions, optimized_to: str | Path | None, profile_prefix: str | None
):
    import onnxruntime as ort

    if options.level not in LEVELS:
        raise ValueError(f"unknown ORT level {options.level!r}: choose one of {', '.join(LEVELS)}")
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: a failed CUDA load is reported by this module
    if options.level == "disabled":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    elif options.level == "extended":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    elif options.level == "all":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if options.threads is not None:
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if options.spinning is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", str(int(options.spinning)))
    if optimized_to is not None:
        so.optimized_model_filepath = str(optimized_to)
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def _preload_cuda_libraries(ort) -> None:
    """Load the CUDA and cuDNN libraries torch's wheels brought (onnxruntime-gpu >= 1.21).

    Without it, onnxruntime-gpu looks for them on the system library path only and, on a host
    whose CUDA comes from pip (torch's nvidia-* wheels), falls back to the CPU.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as e:  # a failed preload leaves ORT's own search, reported by the caller
        log.info("onnxruntime.preload_dlls() failed: %s", first_line(e))


def ort_session(
    path: str | Path | bytes,
    options: OrtOptions | None = None,
    device: str = "cpu",
    *,
    optimized_to: str | Path | None = None,
    profile_prefix: str | None = None,
):
    """An ``onnxruntime.InferenceSession`` of ``path`` (or the file's bytes) on ``device``.

    ``optimized_to``: also save the graph ORT runs after its own optimisations there.
    ``profile_prefix``: write ORT's per-node profile (``session.end_profiling()``). Raises
    :class:`Unavailable` when CUDA is asked for and is not what runs the graph; a file ORT
    cannot load raises ORT's own error (callers decide whether that is a failure).
    """
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(PROVIDERS)}")
    options = options or OrtOptions()
    so = _session_options(options, optimized_to, profile_prefix)
    skip = list(options.disabled_optimizers)
    model = path if isinstance(path, bytes) else str(path)
    if device == "cpu":
        return ort.InferenceSession(model, so, providers=[CPU], disabled_optimizers=skip)
    reason = ort_cuda_unavailable()
    if reason:
        raise Unavailable(reason)
    _preload_cuda_libraries(ort)
    try:
        session = ort.InferenceSession(
            model, so, providers=[(CUDA, ORT_CUDA_OPTIONS), CPU], disabled_optimizers=skip
        )
    except Exception as e:  # onnxruntime raises its own pybind types (Fail, RuntimeException)
        raise Unavailable(f"onnxruntime could not start {CUDA}: {first_line(e)}") from e
    reason = ort_cuda_reason(ort.get_available_providers(), session.get_providers())
    if reason:
        raise Unavailable(reason)
    return session
