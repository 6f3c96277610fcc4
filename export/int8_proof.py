"""The int8 file's parity row: does it decide as the fp32 folded file does?

int8 is not held to the fp32 tolerances (a logit moves by a fraction of one quantisation step
per layer); what must hold is the decision. On every parity input (the checkpoint's valid and
test photos and the random batches) the int8 file's answer is compared with the fp32 folded
file's, both run by onnxruntime on the CPU with graph optimisations at the default level. An
input agrees when the top-1 classes are equal, or, given the checkpoint's OOD threshold, when
both files call it unknown (``ood_score > threshold``): then no class is shown to a user. Why:
a model trained with outlier exposure gives noise nearly equal logits, so top-1 on the random
batches is a coin that quantisation flips (the default synthetic-trained model: 98.97%), while
both files call every one of them unknown. The unknown decision itself is not held here: near
the threshold int8's score may fall on either side (``ood_score`` is reported as max |Δ|).
Pass: agreement over all inputs >= :data:`MIN_AGREEMENT` and every value finite.
Reported, not held to a bound: max |Δ logits| against fp32, and accuracy of both on the
labelled (real) inputs. Any output other than ``logits`` (computed in fp32 from the int8
logits, :mod:`export.quantize`) is reported as its max |Δ| against fp32, by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.inputs import ParityInput
from export.runtimes.runner import LOGITS, OOD_SCORE

MIN_AGREEMENT = 0.995


@dataclass
class Int8InputRow:
    name: str
    samples: int
    agreement: float  # top-1 agreement with fp32 folded, inputs both call unknown agreeing
    max_abs_logit_diff: float
    fp32_accuracy: float | None  # None: no labels (random inputs)
    int8_accuracy: float | None


@dataclass
class Int8Proof:
    """The int8 row of parity.json."""

    file: str
    reference: str = "fp32 folded ONNX file, onnxruntime CPU, default level"
    min_agreement: float = MIN_AGREEMENT
    status: str = "run"  # "run" | "not run" (no training images) | "failed to quantise"
    reason: str | None = None
    agreement: float | None = None
    threshold: float | None = None  # inputs both files score above it agree; None: top-1 only
    max_abs_logit_diff: float | None = None
    finite: bool | None = None
    outputs: list[str] = field(default_factory=list)
    inputs: list[Int8InputRow] = field(default_factory=list)
    size_ratio: float | None = None  # int8 file bytes / fp32 folded file bytes
    other_outputs_max_abs_diff: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.status == "failed to quantise":
            return False
        if self.status != "run":
            return None
        return bool(self.finite) and (self.agreement or 0.0) >= self.min_agreement

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        if self.status != "run":
            verdict = ": FAIL" if self.passed is False else ""
            return f"int8: {self.status}: {self.reason}{verdict}"
        verdict = "pass" if self.passed else "FAIL"
        answer = "top-1" if self.threshold is None else "top-1 (or both unknown)"
        return (
            f"int8: {answer} agreement with fp32 {100 * self.agreement:.2f}% "
            f"(needs >= {100 * self.min_agreement:.1f}%), max |Δ logits| "
            f"{self.max_abs_logit_diff:.3g}, file {self.size_ratio:.2f}× fp32: {verdict}"
        )


def _accuracy(logits: np.ndarray, labels) -> float | None:
    if labels is None:
        return None
    return float((logits.argmax(axis=1) == np.asarray(labels)).mean())


def _agree(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], threshold: float | None):
    """Per input: same top-1 class, or both called unknown (no class shown to a user)."""
    same = ref[LOGITS].argmax(axis=1) == got[LOGITS].argmax(axis=1)
    if threshold is None or OOD_SCORE not in ref:
        return same
    unknown = [out[OOD_SCORE].reshape(-1) > threshold for out in (ref, got)]
    return same | (unknown[0] & unknown[1])


def prove_int8(
    folded: str | Path,
    int8: str | Path,
    inputs: list[ParityInput],
    threshold: float | None = None,
) -> Int8Proof:
    """Run both files on every input and compare decisions (see the module docstring).

    ``threshold``: the checkpoint's OOD threshold; None compares top-1 classes only.
    """
    from export.runtimes.sessions import ort_session

    if not inputs:
        raise ValueError("prove_int8 needs at least one input batch")
    fp32_session, int8_session = ort_session(folded), ort_session(int8)
    names = [o.name for o in fp32_session.get_outputs()]
    int8_names = {o.name for o in int8_session.get_outputs()}
    missing = [n for n in names if n not in int8_names]
    if missing:
        raise ValueError(f"{Path(int8).name} lacks output(s) {', '.join(missing)}")
    feed_name = fp32_session.get_inputs()[0].name
    rows, agree, total, finite, max_diff = [], 0, 0, True, 0.0
    others = dict.fromkeys((n for n in names if n != LOGITS), 0.0)
    for item in inputs:
        x = {feed_name: np.ascontiguousarray(item.images.numpy(), np.float32)}
        ref = dict(zip(names, fp32_session.run(names, x), strict=True))
        got = dict(zip(names, int8_session.run(names, x), strict=True))
        finite &= all(bool(np.isfinite(v).all()) for v in got.values())
        same = _agree(ref, got, threshold)
        diff = float(np.abs(ref[LOGITS] - got[LOGITS]).max())
        for n in others:
            others[n] = max(others[n], float(np.abs(ref[n] - got[n]).max()))
        agree, total, max_diff = agree + int(same.sum()), total + len(same), max(max_diff, diff)
        rows.append(
            Int8InputRow(
                item.name,
                len(same),
                float(same.mean()),
                diff,
                _accuracy(ref[LOGITS], item.labels),
                _accuracy(got[LOGITS], item.labels),
            )
        )
    return Int8Proof(
        file=Path(int8).name,
        agreement=agree / total,
        threshold=threshold if OOD_SCORE in names else None,
        max_abs_logit_diff=max_diff if finite else float("nan"),
        finite=finite,
        outputs=names,
        inputs=rows,
        size_ratio=Path(int8).stat().st_size / Path(folded).stat().st_size,
        other_outputs_max_abs_diff=others,
    )
