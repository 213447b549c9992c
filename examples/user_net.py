"""A model hwlat has never seen: the README's example of predicting a user's own network.

A small classifier written the way a user would, in plain PyTorch and none of hwlat's families:
a 3x3 stem, depthwise-separable blocks with SiLU, squeeze-and-excitation and residuals, a
strided 5x5 stage, and a GELU MLP head. ``build()`` is the factory ``--model`` takes:

    PYTHONPATH=examples hwlat predict --predictor ort.skops --model user_net:build --kernels
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(8, channels // reduction)
        self.fc1 = nn.Conv2d(channels, mid, 1)
        self.fc2 = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class SeparableBlock(nn.Module):
    """Depthwise kxk, SE, pointwise projection; a residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.dw = nn.Sequential(
            nn.Conv2d(cin, cin, kernel, stride, kernel // 2, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.SiLU()
        )
        self.se = SqueezeExcite(cin)
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.se(self.dw(x)))
        return x + y if self.residual else y


class UserNet(nn.Module):
    input_shape = (1, 3, 192, 192)

    def __init__(self, classes: int = 100) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.SiLU())
        stages = [(24, 32, 3, 2, 2), (32, 64, 3, 2, 3), (64, 96, 5, 2, 3), (96, 160, 5, 2, 2)]
        blocks = []
        for cin, cout, k, stride, n in stages:
            for i in range(n):
                blocks.append(SeparableBlock(cin if i == 0 else cout, cout, k, stride if i == 0 else 1))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(160, 512), nn.GELU(), nn.Linear(512, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x.mean((2, 3)))


def build() -> nn.Module:
    """The factory ``--model user_net:build`` calls (with ``examples/`` on ``PYTHONPATH``)."""
    return UserNet()
