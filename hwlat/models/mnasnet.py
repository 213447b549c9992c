"""MnasNet (Tan et al. 2019): the searched networks A1 (with squeeze-and-excitation) and B1 (without)."""

from __future__ import annotations

from torch import nn

from hwlat.models._layers import InvertedResidual, check_resolution, check_width, classifier, conv_bn, scaled, tag

__all__ = ["mnasnet_a1", "mnasnet_b1"]

# (repeats, kernel, first stride, expansion, cout, SE ratio): the paper's Figure 7 / the reference
# implementation's block strings ("r3_k5_s22_e3_i24_o40_se0.25", ...). The first block is a
# depthwise-separable conv without shortcut.
_A1 = (
    (1, 3, 1, 1, 16, 0.0),
    (2, 3, 2, 6, 24, 0.0),
    (3, 5, 2, 3, 40, 0.25),
    (4, 3, 2, 6, 80, 0.0),
    (2, 3, 1, 6, 112, 0.25),
    (3, 5, 2, 6, 160, 0.25),
    (1, 3, 1, 6, 320, 0.0),
)
# B1 as torchvision's mnasnet1_0 builds it (no SE; 3x3 separable first block).
_B1 = (
    (1, 3, 1, 1, 16, 0.0),
    (3, 3, 2, 3, 24, 0.0),
    (3, 5, 2, 3, 40, 0.0),
    (3, 5, 2, 6, 80, 0.0),
    (2, 3, 1, 6, 96, 0.0),
    (4, 5, 2, 6, 192, 0.0),
    (1, 3, 1, 6, 320, 0.0),
)


def _mnasnet(layout, width: float, resolution: int, classes: int) -> nn.Module:
    width, resolution = check_width(width), check_resolution(resolution)
    c = scaled(32, width)
    layers: list[nn.Module] = [conv_bn(3, c, 3, 2)]
    for i, (n, kernel, stride, t, cout, se) in enumerate(layout):
        co = scaled(cout, width)
        for j in range(n):
            # SE width from the block's input channels, as the reference implementation computes it.
            layers.append(
                InvertedResidual(
                    c,
                    c * t,
                    co,
                    kernel,
                    stride if j == 0 else 1,
                    act=nn.ReLU,
                    se=max(1, int(c * se)) if se else 0,
                    skip=i > 0,
                )
            )
            c = co
    layers.append(conv_bn(c, 1280, 1))
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(1280, classes)), resolution)


def mnasnet_a1(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """MnasNet-A1: SE in the 40-, 112- and 160-channel stages (3.9 M parameters, 312 M MACs)."""
    return _mnasnet(_A1, width, resolution, classes)


def mnasnet_b1(width: float = 1.0, resolution: int = 224, classes: int = 1000) -> nn.Module:
    """MnasNet-B1 as torchvision's ``mnasnet1_0`` (4,383,312 parameters); the last 1x1 layer stays 1280 wide."""
    return _mnasnet(_B1, width, resolution, classes)
