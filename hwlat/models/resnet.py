"""ResNet (He et al. 2016, the v1.5 form torchvision uses: stride on the 3x3) and ResNeXt (Xie et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from hwlat.models._layers import check_resolution, check_width, classifier, conv_bn, scaled, tag

__all__ = ["resnet18", "resnet34", "resnet50", "resnext50_32x4d"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (a 1x1 strided projection where the shape changes)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, planes, 3, stride), conv_bn(planes, planes, 3, act=None))
        self.shortcut = conv_bn(cin, planes, 1, stride, act=None) if stride != 1 or cin != planes else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt, strided), 1x1 expand by 4, and a shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        mid = int(planes * base_width / 64) * groups
        cout = planes * self.expansion
        self.body = nn.Sequential(
            conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride, groups=groups), conv_bn(mid, cout, 1, act=None)
        )
        self.shortcut = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _resnet(block, depths, width, resolution, classes, groups=1, base_width=64) -> nn.Module:
    width, resolution = check_width(width), check_resolution(resolution)
    c = scaled(64, width)
    layers: list[nn.Module] = [conv_bn(3, c, 7, 2), nn.MaxPool2d(3, 2, 1)]
    for stage, n in enumerate(depths):
        planes = scaled(64 * 2**stage, width)
        for i in range(n):
            layers.append(block(c, planes, 2 if stage > 0 and i == 0 else 1, groups, base_width))
            c = planes * block.expansion
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(c, classes)), resolution)


def resnet18(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """ResNet-18 (11,689,512 parameters); ``width`` scales every stage's channels."""
    return _resnet(BasicBlock, (2, 2, 2, 2), width, resolution, classes)


def resnet34(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """ResNet-34 (21,797,672 parameters)."""
    return _resnet(BasicBlock, (3, 4, 6, 3), width, resolution, classes)


def resnet50(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """ResNet-50 with bottleneck blocks (25,557,032 parameters)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), width, resolution, classes)


def resnext50_32x4d(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """ResNeXt-50 32x4d: ResNet-50 with 32-group 3x3 convolutions, 4 channels per group (25,028,904 parameters)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), width, resolution, classes, groups=32, base_width=4)
