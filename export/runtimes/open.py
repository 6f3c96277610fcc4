"""``open_variant``: a :class:`Variant` and what it is built from → a runner, or why not here.

Adding a runtime means one opener here (and its runner module): parity, the demo and the
benchmarks then list variants of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from export.runtimes.errors import Unavailable, first_line
from export.runtimes.runner import LOGITS, Runner
from export.runtimes.variant import FOLDED, ONNXRUNTIME, OPENVINO, PYTORCH, UNFOLDED, Variant

log = logging.getLogger(__name__)


@dataclass
class Sources:
    """What every variant is built from: the two networks (eval, CPU) and their ONNX files.

    A network that returns a tuple (``WithOOD``: logits and ``ood_score``) names its outputs
    with ``output_names``, as the ONNX files name theirs.
    """

    unfolded: nn.Module
    folded: nn.Module
    files: dict[str, Path]  # "unfolded" / "folded" (/ "int8") → .onnx
    input_size: tuple[int, int] = (32, 32)  # H, W: the example a CUDA runner is tried on
    output_names: tuple[str, ...] = (LOGITS,)

    def model(self, folded: bool) -> nn.Module:
        return self.folded if folded else self.unfolded

    def onnx(self, folded: bool) -> Path:
        return Path(self.files[FOLDED if folded else UNFOLDED])

    def onnx_for(self, variant: Variant) -> Path:
        """The file ``variant`` runs; Unavailable when it is the int8 one and there is none."""
        if variant.int8:
            if variant.kind not in self.files:
                raise Unavailable(
                    "no proven int8 file: python -m export makes <stem>.folded.int8.onnx when "
                    "the checkpoint's training images are here (--data DIR)"
                )
            return Path(self.files[variant.kind])
        return self.onnx(variant.folded)


def _open_torch(variant: Variant, sources: Sources) -> Runner:
    from export.runtimes.torch_runner import TorchRunner

    example = torch.zeros(1, 3, *sources.input_size)
    return TorchRunner(variant, sources.model(variant.folded), example, sources.output_names)


def _open_ort(variant: Variant, sources: Sources) -> Runner:
    from export.runtimes.ort_runner import OrtRunner
    from export.runtimes.sessions import ort_cuda_unavailable, ort_session

    reason = ort_cuda_unavailable() if variant.cuda else None
    if reason:  # the machine's reason first: it holds whichever file is asked for
        raise Unavailable(reason)
    path = sources.onnx_for(variant)
    try:
        session = ort_session(path, variant.options, variant.device)
    except (Unavailable, ValueError):
        raise
    except Exception as e:  # ORT raises its own pybind types (Fail, InvalidGraph, ...)
        raise Unavailable(f"onnxruntime could not load {path.name}: {first_line(e)}") from e
    return OrtRunner(variant, session)


def _open_openvino(variant: Variant, sources: Sources) -> Runner:
    from export.runtimes.openvino_runner import OpenVinoRunner, openvino_unavailable

    if variant.cuda:
        raise Unavailable("OpenVINO has no CUDA device (its GPU plugin is for Intel GPUs)")
    reason = openvino_unavailable()
    if reason:
        raise Unavailable(reason)
    import openvino as ov

    path, options = sources.onnx_for(variant), variant.options
    config = {"PERFORMANCE_HINT": options.hint, "INFERENCE_PRECISION_HINT": options.precision}
    if options.threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(options.threads)
    try:
        compiled = ov.Core().compile_model(str(path), "CPU", config)
    except Exception as e:  # OpenVINO raises its own RuntimeError subclasses with C++ text
        raise Unavailable(f"openvino could not compile {path.name}: {first_line(e)}") from e
    return OpenVinoRunner(variant, compiled)


OPENERS: dict[str, Callable[[Variant, Sources], Runner]] = {
    PYTORCH: _open_torch,
    ONNXRUNTIME: _open_ort,
    OPENVINO: _open_openvino,
}


def open_variant(variant: Variant, sources: Sources) -> Runner | Unavailable:
    """``variant`` ready to run, or an :class:`Unavailable` (returned, not raised) saying why."""
    try:
        return OPENERS[variant.runtime](variant, sources)
    except Unavailable as e:
        e.variant = variant
        log.info("%s unavailable: %s", variant.name, e.reason)
        return e
