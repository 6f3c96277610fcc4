"""OpenVINO as a :class:`~export.runtimes.runner.Runner`: the same ONNX files, Intel's CPU plugin.

An optional peer (``pip install -e '.[peers]'``): when ``openvino`` is not installed, or a CUDA
variant is asked for (OpenVINO has no CUDA device), the variant is
:class:`~export.runtimes.errors.Unavailable` with the reason. OpenVINO reads the QDQ int8 file
directly: its CPU plugin turns each QuantizeLinear/DequantizeLinear pair into FakeQuantize and
runs the convolutions and matmuls in int8 (oneDNN, VNNI where the CPU has it).

One compiled model per runner, compiled for a dynamic batch. :meth:`Runner.bind` creates an
infer request and sets its input tensor once on the caller's array (shared memory, OpenVINO's
counterpart of ORT's IO binding: ``infer({0: array})`` copies the input on every call, which
doubled the batch-1 latency here, 110 µs instead of 55); ``step`` is one synchronous
``infer()``; ``read`` copies the outputs out of OpenVINO's tensors (not timed).
"""

from __future__ import annotations

import numpy as np

from export.runtimes.runner import Bound, Runner, logits_first

PEERS_HINT = "pip install -e '.[peers]' (openvino from PyPI)"


def openvino_unavailable() -> str | None:
    """Why OpenVINO cannot run here, or None when it is installed."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return f"openvino is not installed: it is an optional peer, {PEERS_HINT}"
    return None


class OpenVinoRunner(Runner):
    """One compiled OpenVINO model (CPU plugin)."""

    def __init__(self, variant, compiled) -> None:
        super().__init__(variant, "openvino-CPU")
        self.compiled = compiled
        names = [next(iter(o.get_names())) for o in compiled.outputs]
        self.output_names = logits_first(names)
        self._ports = {n: compiled.output(n) for n in self.output_names}

    def bind(self, batch: np.ndarray) -> Bound:
        batch = np.ascontiguousarray(batch, np.float32)
        import openvino as ov

        request = self.compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(batch, shared_memory=True))
        ports, names, ran = self._ports, self.output_names, [False]

        def step(_keep: np.ndarray = batch) -> None:  # the tensor does not own the array
            request.infer()
            ran[0] = True

        def read() -> dict[str, np.ndarray]:
            if not ran[0]:
                step()
            return {n: np.array(request.get_tensor(ports[n]).data, np.float32) for n in names}

        return Bound(step, read)
