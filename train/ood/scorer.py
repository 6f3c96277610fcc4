"""The OOD score as a module inside the model: ``WithOOD(model, scorer)(x) -> (logits, score)``.

The scorer's state is the checkpoint's ``ood`` dict (plain tensors, numbers and strings, so
``torch.load(weights_only=True)`` reads it); :meth:`OODScorer.from_state` rebuilds the module
from it without any pickled code. Layout (``OOD_FORMAT`` 1)::

    {"format": 1,
     "method": "mahalanobis+channel-stats",     # train.ood.methods, "+" joins methods
     "threshold": 12.3,                          # unknown when score > threshold
     "stats": {"<method>.<name>": Tensor, ...},  # float32 statistics; 0-d int64 = hyper-parameter
     "calibration": {"split": "valid", "images": 100, "target_false_reject": 0.02,
                     "false_reject": 0.02}}

For a single method the ``stats`` keys carry no prefix. ``WithOOD`` is traceable by torch.fx
(so ``bnfold.fold`` folds the backbone's BatchNorms inside it) and exports to ONNX with two
outputs, ``logits`` and ``ood_score``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from train.ood import methods
from train.ood.taps import Taps, check_lenet, lenet_taps

OOD_FORMAT = 1
OUTPUT_NAMES = ("logits", "ood_score")


class OODScorer(nn.Module):
    """Scores :class:`~train.ood.taps.Taps` with one method's statistics held as buffers."""

    def __init__(self, method: str, stats: dict[str, Tensor], threshold: float) -> None:
        super().__init__()
        methods.components(method)  # ValueError for an unknown method
        self.method = method
        self.threshold = float(threshold)
        self._buffers_of: dict[str, str] = {}
        self._ints: dict[str, int] = {}
        for key, value in stats.items():
            if not isinstance(value, Tensor):
                raise ValueError(f"ood stats {key!r} is a {type(value).__name__}, not a tensor")
            if value.dtype in (torch.int32, torch.int64) and value.dim() == 0:
                self._ints[key] = int(value)
            else:
                name = "s_" + key.replace(".", "__").replace("-", "_")
                self.register_buffer(name, value.detach().float().clone())
                self._buffers_of[key] = name
        # Serving constants derived from the stats (methods.PREPARE): computed once here, never
        # saved (state() holds the stored stats only), exported as initialisers.
        self._derived_of: dict[str, str] = {}
        for key, value in methods.prepare(method, self.stats()).items():
            name = "d_" + key.replace(".", "__").replace("-", "_")
            self.register_buffer(name, value.detach().float().clone(), persistent=False)
            self._derived_of[key] = name

    def stats(self) -> dict[str, Any]:
        """The stored statistics (buffers and ints), as the checkpoint holds them."""
        out: dict[str, Any] = {k: getattr(self, name) for k, name in self._buffers_of.items()}
        out.update(self._ints)
        return out

    def forward(self, taps: Taps) -> Tensor:
        served = self.stats()
        served.update({k: getattr(self, name) for k, name in self._derived_of.items()})
        return methods.score(self.method, taps, served)

    def state(self) -> dict[str, Any]:
        """The ``ood`` dict of a checkpoint, without ``calibration`` (see the module doc)."""
        stats = {
            k: v.detach().clone() if isinstance(v, Tensor) else torch.tensor(v)
            for k, v in self.stats().items()
        }
        return {
            "format": OOD_FORMAT,
            "method": self.method,
            "threshold": self.threshold,
            "stats": stats,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OODScorer:
        """Rebuild from a checkpoint's ``ood`` dict; ValueError naming what is wrong."""
        if not isinstance(state, dict):
            raise ValueError(
                f"the checkpoint's 'ood' entry is a {type(state).__name__}, not a dict"
            )
        if state.get("format") != OOD_FORMAT:
            raise ValueError(
                f"the checkpoint's 'ood' entry has format {state.get('format')!r}; this version "
                f"reads {OOD_FORMAT}: refit it (python -m train.ood --checkpoint CKPT --refit M)"
            )
        missing = [k for k in ("method", "threshold", "stats") if k not in state]
        if missing:
            raise ValueError(f"the checkpoint's 'ood' entry lacks {', '.join(missing)}")
        return cls(state["method"], state["stats"], state["threshold"])


class WithOOD(nn.Module):
    """``model`` (LeNet / BN-LeNet) that also returns its OOD score: ``(logits, ood_score)``.

    ``ood_score`` is (N,) float32; the image is unknown when ``ood_score > scorer.threshold``.
    """

    def __init__(self, model: nn.Module, scorer: OODScorer) -> None:
        super().__init__()
        check_lenet(model)
        self.model = model
        self.scorer = scorer

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        taps = lenet_taps(self.model, x)
        return taps.logits, self.scorer(taps)
