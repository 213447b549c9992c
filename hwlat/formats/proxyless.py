"""Reader of ProxylessNAS JSON network configs (``proxyless_*.config`` of han-cai/files)."""

from __future__ import annotations

from typing import Any

from hwlat.network import Network
from hwlat.ops import OpSpec

__all__ = ["from_proxyless_config"]

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
