"""The network registry (``register_network`` / ``get_network``) and the builders the families share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.registry import Registry

Builder = Callable[..., Network]
Block = tuple[int, int, int, int] | None  # (kernel, expand, cout, stride), None = skipped (ZeroLayer)

NETWORKS: Registry[Builder] = Registry("network")


# ------------------------------------------------------------------ registry
def register_network(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering a builder ``(**kwargs) -> Network`` under ``name``.

    Registering a name again warns and replaces the old builder.
    """
    return NETWORKS.register(name)


def list_networks(pattern: str | list[str] | tuple[str, ...] = "*") -> list[str]:
    """Registered network names matching the wildcard ``pattern`` (or any of several), sorted."""
    return NETWORKS.names(pattern)


def get_network(name: str, **kwargs: Any) -> Network:
    """Build the registered network ``name`` (``resolution=``, ``classes=``, ...).

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message lists the valid names.
    """
    return NETWORKS.get(name)(**kwargs)


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
