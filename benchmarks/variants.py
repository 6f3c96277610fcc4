"""The ways of running the network that the inference benchmark compares, and how a user gets each.

The variants are :class:`export.runtimes.variant.Variant` objects, opened by the one runtime layer
(:func:`export.runtimes.open.open_variant`); this module is only the list of families (runtime,
options, which files) and, per family, the line a user writes to get it (:data:`HOW`).
"""

from __future__ import annotations

from export.runtimes.variant import (
    FOLDED,
    FP32,
    INT8,
    OPENVINO,
    PYTORCH,
    UNFOLDED,
    OpenVinoOptions,
    OrtOptions,
    TorchOptions,
    Variant,
)
from export.runtimes.variant import ONNXRUNTIME as ORT

BASELINE = "pytorch-eager/unfolded"
#: The OOD score's cost: this family runs the folded graph without ``ood_score`` (logits only),
#: timed in the same rounds as the same session options on the served folded file.
LOGITS_ONLY = "ort-all-t1-iobind-logits-only"
WITH_OOD = "ort-all-t1-iobind"
# The files a family runs: both networks, the folded one, or the folded one and its int8 file.
PAIR, ONE, QUANT, ALL = (UNFOLDED, FOLDED), (FOLDED,), (FOLDED, INT8), (UNFOLDED, FOLDED, INT8)
_T1_IOBIND = OrtOptions("all", threads=1, io_binding=True)

#: family → what a user writes to get it (the report's "how" column).
HOW: dict[str, str] = {
    "pytorch-eager": "with torch.no_grad(): model(x)",
    "pytorch-eager-t1": "torch.set_num_threads(1); with torch.no_grad(): model(x)",
    "pytorch-inference-mode": "with torch.inference_mode(): model(x)",
    "pytorch-channels-last": "model.to(memory_format=torch.channels_last); inference mode; "
    "input converted per call",
    "pytorch-no-mkldnn": "torch.backends.mkldnn.flags(enabled=False); inference mode",
    "pytorch-jit-freeze": "torch.jit.freeze(torch.jit.trace(model, x)) (deprecated in torch 2.x)",
    "pytorch-compile": "torch.compile(model, dynamic=False), inductor freezing=True, "
    "default threads",
    "pytorch-compile-t1": "as pytorch-compile, compiled and run with torch.set_num_threads(1)",
    "ort-disabled": "SessionOptions.graph_optimization_level = ORT_DISABLE_ALL; session.run",
    "ort-default": "InferenceSession(path) with default SessionOptions (ORT_ENABLE_ALL); "
    "session.run",
    "ort-all-t1": "ORT_ENABLE_ALL, intra_op_num_threads=1, sequential; session.run",
    WITH_OOD: "ORT_ENABLE_ALL, intra_op_num_threads=1, IO binding, pre-allocated output",
    LOGITS_ONLY: "as ort-all-t1-iobind, on the folded graph without ood_score (the OOD score's "
    "cost)",
    "ort-all-t1-iobind-no-nchwc": "as ort-all-t1-iobind, InferenceSession(..., "
    "disabled_optimizers=['NchwcTransformer'])",
    "ort-extended-t1-iobind": "as ort-all-t1-iobind at ORT_ENABLE_EXTENDED (no layout "
    "transformers)",
    "ort-all-t2-iobind-nospin": "as ort-all-t2-iobind with session.intra_op.allow_spinning = 0",
    "ort-all-t2-iobind": "ORT_ENABLE_ALL, intra_op_num_threads=2, IO binding, pre-allocated output",
    "openvino-t1": "ov.Core().compile_model(path, 'CPU', {PERFORMANCE_HINT: LATENCY, "
    "INFERENCE_NUM_THREADS: 1, INFERENCE_PRECISION_HINT: f32}); input tensor set once",
    "openvino-t2": "as openvino-t1 with INFERENCE_NUM_THREADS: 2",
    "openvino-bf16-t2": "as openvino-t2 with OpenVINO's own default precision on this CPU "
    "(bf16: not fp32)",
    "pytorch-cuda": "model.cuda(); input on the GPU; torch.no_grad(); TF32 off",
    "ort-cuda-iobind": "CUDAExecutionProvider, input and output OrtValues on the GPU "
    "(IO binding), TF32 off",
}


def _variants(rows, device: str = "cpu") -> list[Variant]:
    """One variant per (family, runtime, options, kinds) row and kind, in order."""
    return [
        Variant(runtime, kind != UNFOLDED, device, options, family, INT8 if kind == INT8 else FP32)
        for family, runtime, options, kinds in rows
        for kind in kinds
    ]


def how(variant: Variant) -> str:
    """What a user writes to get ``variant``."""
    return HOW[variant.family]


def cpu_variants() -> list[Variant]:
    """Every CPU variant, the baseline (plain eager, unfolded) first; OpenVINO is the peer
    (optional extra ``.[peers]``)."""
    return _variants(
        [
            ("pytorch-eager", PYTORCH, TorchOptions("no_grad"), PAIR),
            ("pytorch-eager-t1", PYTORCH, TorchOptions("no_grad", threads=1), PAIR),
            ("pytorch-inference-mode", PYTORCH, TorchOptions("inference_mode"), PAIR),
            ("pytorch-channels-last", PYTORCH, TorchOptions("channels_last"), ONE),
            ("pytorch-no-mkldnn", PYTORCH, TorchOptions("no_mkldnn"), ONE),
            ("pytorch-jit-freeze", PYTORCH, TorchOptions("jit_freeze"), ONE),
            ("pytorch-compile", PYTORCH, TorchOptions("compile"), ONE),
            ("pytorch-compile-t1", PYTORCH, TorchOptions("compile", threads=1), ONE),
            ("ort-disabled", ORT, OrtOptions("disabled"), PAIR),
            ("ort-default", ORT, OrtOptions("default"), ALL),
            ("ort-all-t1", ORT, OrtOptions("all", threads=1), ONE),
            (WITH_OOD, ORT, _T1_IOBIND, QUANT),
            (LOGITS_ONLY, ORT, _T1_IOBIND, ONE),
            (
                "ort-all-t1-iobind-no-nchwc",
                ORT,
                OrtOptions("all", 1, True, disabled_optimizers=("NchwcTransformer",)),
                ONE,
            ),
            ("ort-extended-t1-iobind", ORT, OrtOptions("extended", 1, io_binding=True), ONE),
            ("ort-all-t2-iobind-nospin", ORT, OrtOptions("all", 2, True, spinning=False), ONE),
            ("ort-all-t2-iobind", ORT, OrtOptions("all", threads=2, io_binding=True), QUANT),
            ("openvino-t1", OPENVINO, OpenVinoOptions("LATENCY", threads=1), QUANT),
            ("openvino-t2", OPENVINO, OpenVinoOptions("LATENCY", threads=2), QUANT),
            ("openvino-bf16-t2", OPENVINO, OpenVinoOptions("LATENCY", 2, "bf16"), ONE),
        ]
    )


def cuda_variants() -> list[Variant]:
    """PyTorch eager and the ORT CUDA provider (IO binding, device-resident input and output)."""
    return _variants(
        [
            ("pytorch-cuda", PYTORCH, TorchOptions("no_grad"), PAIR),
            ("ort-cuda-iobind", ORT, OrtOptions("default", io_binding=True), ALL),
        ],
        "cuda",
    )


def all_variants() -> list[Variant]:
    return cpu_variants() + cuda_variants()
