"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016): fire modules, a 1x1 squeeze and two concatenated expands."""

from __future__ import annotations

import torch
from torch import nn

from hwlat.models._layers import check_resolution, check_width, scaled, tag

__all__ = ["squeezenet1_0", "squeezenet1_1"]


class Fire(nn.Module):
    """1x1 squeeze + ReLU, then 1x1 and 3x3 expands + ReLU, concatenated along channels."""

    def __init__(self, cin: int, squeeze: int, expand1: int, expand3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand1, 1), nn.ReLU())
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat((self.expand1(s), self.expand3(s)), dim=1)


# Layouts: ("conv", cout, kernel) | ("pool",) | ("fire", squeeze, expand), with the two expands equal.
_V1_0 = (
    ("conv", 96, 7),
    ("pool",),
    ("fire", 16, 64),
    ("fire", 16, 64),
    ("fire", 32, 128),
    ("pool",),
    ("fire", 32, 128),
    ("fire", 48, 192),
    ("fire", 48, 192),
    ("fire", 64, 256),
    ("pool",),
    ("fire", 64, 256),
)
_V1_1 = (
    ("conv", 64, 3),
    ("pool",),
    ("fire", 16, 64),
    ("fire", 16, 64),
    ("pool",),
    ("fire", 32, 128),
    ("fire", 32, 128),
    ("pool",),
    ("fire", 48, 192),
    ("fire", 48, 192),
    ("fire", 64, 256),
    ("fire", 64, 256),
)


def _squeezenet(layout, width: float, resolution: int, classes: int) -> nn.Module:
    width, resolution = check_width(width), check_resolution(resolution, minimum=64)
    layers: list[nn.Module] = []
    c = 3
    for kind, *args in layout:
        if kind == "conv":
            cout, kernel = scaled(args[0], width), args[1]
            layers += [nn.Conv2d(c, cout, kernel, stride=2), nn.ReLU()]
            c = cout
        elif kind == "pool":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        else:
            squeeze, expand = scaled(args[0], width), scaled(args[1], width)
            layers.append(Fire(c, squeeze, expand, expand))
            c = 2 * expand
    # The classifier is a 1x1 convolution with ReLU before the global pool, as in the paper.
    head = nn.Sequential(nn.Conv2d(c, classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return tag(nn.Sequential(nn.Sequential(*layers), head), resolution)


def squeezenet1_0(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """SqueezeNet 1.0: a 7x7 stem and 96 channels (1,248,424 parameters)."""
    return _squeezenet(_V1_0, width, resolution, classes)


def squeezenet1_1(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """SqueezeNet 1.1: a 3x3 stem, earlier pooling, 2.4x fewer MACs than 1.0 (1,235,496 parameters)."""
    return _squeezenet(_V1_1, width, resolution, classes)
