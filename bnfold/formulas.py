"""The arithmetic of folding, on plain tensors: no modules, no graphs.

A BatchNorm in inference mode is a per-channel affine map

    BN(x) = gamma * (x - mean) / sqrt(var + eps) + beta = scale * x + shift
    scale = gamma / sqrt(var + eps),   shift = beta - mean * scale

so it can be merged into the linear layer on either side of it. Both the torch-level and the
ONNX-level folders call these functions, so the formula lives in one place.

Everything is computed in float64 and rounded once to the parameter's dtype at the end:
rounding intermediate fp16/bf16 values costs 2-3x the error of the optimum.
"""

from __future__ import annotations

import torch
from torch import Tensor


def bn_scale_shift(
    running_mean: Tensor,
    running_var: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """Return the float64 ``(scale, shift)`` with ``BN(x) == scale * x + shift`` per channel.

    ``weight``/``bias`` are gamma/beta; ``None`` means ``affine=False`` (gamma=1, beta=0).
    """
    mean = running_mean.detach().to(torch.float64)
    var = running_var.detach().to(torch.float64)
    gamma = torch.ones_like(mean) if weight is None else weight.detach().to(torch.float64)
    beta = torch.zeros_like(mean) if bias is None else bias.detach().to(torch.float64)
    scale = gamma / torch.sqrt(var + eps)
    return scale, beta - mean * scale


def _grouped(weight: Tensor, groups: int, channel_axis: int) -> Tensor:
    """View ``weight`` as (groups, dim0/groups, ...) when the per-group axis is ``channel_axis``.

    Conv weights are (out, in/groups, *k) and ConvTranspose weights are (in, out/groups, *k): in
    both, axis 0 is split into groups and axis 1 indexes channels within a group.
    """
    if channel_axis == 0 or groups == 1:
        return weight
    return weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])


def _broadcast(vec: Tensor, weight: Tensor, axis: int, groups: int) -> Tensor:
    """Shape a per-channel vector so it multiplies ``weight`` along ``axis`` (grouped if needed)."""
    if axis == 0:
        return vec.reshape(-1, *([1] * (weight.dim() - 1)))
    if groups == 1:  # (in, out, *k): channel c is index c of axis 1
        return vec.reshape(1, -1, *([1] * (weight.dim() - 2)))
    # ``weight`` is already grouped, (groups, in/groups, out/groups, *k): channel
    # c = g * out_per_group + j sits at [g, :, j]
    return vec.reshape(groups, 1, -1, *([1] * (weight.dim() - 3)))


def fold_into_producer(
    weight: Tensor,
    bias: Tensor | None,
    scale: Tensor,
    shift: Tensor,
    *,
    out_axis: int = 0,
    groups: int = 1,
) -> tuple[Tensor, Tensor]:
    """Fold ``scale * y + shift`` applied to a layer's output channels into that layer.

    Before: y = layer(x; W, b);  z = scale * y + shift
    After:  z = layer(x; W', b')  with  W' = W * scale (along the output-channel axis),
            b' = b * scale + shift  (b = 0 when the layer has no bias).
    Conditions: ``out_axis`` is the output-channel axis of ``weight`` — 0 for Conv/Linear
    (out, in, ...), 1 for ConvTranspose (in, out/groups, ...), with ``groups`` for the latter.
    Returns (W', b') rounded once to ``weight``'s dtype, on its device.
    """
    if out_axis not in (0, 1):
        raise ValueError(f"out_axis must be 0 or 1, got {out_axis}")
    w64 = _grouped(weight.detach().to(torch.float64), groups, out_axis)
    scale, shift = scale.to(w64.device), shift.to(w64.device)
    new_w = (w64 * _broadcast(scale, w64, out_axis, groups)).reshape(weight.shape)
    b64 = torch.zeros_like(scale) if bias is None else bias.detach().to(torch.float64)
    new_b = b64 * scale + shift
    dtype = weight.dtype
    bias_dtype = dtype if bias is None else bias.dtype
    return new_w.to(dtype), new_b.to(bias_dtype)


def fold_into_consumer(
    weight: Tensor,
    bias: Tensor | None,
    scale: Tensor,
    shift: Tensor,
    *,
    groups: int = 1,
) -> tuple[Tensor, Tensor]:
    """Fold ``scale * x + shift`` applied to a Conv/Linear's *input* channels into that layer.

    Before: z = layer(scale * x + shift; W, b)
    After:  z = layer(x; W', b')  with  W' = W * scale (along the input-channel axis 1),
            b'[o] = b[o] + sum_{i, k} W[o, i, k] * shift[g(o) * in_per_group + i].
    Conditions: ``weight`` is (out, in/groups, *kernel) — Conv or Linear. For a Conv this is
    exact only when every output sees a full window of the shifted input: no zero padding
    (replicate/reflect/circular padding pads with shifted values, so it stays exact).
    Returns (W', b') rounded once to ``weight``'s dtype, on its device.
    """
    w64 = weight.detach().to(torch.float64)
    out_ch, in_per_group = w64.shape[0], w64.shape[1]
    out_per_group = out_ch // groups
    scale, shift = scale.to(w64.device), shift.to(w64.device)
    s = scale.reshape(groups, 1, in_per_group, *([1] * (w64.dim() - 2)))
    t = shift.reshape(groups, 1, in_per_group, *([1] * (w64.dim() - 2)))
    wg = w64.reshape(groups, out_per_group, *w64.shape[1:])
    new_w = (wg * s).reshape(w64.shape)
    contribution = (wg * t).sum(dim=tuple(range(2, wg.dim()))).reshape(out_ch)
    b64 = torch.zeros(out_ch, dtype=torch.float64, device=w64.device)
    if bias is not None:
        b64 = bias.detach().to(torch.float64)
    new_b = b64 + contribution
    bias_dtype = weight.dtype if bias is None else bias.dtype
    return new_w.to(weight.dtype), new_b.to(bias_dtype)
