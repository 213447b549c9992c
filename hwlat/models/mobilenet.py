"""MobileNetV1 (Howard et al. 2017), MobileNetV2 (Sandler et al. 2018), MobileNetV3 (Howard et al. 2019)."""

from __future__ import annotations

from torch import nn

from hwlat.models._layers import InvertedResidual, check_resolution, check_width, classifier, conv_bn, scaled, tag

__all__ = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]

# (cout, stride) of the 13 depthwise-separable blocks: Howard et al. 2017, Table 1.
_V1 = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))

# (expansion t, cout c, repeats n, first stride s): Sandler et al. 2018, Table 2.
_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# (kernel, expanded, cout, SE, h-swish, stride): Howard et al. 2019, Tables 1 and 2.
_V3_LARGE = (
    (3, 16, 16, False, False, 1),
    (3, 64, 24, False, False, 2),
    (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2),
    (5, 120, 40, True, False, 1),
    (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2),
    (3, 200, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1),
    (3, 480, 112, True, True, 1),
    (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2),
    (5, 960, 160, True, True, 1),
    (5, 960, 160, True, True, 1),
)
_V3_SMALL = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)


def mobilenet_v1(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """MobileNetV1: a 3x3 s2 stem, 13 depthwise-separable blocks, pool and classifier (4.23 M parameters)."""
    width, resolution = check_width(width), check_resolution(resolution)
    c = scaled(32, width)
    layers: list[nn.Module] = [conv_bn(3, c, 3, 2)]
    for cout, stride in _V1:
        co = scaled(cout, width)
        layers += [conv_bn(c, c, 3, stride, groups=c), conv_bn(c, co, 1)]
        c = co
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(c, classes)), resolution)


def mobilenet_v2(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """MobileNetV2 as torchvision builds it (3,504,872 parameters at width 1.0).

    The last 1x1 layer keeps 1280 channels below width 1.0 and widens above it, as in the paper.
    """
    width, resolution = check_width(width), check_resolution(resolution)
    c = scaled(32, width)
    layers: list[nn.Module] = [conv_bn(3, c, 3, 2, act=nn.ReLU6)]
    for t, cout, n, s in _V2:
        co = scaled(cout, width)
        for i in range(n):
            layers.append(InvertedResidual(c, c * t, co, 3, s if i == 0 else 1, act=nn.ReLU6))
            c = co
    last = scaled(1280, max(1.0, width))
    layers.append(conv_bn(c, last, 1, act=nn.ReLU6))
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(last, classes)), resolution)


class _V3Head(nn.Module):
    """MobileNetV3's efficient last stage: pool first, then a 1x1 "conv" as a linear layer, h-swish, classifier."""

    def __init__(self, channels: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.Hardswish()
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.flatten(self.pool(x)))))


def _mobilenet_v3(config, last: int, width: float, resolution: int, classes: int) -> nn.Module:
    width, resolution = check_width(width), check_resolution(resolution)
    c = scaled(16, width)
    layers: list[nn.Module] = [conv_bn(3, c, 3, 2, act=nn.Hardswish)]
    for kernel, expanded, cout, se, hswish, stride in config:
        mid, co = scaled(expanded, width), scaled(cout, width)
        layers.append(
            InvertedResidual(
                c,
                mid,
                co,
                kernel,
                stride,
                act=nn.Hardswish if hswish else nn.ReLU,
                se=scaled(mid // 4, 1) if se else 0,
                se_gate=nn.Hardsigmoid,
            )
        )
        c = co
    layers.append(conv_bn(c, 6 * c, 1, act=nn.Hardswish))
    return tag(nn.Sequential(nn.Sequential(*layers), _V3Head(6 * c, scaled(last, width), classes)), resolution)


def mobilenet_v3_large(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """MobileNetV3-Large: SE blocks with h-sigmoid gates, h-swish in the later stages (5,483,032 parameters)."""
    return _mobilenet_v3(_V3_LARGE, 1280, width, resolution, classes)


def mobilenet_v3_small(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """MobileNetV3-Small (2,542,856 parameters at width 1.0)."""
    return _mobilenet_v3(_V3_SMALL, 1024, width, resolution, classes)
