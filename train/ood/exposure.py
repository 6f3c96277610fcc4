"""The outlier-exposure loss: what training asks of the logits on non-note images.

Two terms, both on top of the notes' cross-entropy (Hendrycks et al., 2019; Liu et al., 2020):

- *uniform*: the cross-entropy of a negative's softmax to the uniform distribution, so no class
  is likely for it (its max softmax probability goes to 1 / classes);
- *energy margins*: squared hinges that push a note's energy E = -logsumexp(logits) below
  ``m_in`` and a negative's above ``m_out``. With two classes a note the network hesitates
  about also has a near-uniform softmax, so the uniform term alone cannot tell "unsure which
  note" from "no note"; the energy term makes the logits' size carry "a note is there".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ExposureLoss:
    """Weights and margins of the outlier-exposure terms (see the module doc)."""

    uniform_weight: float = 0.5
    energy_weight: float = 0.3
    m_in: float = -5.0
    m_out: float = -1.0

    def __call__(self, logits_in: Tensor, logits_out: Tensor) -> Tensor:
        """The extra loss for a batch of notes' logits and a batch of negatives' logits."""
        uniform = -logits_out.log_softmax(dim=1).mean(dim=1).mean()
        energy_in = -torch.logsumexp(logits_in, dim=1)
        energy_out = -torch.logsumexp(logits_out, dim=1)
        margins = (energy_in - self.m_in).relu().pow(2).mean()
        margins = margins + (self.m_out - energy_out).relu().pow(2).mean()
        return self.uniform_weight * uniform + self.energy_weight * margins


DEFAULT_EXPOSURE = ExposureLoss()
