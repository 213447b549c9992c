"""Classic hand-designed networks: MobileNetV1, MobileNetV2, ResNet-18."""

from __future__ import annotations

from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.zoo._base import _check_width, _variant, make_divisible, mbconv_network, register_network


# --------------------------------------------------------- classic networks
@register_network("mobilenetv1")
def mobilenetv1(width_mult: float = 1.0, resolution: int = 224, classes: int = 1000) -> Network:
    """MobileNetV1: 3x3 s2 stem, 13 depthwise-separable blocks, average pool and classifier."""
    _check_width(width_mult)
    # (cout, stride) of the 13 depthwise-separable blocks (Howard et al. 2017, Table 1).
    layout = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))
    op = OpSpec(
        "stem", cin=3, cout=make_divisible(32 * width_mult), h=resolution, w=resolution, kernel=3, stride=2, act="relu"
    )
    ops = [op]
    for cout, stride in layout:
        h, w = op.out_hw
        op = OpSpec(
            "dsconv_pw",
            cin=op.cout,
            cout=make_divisible(cout * width_mult),
            h=h,
            w=w,
            kernel=3,
            stride=stride,
            act="relu",
        )
        ops.append(op)
    h, w = op.out_hw
    ops.append(OpSpec("head", cin=op.cout, mid=0, cout=classes, h=h, w=w))
    return Network(_variant("mobilenetv1", resolution, width_mult), tuple(ops))


@register_network("mobilenetv2")
def mobilenetv2(width_mult: float = 1.0, resolution: int = 224, classes: int = 1000) -> Network:
    """MobileNetV2 as in torchvision (3,504,872 parameters at width 1.0)."""
    _check_width(width_mult)
    # (expand t, cout c, repeats n, first stride s), Sandler et al. 2018, Table 2.
    settings = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    blocks = [(3, t, make_divisible(c * width_mult), s if i == 0 else 1) for t, c, n, s in settings for i in range(n)]
    return mbconv_network(
        _variant("mobilenetv2", resolution, width_mult),
        blocks,
        stem=make_divisible(32 * width_mult),
        mix=make_divisible(1280 * max(1.0, width_mult)),  # torchvision widens the last layer only
        resolution=resolution,
        classes=classes,
    )


@register_network("resnet18")
def resnet18(resolution: int = 224, classes: int = 1000) -> Network:
    """ResNet-18 as in torchvision (11,689,512 parameters)."""
    # kind "conv", not "stem": hwlat's stem is the 3x3 s2 MobileNet/ProxylessNAS one.
    op = OpSpec("conv", cin=3, cout=64, h=resolution, w=resolution, kernel=7, stride=2, act="relu")
    ops = [op]
    op = OpSpec("maxpool", cin=64, h=op.out_hw[0], w=op.out_hw[1], kernel=3, stride=2)
    ops.append(op)
    for stage, cout in enumerate((64, 128, 256, 512)):
        for i in range(2):
            stride = 2 if stage > 0 and i == 0 else 1
            h, w = op.out_hw
            op = OpSpec("resblock", cin=op.cout, cout=cout, h=h, w=w, kernel=3, stride=stride, act="relu")
            ops.append(op)
    h, w = op.out_hw
    ops.append(OpSpec("head", cin=op.cout, mid=0, cout=classes, h=h, w=w))
    return Network(_variant("resnet18", resolution), tuple(ops))
