"""A :class:`Variant`: one way of running one of the two networks, and its runtime's options."""

from __future__ import annotations

from dataclasses import dataclass, field

PYTORCH = "pytorch"
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
DEVICES = ("cpu", "cuda")
UNFOLDED = "unfolded"
FOLDED = "folded"
FP32 = "fp32"
INT8 = "int8"  # the folded network quantised: <stem>.folded.int8.onnx (export.quantize)
PRECISIONS = (FP32, INT8)


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

    ``level``: "disabled" (ORT_DISABLE_ALL), "extended" (ORT_ENABLE_EXTENDED: fusions, no
    layout transformers such as NCHWc), "default" (a plain ``SessionOptions()``, which is
    ORT_ENABLE_ALL) or "all" (ORT_ENABLE_ALL, said explicitly). ``threads``: intra-op threads
    (None: ORT's default, one per physical core); with a number, inter-op threads are 1 and
    execution is sequential. ``io_binding``: input bound once as an OrtValue and the outputs
    written into pre-allocated OrtValues (on the device for CUDA), instead of numpy in and out
    on every call.
    """

    level: str = "default"
    threads: int | None = None
    io_binding: bool = False
    # Checks of what ORT's optimisations buy: graph transformers to skip by name (e.g.
    # "NchwcTransformer"), and session.intra_op.allow_spinning (None: ORT's default, on).
    disabled_optimizers: tuple[str, ...] = ()
    spinning: bool | None = None


@dataclass(frozen=True)
class OpenVinoOptions:
    """How OpenVINO runs the ONNX file (an optional peer: ``pip install -e '.[peers]'``).

    ``hint``: OpenVINO's ``PERFORMANCE_HINT``, "LATENCY" (one stream, all threads on one
    request) or "THROUGHPUT". ``threads``: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's choice,
    one per physical core). ``precision``: ``INFERENCE_PRECISION_HINT`` for the float parts,
    "f32" by default: on a CPU with AVX512_BF16 OpenVINO's own default is bf16, which is
    faster and not fp32 (max |Δ logits| ~1e-2 here), so it is asked for only by name.
    """

    hint: str = "LATENCY"
    threads: int | None = None
    precision: str = "f32"


OPTIONS = {PYTORCH: TorchOptions, ONNXRUNTIME: OrtOptions, OPENVINO: OpenVinoOptions}
#: Runtimes that read the ONNX files (and so can run the int8 one).
ONNX_RUNTIMES = (ONNXRUNTIME, OPENVINO)


@dataclass(frozen=True)
class Variant:
    """One runtime × {unfolded, folded} × device × options, named ``<family>/<kind>``.

    ``family`` is the caller's short name for everything but the folding (parity and the
    benchmarks keep their own, so their reports do not change); empty means
    ``<runtime>-<device>``. ``options`` defaults to the runtime's default options.
    ``precision`` "int8" is the folded network's int8 file (ONNX runtimes only); its kind is
    "int8".
    """

    runtime: str
    folded: bool
    device: str = "cpu"
    options: TorchOptions | OrtOptions | OpenVinoOptions | None = field(default=None)
    family: str = ""
    precision: str = FP32

    def __post_init__(self) -> None:
        if self.runtime not in OPTIONS:
            raise ValueError(
                f"unknown runtime {self.runtime!r}: choose one of {', '.join(OPTIONS)}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}")
        wanted = OPTIONS[self.runtime]
        if self.options is None:
            object.__setattr__(self, "options", wanted())
        elif not isinstance(self.options, wanted):
            raise TypeError(f"{self.runtime} takes {wanted.__name__}, got {self.options!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}: choose one of fp32, int8")
        if self.precision == INT8 and (not self.folded or self.runtime not in ONNX_RUNTIMES):
            raise ValueError(
                "int8 is the folded network's ONNX file: use folded=True with onnxruntime or "
                f"openvino, not {self.runtime} folded={self.folded}"
            )
        if not self.family:
            object.__setattr__(self, "family", f"{self.runtime}-{self.device}")

    @property
    def kind(self) -> str:
        """The file it runs: "unfolded", "folded" or "int8" (folded, quantised)."""
        if self.precision == INT8:
            return INT8
        return FOLDED if self.folded else UNFOLDED

    @property
    def int8(self) -> bool:
        return self.precision == INT8

    @property
    def exact(self) -> bool:
        """Whether it computes in fp32 (held to fp32 tolerances) rather than int8 or bf16."""
        return not self.int8 and getattr(self.options, "precision", "f32") == "f32"

    @property
    def name(self) -> str:
        return f"{self.family}/{self.kind}"

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def provider(self) -> str:
        """Where it runs, as reports name it: ``torch-cpu``/``torch-cuda`` or the ORT provider."""
        if self.runtime == PYTORCH:
            return f"torch-{self.device}"
        if self.runtime == OPENVINO:
            return f"openvino-{self.device}"
        from export.runtimes.sessions import PROVIDERS

        return PROVIDERS[self.device]
