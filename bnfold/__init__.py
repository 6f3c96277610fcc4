"""bnfold: fold BatchNorm into the layer before or after it, in PyTorch models and ONNX graphs.

Imports are lazy so that ``import bnfold`` pulls in neither torch.fx machinery nor onnx
until a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

from bnfold.report import BNRecord, Direction, FoldReport

__all__ = [
    "BNRecord",
    "Direction",
    "FoldReport",
    "FoldResult",
    "ParityResult",
    "compare",
    "fold",
    "fold_onnx",
]

_LAZY = {
    "fold": "bnfold.torch_fold",
    "FoldResult": "bnfold.torch_fold",
    "fold_onnx": "bnfold.onnx_fold",
    "compare": "bnfold.parity",
    "ParityResult": "bnfold.parity",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bnfold' has no attribute {name!r}")
