"""The network zoo: named builders of whole :class:`~hwlat.network.Network` objects.

Builders are registered with :func:`register_network` and called through
:func:`get_network`. The published ProxylessNAS networks are stored here as
plain tuples transcribed from their released JSON configs (nothing is read from
disk at run time); :func:`from_proxyless_config` loads such a config itself.

Examples
--------
>>> net = get_network("proxyless-mobile", resolution=64)
>>> net.input_shape
(1, 3, 64, 64)
>>> "resnet18" in list_networks("res*")
True
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from hwlat.network import Network
from hwlat.ops import OpSpec

__all__ = [
    "register_network",
    "get_network",
    "list_networks",
    "make_divisible",
    "proxyless_blocks",
    "mbconv_network",
    "from_proxyless_config",
]

Builder = Callable[..., Network]
Block = tuple[int, int, int, int] | None  # (kernel, expand, cout, stride), None = skipped (ZeroLayer)

_NETWORKS: dict[str, Builder] = {}


# ------------------------------------------------------------------ registry
def register_network(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering a builder ``(**kwargs) -> Network`` under ``name``.

    Registering a name again warns and replaces the old builder.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Invalid network name {name!r}: must be a non-empty string")

    def decorator(builder: Builder) -> Builder:
        if name in _NETWORKS and _NETWORKS[name] is not builder:
            warnings.warn(f"network {name!r} registered again; the new builder replaces the old one", stacklevel=2)
        _NETWORKS[name] = builder
        return builder

    return decorator


def list_networks(pattern: str = "*") -> list[str]:
    """Registered network names matching the ``fnmatch`` ``pattern``, sorted."""
    return sorted(n for n in _NETWORKS if fnmatch.fnmatch(n, pattern))


def get_network(name: str, **kwargs: Any) -> Network:
    """Build the registered network ``name`` (``resolution=``, ``classes=``, ...).

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    try:
        builder = _NETWORKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown network {name!r}; valid networks: {', '.join(list_networks())}") from None
    return builder(**kwargs)


# ------------------------------------------------------------------ helpers
def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` the way torchvision's MobileNets do.

    Never goes below ``divisor`` nor more than 10 % below ``value``.
    """
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _check_width(width_mult: float) -> None:
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"Invalid width_mult={width_mult!r}: must be a positive number")


def _variant(base: str, resolution: int, width_mult: float = 1.0) -> str:
    """Name that records non-default width and resolution, e.g. ``mobilenetv2-w1.4-r160``."""
    name = base if width_mult == 1.0 else f"{base}-w{width_mult:g}"
    return name if resolution == 224 else f"{name}-r{resolution}"


def mbconv_network(
    name: str,
    blocks: Iterable[Block],
    *,
    stem: int = 32,
    mix: int = 1280,
    resolution: int = 224,
    classes: int = 1000,
) -> Network:
    """ProxylessNAS-style network: 3x3 s2 stem, MBConv blocks, feature-mix head.

    Parameters
    ----------
    name : str
        Network name.
    blocks : iterable of (kernel, expand, cout, stride) or None
        One entry per block; ``None`` is a skipped block (a ProxylessNAS
        ``ZeroLayer`` with its identity shortcut), which keeps shape and is
        left out of the op list.
    stem, mix : int
        Stem output width and feature-mix width (0 = no feature-mix layer).
    resolution, classes : int
        Input height/width and number of classes.
    """
    op = OpSpec("stem", cin=3, cout=stem, h=resolution, w=resolution, kernel=3, stride=2)
    ops = [op]
    for block in blocks:
        if block is None:
            continue
        kernel, expand, cout, stride = block
        h, w = op.out_hw
        op = OpSpec("mbconv", cin=op.cout, cout=cout, h=h, w=w, kernel=kernel, stride=stride, expand=expand)
        ops.append(op)
    h, w = op.out_hw
    ops.append(OpSpec("head", cin=op.cout, mid=mix, cout=classes, h=h, w=w))
    return Network(name, tuple(ops))


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


# ------------------------------------------------------------ ProxylessNAS
# Published ProxylessNAS networks (Cai et al. 2019), transcribed from the released
# configs (han-cai/files, proxylessnas/proxyless_*.config): stem width, feature-mix
# width and one (kernel, expand, cout, stride) per block, None for a ZeroLayer block.
_PROXYLESS: dict[str, tuple[int, int, tuple[Block, ...]]] = {
    "proxyless-gpu": (
        40,
        1728,
        (
            (3, 1, 24, 1),
            (5, 3, 32, 2),
            None,
            None,
            None,
            (7, 3, 56, 2),
            None,
            None,
            (3, 3, 56, 1),
            (7, 6, 112, 2),
            None,
            None,
            (5, 3, 112, 1),
            (5, 6, 128, 1),
            None,
            (3, 3, 128, 1),
            (5, 3, 128, 1),
            (7, 6, 256, 2),
            (7, 6, 256, 1),
            (7, 6, 256, 1),
            (5, 6, 256, 1),
            (7, 6, 432, 1),
        ),
    ),
    "proxyless-cpu": (
        40,
        1432,
        (
            (3, 1, 24, 1),
            (3, 6, 32, 2),
            (3, 3, 32, 1),
            (3, 3, 32, 1),
            (3, 3, 32, 1),
            (3, 6, 48, 2),
            (3, 3, 48, 1),
            (3, 3, 48, 1),
            (5, 3, 48, 1),
            (3, 6, 88, 2),
            None,
            None,
            (3, 3, 88, 1),
            (5, 6, 104, 1),
            (3, 3, 104, 1),
            (3, 3, 104, 1),
            (3, 3, 104, 1),
            (5, 6, 216, 2),
            (5, 3, 216, 1),
            (5, 3, 216, 1),
            (3, 3, 216, 1),
            (5, 6, 360, 1),
        ),
    ),
    "proxyless-mobile": (
        32,
        1280,
        (
            (3, 1, 16, 1),
            (5, 3, 32, 2),
            (3, 3, 32, 1),
            None,
            None,
            (7, 3, 40, 2),
            (3, 3, 40, 1),
            (5, 3, 40, 1),
            (5, 3, 40, 1),
            (7, 6, 80, 2),
            (5, 3, 80, 1),
            (5, 3, 80, 1),
            (5, 3, 80, 1),
            (5, 6, 96, 1),
            (5, 3, 96, 1),
            (5, 3, 96, 1),
            (5, 3, 96, 1),
            (7, 6, 192, 2),
            (7, 6, 192, 1),
            (7, 3, 192, 1),
            (7, 3, 192, 1),
            (7, 6, 320, 1),
        ),
    ),
    "proxyless-mobile-14": (
        48,
        1792,
        (
            (3, 1, 24, 1),
            (5, 3, 40, 2),
            (3, 3, 40, 1),
            None,
            None,
            (7, 3, 56, 2),
            (3, 3, 56, 1),
            (5, 3, 56, 1),
            (5, 3, 56, 1),
            (7, 6, 112, 2),
            (5, 3, 112, 1),
            (5, 3, 112, 1),
            (5, 3, 112, 1),
            (5, 6, 136, 1),
            (5, 3, 136, 1),
            (5, 3, 136, 1),
            (5, 3, 136, 1),
            (7, 6, 256, 2),
            (7, 6, 256, 1),
            (7, 3, 256, 1),
            (7, 3, 256, 1),
            (7, 6, 448, 1),
        ),
    ),
}


def proxyless_blocks(name: str) -> tuple[Block, ...]:
    """Per-block choices of a published ProxylessNAS network (see ``_PROXYLESS``)."""
    try:
        return _PROXYLESS[name][2]
    except KeyError:
        raise ValueError(f"Unknown ProxylessNAS network {name!r}; valid: {', '.join(_PROXYLESS)}") from None


def _register_proxyless(name: str) -> None:
    stem, mix, blocks = _PROXYLESS[name]

    @register_network(name)
    def build(resolution: int = 224, classes: int = 1000) -> Network:
        return mbconv_network(
            _variant(name, resolution), blocks, stem=stem, mix=mix, resolution=resolution, classes=classes
        )

    build.__doc__ = f"Published {name} network (ProxylessNAS, Cai et al. 2019)."


for _name in _PROXYLESS:
    _register_proxyless(_name)
del _name


# ------------------------------------------------------- ProxylessNAS JSON
_ACT_NAMES = {None: "none", "relu": "relu", "relu6": "relu6", "h_swish": "hswish", "hswish": "hswish"}


def _field(layer: Any, key: str, where: str) -> Any:
    if not isinstance(layer, dict):
        raise ValueError(f"ProxylessNAS config: {where} must be a JSON object, got {type(layer).__name__}")
    if key not in layer:
        raise ValueError(f"ProxylessNAS config: {where} lacks {key!r}")
    return layer[key]


def _layer(layer: Any, expected: str, where: str) -> dict[str, Any]:
    name = _field(layer, "name", where)
    if name != expected:
        raise ValueError(f"ProxylessNAS config: {where} is a {name!r}, expected {expected!r}")
    return layer


def _act(layer: dict[str, Any], where: str, default: str = "relu6") -> str:
    value = layer.get("act_func", default)
    if value not in _ACT_NAMES:
        raise ValueError(f"ProxylessNAS config: {where} act_func={value!r} unsupported; valid: {list(_ACT_NAMES)}")
    return _ACT_NAMES[value]


def _op(where: str, **fields: Any) -> OpSpec:
    try:
        return OpSpec(**fields)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"ProxylessNAS config: {where}: {exc}") from exc


def from_proxyless_config(data: dict[str, Any], name: str, resolution: int = 224) -> Network:
    """Network from a ProxylessNAS JSON config (``first_conv``, ``blocks``, ``feature_mix_layer``, ``classifier``).

    ``ZeroLayer`` blocks with an identity shortcut compute ``x`` and are left
    out of the op list. Every block's shortcut must agree with
    :attr:`OpSpec.has_skip` (identity shortcut exactly when stride 1 and
    ``cin == cout``).

    Raises
    ------
    ValueError
        Naming the missing or inconsistent part of the config.
    """
    if not isinstance(data, dict):
        raise ValueError(f"ProxylessNAS config must be a JSON object, got {type(data).__name__}")
    first = _layer(_field(data, "first_conv", "config"), "ConvLayer", "first_conv")
    if first.get("groups", 1) != 1:
        raise ValueError(f"ProxylessNAS config: first_conv groups={first['groups']} unsupported (must be 1)")
    op = _op(
        "first_conv",
        kind="stem",
        cin=_field(first, "in_channels", "first_conv"),
        cout=_field(first, "out_channels", "first_conv"),
        h=resolution,
        w=resolution,
        kernel=_field(first, "kernel_size", "first_conv"),
        stride=_field(first, "stride", "first_conv"),
        act=_act(first, "first_conv"),
    )
    ops = [op]
    blocks = _field(data, "blocks", "config")
    if not isinstance(blocks, list):
        raise ValueError("ProxylessNAS config: 'blocks' must be a list")
    for i, block in enumerate(blocks):
        where = f"block {i}"
        _layer(block, "MobileInvertedResidualBlock", where)
        conv = _field(block, "mobile_inverted_conv", where)
        shortcut = block.get("shortcut")
        if shortcut is not None:
            _layer(shortcut, "IdentityLayer", f"{where} shortcut")
        kind = _field(conv, "name", f"{where} mobile_inverted_conv")
        if kind == "ZeroLayer":
            # Zero + identity shortcut = the input itself: a skipped block.
            if shortcut is None or conv.get("stride", 1) != 1:
                raise ValueError(
                    f"ProxylessNAS config: {where} is a ZeroLayer without an identity shortcut "
                    "at stride 1; hwlat can only skip such blocks"
                )
            continue
        _layer(conv, "MBInvertedConvLayer", f"{where} mobile_inverted_conv")
        h, w = op.out_hw
        cin, expand = _field(conv, "in_channels", where), _field(conv, "expand_ratio", where)
        mid = conv.get("mid_channels")
        if mid is not None and isinstance(cin, int) and isinstance(expand, int) and mid != cin * expand:
            raise ValueError(f"ProxylessNAS config: {where} mid_channels={mid} is not in_channels*expand_ratio")
        op = _op(
            where,
            kind="mbconv",
            cin=cin,
            cout=_field(conv, "out_channels", where),
            h=h,
            w=w,
            kernel=_field(conv, "kernel_size", where),
            stride=_field(conv, "stride", where),
            expand=expand,
            act=_act(conv, where),
        )
        if op.cin != ops[-1].cout:
            raise ValueError(
                f"ProxylessNAS config: {where} in_channels={op.cin} but the previous layer "
                f"outputs {ops[-1].cout} channels"
            )
        if (shortcut is not None) != op.has_skip:
            raise ValueError(
                f"ProxylessNAS config: {where} has {'an identity' if shortcut is not None else 'no'} shortcut, "
                f"but hwlat's mbconv has one exactly when stride=1 and cin=cout (here stride={op.stride}, "
                f"cin={op.cin}, cout={op.cout})"
            )
        ops.append(op)
    mix_layer = data.get("feature_mix_layer")
    mid, act = 0, "relu6"
    if mix_layer is not None:
        _layer(mix_layer, "ConvLayer", "feature_mix_layer")
        if _field(mix_layer, "kernel_size", "feature_mix_layer") != 1 or mix_layer.get("stride", 1) != 1:
            raise ValueError("ProxylessNAS config: feature_mix_layer must be a 1x1 stride-1 convolution")
        if _field(mix_layer, "in_channels", "feature_mix_layer") != op.cout:
            raise ValueError(
                f"ProxylessNAS config: feature_mix_layer in_channels={mix_layer['in_channels']} "
                f"but the last block outputs {op.cout} channels"
            )
        mid, act = _field(mix_layer, "out_channels", "feature_mix_layer"), _act(mix_layer, "feature_mix_layer")
    classifier = _layer(_field(data, "classifier", "config"), "LinearLayer", "classifier")
    if _field(classifier, "in_features", "classifier") != (mid or op.cout):
        raise ValueError(
            f"ProxylessNAS config: classifier in_features={classifier['in_features']} "
            f"but the feature-mix layer outputs {mid or op.cout}"
        )
    h, w = op.out_hw
    ops.append(
        _op(
            "classifier",
            kind="head",
            cin=op.cout,
            mid=mid,
            h=h,
            w=w,
            act=act,
            cout=_field(classifier, "out_features", "classifier"),
        )
    )
    return Network(name, tuple(ops))


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
