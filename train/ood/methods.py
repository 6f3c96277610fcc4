"""The OOD scores: how each is fitted on training features, and how each scores a batch.

A math layer under :mod:`train.ood.scorer`: fitting is plain tensor arithmetic on
:class:`Features` of the training images; scoring uses only torch ops that both ONNX exporters
write (MatMul, ReduceMin/Mean, TopK, Softmax, LogSumExp) and that torch.fx traces. Every score
is (N,) float32 and *higher = less like the training data*. A method may also derive serving
constants from its stored statistics (:data:`PREPARE`): the scorer computes them once, so the
exported graph holds the fewest nodes (at batch 1 every ONNX Runtime node costs a dispatch).

Methods (``METHODS``):

- ``msp``: 1 - max softmax probability (Hendrycks & Gimpel, 2017). Needs no statistics.
- ``energy``: -logsumexp(logits) (Liu et al., 2020). Needs no statistics.
- ``mahalanobis``: min over classes of the Mahalanobis distance of the penultimate features
  to the class mean, shared covariance (Lee et al., 2018).
- ``knn``: 1 - cosine similarity to the k-th nearest normalised training feature (Sun et al.,
  2022). Served as four ONNX Runtime nodes: the feature normalised in the RMS-norm form ORT fuses
  (SimplifiedLayerNormalization), one Gemm against the negated bank with bias 1 (every distance
  1 - cos at once), TopK (smallest k) and the k-th column.
- ``bn-stats``: how far each image's per-channel activation means after every BN fall from
  what BN expects on training data (mean β, std |γ|); read from the BN layers alone, no data.
- ``channel-stats``: the same per-image channel means and standard deviations, scored against
  their measured training-set distribution (one Gaussian, Mahalanobis distance).
- ``A+B``: the sum of the scores of A and B, each standardised by its training-set mean and
  standard deviation, so neither dominates by scale (knn's is folded into its Gemm's constants).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from train.ood.taps import Taps

BASE_METHODS = ("msp", "energy", "mahalanobis", "knn", "bn-stats", "channel-stats")
DEFAULT_K = 10  # kNN: the k-th neighbour among all training images (Sun et al.: 50 of 50k)
# The bank is embedded in every exported ONNX file: 1024 x 84 float32 = 344 KB. A random subset
# scores as well as all 3200 training features of the default set (README, train.ood), with k
# scaled to the subset's share (10 of 3200 -> 3 of 1024).
BANK_SIZE = 1024
SHRINKAGE = 1e-3  # covariance += SHRINKAGE * mean variance * I: dead ReLU units stay invertible
# knn normalises f as f / sqrt(mean(f²) + NORM_EPS) / sqrt(d) = f / sqrt(‖f‖² + d·NORM_EPS): the
# same as f / max(‖f‖, 1e-12) up to float rounding unless ‖f‖ < 1e-11, and a zero row stays zero.
NORM_EPS = 1e-24
Stats = dict[str, Tensor]  # integer 0-d tensors (kNN's k) are hyper-parameters, not data


@dataclass
class Features:
    """What the fits need from one pass over the training images (float64 for the fits)."""

    logits: Tensor  # (N, classes)
    labels: Tensor  # (N,) int64
    penultimate: Tensor  # (N, 84)
    moments: Tensor  # (N, K): per-image channel means then stds of each conv tap, then fc1's
    bn_z: Tensor  # (N, L): bn-stats' per-layer mean squared z-score

    @staticmethod
    def of(taps: Taps, labels: Tensor, bn: Stats | None) -> Features:
        return Features(
            taps.logits.double(),
            labels,
            taps.penultimate.double(),
            channel_moments(taps).double(),
            (bn_layer_z(taps, bn) if bn else torch.zeros(len(labels), 0)).double(),
        )


def channel_moments(taps: Taps) -> Tensor:
    """Per-image mean and standard deviation of every conv channel, then fc1's activations."""
    parts = []
    for a in taps.conv:
        mean = a.mean(dim=(2, 3))
        var = (a - mean[:, :, None, None]).pow(2).mean(dim=(2, 3))
        parts += [mean, var.sqrt()]
    return torch.cat([*parts, taps.hidden], dim=1)


def bn_layer_z(taps: Taps, bn: Stats) -> Tensor:
    """(N, layers): mean over channels of ((per-image channel mean - β) / |γ|)² per BN layer.

    On training data a BN's output has per-channel mean β and std |γ|, so each z is O(1) for
    training-like images; noise and flat colours push the channel means far from β.
    """
    values = [a.mean(dim=(2, 3)) for a in taps.conv] + [taps.hidden]
    cols = []
    for i, v in enumerate(values):
        z = (v - bn[f"beta{i}"]) / bn[f"gamma_abs{i}"]
        cols.append(z.pow(2).mean(dim=1, keepdim=True))
    return torch.cat(cols, dim=1)


def _whitener(centred: Tensor) -> Tensor:
    """W with ||x W||² = x Σ⁻¹ xᵀ for the (shrunk) covariance of ``centred`` rows."""
    n, d = centred.shape
    cov = centred.T @ centred / max(n - 1, 1)
    cov = cov + SHRINKAGE * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(d, dtype=cov.dtype)
    return torch.linalg.cholesky(torch.linalg.inv(cov))


# ---- fitting: Features of the training images -> statistics tensors (float32) ----------------


def fit_mahalanobis(f: Features) -> Stats:
    classes = int(f.logits.shape[1])
    means = torch.stack([f.penultimate[f.labels == c].mean(0) for c in range(classes)])
    centred = f.penultimate - means[f.labels]
    w = _whitener(centred)
    return {"whiten": w.float(), "means_w": (means @ w).float()}


def fit_knn(f: Features, k: int = DEFAULT_K, bank_size: int = BANK_SIZE) -> Stats:
    """At most ``bank_size`` normalised training features (a seeded random subset) and the k."""
    n = len(f.penultimate)
    feats = f.penultimate
    if n > bank_size:
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:bank_size]
        feats, k = feats[keep], max(1, round(k * bank_size / n))
    k = min(k, len(feats))  # a tiny training set (tests) still gets a usable k
    bank = torch.nn.functional.normalize(feats, dim=1, eps=1e-12)
    return {"bank": bank.float(), "k": torch.tensor(k)}


def fit_channel_stats(f: Features) -> Stats:
    mean = f.moments.mean(0)
    w = _whitener(f.moments - mean)
    return {"whiten": w.float(), "mean_w": (mean @ w).float()}


def bn_stats_from_model(model: torch.nn.Module) -> Stats | None:
    """β and |γ| of LeNet's bn1, bn2, bn3, or None when the model has no BatchNorm."""
    bns = [getattr(model, name) for name in ("bn1", "bn2", "bn3")]
    if not all(isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) for bn in bns):
        return None
    stats: Stats = {}
    for i, bn in enumerate(bns):
        stats[f"beta{i}"] = bn.bias.detach().float().clone()
        stats[f"gamma_abs{i}"] = bn.weight.detach().abs().clamp_min(1e-6).float().clone()
    return stats


# ---- scoring: Taps + statistics -> (N,) float32, higher = more out-of-distribution -----------


def score_msp(taps: Taps, stats: Stats) -> Tensor:
    return 1.0 - taps.logits.softmax(dim=1).amax(dim=1)


def score_energy(taps: Taps, stats: Stats) -> Tensor:
    return -torch.logsumexp(taps.logits, dim=1)


def score_mahalanobis(taps: Taps, stats: Stats) -> Tensor:
    z = taps.penultimate @ stats["whiten"]
    d = (z[:, None, :] - stats["means_w"][None, :, :]).pow(2).sum(dim=2)
    return d.amin(dim=1)


def prepare_knn(stats: Stats, loc: Tensor | float = 0.0, scale: Tensor | float = 1.0) -> Stats:
    """knn's serving constants: ``linear(unit(f), weight, bias)`` is ``(1 - cos - loc) / scale``.

    Negating the bank and adding 1 as Gemm's bias turns every similarity into its distance in
    the one Gemm; a combined method's standardisation (``loc``, ``scale`` > 0) folds in too, and
    keeps the order of the distances, so TopK still finds the same k-th neighbour.
    """
    bank = stats["bank"]
    return {
        "weight": (-bank / scale).contiguous(),
        "bias": torch.ones(len(bank), dtype=bank.dtype).sub(loc).div(scale),
        "gamma": torch.full((bank.shape[1],), bank.shape[1] ** -0.5, dtype=bank.dtype),
    }


def unit_rows(f: Tensor, gamma: Tensor) -> Tensor:
    """``f / ‖f‖`` per row, written as the RMS norm ONNX Runtime fuses into one node.

    ``gamma`` is ``1/sqrt(d)`` per column (:func:`prepare_knn`); see :data:`NORM_EPS`.
    """
    return f / torch.sqrt(f.pow(2).mean(dim=1, keepdim=True) + NORM_EPS) * gamma


def score_knn(taps: Taps, stats: Stats) -> Tensor:
    dist = torch.nn.functional.linear(
        unit_rows(taps.penultimate, stats["gamma"]), stats["weight"], stats["bias"]
    )
    k = stats["k"]  # a Python int in the scorer (see train.ood.scorer), so TopK's k is static
    return dist.topk(k, dim=1, largest=False).values[:, k - 1]


def score_bn_stats(taps: Taps, stats: Stats) -> Tensor:
    return bn_layer_z(taps, stats).sum(dim=1)


def score_channel_stats(taps: Taps, stats: Stats) -> Tensor:
    z = channel_moments(taps) @ stats["whiten"] - stats["mean_w"]
    return z.pow(2).sum(dim=1)


SCORERS = {
    "msp": score_msp,
    "energy": score_energy,
    "mahalanobis": score_mahalanobis,
    "knn": score_knn,
    "bn-stats": score_bn_stats,
    "channel-stats": score_channel_stats,
}


#: method -> its serving constants from (stored stats, loc, scale); its score applies loc/scale.
PREPARE = {"knn": prepare_knn}


def components(method: str) -> list[str]:
    """The base methods of ``method`` ("knn+msp" -> both); ValueError if it names an unknown one."""
    parts = method.split("+")
    unknown = [p for p in parts if p not in SCORERS]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(
            f"unknown OOD method {method!r}: use one of {', '.join(BASE_METHODS)}, "
            "or several joined by '+' (each once)"
        )
    return parts


def _own(stats: Stats, part: str) -> Stats:
    """A combined method's statistics of ``part``, without the ``part.`` prefix."""
    return {k.removeprefix(f"{part}."): v for k, v in stats.items() if k.startswith(f"{part}.")}


def prepare(method: str, stats: Stats) -> Stats:
    """The serving constants of ``method`` (keys prefixed like its stats), from :data:`PREPARE`."""
    parts = components(method)
    if len(parts) == 1:
        return PREPARE[method](stats) if method in PREPARE else {}
    out: Stats = {}
    for p in parts:
        if p in PREPARE:
            own = _own(stats, p)
            derived = PREPARE[p](own, own["loc"], own["scale"])
            out.update({f"{p}.{k}": v for k, v in derived.items()})
    return out


def score(method: str, taps: Taps, stats: Stats) -> Tensor:
    """The score of ``method`` (base or combined) from its statistics and :func:`prepare`'s."""
    parts = components(method)
    if len(parts) == 1:
        return SCORERS[method](taps, stats)
    total = None
    for p in parts:
        own = _own(stats, p)
        s = SCORERS[p](taps, own)
        if p not in PREPARE:  # a prepared method's constants already standardise it
            s = (s - own["loc"]) / own["scale"]
        total = s if total is None else total + s
    return total
