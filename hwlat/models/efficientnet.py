"""EfficientNet (Tan & Le 2019): MBConv blocks with SiLU and squeeze-and-excitation, compound scaling."""

from __future__ import annotations

import math

from torch import nn

from hwlat.models._layers import InvertedResidual, check_resolution, check_width, classifier, conv_bn, scaled, tag

__all__ = ["efficientnet", "COMPOUND"]

# (expansion, kernel, first stride, cout, repeats): the B0 baseline, Tan & Le 2019, Table 1.
_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4))
_B0 = (*_B0, (6, 3, 1, 320, 1))

# variant -> (width, depth, resolution): the compound coefficients of the released models.
COMPOUND = {
    "b0": (1.0, 1.0, 224),
    "b1": (1.0, 1.1, 240),
    "b2": (1.1, 1.2, 260),
    "b3": (1.2, 1.4, 300),
    "b4": (1.4, 1.8, 380),
}


def efficientnet(
    variant: str = "b0",
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
    classes: int = 1000,
) -> nn.Module:
    """EfficientNet ``variant`` (b0-b4); ``width``/``depth``/``resolution`` override its compound coefficients.

    Inference only: no dropout, no stochastic depth. B0 has 5,288,548 parameters.
    """
    if variant not in COMPOUND:
        raise ValueError(f"Unknown EfficientNet variant {variant!r}: choose one of {', '.join(COMPOUND)}")
    w0, d0, r0 = COMPOUND[variant]
    width = check_width(w0 if width is None else width)
    depth = check_width(d0 if depth is None else depth, "depth")
    resolution = check_resolution(r0 if resolution is None else resolution)
    c = scaled(32, width)
    layers: list[nn.Module] = [conv_bn(3, c, 3, 2, act=nn.SiLU, eps=1e-3)]
    for t, kernel, stride, cout, n in _B0:
        co = scaled(cout, width)
        for i in range(math.ceil(n * depth)):
            se = max(1, c // 4)  # a quarter of the block's input channels
            layers.append(
                InvertedResidual(
                    c, c * t, co, kernel, stride if i == 0 else 1, act=nn.SiLU, se=se, se_act=nn.SiLU, eps=1e-3
                )
            )
            c = co
    layers.append(conv_bn(c, 4 * c, 1, act=nn.SiLU, eps=1e-3))
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(4 * c, classes)), resolution)
