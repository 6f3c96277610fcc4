"""The demo's two questions, asked of every runtime: what is this note, and how fast is each.

Plain functions over a :class:`demo.runtimes.RuntimeSet` and a PIL image; the Gradio layer only
formats what they return. Preprocessing is :mod:`train.preprocess`, the one evaluation uses.
A photo is *unknown* when the float64 reference's ``ood_score`` is above the checkpoint's
threshold; every variant's own score is shown beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from PIL import Image

from demo.runtimes import ModelFacts, RuntimeSet
from export.networks import OODInfo
from export.runtimes.errors import Unavailable
from export.runtimes.runner import OOD_SCORE, Bound, Runner
from export.runtimes.timing import Stats, measure_interleaved, summarise
from export.runtimes.variant import Variant
from train import preprocess
from train.preprocess import normalize

DEFAULT_RUNS = 20
DEFAULT_WARMUP = 3
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
UNKNOWN = "unknown"  # the label of a photo the OOD score rejects


@dataclass(frozen=True)
class VariantResult:
    """One variant's answer for one image and what it cost."""

    variant: Variant
    device_label: str
    prediction: str
    confidence: float
    p50_ms: float
    p90_ms: float
    max_abs_dlogits: float  # vs the float64 reference
    facts: ModelFacts
    ood_score: float | None = None  # this variant's own score (None: the model has none)


@dataclass(frozen=True)
class Classification:
    """The reference probabilities, every available variant's result, and what could not run.

    ``ood_score`` is the float64 reference's; with ``ood`` (threshold and method) it decides
    whether the photo is :data:`UNKNOWN`.
    """

    probabilities: dict[str, float]
    results: list[VariantResult]
    unavailable: list[Unavailable]
    ood_score: float | None = None
    ood: OODInfo | None = None

    @property
    def network_label(self) -> str:
        """What the classifier answers, whether or not the photo is unknown."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def unknown(self) -> bool:
        return self.ood is not None and self.ood.is_unknown(self.ood_score)

    @property
    def label(self) -> str:
        """:data:`UNKNOWN` when the reference's OOD score is above the threshold."""
        return UNKNOWN if self.unknown else self.network_label


@dataclass(frozen=True)
class Throughput:
    """One (variant, batch size) point of a sweep."""

    variant: Variant
    batch_size: int
    p50_ms: float
    images_per_s: float


def model_input(image: Image.Image, runtimes: RuntimeSet) -> np.ndarray:
    """An RGB image as the 1×3×H×W float32 batch every runtime takes."""
    return preprocess.model_input(image, runtimes.checkpoint).numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def classify(
    runtimes: RuntimeSet,
    image: Image.Image,
    *,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
) -> Classification:
    """Classify ``image`` with every available variant, timing each over ``runs`` calls."""
    batch = model_input(image, runtimes)
    names = runtimes.class_names
    results = []
    with runtimes.lock:
        ref_outputs = runtimes.reference_outputs(batch)
        reference = ref_outputs["logits"][0]
        outputs = [runtime(batch) for runtime in runtimes.available]
        timings = latencies(runtimes.available, batch, runs=runs, warmup=warmup)
        for runtime, out, stats in zip(runtimes.available, outputs, timings, strict=True):
            logits = out["logits"][0]
            probs = softmax(logits)
            best = int(probs.argmax())
            results.append(
                VariantResult(
                    variant=runtime.variant,
                    device_label=runtime.device_label,
                    prediction=names[best],
                    confidence=float(probs[best]),
                    p50_ms=stats.median_s * 1e3,
                    p90_ms=stats.p90_s * 1e3,
                    max_abs_dlogits=float(np.abs(logits.astype(np.float64) - reference).max()),
                    facts=runtimes.facts[runtime.variant],
                    ood_score=_score(out),
                )
            )
    probabilities = dict(zip(names, (float(p) for p in softmax(reference)), strict=True))
    return Classification(
        probabilities, results, list(runtimes.unavailable), _score(ref_outputs), runtimes.ood
    )


def _score(outputs: dict[str, np.ndarray]) -> float | None:
    """The first image's ``ood_score``, or None for a model without one."""
    return float(outputs[OOD_SCORE][0]) if OOD_SCORE in outputs else None


def sweep(
    runtimes: RuntimeSet,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    *,
    runs: int = 10,
    warmup: int = 2,
    seed: int = 0,
) -> list[Throughput]:
    """Median latency and throughput per variant and batch size, on random images."""
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    ckpt = runtimes.checkpoint
    height, width = ckpt.input_size
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (max(batch_sizes), 3, height, width), generator=generator)
    images = normalize(pixels.to(torch.uint8), ckpt.mean, ckpt.std).numpy()
    points = []
    with runtimes.lock:
        for size in batch_sizes:
            batch = np.ascontiguousarray(images[:size])
            timings = latencies(runtimes.available, batch, runs=runs, warmup=warmup)
            for runtime, stats in zip(runtimes.available, timings, strict=True):
                p50 = stats.median_s * 1e3
                points.append(Throughput(runtime.variant, size, p50, stats.throughput(size)))
    return points


def latencies(
    runners: Sequence[Runner], batch: np.ndarray, *, runs: int, warmup: int
) -> list[Stats]:
    """Each runner's whole call on ``batch`` (host copies included), ``runs`` times after
    ``warmup`` calls: one call per runner per round, in a shuffled order, so that a burst of
    load from another process slows every runner a little instead of one of them a lot."""
    calls = {str(i): Bound(partial(runner, batch), dict) for i, runner in enumerate(runners)}
    samples = measure_interleaved(calls, rounds=runs, warmup=warmup, block_s=0, settle=0)
    return [summarise(samples[str(i)]) for i in range(len(runners))]
