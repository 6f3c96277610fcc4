"""The up-to-eight ways the demo runs one network, loaded once at start-up.

{PyTorch eager, ONNX Runtime} × {unfolded, folded} × {CPU, CUDA}. CUDA is decided at run time:
PyTorch's when ``torch.cuda.is_available()`` and a forward pass on the device works; ONNX
Runtime's when the CUDA execution provider really runs the session (``get_providers()[0]``;
ORT silently falls back to the CPU when its CUDA libraries are missing). A variant that cannot
run here is kept as an :class:`Unavailable` with its reason, never raised.

Every runtime takes the same input, a float32 N×3×H×W array already normalised, and returns
the logits as a float32 array, so timings compare like with like (host → device → host
copies included for CUDA). The float64 PyTorch forward of the unfolded network is the
reference the others are measured against.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bnfold.checkpoint import Checkpoint, load_checkpoint
from export.runtimes import CPU as ORT_CPU
from export.runtimes import CUDA as ORT_CUDA
from export.runtimes import (
    ORT_CUDA_OPTIONS,
    no_tf32,
    ort_cuda_reason,
    torch_cuda_unavailable,
)

log = logging.getLogger(__name__)

PYTORCH = "PyTorch eager"
ONNXRUNTIME = "ONNX Runtime"
BACKENDS = (PYTORCH, ONNXRUNTIME)
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Variant:
    """One combination of runtime, folding and device."""

    backend: str  # PYTORCH or ONNXRUNTIME
    folded: bool
    device: str  # "cpu" or "cuda"

    @property
    def name(self) -> str:
        return f"{self.backend} · {'folded' if self.folded else 'unfolded'} · {self.device.upper()}"


ALL_VARIANTS = tuple(
    Variant(backend, folded, device)
    for device in DEVICES
    for backend in BACKENDS
    for folded in (False, True)
)


@dataclass(frozen=True)
class ModelFacts:
    """What one variant's model is made of, for the comparison table."""

    batchnorm_ops: int  # BatchNorm layers/nodes in the model as stored
    batchnorm_ops_run: int | None  # ...and after the runtime's own graph optimisation
    ops: int | None  # compute nodes in the graph as stored (None: could not count)
    size_bytes: int  # the serialised weights (PyTorch) or the .onnx file (ONNX Runtime)


@dataclass(frozen=True)
class Unavailable:
    """A variant this machine cannot run, and why."""

    variant: Variant
    reason: str


class Runtime:
    """A loaded variant: call it with a normalised float32 batch, get float32 logits back."""

    def __init__(
        self,
        variant: Variant,
        device_label: str,
        facts: ModelFacts,
        run: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        self.variant = variant
        self.device_label = device_label  # the device name or ORT execution provider
        self.facts = facts
        self._run = run

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)

    def __repr__(self) -> str:
        return f"Runtime({self.variant.name!r}, {self.device_label!r})"


@dataclass
class RuntimeSet:
    """Everything the demo runs, loaded once: the runtimes, the reference, the two networks."""

    checkpoint: Checkpoint
    unfolded: nn.Module  # CPU, float32, eval mode
    folded: nn.Module
    fold_report: Any  # bnfold.FoldReport
    onnx_paths: dict[bool, Path]  # folded? -> file
    available: list[Runtime]
    unavailable: list[Unavailable]
    reference_model: nn.Module  # the unfolded network in float64 on the CPU
    # Timed runs take turns: concurrent runs would time each other, and CUDA work is serialised.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def class_names(self) -> list[str]:
        return list(self.checkpoint.class_names)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.checkpoint.input_size

    @property
    def mean(self) -> tuple[float, ...]:
        return self.checkpoint.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.checkpoint.std

    def reference(self, batch: np.ndarray) -> np.ndarray:
        """float64 logits of the unfolded network: the yardstick for every variant."""
        with torch.inference_mode():
            return self.reference_model(torch.from_numpy(batch).double()).numpy()

    def variants(self) -> Iterator[tuple[Variant, Runtime | Unavailable]]:
        """All variants in :data:`ALL_VARIANTS` order, each runtime or reason."""
        found: dict[Variant, Runtime | Unavailable] = {r.variant: r for r in self.available}
        found.update({u.variant: u for u in self.unavailable})
        for variant in ALL_VARIANTS:
            if variant in found:
                yield variant, found[variant]


def load_runtimes(
    checkpoint: str | Path,
    unfolded_onnx: str | Path,
    folded_onnx: str | Path,
    *,
    threads: int = 1,
    devices: tuple[str, ...] = DEVICES,
) -> RuntimeSet:
    """Load the checkpoint, fold it, open both ONNX files on every device that works.

    ``threads`` is ONNX Runtime's intra-op thread count (PyTorch's is process-wide: the CLI sets
    it). Only a broken checkpoint raises; a variant that cannot load becomes :class:`Unavailable`.
    """
    import bnfold

    unknown = [d for d in devices if d not in DEVICES]
    if unknown:
        raise ValueError(f"unknown device(s) {unknown}: choose from {', '.join(DEVICES)}")
    ckpt = load_checkpoint(checkpoint)
    unfolded = ckpt.build_model(allow_folded=False)
    height, width = ckpt.input_size
    example = torch.zeros(1, 3, height, width)
    result = bnfold.fold(unfolded, example)
    folded = result.model.eval()
    onnx_paths = {False: Path(unfolded_onnx), True: Path(folded_onnx)}
    available: list[Runtime] = []
    unavailable: list[Unavailable] = []
    for variant in ALL_VARIANTS:
        if variant.device not in devices:
            reason = f"not loaded: only {', '.join(devices)} asked for (python -m demo --cpu-only)"
            unavailable.append(Unavailable(variant, reason))
    for device in devices:
        for is_folded, model in ((False, unfolded), (True, folded)):
            outcome = torch_runtime(model, Variant(PYTORCH, is_folded, device), example)
            (available if isinstance(outcome, Runtime) else unavailable).append(outcome)
        for is_folded in (False, True):
            variant = Variant(ONNXRUNTIME, is_folded, device)
            outcome = ort_runtime(onnx_paths[is_folded], variant, threads=threads)
            (available if isinstance(outcome, Runtime) else unavailable).append(outcome)
    for item in unavailable:
        log.info("%s unavailable: %s", item.variant.name, item.reason)
    return RuntimeSet(
        checkpoint=ckpt,
        unfolded=unfolded,
        folded=folded,
        fold_report=result.report,
        onnx_paths=onnx_paths,
        available=available,
        unavailable=unavailable,
        reference_model=copy.deepcopy(unfolded).double(),
    )


# ----------------------------------------------------------------------------------------------
# PyTorch eager


def torch_runtime(
    model: nn.Module, variant: Variant, example: torch.Tensor
) -> Runtime | Unavailable:
    """``model`` on ``variant.device`` as a :class:`Runtime` (the caller's model is not moved)."""
    if variant.device == "cuda":
        reason = torch_cuda_unavailable()
        if reason is not None:
            return Unavailable(variant, reason)
    device = torch.device(variant.device)
    facts = torch_facts(model)
    try:
        placed = copy.deepcopy(model).to(device).eval()
        with torch.inference_mode():
            placed(example.to(device))  # fail here, not on the first request
    except (RuntimeError, AssertionError) as e:  # torch raises both for a broken CUDA setup
        return Unavailable(variant, f"PyTorch could not run on {device}: {_first_line(e)}")
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    # Full fp32 on CUDA: cuDNN convolutions default to TF32, whose ~5e-4 relative error per
    # product would show up as a difference folding did not cause.
    precision = no_tf32 if device.type == "cuda" else contextlib.nullcontext

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), precision():
            logits = placed(torch.from_numpy(batch).to(device))
            return logits.float().cpu().numpy()

    return Runtime(variant, label, facts, run)


def torch_facts(model: nn.Module) -> ModelFacts:
    """BatchNorm layers, fx graph compute nodes, and the size of the saved ``state_dict``."""
    bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return ModelFacts(bn, bn, _fx_ops(model), buffer.getbuffer().nbytes)


def _fx_ops(model: nn.Module) -> int | None:
    graph = model.graph if isinstance(model, torch.fx.GraphModule) else None
    if graph is None:
        try:
            graph = torch.fx.symbolic_trace(model).graph
        except Exception:  # fx raises many types on untraceable code: then we just don't count
            return None
    compute = ("call_module", "call_function", "call_method")
    return sum(node.op in compute for node in graph.nodes)


# ----------------------------------------------------------------------------------------------
# ONNX Runtime


def ort_runtime(path: Path, variant: Variant, *, threads: int = 1) -> Runtime | Unavailable:
    """An ORT session for ``path`` on ``variant.device``, or the reason there is none."""
    import onnxruntime as ort

    # use_tf32=0: full fp32, as for PyTorch (see torch_runtime).
    cuda = (ORT_CUDA, ORT_CUDA_OPTIONS)
    providers = [ORT_CPU] if variant.device == "cpu" else [cuda, ORT_CPU]
    if variant.device == "cuda":
        reason = ort_cuda_reason(ort.get_available_providers(), None)
        if reason is not None:
            return Unavailable(variant, reason)
    with tempfile.TemporaryDirectory(prefix="rmb-demo-ort-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: not the "optimized model" notice
        # The graph ORT really runs (after its own fusions) is counted from this copy; should
        # an execution provider refuse to serialise it, the session is made without the copy.
        optimized = Path(tmp) / "optimized.onnx"
        options.optimized_model_filepath = str(optimized)
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception:  # ORT raises its own Fail/InvalidGraph/... types
            options.optimized_model_filepath = ""
            try:
                session = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as e:
                reason = f"ONNX Runtime could not load {path.name}: {_first_line(e)}"
                return Unavailable(variant, reason)
        if variant.device == "cuda":
            reason = ort_cuda_reason(ort.get_available_providers(), session.get_providers())
            if reason is not None:
                return Unavailable(variant, reason)
        facts = onnx_facts(path, optimized)
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return Runtime(variant, session.get_providers()[0], facts, run)


def onnx_op_counts(path: Path) -> Counter[str]:
    """Node count per op type in the main graph of an ONNX file."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    return Counter(node.op_type for node in model.graph.node)


def onnx_facts(path: Path, optimized: Path | None = None) -> ModelFacts:
    """BatchNormalization nodes as stored and as ORT runs them, node count, file size."""
    counts = onnx_op_counts(path)
    run = None
    if optimized is not None and optimized.is_file():
        run = onnx_op_counts(optimized).get("BatchNormalization", 0)
    return ModelFacts(
        counts.get("BatchNormalization", 0), run, sum(counts.values()), path.stat().st_size
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]
