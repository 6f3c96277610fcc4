"""PyTorch's side of "does CUDA really run here", and full fp32 on CUDA.

TF32 is off for every CUDA variant: PyTorch lets cuDNN convolutions use TF32 by default
(``torch.backends.cudnn.allow_tf32`` is True; matmuls default to full fp32), and onnxruntime's
CUDA provider enables it too (``use_tf32``, turned off in :mod:`export.runtimes.sessions`).
TF32 keeps a 10-bit mantissa, a relative error of ~5e-4 per product, which no fp32 tolerance
should absorb.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


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
