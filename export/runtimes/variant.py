"""A :class:`Variant`: one way of running one of the two networks, and its runtime's options."""

from __future__ import annotations

from dataclasses import dataclass, field

PYTORCH = "pytorch"
ONNXRUNTIME = "onnxruntime"
DEVICES = ("cpu", "cuda")
UNFOLDED = "unfolded"
FOLDED = "folded"


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

    ``level``: "disabled" (ORT_DISABLE_ALL), "default" (a plain ``SessionOptions()``, which is
    ORT_ENABLE_ALL) or "all" (ORT_ENABLE_ALL, said explicitly). ``threads``: intra-op threads
    (None: ORT's default, one per physical core); with a number, inter-op threads are 1 and
    execution is sequential. ``io_binding``: input bound once as an OrtValue and the outputs
    written into pre-allocated OrtValues (on the device for CUDA), instead of numpy in and out
    on every call.
    """

    level: str = "default"
    threads: int | None = None
    io_binding: bool = False


OPTIONS = {PYTORCH: TorchOptions, ONNXRUNTIME: OrtOptions}


@dataclass(frozen=True)
class Variant:
    """One runtime × {unfolded, folded} × device × options, named ``<family>/<kind>``.

    ``family`` is the caller's short name for everything but the folding (parity and the
    benchmarks keep their own, so their reports do not change); empty means
    ``<runtime>-<device>``. ``options`` defaults to the runtime's default options.
    """

    runtime: str
    folded: bool
    device: str = "cpu"
    options: TorchOptions | OrtOptions | None = field(default=None)
    family: str = ""

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
        if not self.family:
            object.__setattr__(self, "family", f"{self.runtime}-{self.device}")

    @property
    def kind(self) -> str:
        return FOLDED if self.folded else UNFOLDED

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
        from export.runtimes.sessions import PROVIDERS

        return PROVIDERS[self.device]
