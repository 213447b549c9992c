"""Small networks of the scikit-learn digits demos (splitting, widths, transfer, DARC)."""

from __future__ import annotations

from collections.abc import Iterable

from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.zoo._base import _check_width, register_network

# ----------------------------------------------------------- digits demos
# A small MobileNetV1-style network for the scikit-learn digits demos (splitting,
# width optimisation and transfer): a 3x3 stride-1 stem, then depthwise-separable
# blocks (dwconv + pwconv), then average pooling and a classifier. Each stage is
# (pointwise width, blocks, first stride); the resolution halves three times.
MOBILENET_DIGITS_STEM = 16
MOBILENET_DIGITS_STAGES = ((16, 1, 1), (32, 2, 2), (64, 4, 2), (128, 2, 2))


@register_network("mobilenet-digits")
def mobilenet_digits(
    width_mult: float | Iterable[float] = 1.0,
    widths: Iterable[int] | None = None,
    depth: Iterable[int] | None = None,
    resolution: int = 32,
    classes: int = 10,
    network_name: str | None = None,
) -> Network:
    """Small MobileNetV1-style network for the digits demos, with per-layer widths.

    Its *width slots* are the stem's output and each block's pointwise output
    (a block's depthwise conv keeps its input's channels), so a network with
    ``depth`` blocks per stage has ``1 + sum(depth)`` widths.

    Parameters
    ----------
    width_mult : float or sequence of float
        One multiplier for every slot, or one per slot, applied to the base
        widths (stem 16, stages 16/32/64/128); channels are rounded, at least 1.
    widths : sequence of int, optional
        Explicit channel counts per slot (overrides ``width_mult``).
    depth : sequence of int, optional
        Blocks per stage (default 1, 2, 4, 2).
    resolution, classes : int
        Input height/width and number of classes.
    network_name : str, optional
        Network name (default: derived from the arguments).

    Examples
    --------
    >>> from hwlat.zoo import get_network
    >>> net = get_network("mobilenet-digits", width_mult=0.5, depth=(1, 1, 2, 1), resolution=16)
    >>> [op.kind for op in net.ops][:3], net.ops[-1].cin
    (['stem', 'dwconv', 'pwconv'], 64)
    """
    depth = tuple(depth) if depth is not None else tuple(n for _, n, _ in MOBILENET_DIGITS_STAGES)
    if len(depth) != len(MOBILENET_DIGITS_STAGES) or any(not isinstance(d, int) or d < 1 for d in depth):
        raise ValueError(f"Invalid depth={depth!r}: give {len(MOBILENET_DIGITS_STAGES)} ints >= 1 (blocks per stage)")
    base = [MOBILENET_DIGITS_STEM] + [c for (c, _, _), n in zip(MOBILENET_DIGITS_STAGES, depth) for _ in range(n)]
    strides = [s if i == 0 else 1 for (_, _, s), n in zip(MOBILENET_DIGITS_STAGES, depth) for i in range(n)]
    if widths is not None:
        chans = [int(c) for c in widths]
        if len(chans) != len(base) or min(chans) < 1:
            raise ValueError(
                f"Invalid widths: need {len(base)} channel counts >= 1 (stem + one per block), got {chans}"
            )
    else:
        mults = [width_mult] * len(base) if isinstance(width_mult, (int, float)) else list(width_mult)
        if len(mults) != len(base):
            raise ValueError(
                f"Invalid width_mult: need one multiplier or {len(base)} (stem + one per block), got {len(mults)}"
            )
        for m in mults:
            _check_width(m)
        chans = [max(1, round(b * m)) for b, m in zip(base, mults)]
    name = network_name
    if name is None:
        name = "mobilenet-digits"
        if widths is not None or not isinstance(width_mult, (int, float)):
            name += "-custom"
        elif width_mult != 1.0:
            name += f"-w{width_mult:g}"
        if depth != tuple(n for _, n, _ in MOBILENET_DIGITS_STAGES):
            name += "-d" + "".join(map(str, depth))
        if resolution != 32:
            name += f"-r{resolution}"
    op = OpSpec("stem", cin=3, cout=chans[0], h=resolution, w=resolution, kernel=3, stride=1)
    ops = [op]
    for cout, stride in zip(chans[1:], strides):
        h, w = op.out_hw
        dw = OpSpec("dwconv", cin=op.cout, h=h, w=w, kernel=3, stride=stride)
        h, w = dw.out_hw
        op = OpSpec("pwconv", cin=op.cout, cout=cout, h=h, w=w)
        ops += [dw, op]
    h, w = op.out_hw
    ops.append(OpSpec("head", cin=op.cout, mid=0, cout=classes, h=h, w=w))
    return Network(name, tuple(ops))


# A plain ResNet-style network for the DARC demo on digits: a 3x3 stem, then
# stages of 3x3 conv-BN-ReLU (width doubling, stride 2 at each stage's first
# conv), average pooling and a classifier. It has no shortcuts, so that every
# conv is one op DARC can replace by another (dsconv, pwconv, dsconv_pw).
RESNET_DIGITS_STEM = 16
RESNET_DIGITS_STAGES = ((16, 1, 1), (32, 2, 2), (64, 2, 2), (128, 2, 2))


@register_network("resnet-digits")
def resnet_digits(width_mult: float = 1.0, resolution: int = 32, classes: int = 10) -> Network:
    """Plain ResNet-style digits network: stem, 7 searchable 3x3 ``conv`` ops (16-128 wide), head.

    Examples
    --------
    >>> from hwlat.zoo import get_network
    >>> net = get_network("resnet-digits")
    >>> [op.kind for op in net.ops].count("conv"), net.ops[-1].cin
    (7, 128)
    """
    _check_width(width_mult)
    op = OpSpec(
        "stem",
        cin=3,
        cout=max(1, round(RESNET_DIGITS_STEM * width_mult)),
        h=resolution,
        w=resolution,
        kernel=3,
        stride=1,
        act="relu",
    )
    ops = [op]
    for cout, n, first_stride in RESNET_DIGITS_STAGES:
        for i in range(n):
            h, w = op.out_hw
            op = OpSpec(
                "conv",
                cin=op.cout,
                cout=max(1, round(cout * width_mult)),
                h=h,
                w=w,
                kernel=3,
                stride=first_stride if i == 0 else 1,
                act="relu",
            )
            ops.append(op)
    h, w = op.out_hw
    ops.append(OpSpec("head", cin=op.cout, mid=0, cout=classes, h=h, w=w))
    name = (
        "resnet-digits"
        + (f"-w{width_mult:g}" if width_mult != 1.0 else "")
        + (f"-r{resolution}" if resolution != 32 else "")
    )
    return Network(name, tuple(ops))
