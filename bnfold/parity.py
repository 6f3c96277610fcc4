"""Compare models or callables against a float64 reference: the proof that a rewrite is exact.

The reference runs in float64 on CPU (a module is deep-copied and ``.double()``-ed, the caller's
copy is untouched), so its own rounding does not count against the candidates. Candidates can
be modules (inputs are cast to their parameter dtype and device) or any callable returning
tensors, numpy arrays, or lists/tuples/dicts of them — an onnxruntime session wrapped in a lambda
works as is.

Each element of ``inputs`` is one call: a tensor, or a tuple/list of positional arguments.
Definitions, per candidate over every input and every output tensor (Δ = y - ref):

- ``max_abs_error``: max |Δ|.
- ``max_rel_error``: max over output tensors of max|Δ| / max|ref| — scale-free and not blown up by
  reference values near 0.
- ``max_elementwise_rel_error``: max |Δ| / |ref| over elements with |ref| > atol (smaller ones
  are judged by atol alone); 0 if there are none.
- ``tolerance_ratio``: max |Δ| / (atol + rtol·|ref|); at most 1 means every element is within
  tolerance.
- ``argmax_agreement``: fraction of positions whose argmax along ``class_axis`` matches the
  reference, over the outputs that have that axis (logits (N, C), not a per-sample score (N,):
  an argmax across the samples of a batch means nothing); 1.0 when no output has one.
- ``outputs``: ``max_abs_error`` and ``tolerance_ratio`` of each output tensor, by position, so
  a report can show a small score's errors apart from the logits'.
- ``passed``: ``tolerance_ratio <= 1`` and ``argmax_agreement == 1`` (identical on every input).

Any NaN or ±Inf, in a candidate's output or in the reference's, counts as an infinite error at
that element: NaN == NaN is no agreement, and a model that outputs NaN never passes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

Candidate = Callable[..., Any] | nn.Module


@dataclass(frozen=True)
class OutputParity:
    """The errors of one output tensor (by position in the flattened outputs)."""

    max_abs_error: float
    tolerance_ratio: float


@dataclass(frozen=True)
class CandidateParity:
    """How one candidate compares with the reference."""

    name: str
    max_abs_error: float
    max_rel_error: float
    max_elementwise_rel_error: float
    tolerance_ratio: float
    argmax_agreement: float
    num_inputs: int
    passed: bool
    outputs: tuple[OutputParity, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ParityResult:
    """The comparison of every candidate, with the tolerances used."""

    atol: float
    rtol: float
    candidates: dict[str, CandidateParity] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.candidates.values())

    def to_dict(self) -> dict:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "passed": self.passed,
            "candidates": {name: c.to_dict() for name, c in self.candidates.items()},
        }


def compare(
    reference: Candidate,
    candidates: Mapping[str, Candidate],
    inputs: Iterable[Any],
    *,
    atol: float,
    rtol: float,
    class_axis: int = 1,
) -> ParityResult:
    """Run ``reference`` in float64 and every candidate on ``inputs``; see the module doc."""
    if atol < 0 or rtol < 0:
        raise ValueError(f"atol and rtol must be >= 0, got atol={atol}, rtol={rtol}")
    ref_fn = _float64_copy(reference) if isinstance(reference, nn.Module) else reference
    stats = {name: _Stats() for name in candidates}
    count = 0
    with torch.no_grad():
        for item in inputs:
            args = item if isinstance(item, tuple | list) else (item,)
            ref = _flatten(ref_fn(*(_to_float64(a) for a in args)))
            for name, candidate in candidates.items():
                got = _flatten(candidate(*_for_candidate(candidate, args)))
                stats[name].add(name, ref, got, atol, rtol, class_axis)
            count += 1
    if count == 0:
        raise ValueError("compare needs at least one input")
    result = {name: s.result(name, count) for name, s in stats.items()}
    return ParityResult(atol=atol, rtol=rtol, candidates=result)


class _Stats:
    def __init__(self) -> None:
        self.abs = self.rel = self.elem_rel = self.ratio = 0.0
        self.agree = self.positions = 0
        self.per_output: list[list[float]] = []  # [max |Δ|, tolerance ratio] per output

    def add(self, name: str, ref: list[Tensor], got: list[Tensor], atol, rtol, axis) -> None:
        if len(ref) != len(got):
            raise ValueError(f"{name} returned {len(got)} outputs, the reference {len(ref)}")
        for i, (r, g) in enumerate(zip(ref, got, strict=True)):
            if r.shape != g.shape:
                raise ValueError(
                    f"{name} output {i} has shape {tuple(g.shape)}, the reference {tuple(r.shape)}"
                )
            while len(self.per_output) <= i:
                self.per_output.append([0.0, 0.0])
            if r.numel() == 0:
                continue
            finite = torch.isfinite(g) & torch.isfinite(r)
            delta = torch.where(finite, (g - r).abs(), torch.inf)
            magnitude = torch.where(finite, r.abs(), 0.0)
            worst = delta.max().item()
            self.abs = max(self.abs, worst)
            peak = magnitude.max().item()
            self.rel = max(self.rel, worst / peak if peak > 0 else worst)
            big = magnitude > atol
            if big.any():
                self.elem_rel = max(self.elem_rel, (delta[big] / magnitude[big]).max().item())
            ratio = torch.where(delta == 0, 0.0, delta / (atol + rtol * magnitude))
            worst_ratio = ratio.max().item()
            self.ratio = max(self.ratio, worst_ratio)
            own = self.per_output[i]
            own[0], own[1] = max(own[0], worst), max(own[1], worst_ratio)
            self._argmax(r, g, axis)

    def _argmax(self, r: Tensor, g: Tensor, axis: int) -> None:
        if r.dim() <= axis:  # no class axis: a per-sample score, not a distribution over classes
            return
        dim = axis
        same = torch.argmax(torch.nan_to_num(g, nan=-torch.inf), dim) == torch.argmax(r, dim)
        self.agree += int(same.sum())
        self.positions += same.numel()

    def result(self, name: str, count: int) -> CandidateParity:
        agreement = self.agree / self.positions if self.positions else 1.0
        return CandidateParity(
            name=name,
            max_abs_error=self.abs,
            max_rel_error=self.rel,
            max_elementwise_rel_error=self.elem_rel,
            tolerance_ratio=self.ratio,
            argmax_agreement=agreement,
            num_inputs=count,
            passed=self.ratio <= 1.0 and agreement == 1.0,
            outputs=tuple(OutputParity(a, t) for a, t in self.per_output),
        )


def _float64_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).to(device="cpu", dtype=torch.float64)


def _to_float64(value: Any) -> Any:
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        return value.double() if value.is_floating_point() else value
    return value


def _for_candidate(candidate: Candidate, args: tuple | list) -> tuple:
    """Cast float inputs to a module candidate's dtype/device; callables get them as given."""
    if not isinstance(candidate, nn.Module):
        return tuple(args)
    like = next((p for p in candidate.parameters() if p.is_floating_point()), None)
    if like is None:
        return tuple(args)

    def cast(a: Any) -> Any:
        if isinstance(a, Tensor) and a.is_floating_point():
            return a.to(device=like.device, dtype=like.dtype)
        return a

    return tuple(cast(a) for a in args)


def _flatten(output: Any) -> list[Tensor]:
    """Outputs as a flat list of float64 CPU tensors (dict values in insertion order)."""
    if isinstance(output, Tensor):
        return [output.detach().cpu().double()]
    if isinstance(output, np.ndarray | np.generic | int | float):
        return [torch.as_tensor(np.asarray(output)).double()]
    if isinstance(output, Mapping):
        return [t for v in output.values() for t in _flatten(v)]
    if isinstance(output, tuple | list):
        return [t for v in output for t in _flatten(v)]
    raise TypeError(f"cannot compare an output of type {type(output).__name__}")
