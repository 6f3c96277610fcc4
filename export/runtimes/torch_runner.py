"""PyTorch as a :class:`~export.runtimes.runner.Runner`: eager, inference mode, NHWC, jit, compile.

Each runner owns a deep copy of the model on its device (the caller's stays where it is). Per
batch, ``bind`` puts the input where the variant wants it and does the one-off work a
deployment does once (tracing, compiling for that shape), so ``step`` holds only what every
request pays. CUDA steps end with ``torch.cuda.synchronize()`` so a timer sees the work, not
its launch.

TF32 is off for every CUDA variant (:func:`no_tf32`; ORT's in :mod:`export.runtimes.sessions`):
PyTorch lets cuDNN convolutions use TF32 by default, and TF32 keeps a 10-bit mantissa, a
relative error of ~5e-4 per product, which no fp32 tolerance should absorb.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from export.runtimes.errors import Unavailable, first_line
from export.runtimes.runner import LOGITS, Bound, Runner, logits_first

log = logging.getLogger(__name__)

MODES = ("no_grad", "inference_mode", "channels_last", "no_mkldnn", "jit_freeze", "compile")
_JIT_WARMUP = 3  # the profiling executor optimises a frozen graph on its second call


def torch_cuda_unavailable() -> str | None:
    """Why PyTorch cannot run on CUDA here, or None when it can."""
    if not torch.cuda.is_available():
        built = torch.version.cuda
        build = f"a CUDA {built} build" if built else "a CPU-only build"
        return f"torch.cuda.is_available() is False (torch {torch.__version__}, {build})"
    return None


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full fp32 for cuDNN convolutions and CUDA matmuls inside the block, restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def named_outputs(
    output: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
    names: Sequence[str] = (LOGITS,),
) -> dict[str, torch.Tensor]:
    """A model's output by name, ``logits`` first.

    A plain tensor is the logits; a tuple (``WithOOD`` returns ``(logits, ood_score)``) is
    named by ``names`` in order; a dict names itself.
    """
    if isinstance(output, torch.Tensor):
        output = (output,)
    if isinstance(output, tuple | list):
        if len(output) != len(names):
            raise ValueError(
                f"the model returned {len(output)} outputs, expected {len(names)} "
                f"({', '.join(names)})"
            )
        output = dict(zip(names, output, strict=True))
    if isinstance(output, Mapping):
        return {name: output[name] for name in logits_first(list(output))}
    raise TypeError(
        f"a model must return a tensor, a tuple or a dict of named tensors, got "
        f"{type(output).__name__}"
    )


def float64_reference(
    model: nn.Module, names: Sequence[str] = (LOGITS,)
) -> Callable[[Any], dict[str, np.ndarray]]:
    """A float64 CPU copy of ``model`` as batch → named outputs (``names`` for a tuple output):
    what every variant is measured against (its own rounding then does not count against them)."""
    reference = copy.deepcopy(model).to("cpu", torch.float64).eval()

    def run(batch: Any) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = named_outputs(reference(torch.as_tensor(batch).to(torch.float64)), names)
        return {name: value.numpy() for name, value in out.items()}

    return run


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count inside the block (None: leave it), restored after."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compiler_unavailable() -> str | None:
    """Why inductor cannot build CPU kernels here, or None when a C++ compiler is found."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = get_cpp_compiler()
    except Exception as e:  # inductor raises RuntimeError or its own types when none is found
        return f"torch.compile needs a C++ compiler for CPU kernels: {first_line(e)}"
    if not shutil.which(compiler):
        return f"torch.compile's C++ compiler {compiler!r} is not on PATH"
    return None


class TorchRunner(Runner):
    """One PyTorch variant: a private copy of the model on its device."""

    def __init__(
        self,
        variant,
        model: nn.Module,
        example: torch.Tensor | None = None,
        output_names: Sequence[str] = (LOGITS,),
    ) -> None:
        options = variant.options
        self.output_names = tuple(output_names)
        if options.mode not in MODES:
            raise ValueError(f"unknown torch mode {options.mode!r}: choose one of {MODES}")
        if variant.cuda:
            reason = torch_cuda_unavailable()
            if reason:
                raise Unavailable(reason)
        if options.mode == "compile":
            reason = compiler_unavailable()
            if reason:
                raise Unavailable(reason)
        self.device = torch.device(variant.device)
        try:
            self.model = copy.deepcopy(model).to(self.device).eval()
            if options.mode == "channels_last":
                self.model = self.model.to(memory_format=torch.channels_last)
            if variant.cuda and example is not None:
                with torch.inference_mode():
                    self.model(example.to(self.device))  # fail here, not on the first request
        except (RuntimeError, AssertionError) as e:  # torch raises both for a broken CUDA setup
            raise Unavailable(f"PyTorch could not run on {self.device}: {first_line(e)}") from e
        label = torch.cuda.get_device_name(self.device) if variant.cuda else "CPU"
        super().__init__(variant, label)

    def setting(self) -> contextlib.AbstractContextManager[None]:
        stack = contextlib.ExitStack()
        stack.enter_context(torch_threads(self.variant.options.threads))
        if self.variant.cuda:
            stack.enter_context(no_tf32())
        if self.variant.options.mode == "no_mkldnn":
            # The flags context also resets oneDNN's TF32 switch, which warns on CPU-only builds.
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
            stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
        return stack

    def bind(self, batch: np.ndarray) -> Bound:
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
        with self.setting():
            forward = self._forward(x)
        out: dict[str, torch.Tensor] = {}
        names = self.output_names
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None

        def step() -> None:
            out.update(named_outputs(forward(), names))
            if sync is not None:
                sync()

        def read() -> dict[str, np.ndarray]:
            if not out:
                with self.setting():
                    step()
            return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

        return Bound(step, read, self.setting)

    def _forward(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """The zero-argument call that ``step`` times, with its one-off work done."""
        model, mode = self.model, self.variant.options.mode
        if mode == "no_grad":
            return _under(torch.no_grad, lambda: model(x))
        if mode in ("inference_mode", "no_mkldnn"):
            return _under(torch.inference_mode, lambda: model(x))
        if mode == "channels_last":
            return _under(
                torch.inference_mode, lambda: model(x.contiguous(memory_format=torch.channels_last))
            )
        if mode == "jit_freeze":
            frozen = _jit_freeze(model, x)
            call = _under(torch.no_grad, lambda: frozen(x))
            for _ in range(_JIT_WARMUP):
                call()
            return call
        return _compile(model, x)


def _under(context: Callable[[], contextlib.AbstractContextManager], fn: Callable):
    def call():
        with context():
            return fn()

    return call


def _jit_freeze(model: nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(), torch.no_grad():
        # torch 2.x deprecates TorchScript (FutureWarning); it is measured as what it still is.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            return torch.jit.freeze(torch.jit.trace(model, x).eval())
        except Exception as e:  # TorchScript raises many types for untraceable code
            raise Unavailable(f"torch.jit.trace/freeze failed: {first_line(e)}") from e


def _compile(model: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``torch.compile`` specialised to ``x``'s shape, compiled here (not in the timed calls).

    ``freezing=True`` lets inductor treat the weights as constants (prepacked for oneDNN on the
    CPU); it must be on while the graph compiles, which happens on the first call. A fresh
    ``torch.compile`` wrapper per batch size with ``dynamic=False`` keeps one static graph each.
    """
    import torch._inductor.config as inductor_config

    compiled = torch.compile(model, dynamic=False)
    call = _under(torch.no_grad, lambda: compiled(x))
    try:
        with inductor_config.patch(freezing=True):
            call()
    except Exception as e:  # dynamo/inductor raise their own types (BackendCompilerFailed, ...)
        log.debug("torch.compile failed", exc_info=True)
        raise Unavailable(f"torch.compile failed: {first_line(e)}") from e
    return call
