"""ShuffleNetV2 (Ma et al. 2018): channel split, two branches, concat, channel shuffle."""

from __future__ import annotations

import torch
from torch import nn

from hwlat.models._layers import check_resolution, conv_bn, tag

__all__ = ["shufflenet_v2", "WIDTHS"]

# Stage output channels per width (Ma et al. 2018, Table 5): stem, three stages, last 1x1 conv.
WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
_REPEATS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int, channels: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups: (N, g*c, H, W) -> view (N, g, c, H, W) -> transpose -> flatten."""
    return x.unflatten(1, (groups, channels // groups)).transpose(1, 2).flatten(1, 2)


class ShuffleBlock(nn.Module):
    """Stride 1: split the channels in half, transform one half, concat, shuffle. Stride 2: two branches."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, self.cout = stride, cout
        half = self.half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin, act=None), conv_bn(cin, half, 1))
        self.branch2 = nn.Sequential(
            conv_bn(cin if stride > 1 else half, half, 1),
            conv_bn(half, half, 3, stride, groups=half, act=None),
            conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.split([self.half, self.half], dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2, self.cout)


class _ShuffleNetV2(nn.Module):
    def __init__(self, channels: tuple[int, ...], classes: int) -> None:
        super().__init__()
        stem, *stages, last = channels
        layers: list[nn.Module] = [conv_bn(3, stem, 3, 2), nn.MaxPool2d(3, 2, 1)]
        c = stem
        for cout, n in zip(stages, _REPEATS):
            layers += [ShuffleBlock(c, cout, 2), *(ShuffleBlock(cout, cout, 1) for _ in range(n - 1))]
            c = cout
        layers.append(conv_bn(c, last, 1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


def shufflenet_v2(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """ShuffleNetV2 at one of the published widths 0.5, 1.0, 1.5, 2.0 (2,278,604 parameters at 1.0)."""
    if width not in WIDTHS:
        raise ValueError(f"Invalid width={width!r} for ShuffleNetV2: choose one of {', '.join(map(str, WIDTHS))}")
    return tag(_ShuffleNetV2(WIDTHS[width], classes), check_resolution(resolution))
