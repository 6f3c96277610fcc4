"""bnfold.fold on real torchvision models: how many BatchNorms it folds, and that nothing changes.

One or two sizes of every torchvision family that contains BatchNorm (classification, video,
segmentation), built with ``weights=None``, random running stats and affine parameters, eval
mode, the smallest inputs each accepts. Per model the test logs BNs before/after and the output
relative error max|Δ|/max|y| (fp32), and asserts the number left and error <= 1e-5.

Bounds where other tools fail: torch.fx's fuser leaves 4 of r3d_18's 20 BNs (Conv3DSimple is a
subclass), 11 of maxvit_t's 34 and 62 of densenet121's 121 (no BN → conv folding). densenet's
other 62 follow a concat and feed a ReLU: no neighbour to fold into.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torchvision.models as tvm
import torchvision.models.segmentation as tvs
import torchvision.models.video as tvv
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import bnfold

logger = logging.getLogger(__name__)

IMAGE = (1, 3, 64, 64)
CLIP = (1, 3, 4, 32, 32)
K = {"num_classes": 10}  # small heads build faster


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...] = IMAGE
    max_left: int = 0
    slow: bool = False
    shape_inputs: bool = True  # fold with example_inputs (one more forward, for ShapeProp)


def _seg(builder: Callable[..., nn.Module]) -> Callable[[], nn.Module]:
    return lambda: builder(num_classes=3, weights_backbone=None)


CASES = [
    Case("resnet18", lambda: tvm.resnet18(**K)),
    Case("resnet50", lambda: tvm.resnet50(**K)),
    Case("resnext50_32x4d", lambda: tvm.resnext50_32x4d(**K)),
    Case("wide_resnet50_2", lambda: tvm.wide_resnet50_2(**K), slow=True),
    Case("mobilenet_v2", lambda: tvm.mobilenet_v2(**K)),
    Case("mobilenet_v3_small", lambda: tvm.mobilenet_v3_small(**K)),
    Case("efficientnet_b0", lambda: tvm.efficientnet_b0(**K)),
    Case("efficientnet_v2_s", lambda: tvm.efficientnet_v2_s(**K)),
    Case("regnet_y_400mf", lambda: tvm.regnet_y_400mf(**K)),
    Case("regnet_x_400mf", lambda: tvm.regnet_x_400mf(**K)),
    Case("shufflenet_v2_x0_5", lambda: tvm.shufflenet_v2_x0_5(**K)),
    Case("mnasnet0_5", lambda: tvm.mnasnet0_5(**K)),
    Case("googlenet", lambda: tvm.googlenet(**K, aux_logits=False, init_weights=False)),
    Case(
        "inception_v3",
        lambda: tvm.inception_v3(**K, aux_logits=False, init_weights=False),
        shape=(1, 3, 75, 75),
    ),
    Case("densenet121", lambda: tvm.densenet121(**K), max_left=62),
    Case("vgg11_bn", lambda: tvm.vgg11_bn(**K), shape=(1, 3, 32, 32)),
    # maxvit needs 224 px (7x7 windows after /32); fold without a ShapeProp forward
    Case(
        "maxvit_t", lambda: tvm.maxvit_t(**K), shape=(1, 3, 224, 224), slow=True, shape_inputs=False
    ),
    Case("r3d_18", lambda: tvv.r3d_18(**K), shape=CLIP),
    Case("mc3_18", lambda: tvv.mc3_18(**K), shape=CLIP),
    Case("r2plus1d_18", lambda: tvv.r2plus1d_18(**K), shape=CLIP),
    Case("s3d", lambda: tvv.s3d(**K), shape=(1, 3, 16, 224, 224), slow=True, shape_inputs=False),
    Case("fcn_resnet50", _seg(tvs.fcn_resnet50), slow=True),
    Case("deeplabv3_mobilenet_v3_large", _seg(tvs.deeplabv3_mobilenet_v3_large)),
    Case("lraspp_mobilenet_v3_large", _seg(tvs.lraspp_mobilenet_v3_large)),
]


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Running var in [0.5, 2], mean/beta ~ N(0, 0.5), gamma in [0.5, 1.5]: far from identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.5)


def outputs(y: object) -> list[torch.Tensor]:
    return list(y.values()) if isinstance(y, dict) else [y]


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in CASES]
)
def test_torchvision_model_folds_exactly(case: Case) -> None:
    torch.manual_seed(0)
    model = case.build().eval()
    randomize_bn(model, torch.Generator().manual_seed(1))
    x = torch.randn(case.shape)
    before = count_bn(model)
    result = bnfold.fold(model, x if case.shape_inputs else None)
    after = count_bn(result.model)
    with torch.no_grad():
        expected, got = outputs(model(x)), outputs(result.model(x))
    rel = max(
        ((g - e).abs().max() / e.abs().max()).item() for e, g in zip(expected, got, strict=True)
    )
    logger.info("%s: BatchNorm %d -> %d left, max rel error %.2e", case.name, before, after, rel)
    assert result.report.num_bn == before
    assert len(result.report.left) == after  # every BN left is reported, every folded one gone
    assert after <= case.max_left, result.report.to_table()
    assert rel <= 1e-5
