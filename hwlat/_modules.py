"""PyTorch modules behind :meth:`hwlat.ops.OpSpec.build` (imported lazily: needs torch)."""

from __future__ import annotations

import math

import torch
from torch import nn

from hwlat.ops import OpSpec


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    return nn.Identity()


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int, groups: int, act: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        activation(act),
    )


class MBConv(nn.Module):
    """MobileNetV2 inverted residual (ProxylessNAS ``MBInvertedConvLayer`` + shortcut)."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if op.expand > 1:
            layers.append(conv_bn_act(op.cin, op.hidden, 1, 1, 1, op.act))
        layers.append(conv_bn_act(op.hidden, op.hidden, op.kernel, op.stride, op.hidden, op.act))
        layers.append(conv_bn_act(op.hidden, op.cout, 1, 1, 1, "none"))
        self.body = nn.Sequential(*layers)
        self.skip = op.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


class ResBlock(nn.Module):
    """ResNet basic block: two kxk conv-BN (ReLU between), shortcut, ReLU."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(op.cin, op.cout, op.kernel, op.stride, 1, op.act),
            conv_bn_act(op.cout, op.cout, op.kernel, 1, 1, "none"),
        )
        self.shortcut = conv_bn_act(op.cin, op.cout, 1, op.stride, 1, "none") if op.has_projection else nn.Identity()
        self.act = activation(op.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Zero(nn.Module):
    """ProxylessNAS ``ZeroLayer``: outputs zeros of the op's output shape."""

    def __init__(self, cout: int, stride: int) -> None:
        super().__init__()
        self.cout, self.stride = cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.cout, -(-h // self.stride), -(-w // self.stride))


class Head(nn.Module):
    """Feature-mix 1x1 conv-BN-act (optional), global average pooling, classifier."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.mix = conv_bn_act(op.cin, op.mid, 1, 1, 1, op.act) if op.mid else nn.Identity()
        self.classifier = nn.Linear(op.mid or op.cin, op.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix(x).mean((2, 3))
        return self.classifier(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def build_op(op: OpSpec) -> nn.Module:
    kind, k, s = op.kind, op.kernel, op.stride
    if kind in ("conv", "stem"):
        return conv_bn_act(op.cin, op.cout, k, s, 1, op.act)
    if kind == "dwconv":
        return conv_bn_act(op.cin, op.cin, k, s, op.cin, op.act)
    if kind == "pwconv":
        return conv_bn_act(op.cin, op.cout, 1, 1, 1, op.act)
    if kind == "dsconv":
        return conv_bn_act(op.cin, op.cout, k, s, math.gcd(op.cin, op.cout), op.act)
    if kind == "dsconv_pw":
        return nn.Sequential(
            conv_bn_act(op.cin, op.cin, k, s, op.cin, op.act), conv_bn_act(op.cin, op.cout, 1, 1, 1, op.act)
        )
    if kind == "mbconv":
        return MBConv(op)
    if kind == "resblock":
        return ResBlock(op)
    if kind == "linear":
        return nn.Linear(op.cin, op.cout)
    if kind == "avgpool":
        return nn.AvgPool2d(k, s, k // 2, count_include_pad=False)
    if kind == "maxpool":
        return nn.MaxPool2d(k, s, k // 2)
    if kind == "gap":
        return GlobalAvgPool()
    if kind == "identity":
        return nn.Identity()
    if kind == "zero":
        return Zero(op.cout, s)
    if kind == "head":
        return Head(op)
    raise AssertionError(f"no builder for {kind!r}")  # OpSpec validated the kind
