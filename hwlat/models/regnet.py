"""RegNetX and RegNetY (Radosavovic et al. 2020): quantized linear widths, grouped 3x3 bottlenecks, SE in Y."""

from __future__ import annotations

import math

import torch
from torch import nn

from hwlat.models._layers import SqueezeExcite, check_resolution, classifier, conv_bn, make_divisible, tag

__all__ = ["regnet_x", "regnet_y", "REGNET_X", "REGNET_Y", "stage_plan"]

# regime -> (depth, w0, wa, wm, group width): the released models' parameters (Radosavovic et al. 2020,
# Appendix, as in pycls / torchvision).
REGNET_X = {
    "200mf": (13, 24, 36.44, 2.49, 8),
    "400mf": (22, 24, 24.48, 2.54, 16),
    "800mf": (16, 56, 35.73, 2.28, 16),
    "1.6gf": (18, 80, 34.01, 2.25, 24),
}
REGNET_Y = {
    "200mf": (13, 24, 36.44, 2.49, 8),
    "400mf": (16, 48, 27.89, 2.09, 8),
    "800mf": (14, 56, 38.84, 2.4, 16),
    "1.6gf": (27, 48, 20.71, 2.65, 24),
}


def stage_plan(depth: int, w0: int, wa: float, wm: float, group: int) -> list[tuple[int, int, int]]:
    """(width, blocks, group width) per stage from the RegNet parameters.

    Block ``j`` would have width ``w0 + wa * j``; widths are snapped to ``w0 * wm^k`` (a power of
    ``wm``), rounded to a multiple of 8; equal neighbours form a stage; each stage's width is made a
    multiple of its group width (the group width is capped at the stage width).
    """
    widths = []
    for j in range(depth):
        k = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        widths.append(int(round(w0 * wm**k / 8) * 8))
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    plan = []
    for w, n in stages:
        g = min(group, w)
        plan.append((make_divisible(w, g), n, g))
    return plan


class RegNetBlock(nn.Module):
    """1x1, grouped 3x3 (stride), optional SE (a quarter of the block's input width), 1x1; residual and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, group: int, se_ratio: float) -> None:
        super().__init__()
        layers = [conv_bn(cin, cout, 1), conv_bn(cout, cout, 3, stride, groups=cout // group)]
        if se_ratio:
            layers.append(SqueezeExcite(cout, int(round(se_ratio * cin))))
        layers.append(conv_bn(cout, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _regnet(table: dict, variant: str, se_ratio: float, resolution: int, classes: int) -> nn.Module:
    if variant not in table:
        raise ValueError(f"Unknown RegNet regime {variant!r}: choose one of {', '.join(table)}")
    resolution = check_resolution(resolution)
    c = 32
    layers: list[nn.Module] = [conv_bn(3, c, 3, 2)]
    for width, n, group in stage_plan(*table[variant]):
        for i in range(n):
            layers.append(RegNetBlock(c, width, 2 if i == 0 else 1, group, se_ratio))
            c = width
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(c, classes)), resolution)


def regnet_x(variant: str = "400mf", resolution: int = 224, classes: int = 1000) -> nn.Module:
    """RegNetX at a compute regime (400mf: 5,495,976 parameters): grouped bottlenecks without SE."""
    return _regnet(REGNET_X, variant, 0.0, resolution, classes)


def regnet_y(variant: str = "400mf", resolution: int = 224, classes: int = 1000) -> nn.Module:
    """RegNetY at a compute regime (400mf: 4,344,144 parameters): RegNetX with squeeze-and-excitation."""
    return _regnet(REGNET_Y, variant, 0.25, resolution, classes)
