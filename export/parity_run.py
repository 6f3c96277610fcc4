"""The parity proof of an export: every runtime variant against one float64 reference.

Reference: the unfolded PyTorch model in float64 on the CPU (:func:`bnfold.parity.compare`).
Variants: PyTorch fp32 unfolded/folded; onnxruntime CPU unfolded/folded with graph optimisations
disabled and at the default level (which runs ORT's own Conv+BN fusion on the unfolded file); and,
where CUDA is present, PyTorch CUDA and the ORT CUDA provider, unfolded/folded. A CUDA variant
that cannot run here becomes a ``"not run"`` row with the reason, never a silent gap; a CPU
variant that does not open is a failure (the CPU is always here).

Every output the reference has is compared (``logits`` and ``ood_score``, by name), with the
same tolerances; the reference is the served module (``WithOOD`` when the checkpoint has an OOD
score, :mod:`export.networks`) in float64. Pass: every element within ``atol + rtol·|ref|``,
the logits' argmax identical to the reference on every input, every value of the variant and the
reference finite (a NaN or an Inf is a failure even where both agree on it: a NaN model is not
"exactly folded"), and, with an OOD score, the *unknown* decision (``ood_score > threshold``)
the reference's on every input whose reference score is clear of the threshold's tolerance band
(:mod:`export.decision`; inputs inside the band are reported as *near*, not failed).

CPU: atol 1e-5, rtol 1e-4 — a few hundred fp32 products per logit put the rounding error around
1e-6 relative, so this leaves room for summation order and nothing else. CUDA: atol 1e-4, rtol
1e-3, with TF32 off (:func:`export.runtimes.torch_runner.no_tf32`): cuDNN chooses among algorithms
(implicit GEMM, Winograd, FFT) whose transforms round differently from a direct sum; Winograd's
are known to lose about an order of magnitude of fp32 accuracy. Argmax agreement stays exact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from export.decision import DecisionCount
from export.inputs import ParityInput
from export.runtimes.errors import Unavailable
from export.runtimes.open import Sources, open_variant
from export.runtimes.runner import LOGITS, OOD_SCORE, Runner
from export.runtimes.variant import ONNXRUNTIME, PYTORCH, OrtOptions, TorchOptions, Variant

if TYPE_CHECKING:
    from export.networks import OODInfo

log = logging.getLogger(__name__)

REFERENCE = "unfolded PyTorch model (with its OOD score, if any), float64, CPU"
PARITY_JSON = "parity.json"
PARITY_MD = "parity.md"


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


CPU_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-4)
CUDA_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


def tolerance(variant: Variant) -> Tolerance:
    return CUDA_TOLERANCE if variant.cuda else CPU_TOLERANCE


def variants() -> list[Variant]:
    """Every variant a parity run covers, CPU first."""
    out = []
    for folded in (False, True):
        out.append(Variant(PYTORCH, folded, "cpu", TorchOptions("no_grad"), "pytorch-cpu"))
        for level in ("disabled", "default"):
            family = f"ort-cpu-opt-{level}"
            out.append(Variant(ONNXRUNTIME, folded, "cpu", OrtOptions(level), family))
    for folded in (False, True):
        out.append(Variant(PYTORCH, folded, "cuda", TorchOptions("no_grad"), "pytorch-cuda"))
        out.append(Variant(ONNXRUNTIME, folded, "cuda", OrtOptions("default"), "ort-cuda"))
    return out


@dataclass(kw_only=True)
class ParityRow:
    """One line of parity.json / parity.md (the measured fields are None when not run)."""

    variant: str
    provider: str
    folded: bool
    opt_level: str | None
    status: str  # "run" | "not run" (CUDA absent) | "failed to open" (a CPU variant)
    reason: str | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None  # max |Δ| / max |ref|, per output: scale-free
    tolerance_ratio: float | None = None  # max |Δ| / (atol + rtol·|ref|): pass iff <= 1
    argmax_agreement: float | None = None  # fraction of samples whose argmax matches the ref
    finite: bool | None = None  # every value of this variant and of the reference finite
    atol: float
    rtol: float
    passed: bool | None = None  # None when not run
    outputs: dict[str, dict[str, float]] | None = None  # name → max_abs_err, tolerance_ratio
    # The unknown decision (ood_score > threshold), with an OOD score only: agreement over the
    # inputs clear of the threshold's tolerance band, how many were inside it, disagreements.
    decision_agreement: float | None = None
    near_threshold: int | None = None
    decision_disagreements: int | None = None


@dataclass
class ParityReport:
    """All rows of one parity run, with what it ran on."""

    rows: list[ParityRow]
    inputs: list[dict[str, Any]]  # {"name", "shape"} per input batch
    outputs: list[str]  # the reference's output names, all compared
    checkpoint_sha256: str | None = None  # what the proof is of (export.proof checks it)
    files: dict[str, dict[str, str]] | None = None  # kind → {"name", "sha256"} of the files
    ood: dict[str, Any] | None = None  # {"threshold", "method"} when there is an ood_score
    int8: Any = None  # export.int8_proof.Int8Proof of the int8 file, when one was made

    @property
    def passed(self) -> bool:
        ran = [r for r in self.rows if r.status == "run"]
        return bool(ran) and not self.failing() and self.int8_passed is not False

    @property
    def int8_passed(self) -> bool | None:
        """The int8 row's verdict (decisions agree with fp32), None when there is no int8 row."""
        return None if self.int8 is None else self.int8.passed

    def failing(self) -> list[ParityRow]:
        return [r for r in self.rows if r.status != "not run" and not r.passed]

    def summary(self) -> str:
        ran = [r for r in self.rows if r.status == "run"]
        samples = sum(i["shape"][0] for i in self.inputs)
        text = (
            f"{sum(bool(r.passed) for r in ran)}/{len(ran)} variants within tolerance on "
            f"{samples} inputs ({len(self.rows) - len(ran)} not run)"
        )
        return text if self.int8 is None else f"{text}; {self.int8.summary()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reference": REFERENCE,
            "criterion": "max|Δ| <= atol + rtol·|ref| elementwise for every output, argmax of "
            "the logits identical on every input, every value finite"
            + (
                "; unknown (ood_score > threshold) decided as the reference on every input whose "
                "reference score is outside atol + rtol·|ref| of the threshold"
                if self.ood
                else ""
            ),
            "ood": self.ood,
            "checkpoint_sha256": self.checkpoint_sha256,
            "files": self.files,
            "outputs": self.outputs,
            "inputs": self.inputs,
            "rows": [asdict(r) for r in self.rows],
            "int8": None if self.int8 is None else self.int8.to_dict(),
        }

    def to_table(self, rows: list[ParityRow] | None = None) -> str:
        """A fixed-width table for terminals."""
        columns = self._columns(markdown=False)
        lines = [[h for h, _ in columns]]
        lines += [[cell(r) for _, cell in columns] for r in (self.rows if rows is None else rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
        text.insert(1, "-" * len(text[0].rstrip()))
        return "\n".join(t.rstrip() for t in text)

    def _columns(self, markdown: bool) -> list[tuple[str, Callable[[ParityRow], str]]]:
        """(header, cell) per column of the terminal table, or of parity.md's longer one."""
        columns = [
            ("variant", lambda r: r.variant),
            ("provider", lambda r: r.provider),
            ("max abs err" if markdown else "max|Δ|", _ran(lambda r: f"{r.max_abs_err:.2e}")),
            ("max rel err" if markdown else "max rel", _ran(lambda r: f"{r.max_rel_err:.2e}")),
            ("tol ratio", _ran(lambda r: f"{r.tolerance_ratio:.3f}")),
            ("argmax", _ran(lambda r: f"{100 * r.argmax_agreement:.1f}%")),
        ]
        if markdown:
            columns += [(f"{n} max abs err", _output_cell(n)) for n in self.outputs[1:]]
        if self.ood:
            columns.append(("unknown decision", _ran(_decision_cell)))
        if markdown:
            columns.append(("atol / rtol", lambda r: f"{r.atol:g} / {r.rtol:g}"))
        return [*columns, ("result", _result_cell)]

    def to_markdown(self) -> str:
        columns = self._columns(markdown=True)
        ood = ""
        if self.ood:
            ood = (
                f" With the OOD score ({self.ood['method']}, unknown when ood_score > "
                f"{self.ood['threshold']!r}): the unknown decision must be the reference's on "
                "every input whose reference score is outside atol + rtol·|ref| of the "
                "threshold; inputs inside that band are counted as near, not failed."
            )
        lines = [
            "# Parity of the exported ONNX files",
            "",
            f"**{'PASSED' if self.passed else 'FAILED'}**: {self.summary()}.",
            "",
            f"Reference: {REFERENCE}; outputs compared: {', '.join(self.outputs)}. Pass: every "
            "element of every output within atol + rtol·|ref| (tol ratio <= 1), the argmax of "
            "the logits identical to the reference on every input, every value finite. max rel "
            "err is max |Δ| / max |ref|. CUDA variants run with TF32 off." + ood,
            "",
            "| " + " | ".join(h for h, _ in columns) + " |",
            "|" + "---|" * len(columns),
        ]
        lines += [f"| {' | '.join(cell(r) for _, cell in columns)} |" for r in self.rows]
        if self.int8 is not None:
            lines += ["", f"{self.int8.summary()}."]
        lines += ["", "Inputs:", ""]
        lines += [f"- {i['name']}: {'×'.join(str(d) for d in i['shape'])}" for i in self.inputs]
        return "\n".join(lines) + "\n"


def _ran(cell: Callable[[ParityRow], str | None]) -> Callable[[ParityRow], str]:
    """``cell`` for a row that ran and has the value, ``-`` otherwise."""
    return lambda r: (cell(r) if r.status == "run" else None) or "-"


def _output_cell(name: str) -> Callable[[ParityRow], str]:
    return _ran(
        lambda r: f"{r.outputs[name]['max_abs_err']:.2e}" if name in (r.outputs or {}) else None
    )


def _decision_cell(r: ParityRow) -> str | None:
    """``"100.0% (3 near)"``: agreement over the counted inputs, near-threshold ones apart."""
    if r.decision_agreement is None:
        return None
    text = f"{100 * r.decision_agreement:.1f}% ({r.near_threshold} near)"
    return text if not r.decision_disagreements else f"{text}, {r.decision_disagreements} differ"


def _result_cell(r: ParityRow) -> str:
    if r.status != "run":
        return f"{r.status}: {r.reason}"
    return "pass" if r.passed else ("FAIL" if r.finite else "FAIL (non-finite)")


def _row(variant: Variant, **measured: Any) -> ParityRow:
    tol = tolerance(variant)
    return ParityRow(
        variant=variant.name,
        provider=variant.provider,
        folded=variant.folded,
        opt_level=variant.options.level if variant.runtime == ONNXRUNTIME else None,
        atol=tol.atol,
        rtol=tol.rtol,
        **measured,
    )


class _Watched:
    """Calls ``fn``, keeping its last outputs and whether every value so far was finite.

    ``decisions``: a candidate's unknown decisions counted so far (with an OOD score only).
    """

    def __init__(self, fn: Callable[[Any], dict[str, Any]], decisions: DecisionCount | None = None):
        self.fn, self.finite, self.last, self.decisions = fn, True, None, decisions

    def __call__(self, x: Any) -> dict[str, Any]:
        self.last = out = self.fn(x)
        self.finite &= all(bool(np.isfinite(np.asarray(v)).all()) for v in out.values())
        return out


def _candidate(
    runner: Runner, names: list[str], reference: _Watched, tol: Tolerance, ood: OODInfo | None
) -> _Watched:
    """``runner`` on a float32 tensor, the reference's outputs only, in the reference's order.

    With ``ood``, each batch's unknown decisions are counted against the reference's on the
    same batch (:func:`bnfold.parity.compare` runs the reference first).
    """
    decisions = None if ood is None else DecisionCount()

    def run(x: torch.Tensor) -> dict[str, np.ndarray]:
        out = runner(x.detach().cpu().numpy())
        missing = [n for n in names if n not in out]
        if missing:
            raise ValueError(f"{runner.variant.name} has no output {', '.join(missing)}")
        if decisions is not None:  # reference.last is this batch's: compare runs it first
            ref_scores = np.asarray(reference.last[OOD_SCORE], np.float64)
            decisions.add(ref_scores, out[OOD_SCORE], ood.threshold, tol.atol, tol.rtol)
        return {n: out[n] for n in names}

    return _Watched(run, decisions)


def prove_parity(
    unfolded: Any,
    folded: Any,
    files: dict[str, Path],
    inputs: list[ParityInput],
    variant_list: list[Variant] | None = None,
    *,
    output_names: tuple[str, ...] = (LOGITS,),
    ood: OODInfo | None = None,
) -> ParityReport:
    """Run every variant on ``inputs`` against the float64 unfolded reference.

    ``unfolded``/``folded`` are the served modules (:mod:`export.networks`), whose tuple output
    ``output_names`` names; with ``ood`` (the threshold and method) the unknown decision is
    checked too (see the module doc).
    """
    from bnfold.parity import compare
    from export.runtimes.torch_runner import float64_reference

    if not inputs:
        raise ValueError("prove_parity needs at least one input batch")
    batches = [i.images for i in inputs]
    size = tuple(batches[0].shape[-2:])
    sources = Sources(unfolded, folded, files, size, tuple(output_names))
    reference = _Watched(float64_reference(unfolded, output_names))
    names = list(reference(batches[0][:1]))
    if ood is not None and OOD_SCORE not in names:
        raise ValueError(f"an OOD threshold was given but the model has no {OOD_SCORE} output")
    chosen = variant_list or variants()
    rows: dict[str, ParityRow] = {}
    runnable: dict[Tolerance, dict[str, _Watched]] = {}
    for variant in chosen:
        runner = open_variant(variant, sources)
        if isinstance(runner, Unavailable):
            status, passed = ("not run", None) if variant.cuda else ("failed to open", False)
            rows[variant.name] = _row(variant, status=status, reason=runner.reason, passed=passed)
            continue
        tol = tolerance(variant)
        runnable.setdefault(tol, {})[variant.name] = _candidate(runner, names, reference, tol, ood)
    by_name = {v.name: v for v in chosen}
    # One compare per tolerance: the float64 reference (slow on CPU) runs once per group.
    for tol, candidates in runnable.items():
        reference.finite = True
        progress = tqdm(
            batches,
            desc=f"parity ({len(candidates)} variants)",
            unit="batch",
            leave=False,
            disable=None,
        )
        result = compare(reference, candidates, progress, atol=tol.atol, rtol=tol.rtol)
        for name, res in result.candidates.items():
            finite = candidates[name].finite and reference.finite
            count = candidates[name].decisions
            rows[name] = _row(
                by_name[name],
                status="run",
                max_abs_err=res.max_abs_error,
                max_rel_err=res.max_rel_error,
                tolerance_ratio=res.tolerance_ratio,
                argmax_agreement=res.argmax_agreement,
                finite=finite,
                passed=res.passed and finite and (count is None or count.disagreements == 0),
                outputs={
                    n: {"max_abs_err": o.max_abs_error, "tolerance_ratio": o.tolerance_ratio}
                    for n, o in zip(names, res.outputs, strict=True)
                },
                decision_agreement=None if count is None else count.agreement,
                near_threshold=None if count is None else count.near,
                decision_disagreements=None if count is None else count.disagreements,
            )
            log.debug("%s: %s (finite: %s)", name, res, finite)
    shapes = [{"name": i.name, "shape": list(i.images.shape)} for i in inputs]
    ood_record = {"threshold": ood.threshold, "method": ood.method} if ood else None
    return ParityReport([rows[v.name] for v in chosen], shapes, names, ood=ood_record)


def write_parity(report: ParityReport, out: str | Path) -> list[Path]:
    """``parity.json`` and ``parity.md`` in ``out``, each written atomically."""
    from bnfold.atomic import atomic_write_bytes

    paths = [Path(out) / PARITY_JSON, Path(out) / PARITY_MD]
    atomic_write_bytes(paths[0], (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    atomic_write_bytes(paths[1], report.to_markdown().encode())
    return paths
