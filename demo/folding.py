"""What folding did, in tables a person can read: the fold report, op counts, weights.

Before: conv/linear → BatchNorm. After: the same layer with w' = w·s and b' = (b − μ)·s + β per
output channel, s = γ / √(σ² + ε), and no BatchNorm. These functions only look; they never
change a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from demo.runtimes import onnx_op_counts

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def report_rows(report: object) -> list[list[str]]:
    """One row per BatchNorm: name, what happened, the layer it went into, why it was left."""
    return [
        [r.bn, r.direction.value, r.target or "—", r.reason or ""]
        for r in report.records  # type: ignore[attr-defined]
    ]


def report_summary(report: object) -> str:
    """``"3 of 3 BatchNorms folded"``, plus how many were left."""
    folded, total = report.num_folded, report.num_bn  # type: ignore[attr-defined]
    left = total - folded
    return f"{folded} of {total} BatchNorms folded" + (f", {left} left" if left else "")


def op_count_rows(unfolded: Path, folded: Path) -> list[list[object]]:
    """Per ONNX op type: count in the unfolded file, in the folded file, and the change."""
    before, after = onnx_op_counts(unfolded), onnx_op_counts(folded)
    ops = sorted(set(before) | set(after), key=lambda op: (-before.get(op, 0), op))
    rows: list[list[object]] = [
        [op, before.get(op, 0), after.get(op, 0), after.get(op, 0) - before.get(op, 0)]
        for op in ops
    ]
    total_before, total_after = sum(before.values()), sum(after.values())
    rows.append(["all nodes", total_before, total_after, total_after - total_before])
    return rows


@dataclass(frozen=True)
class LayerWeights:
    """One layer's weight and bias in the unfolded and the folded network (CPU float32)."""

    name: str
    weight_before: torch.Tensor
    bias_before: torch.Tensor
    weight_after: torch.Tensor
    bias_after: torch.Tensor
    folded_from: str | None  # the BatchNorm folded into it, if any

    @property
    def channel_scale(self) -> torch.Tensor:
        """Per output channel, |w'| / |w|: the s = γ/√(σ²+ε) that folding multiplied in."""
        before = self.weight_before.flatten(1).norm(dim=1)
        after = self.weight_after.flatten(1).norm(dim=1)
        return after / before.clamp_min(torch.finfo(before.dtype).tiny)


def weight_layers(unfolded: nn.Module, folded: nn.Module) -> list[str]:
    """Names of the conv/linear layers present in both networks, in definition order."""
    after = dict(folded.named_modules())
    return [
        name
        for name, module in unfolded.named_modules()
        if isinstance(module, WEIGHT_LAYERS) and isinstance(after.get(name), WEIGHT_LAYERS)
    ]


def layer_weights(
    unfolded: nn.Module, folded: nn.Module, name: str, report: object | None = None
) -> LayerWeights:
    """``name``'s parameters before and after folding; ValueError names the valid layers."""
    layers = weight_layers(unfolded, folded)
    if name not in layers:
        raise ValueError(f"no layer {name!r} to compare: choose one of {', '.join(layers)}")
    before = dict(unfolded.named_modules())[name]
    after = dict(folded.named_modules())[name]
    source = None
    if report is not None:
        source = next((r.bn for r in report.records if r.folded and r.target == name), None)  # type: ignore[attr-defined]
    return LayerWeights(
        name=name,
        weight_before=_cpu(before.weight),
        bias_before=_bias(before),
        weight_after=_cpu(after.weight),
        bias_after=_bias(after),
        folded_from=source,
    )


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float32).clone()


def _bias(layer: nn.Module) -> torch.Tensor:
    if layer.bias is None:
        return torch.zeros(layer.weight.shape[0])
    return _cpu(layer.bias)
