"""The networks a checkpoint serves: the model with its OOD score inside, and the fold of it.

Export, the demo and the benchmarks all run what this builds, so the ONNX files, the float64
reference and every PyTorch variant compute the same outputs. A checkpoint with an ``ood``
entry (see :mod:`train.ood.scorer`) serves ``WithOOD(model, scorer)``: two outputs, ``logits``
and ``ood_score`` (N,), higher = less like the training data, *unknown* when
``ood_score > threshold``. Its fold is ``bnfold.fold`` of that whole module, so the backbone's
BatchNorms fold and the score is computed from the folded layers' outputs, which equal the BN
outputs it was fitted on. A checkpoint without ``ood`` (trained before the score existed)
serves the model alone, logits only, with a one-line notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from export.runtimes.runner import LOGITS

if TYPE_CHECKING:
    from bnfold.checkpoint import Checkpoint
    from bnfold.report import FoldReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OODInfo:
    """What decides *unknown*: ``ood_score > threshold``, the score being ``method``'s."""

    threshold: float
    method: str

    def is_unknown(self, score: float) -> bool:
        return float(score) > self.threshold


@dataclass
class Networks:
    """The served network of a checkpoint, unfolded and folded (eval mode, CPU, float32)."""

    unfolded: nn.Module
    folded: nn.Module
    fold_report: FoldReport
    output_names: tuple[str, ...]  # ("logits",) or ("logits", "ood_score")
    ood: OODInfo | None  # None: the checkpoint has no OOD score

    @property
    def num_bn(self) -> int:
        from bnfold.bn_stats import is_batchnorm

        return sum(is_batchnorm(m) for m in self.unfolded.modules())


def served_networks(ckpt: Checkpoint, source: str = "the checkpoint") -> Networks:
    """``ckpt``'s network, with its OOD score when it has one, and the fold of it.

    ValueError (from :meth:`train.ood.scorer.OODScorer.from_state`) when the ``ood`` entry is
    broken: serving a model whose "unknown" cannot be computed would silently drop it.
    """
    import bnfold

    model = ckpt.build_model(allow_folded=False).eval()
    if ckpt.ood is None:
        log.warning(
            "%s has no 'ood' entry (trained before the OOD score): serving logits only; "
            "retrain to get ood_score",
            source,
        )
        served, names, info = model, (LOGITS,), None
    else:
        from train.ood.scorer import OUTPUT_NAMES, OODScorer, WithOOD

        scorer = OODScorer.from_state(ckpt.ood)
        served, names = WithOOD(model, scorer).eval(), tuple(OUTPUT_NAMES)
        info = OODInfo(scorer.threshold, scorer.method)
    result = bnfold.fold(served, torch.zeros(2, 3, *ckpt.input_size))
    return Networks(served, result.model.eval(), result.report, names, info)
