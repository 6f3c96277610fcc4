"""One training epoch and one evaluation pass over in-memory uint8 image sets.

Both normalise with the mean/std they are given (the checkpoint's), through
:func:`train.preprocess.normalize`, the function every other consumer uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from tqdm import tqdm

from train.dataset import ImageSet
from train.ood.exposure import DEFAULT_EXPOSURE
from train.preprocess import normalize
from train.transforms import train_batch

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel

    from train.augment import Augment

Stats = tuple[float, ...]


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite: the weights are no longer worth saving."""


@dataclass
class EpochStats:
    loss: float
    acc: float
    step_losses: list[float]


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """Shuffled index batches; a trailing batch of one is dropped (BatchNorm cannot train on it)."""
    order = torch.randperm(n, generator=generator)
    out = list(order.split(batch_size))
    if len(out) > 1 and len(out[-1]) == 1:
        out.pop()
    return out


def train_one_epoch(
    model: nn.Module,
    data: ImageSet,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    mean: Stats,
    std: Stats,
    desc: str = "train",
    negatives: Tensor | None = None,
    outlier_loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    augment: Augment = train_batch,
    average: AveragedModel | None = None,
) -> EpochStats:
    """Train ``model`` for one pass over ``data``, ``augment`` (default: the course's) per batch.

    ``negatives`` (uint8 non-note images) switch on outlier exposure: each batch also sees as
    many random negatives, and ``outlier_loss(note_logits, negative_logits)`` (default:
    :data:`train.ood.exposure.DEFAULT_EXPOSURE`) is added, so the classes stay the notes' and
    "unknown" is learnt as "no class is likely, and no note is there".

    ``average`` (a :class:`~torch.optim.swa_utils.AveragedModel` of ``model``) is updated after
    every step.

    Raises :class:`NonFiniteLossError` before stepping on a NaN/Inf loss, so no update is made
    from it.
    """
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    total_loss, correct, seen, step_losses = 0.0, 0, 0, []
    bar = tqdm(batches(len(data), batch_size, generator), desc=desc, leave=False, disable=None)
    for step, idx in enumerate(bar, start=1):
        idx = idx.to(data.images.device)
        inputs, targets = augment(data.images[idx], generator, mean, std), data.labels[idx]
        if negatives is not None:
            pick = torch.randint(0, len(negatives), (len(idx),), generator=generator)
            extra = augment(negatives[pick.to(negatives.device)], generator, mean, std)
            both = model(torch.cat([inputs, extra]))
            logits, outlier_logits = both[: len(idx)], both[len(idx) :]
            loss = loss_fn(logits, targets) + (outlier_loss or DEFAULT_EXPOSURE)(
                logits, outlier_logits
            )
        else:
            logits = model(inputs)
            loss = loss_fn(logits, targets)
        step_loss = loss.item()
        if not math.isfinite(step_loss):
            raise NonFiniteLossError(f"the training loss is {step_loss} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update_parameters(model)
        step_losses.append(step_loss)
        total_loss += step_loss * len(idx)
        correct += (logits.argmax(1) == targets).sum().item()
        seen += len(idx)
        bar.set_postfix(loss=f"{step_loss:.4f}", acc=f"{correct / seen:.2%}")
    return EpochStats(total_loss / seen, correct / seen, step_losses)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: ImageSet, mean: Stats, std: Stats, batch_size: int = 256
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (eval mode) on ``data``."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(data), batch_size):
        inputs = normalize(data.images[start : start + batch_size], mean, std)
        targets = data.labels[start : start + batch_size]
        logits = model(inputs)
        total_loss += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        correct += (logits.argmax(1) == targets).sum().item()
    return total_loss / len(data), correct / len(data)
