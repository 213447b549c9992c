"""DenseNet (Huang et al. 2017): every layer of a dense block reads the concat of all earlier ones."""

from __future__ import annotations

import torch
from torch import nn

from hwlat.models._layers import check_resolution, check_width, scaled, tag

__all__ = ["densenet121", "densenet169"]


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    """DenseNet's pre-activation order: batch norm and ReLU before the convolution (so BN cannot fold)."""
    return [nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)]


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 to ``4 * growth``, BN-ReLU-3x3 to ``growth``, on the concat of the inputs so far."""

    def __init__(self, cin: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(*_bn_relu_conv(cin, bn_size * growth, 1), *_bn_relu_conv(bn_size * growth, growth, 3))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.body(torch.cat(features, dim=1))


class DenseBlock(nn.Module):
    def __init__(self, n: int, cin: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, dim=1)


def _densenet(blocks: tuple[int, ...], width: float, resolution: int, classes: int) -> nn.Module:
    width, resolution = check_width(width), check_resolution(resolution)
    growth = scaled(32, width)
    c = 2 * growth
    layers: list[nn.Module] = [
        nn.Conv2d(3, c, 7, 2, 3, bias=False),
        nn.BatchNorm2d(c),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    for i, n in enumerate(blocks):
        layers.append(DenseBlock(n, c, growth))
        c += n * growth
        if i < len(blocks) - 1:  # transition: halve the channels and the resolution
            layers += [*_bn_relu_conv(c, c // 2, 1), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU()]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, classes))
    return tag(nn.Sequential(nn.Sequential(*layers), head), resolution)


def densenet121(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """DenseNet-121, growth rate ``32 * width`` (7,978,856 parameters at width 1.0)."""
    return _densenet((6, 12, 24, 16), width, resolution, classes)


def densenet169(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """DenseNet-169 (14,149,480 parameters)."""
    return _densenet((6, 12, 32, 32), width, resolution, classes)
