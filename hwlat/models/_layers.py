"""Building blocks the families share: conv + BN + activation, squeeze-and-excitation, inverted residuals.

Every block is a plain ``torch.nn`` module, so an ONNX export shows the kernels a runtime sees
(``Conv``, ``BatchNormalization`` folded or not, ``HardSwish``, ``Mul`` of an SE gate, ``MatMul``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hwlat.zoo import make_divisible

__all__ = [
    "Act",
    "InvertedResidual",
    "MatMul",
    "SqueezeExcite",
    "check_resolution",
    "check_width",
    "classifier",
    "conv_bn",
    "make_divisible",
    "scaled",
    "tag",
]

Act = Callable[[], nn.Module] | None


def conv_bn(
    cin: int,
    cout: int,
    kernel: int = 1,
    stride: int = 1,
    *,
    groups: int = 1,
    dilation: int = 1,
    act: Act = nn.ReLU,
    eps: float = 1e-5,
) -> nn.Sequential:
    """A bias-free ``kernel`` x ``kernel`` convolution ("same" padding), batch norm and ``act`` (None: none)."""
    padding = (kernel - 1) // 2 * dilation
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=eps),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global pool, two 1x1 convs with biases, a gate, a product."""

    def __init__(self, channels: int, squeeze: int, act: Act = nn.ReLU, gate: Act = nn.Sigmoid) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act() if act is not None else nn.Identity()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate() if gate is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """The MobileNetV2 block and its descendants (MobileNetV3, MnasNet, EfficientNet's MBConv).

    A 1x1 expansion to ``mid`` channels (left out when ``mid == cin``), a depthwise ``kernel`` x
    ``kernel`` convolution, an optional squeeze-and-excitation of ``se`` channels, a linear 1x1
    projection; the identity shortcut is added when the shapes allow it and ``skip`` is true.
    """

    def __init__(
        self,
        cin: int,
        mid: int,
        cout: int,
        kernel: int,
        stride: int,
        *,
        act: Act = nn.ReLU6,
        se: int = 0,
        se_act: Act = nn.ReLU,
        se_gate: Act = nn.Sigmoid,
        skip: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(conv_bn(cin, mid, 1, act=act, eps=eps))
        layers.append(conv_bn(mid, mid, kernel, stride, groups=mid, act=act, eps=eps))
        if se:
            layers.append(SqueezeExcite(mid, se, se_act, se_gate))
        layers.append(conv_bn(mid, cout, 1, act=None, eps=eps))
        self.block = nn.Sequential(*layers)
        self.residual = skip and stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MatMul(nn.Module):
    """``a @ b`` as a module, so forward hooks (MAC counts) and readers of the graph see attention's matmuls."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def classifier(channels: int, classes: int) -> nn.Sequential:
    """Global average pool, flatten, linear layer: the head of most CNNs here (inference: no dropout)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, classes))


def scaled(channels: float, width: float, divisor: int = 8) -> int:
    """``channels * width`` rounded as torchvision's MobileNets round it (a multiple of ``divisor``)."""
    return make_divisible(channels * width, divisor)


def check_width(width: float, name: str = "width") -> float:
    """``width`` (or another multiplier ``name``) as a float; ``ValueError`` when it is not a positive number."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"Invalid {name}={width!r}: must be a positive number (1.0 is the published network)")
    return float(width)


def check_resolution(resolution: int, multiple: int = 1, minimum: int = 32) -> int:
    """``resolution`` as an int; ``ValueError`` when it is too small or not a multiple of ``multiple``."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < minimum:
        raise ValueError(f"Invalid resolution={resolution!r}: must be an integer >= {minimum}")
    if resolution % multiple:
        raise ValueError(f"Invalid resolution={resolution}: must be a multiple of {multiple} (e.g. 224)")
    return resolution


def tag(model: nn.Module, resolution: int) -> nn.Module:
    """Record the input shape the model was built for (``model.input_shape``) and switch to eval mode."""
    model.input_shape = (1, 3, resolution, resolution)
    return model.eval()
