"""The parity proof of an export: every runtime variant against one float64 reference.

Reference: the unfolded PyTorch model in float64 on the CPU (:func:`bnfold.parity.compare`).
Variants: PyTorch fp32 unfolded/folded; onnxruntime CPU unfolded/folded with graph optimisations
disabled and at the default level (which runs ORT's own Conv+BN fusion on the unfolded file); and,
where CUDA is present, PyTorch CUDA and the ORT CUDA provider, unfolded/folded. A variant that
cannot run here becomes a ``"not run"`` row with the reason, never a silent gap.

Pass: every element within ``atol + rtol·|ref|`` and the argmax identical to the reference on every
input. CPU: atol 1e-5, rtol 1e-4 — a few hundred fp32 products per logit put the rounding error
around 1e-6 relative, so this leaves room for summation order and nothing else. CUDA: atol 1e-4,
rtol 1e-3, with TF32 disabled (:func:`export.runtimes.no_tf32`): cuDNN chooses among algorithms
(implicit GEMM, Winograd, FFT) whose transforms round differently from a direct sum; Winograd's
are known to lose about an order of magnitude of fp32 accuracy. Argmax agreement stays exact.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from export.inputs import ParityInput
from export.runtimes import CPU, CUDA, OrtModel, ProviderUnavailable

log = logging.getLogger(__name__)

REFERENCE = "unfolded PyTorch model, float64, CPU"
PARITY_JSON = "parity.json"
PARITY_MD = "parity.md"


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


CPU_TOLERANCE = Tolerance(atol=1e-5, rtol=1e-4)
CUDA_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


@dataclass(frozen=True)
class Variant:
    """One way of running one of the two models."""

    name: str
    runtime: str  # "pytorch" | "onnxruntime"
    provider: str  # "torch-cpu", "torch-cuda", or an ORT execution provider
    folded: bool
    opt_level: str | None = None  # ORT graph optimisation level

    @property
    def cuda(self) -> bool:
        return self.provider in ("torch-cuda", CUDA)

    @property
    def tolerance(self) -> Tolerance:
        return CUDA_TOLERANCE if self.cuda else CPU_TOLERANCE


def variants() -> list[Variant]:
    """Every variant a parity run covers, CPU first."""
    out = []
    for folded in (False, True):
        kind = "folded" if folded else "unfolded"
        out.append(Variant(f"pytorch-cpu/{kind}", "pytorch", "torch-cpu", folded))
        for level in ("disabled", "default"):
            out.append(Variant(f"ort-cpu-opt-{level}/{kind}", "onnxruntime", CPU, folded, level))
    for folded in (False, True):
        kind = "folded" if folded else "unfolded"
        out.append(Variant(f"pytorch-cuda/{kind}", "pytorch", "torch-cuda", folded))
        out.append(Variant(f"ort-cuda/{kind}", "onnxruntime", CUDA, folded, "default"))
    return out


@dataclass
class ParityRow:
    """One line of parity.json / parity.md."""

    variant: str
    provider: str
    folded: bool
    opt_level: str | None
    status: str  # "run" | "not run"
    reason: str | None
    max_abs_err: float | None
    max_rel_err: float | None  # max |Δ| / max |ref|, per output: scale-free
    tolerance_ratio: float | None  # max |Δ| / (atol + rtol·|ref|): pass iff <= 1
    argmax_agreement: float | None  # fraction of samples whose argmax matches the reference
    atol: float
    rtol: float
    passed: bool | None  # None when not run


@dataclass
class ParityReport:
    """All rows of one parity run, with what it ran on."""

    rows: list[ParityRow]
    inputs: list[dict[str, Any]]  # {"name", "shape"} per input batch

    @property
    def passed(self) -> bool:
        ran = [r for r in self.rows if r.status == "run"]
        return bool(ran) and all(r.passed for r in ran)

    def failing(self) -> list[ParityRow]:
        return [r for r in self.rows if r.status == "run" and not r.passed]

    def summary(self) -> str:
        ran = [r for r in self.rows if r.status == "run"]
        samples = sum(i["shape"][0] for i in self.inputs)
        return (
            f"{sum(bool(r.passed) for r in ran)}/{len(ran)} variants within tolerance on "
            f"{samples} inputs ({len(self.rows) - len(ran)} not run)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reference": REFERENCE,
            "criterion": "max|Δ| <= atol + rtol·|ref| elementwise, argmax identical on every input",
            "inputs": self.inputs,
            "rows": [asdict(r) for r in self.rows],
        }

    def to_table(self, rows: list[ParityRow] | None = None) -> str:
        """A fixed-width table for terminals."""
        header = ("variant", "provider", "max|Δ|", "max rel", "tol ratio", "argmax", "result")
        lines = [header, *(_cells(r) for r in (self.rows if rows is None else rows))]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
        text.insert(1, "-" * len(text[0].rstrip()))
        return "\n".join(t.rstrip() for t in text)

    def to_markdown(self) -> str:
        header = (
            "variant",
            "provider",
            "max abs err",
            "max rel err",
            "tol ratio",
            "argmax",
            "atol / rtol",
            "result",
        )
        lines = [
            "# Parity of the exported ONNX files",
            "",
            f"**{'PASSED' if self.passed else 'FAILED'}**: {self.summary()}.",
            "",
            f"Reference: {REFERENCE}. Pass: every element within atol + rtol·|ref| (tol ratio "
            "<= 1) and the argmax identical to the reference on every input. max rel err is "
            "max |Δ| / max |ref|. CUDA variants run with TF32 off.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for r in self.rows:
            c = _cells(r)
            lines.append(f"| {' | '.join((*c[:6], f'{r.atol:g} / {r.rtol:g}', c[6]))} |")
        lines += ["", "Inputs:", ""]
        lines += [f"- {i['name']}: {'×'.join(str(d) for d in i['shape'])}" for i in self.inputs]
        return "\n".join(lines) + "\n"


def _cells(r: ParityRow) -> tuple[str, ...]:
    if r.status != "run":
        return (r.variant, r.provider, "-", "-", "-", "-", f"not run: {r.reason}")
    return (
        r.variant,
        r.provider,
        f"{r.max_abs_err:.2e}",
        f"{r.max_rel_err:.2e}",
        f"{r.tolerance_ratio:.3f}",
        f"{100 * r.argmax_agreement:.1f}%",
        "pass" if r.passed else "FAIL",
    )


def _row(variant: Variant, **measured: Any) -> ParityRow:
    tol = variant.tolerance
    fields = {
        "reason": None,
        "max_abs_err": None,
        "max_rel_err": None,
        "tolerance_ratio": None,
        "argmax_agreement": None,
        "passed": None,
        **measured,
    }
    return ParityRow(
        variant=variant.name,
        provider=variant.provider,
        folded=variant.folded,
        opt_level=variant.opt_level,
        atol=tol.atol,
        rtol=tol.rtol,
        **fields,
    )


def _candidate(variant: Variant, models: dict[bool, Any], files: dict[str, Path]):
    """The callable that runs ``variant``; ProviderUnavailable when it cannot run here."""
    from export.runtimes import ort_session, torch_cuda_unavailable

    if variant.runtime == "pytorch":
        if not variant.cuda:
            return models[variant.folded]
        reason = torch_cuda_unavailable()
        if reason:
            raise ProviderUnavailable(reason)
        return copy.deepcopy(models[variant.folded]).to("cuda")
    path = files["folded" if variant.folded else "unfolded"]
    return OrtModel(ort_session(path, provider=variant.provider, opt_level=variant.opt_level))


def prove_parity(
    unfolded: Any,
    folded: Any,
    files: dict[str, Path],
    inputs: list[ParityInput],
    variant_list: list[Variant] | None = None,
) -> ParityReport:
    """Run every variant on ``inputs`` against the float64 unfolded reference."""
    from bnfold.parity import compare
    from export.runtimes import no_tf32

    if not inputs:
        raise ValueError("prove_parity needs at least one input batch")
    models = {False: unfolded, True: folded}
    batches = [i.images for i in inputs]
    chosen = variant_list or variants()
    rows: dict[str, ParityRow] = {}
    runnable: dict[Tolerance, dict[str, Any]] = {}
    for variant in chosen:
        try:
            candidate = _candidate(variant, models, files)
        except ProviderUnavailable as e:
            rows[variant.name] = _row(variant, status="not run", reason=str(e))
            log.debug("%s not run: %s", variant.name, e)
            continue
        runnable.setdefault(variant.tolerance, {})[variant.name] = candidate
    by_name = {v.name: v for v in chosen}
    # One compare per tolerance: the float64 reference (slow on CPU) runs once per group.
    for tol, candidates in runnable.items():
        progress = tqdm(
            batches,
            desc=f"parity ({len(candidates)} variants)",
            unit="batch",
            leave=False,
            disable=None,
        )
        with no_tf32():
            result = compare(unfolded, candidates, progress, atol=tol.atol, rtol=tol.rtol)
        for name, res in result.candidates.items():
            rows[name] = _row(
                by_name[name],
                status="run",
                max_abs_err=res.max_abs_error,
                max_rel_err=res.max_rel_error,
                tolerance_ratio=res.tolerance_ratio,
                argmax_agreement=res.argmax_agreement,
                passed=res.passed,
            )
            log.debug("%s: %s", name, res)
    shapes = [{"name": i.name, "shape": list(i.images.shape)} for i in inputs]
    return ParityReport([rows[v.name] for v in chosen], shapes)


def write_parity(report: ParityReport, out: str | Path) -> list[Path]:
    """``parity.json`` and ``parity.md`` in ``out``, each written atomically."""
    from bnfold.atomic import atomic_write_bytes

    paths = [Path(out) / PARITY_JSON, Path(out) / PARITY_MD]
    atomic_write_bytes(paths[0], (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    atomic_write_bytes(paths[1], report.to_markdown().encode())
    return paths
