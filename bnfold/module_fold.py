"""Fold a BatchNorm's ``scale * x + shift`` into a Conv/ConvTranspose/Linear *module*.

The module layer over :mod:`bnfold.formulas`: it returns a new module with new parameters and
never touches the one it was given, so a layer shared with other call sites stays intact.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from bnfold.formulas import fold_into_consumer, fold_into_producer
from bnfold.layers import module_geometry


def fold_bn_into_producer(layer: nn.Module, scale: Tensor, shift: Tensor) -> nn.Module:
    """A copy of ``layer`` that also applies the BN that followed it.

    Before: z = BN(layer(x)) = scale * layer(x) + shift  (per output channel)
    After:  z = layer'(x)
    Conditions: ``layer`` is a stock Conv/ConvTranspose (1d/2d/3d, any groups, dilation,
        output_padding) or Linear; the BN normalises the layer's output-channel axis (axis 1 of
        a batched conv output, the feature axis of an (N, C) Linear output); the layer's output
        feeds nothing but the BN. The caller checks these (see :mod:`bnfold.fx_fold`).
    Formula: W' = W * scale along the output-channel axis (axis 1 per group for
        ConvTranspose), b' = b * scale + shift, b = 0 if the layer had no bias (one is created).
        Computed in float64 and rounded once to the parameter dtype.
    """
    geom = module_geometry(layer)
    weight, bias = fold_into_producer(
        geom.weight, geom.bias, scale, shift, out_axis=geom.out_axis, groups=geom.groups
    )
    return with_parameters(layer, weight, bias)


def fold_bn_into_consumer(layer: nn.Module, scale: Tensor, shift: Tensor) -> nn.Module:
    """A copy of ``layer`` that also applies the BN that preceded it.

    Before: z = layer(BN(x)) = layer(scale * x + shift)  (per input channel)
    After:  z = layer'(x)
    Conditions: ``layer`` is a stock Conv (no zero padding of a non-zero amount; reflect,
        replicate and circular padding are fine) or Linear; the BN normalises the layer's
        input-channel axis; the BN's output feeds only layers that are folded the same way.
    Formula: W'[o, i, k] = W[o, i, k] * scale[i'],  b'[o] = b[o] + sum_{i,k} W[o, i, k] * shift[i']
        with i' = g(o) * in_per_group + i. Float64, rounded once.
    """
    geom = module_geometry(layer)
    weight, bias = fold_into_consumer(geom.weight, geom.bias, scale, shift, groups=geom.groups)
    return with_parameters(layer, weight, bias)


def with_parameters(layer: nn.Module, weight: Tensor, bias: Tensor) -> nn.Module:
    """A shallow copy of ``layer`` with new ``weight``/``bias`` Parameters.

    Shallow so that a big layer's old weight is not copied for nothing; the parameter, buffer,
    module and hook dicts are copied so that nothing written to the copy reaches ``layer``.
    ``requires_grad`` follows the old parameters (a created bias follows the weight).
    """
    new = copy.copy(layer)
    for key, value in vars(layer).items():
        if isinstance(value, dict | set | list):
            new.__dict__[key] = copy.copy(value)
    grad = layer.weight.requires_grad
    new.weight = nn.Parameter(weight, requires_grad=grad)
    old_bias = layer.bias
    new.bias = nn.Parameter(
        bias, requires_grad=grad if old_bias is None else old_bias.requires_grad
    )
    return new
