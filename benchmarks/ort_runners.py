"""onnxruntime variants of the inference benchmark: optimisation level, threads, IO binding, CUDA.

Plain variants call ``session.run(None, {name: array})`` as most users do: numpy in, a new numpy
array out on every call. IO-binding variants bind the input once as an ``OrtValue`` and have ORT
write into a pre-allocated output ``OrtValue``, which removes the per-call conversions; on CUDA
both live on the GPU, so ``step`` times the device work and no host copies (``run_with_iobinding``
returns after ORT synchronises the provider's stream). CUDA sessions come from
:func:`export.runtimes.ort_session`, which refuses ORT's silent fallback to the CPU and turns
TF32 off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.variants import OrtOptions, Runner, Unavailable, first_line

LEVELS = ("disabled", "default", "all")


def cpu_session(path: str | Path, options: OrtOptions, profile_prefix: str | None = None):
    """A CPU ``InferenceSession`` configured as ``options`` says (profiling to a file if asked)."""
    import onnxruntime as ort

    if options.level not in LEVELS:
        raise ValueError(f"unknown ORT level {options.level!r}: choose one of {LEVELS}")
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: not the NCHWc "hardware specific" notice
    if options.level == "disabled":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    elif options.level == "all":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if options.threads is not None:
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def cuda_session(path: str | Path):
    """A session the CUDA provider really runs; :class:`Unavailable` with the reason if not."""
    from export.runtimes import CUDA, ProviderUnavailable, ort_session

    try:
        return ort_session(path, provider=CUDA, opt_level="default")
    except ProviderUnavailable as e:
        raise Unavailable(str(e)) from e


class OrtBackend:
    """One onnxruntime variant: a session on its execution provider."""

    def __init__(self, path: str | Path, options: OrtOptions, device: str = "cpu") -> None:
        if device == "cuda" and not options.io_binding:
            raise ValueError("CUDA variants use IO binding: otherwise host copies are timed")
        self.options = options
        self.device = device
        try:
            self.session = cuda_session(path) if device == "cuda" else cpu_session(path, options)
        except Unavailable:
            raise
        except Exception as e:  # ORT raises its own pybind types (Fail, InvalidGraph, ...)
            reason = f"onnxruntime could not load {Path(path).name}: {first_line(e)}"
            raise Unavailable(reason) from e
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def bind(self, batch: np.ndarray) -> Runner:
        batch = np.ascontiguousarray(batch, np.float32)
        if self.options.io_binding:
            return self._bound(batch)
        feed = {self.input_name: batch}
        out: list[np.ndarray] = []

        def step() -> None:
            out[:] = self.session.run(None, feed)

        def read() -> np.ndarray:
            if not out:
                step()
            return out[0]

        return Runner(step, read)

    def _bound(self, batch: np.ndarray) -> Runner:
        import onnxruntime as ort

        # The output's shape: one plain run on the first image gives the class count.
        (probe,) = self.session.run(None, {self.input_name: batch[:1]})
        shape = [batch.shape[0], *probe.shape[1:]]
        device = self.device
        x = ort.OrtValue.ortvalue_from_numpy(batch, device, 0)
        y = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, 0)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x)
        binding.bind_ortvalue_output(self.output_name, y)
        session = self.session

        def step(_keep: tuple = (x, y)) -> None:  # the binding does not own the OrtValues
            session.run_with_iobinding(binding)

        def read() -> np.ndarray:  # copies a CUDA output to the host; not timed
            return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)

        return Runner(step, read)
