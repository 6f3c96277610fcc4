"""The ways of running the network that the inference benchmark compares, and how a user gets each.

The variants are :class:`export.runtimes.variant.Variant` objects, opened by the one runtime layer
(:func:`export.runtimes.open.open_variant`); this module is only the list and, per family, the
line a user writes to get it (:data:`HOW`), for the report.
"""

from __future__ import annotations

from export.runtimes.variant import (
    INT8,
    OPENVINO,
    PYTORCH,
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
#: family → what a user writes to get it (the report's "how" column).
HOW: dict[str, str] = {}


def _pair(family: str, runtime: str, options, how: str, device: str = "cpu") -> list[Variant]:
    HOW[family] = how
    return [Variant(runtime, folded, device, options, family) for folded in (False, True)]


def _folded(family: str, runtime: str, options, how: str, device: str = "cpu") -> Variant:
    HOW[family] = how
    return Variant(runtime, True, device, options, family)


def _int8(family: str, runtime: str, options, how: str, device: str = "cpu") -> list[Variant]:
    """The folded fp32 file and its int8 version, same runtime and options."""
    HOW[family] = how
    return [
        Variant(runtime, True, device, options, family),
        Variant(runtime, True, device, options, family, precision=INT8),
    ]


def how(variant: Variant) -> str:
    """What a user writes to get ``variant``."""
    if variant.family not in HOW:
        all_variants()  # fills HOW
    return HOW[variant.family]


def cpu_variants() -> list[Variant]:
    """Every CPU variant, the baseline (plain eager, unfolded) first."""
    return [
        *_pair("pytorch-eager", PYTORCH, TorchOptions("no_grad"), "with torch.no_grad(): model(x)"),
        *_pair(
            "pytorch-eager-t1",
            PYTORCH,
            TorchOptions("no_grad", threads=1),
            "torch.set_num_threads(1); with torch.no_grad(): model(x)",
        ),
        *_pair(
            "pytorch-inference-mode",
            PYTORCH,
            TorchOptions("inference_mode"),
            "with torch.inference_mode(): model(x)",
        ),
        _folded(
            "pytorch-channels-last",
            PYTORCH,
            TorchOptions("channels_last"),
            "model.to(memory_format=torch.channels_last); inference mode; input converted per call",
        ),
        _folded(
            "pytorch-no-mkldnn",
            PYTORCH,
            TorchOptions("no_mkldnn"),
            "torch.backends.mkldnn.flags(enabled=False); inference mode",
        ),
        _folded(
            "pytorch-jit-freeze",
            PYTORCH,
            TorchOptions("jit_freeze"),
            "torch.jit.freeze(torch.jit.trace(model, x)) (deprecated in torch 2.x)",
        ),
        _folded(
            "pytorch-compile",
            PYTORCH,
            TorchOptions("compile"),
            "torch.compile(model, dynamic=False), inductor freezing=True, default threads",
        ),
        _folded(
            "pytorch-compile-t1",
            PYTORCH,
            TorchOptions("compile", threads=1),
            "as pytorch-compile, compiled and run with torch.set_num_threads(1)",
        ),
        *_pair(
            "ort-disabled",
            ORT,
            OrtOptions("disabled"),
            "SessionOptions.graph_optimization_level = ORT_DISABLE_ALL; session.run",
        ),
        *_pair(
            "ort-default",
            ORT,
            OrtOptions("default"),
            "InferenceSession(path) with default SessionOptions (ORT_ENABLE_ALL); session.run",
        ),
        Variant(ORT, True, "cpu", OrtOptions("default"), "ort-default", precision=INT8),
        _folded(
            "ort-all-t1",
            ORT,
            OrtOptions("all", threads=1),
            "ORT_ENABLE_ALL, intra_op_num_threads=1, sequential; session.run",
        ),
        *_int8(
            "ort-all-t1-iobind",
            ORT,
            OrtOptions("all", threads=1, io_binding=True),
            "ORT_ENABLE_ALL, intra_op_num_threads=1, IO binding, pre-allocated output",
        ),
        _folded(
            LOGITS_ONLY,
            ORT,
            OrtOptions("all", threads=1, io_binding=True),
            "as ort-all-t1-iobind, on the folded graph without ood_score (the OOD score's cost)",
        ),
        _folded(
            "ort-all-t1-iobind-no-nchwc",
            ORT,
            OrtOptions(
                "all", threads=1, io_binding=True, disabled_optimizers=("NchwcTransformer",)
            ),
            "as ort-all-t1-iobind, InferenceSession(..., disabled_optimizers=['NchwcTransformer'])",
        ),
        _folded(
            "ort-extended-t1-iobind",
            ORT,
            OrtOptions("extended", threads=1, io_binding=True),
            "as ort-all-t1-iobind at ORT_ENABLE_EXTENDED (no layout transformers)",
        ),
        _folded(
            "ort-all-t2-iobind-nospin",
            ORT,
            OrtOptions("all", threads=2, io_binding=True, spinning=False),
            "as ort-all-t2-iobind with session.intra_op.allow_spinning = 0",
        ),
        *_int8(
            "ort-all-t2-iobind",
            ORT,
            OrtOptions("all", threads=2, io_binding=True),
            "ORT_ENABLE_ALL, intra_op_num_threads=2, IO binding, pre-allocated output",
        ),
        *openvino_variants(),
    ]


def openvino_variants() -> list[Variant]:
    """The peer: OpenVINO's CPU plugin on the same files (optional extra ``.[peers]``)."""
    return [
        *_int8(
            "openvino-t1",
            OPENVINO,
            OpenVinoOptions("LATENCY", threads=1),
            "ov.Core().compile_model(path, 'CPU', {PERFORMANCE_HINT: LATENCY, "
            "INFERENCE_NUM_THREADS: 1, INFERENCE_PRECISION_HINT: f32}); input tensor set once",
        ),
        *_int8(
            "openvino-t2",
            OPENVINO,
            OpenVinoOptions("LATENCY", threads=2),
            "as openvino-t1 with INFERENCE_NUM_THREADS: 2",
        ),
        _folded(
            "openvino-bf16-t2",
            OPENVINO,
            OpenVinoOptions("LATENCY", threads=2, precision="bf16"),
            "as openvino-t2 with OpenVINO's own default precision on this CPU (bf16: not fp32)",
        ),
    ]


def cuda_variants() -> list[Variant]:
    """PyTorch eager and the ORT CUDA provider (IO binding, device-resident input and output)."""
    return [
        *_pair(
            "pytorch-cuda",
            PYTORCH,
            TorchOptions("no_grad"),
            "model.cuda(); input on the GPU; torch.no_grad(); TF32 off",
            "cuda",
        ),
        *_pair(
            "ort-cuda-iobind",
            ORT,
            OrtOptions("default", io_binding=True),
            "CUDAExecutionProvider, input and output OrtValues on the GPU (IO binding), TF32 off",
            "cuda",
        ),
        Variant(
            ORT,
            True,
            "cuda",
            OrtOptions("default", io_binding=True),
            "ort-cuda-iobind",
            precision=INT8,
        ),
    ]


def all_variants() -> list[Variant]:
    return cpu_variants() + cuda_variants()
