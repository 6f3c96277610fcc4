"""The up-to-nine ways the demo runs one network, loaded once at start-up.

{PyTorch eager, ONNX Runtime} × {unfolded, folded} × {CPU, CUDA}, and ONNX Runtime on the CPU
running the folded network's int8 file (``<stem>.folded.int8.onnx``, whose decisions
``python -m export`` proved against fp32; its logits differ by a few hundredths): a list of
:class:`export.runtimes.variant.Variant`, opened by the one runtime layer, which decides CUDA
at run time and explains every variant that cannot run here. This module adds what the page
shows: titles, and what each model is made of (:class:`ModelFacts`). The variants run the
served network of :mod:`export.networks`; its float64 PyTorch forward, unfolded, is the
reference the others are measured against and the one that decides *unknown*.
"""

from __future__ import annotations

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
from export.networks import Networks, OODInfo, served_networks
from export.runtimes.errors import Unavailable
from export.runtimes.open import Sources, open_variant
from export.runtimes.runner import Runner
from export.runtimes.torch_runner import float64_reference
from export.runtimes.variant import (
    DEVICES,
    FOLDED,
    INT8,
    ONNXRUNTIME,
    PYTORCH,
    UNFOLDED,
    OrtOptions,
    TorchOptions,
    Variant,
)

log = logging.getLogger(__name__)

TITLES = {PYTORCH: "PyTorch eager", ONNXRUNTIME: "ONNX Runtime"}


def demo_variants(threads: int = 1) -> list[Variant]:
    """The nine variants, CPU first, int8 last; ONNX Runtime with ``threads`` intra-op threads."""
    options = {PYTORCH: TorchOptions("inference_mode"), ONNXRUNTIME: OrtOptions(threads=threads)}
    return [
        *(
            Variant(runtime, folded, device, options[runtime])
            for device in DEVICES
            for runtime in (PYTORCH, ONNXRUNTIME)
            for folded in (False, True)
        ),
        Variant(ONNXRUNTIME, True, "cpu", options[ONNXRUNTIME], precision=INT8),
    ]


def title(variant: Variant) -> str:
    """``"PyTorch eager · folded · CPU"``: how the page names a variant."""
    return f"{TITLES[variant.runtime]} · {variant.kind} · {variant.device.upper()}"


@dataclass(frozen=True)
class ModelFacts:
    """What one variant's model is made of, for the comparison table."""

    batchnorm_ops: int  # BatchNorm layers/nodes in the model as stored
    batchnorm_ops_run: int | None  # ...and after the runtime's own graph optimisation
    ops: int | None  # compute nodes in the graph as stored (None: could not count)
    size_bytes: int  # the serialised weights (PyTorch) or the .onnx file (ONNX Runtime)


@dataclass
class RuntimeSet:
    """Everything the demo runs, loaded once: the runners, the reference, the two networks."""

    checkpoint: Checkpoint
    unfolded: nn.Module  # the classifier alone, CPU, float32, eval mode (the folding tab)
    folded: nn.Module
    fold_report: Any  # bnfold.FoldReport
    onnx_paths: dict[bool, Path]  # folded? -> file
    all_variants: list[Variant]
    available: list[Runner]
    unavailable: list[Unavailable]
    facts: dict[Variant, ModelFacts]
    reference_outputs: Callable[[np.ndarray], dict[str, np.ndarray]]  # unfolded, float64, CPU
    served: Networks  # what the variants run: the classifier with its OOD score, if any
    # Timed runs take turns: concurrent runs would time each other, and CUDA work is serialised.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def class_names(self) -> list[str]:
        return list(self.checkpoint.class_names)

    def reference(self, batch: np.ndarray) -> np.ndarray:
        """float64 logits of the unfolded network: the yardstick for every variant."""
        return self.reference_outputs(batch)["logits"]

    @property
    def ood(self) -> OODInfo | None:
        """The threshold and method that decide *unknown*, or None (no OOD score)."""
        return self.served.ood

    def variants(self) -> Iterator[tuple[Variant, Runner | Unavailable]]:
        """All variants in :func:`demo_variants` order, each runner or reason."""
        found: dict[Variant, Runner | Unavailable] = {r.variant: r for r in self.available}
        found.update({u.variant: u for u in self.unavailable})
        for variant in self.all_variants:
            if variant in found:
                yield variant, found[variant]


def load_runtimes(
    checkpoint: str | Path,
    unfolded_onnx: str | Path,
    folded_onnx: str | Path,
    *,
    int8_onnx: str | Path | None = None,
    threads: int = 1,
    devices: tuple[str, ...] = DEVICES,
) -> RuntimeSet:
    """Load the checkpoint, fold it, open every variant on the devices asked for.

    ``threads`` is ONNX Runtime's intra-op thread count (PyTorch's is process-wide: the CLI sets
    it). Only a broken checkpoint raises; a variant that cannot load becomes :class:`Unavailable`
    (the int8 one when ``int8_onnx`` is None: the export made none).
    """
    import bnfold

    unknown = [d for d in devices if d not in DEVICES]
    if unknown:
        raise ValueError(f"unknown device(s) {unknown}: choose from {', '.join(DEVICES)}")
    ckpt = load_checkpoint(checkpoint)
    unfolded = ckpt.build_model(allow_folded=False)
    height, width = ckpt.input_size
    result = bnfold.fold(unfolded, torch.zeros(1, 3, height, width))
    folded = result.model.eval()
    served = served_networks(ckpt, str(checkpoint))
    files = {UNFOLDED: Path(unfolded_onnx), FOLDED: Path(folded_onnx)}
    if int8_onnx is not None:
        files[INT8] = Path(int8_onnx)
    sources = Sources(served.unfolded, served.folded, files, (height, width), served.output_names)
    variants = demo_variants(threads)
    available: list[Runner] = []
    unavailable: list[Unavailable] = []
    facts: dict[Variant, ModelFacts] = {}
    for variant in variants:
        if variant.device not in devices:
            reason = f"not loaded: only {', '.join(devices)} asked for (python -m demo --cpu-only)"
            unavailable.append(Unavailable(reason, variant))
            continue
        opened = open_variant(variant, sources)
        if isinstance(opened, Unavailable):
            unavailable.append(opened)
            continue
        available.append(opened)
        if variant.runtime == PYTORCH:
            facts[variant] = torch_facts(sources.model(variant.folded))
        else:
            facts[variant] = onnx_facts(sources.onnx_for(variant), variant.options)
    return RuntimeSet(
        checkpoint=ckpt,
        unfolded=unfolded,
        folded=folded,
        fold_report=result.report,
        onnx_paths={False: files[UNFOLDED], True: files[FOLDED]},
        all_variants=variants,
        available=available,
        unavailable=unavailable,
        facts=facts,
        reference_outputs=float64_reference(served.unfolded, served.output_names),
        served=served,
    )


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


def onnx_op_counts(path: Path) -> Counter[str]:
    """Node count per op type in the main graph of an ONNX file."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    return Counter(node.op_type for node in model.graph.node)


def onnx_facts(path: Path, options: OrtOptions | None = None) -> ModelFacts:
    """BatchNormalization nodes as stored and as ORT runs them (its own fusions done on the
    CPU at ``options``' level), node count, file size."""
    from export.runtimes.sessions import ort_session

    counts = onnx_op_counts(path)
    run = None
    with tempfile.TemporaryDirectory(prefix="rmb-demo-ort-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        try:
            ort_session(path, options, optimized_to=optimized)
            run = onnx_op_counts(optimized).get("BatchNormalization", 0)
        except Exception as e:  # ORT raises its own types; then the table shows no count
            log.info("could not count the nodes ORT runs for %s: %s", path.name, e)
    return ModelFacts(
        counts.get("BatchNormalization", 0), run, sum(counts.values()), path.stat().st_size
    )
