"""GoogLeNet (Szegedy et al. 2015, with batch norm as torchvision builds it): four-branch inception concats."""

from __future__ import annotations

import torch
from torch import nn

from hwlat.models._layers import check_resolution, check_width, classifier, conv_bn, scaled, tag

__all__ = ["googlenet"]

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, "5x5", pool projection) per inception module, Szegedy et al. 2015,
# Table 1; "pool" marks the max pools between the groups. The "5x5" branch is a 3x3 conv, as in torchvision.
_LAYOUT = (
    (64, 96, 128, 16, 32, 32),
    (128, 128, 192, 32, 96, 64),
    "pool",
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
    "pool2",
    (256, 160, 320, 32, 128, 128),
    (384, 192, 384, 48, 128, 128),
)


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1-3x3; 1x1-3x3; 3x3 max pool-1x1) concatenated along channels."""

    def __init__(self, cin: int, c1: int, r3: int, c3: int, r5: int, c5: int, proj: int) -> None:
        super().__init__()
        self.branch1 = conv_bn(cin, c1, 1, eps=1e-3)
        self.branch2 = nn.Sequential(conv_bn(cin, r3, 1, eps=1e-3), conv_bn(r3, c3, 3, eps=1e-3))
        self.branch3 = nn.Sequential(conv_bn(cin, r5, 1, eps=1e-3), conv_bn(r5, c5, 3, eps=1e-3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv_bn(cin, proj, 1, eps=1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)), dim=1)


def googlenet(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """GoogLeNet without its training-only auxiliary heads (6,624,904 parameters at width 1.0)."""
    width, resolution = check_width(width), check_resolution(resolution)
    c64, c192 = scaled(64, width), scaled(192, width)
    layers: list[nn.Module] = [
        conv_bn(3, c64, 7, 2, eps=1e-3),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        conv_bn(c64, c64, 1, eps=1e-3),
        conv_bn(c64, c192, 3, eps=1e-3),
        nn.MaxPool2d(3, 2, ceil_mode=True),
    ]
    c = c192
    for entry in _LAYOUT:
        if entry == "pool":
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        elif entry == "pool2":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            widths = [scaled(v, width) for v in entry]
            layers.append(Inception(c, *widths))
            c = widths[0] + widths[2] + widths[4] + widths[5]
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(c, classes)), resolution)
