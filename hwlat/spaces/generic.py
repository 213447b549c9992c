"""Generic op spaces: grids of one or a few op kinds (conv, dwconv, pwconv, ..., mixed)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

from hwlat.ops import OpSpec
from hwlat.spaces._base import Space, get_space, register_space

# Generic spaces keep ops below this many MACs so a CPU table stays quick to measure.
MAX_FLOPS = 50_000_000
RESOLUTIONS = (7, 14, 28, 56, 112)
CHANNELS = tuple(range(8, 513, 8))


def _grid_space(name: str, description: str, axes: dict[str, Sequence[Any]], **fixed: Any) -> Space:
    """Space drawing each field uniformly from ``axes`` (fields in ``fixed`` are constant).

    Configs that are invalid or above :data:`MAX_FLOPS` are rejected.
    """

    def make(values: dict[str, Any]) -> OpSpec | None:
        if "h" in values:
            values["w"] = values["h"]  # square inputs: one resolution axis
        try:
            op = OpSpec(**values, **fixed)
        except ValueError:
            return None
        return op if op.flops <= MAX_FLOPS else None

    def draw(rng: random.Random) -> OpSpec | None:
        return make({k: rng.choice(v) for k, v in axes.items()})

    def grid() -> Iterator[OpSpec | None]:
        for values in itertools.product(*axes.values()):
            yield make(dict(zip(axes, values, strict=True)))

    def bound() -> int:
        total = 1
        for values in axes.values():
            total *= len(values)
        return total

    return Space(name, tuple(axes["kind"]), description, draw, grid, bound)


def _conv_axes(
    kinds: Sequence[str],
    kernels: Sequence[int],
    channels: Sequence[int] = CHANNELS,
    resolutions: Sequence[int] = RESOLUTIONS,
) -> dict[str, Sequence[Any]]:
    return {"kind": kinds, "cin": channels, "cout": channels, "h": resolutions, "kernel": kernels, "stride": (1, 2)}


@register_space("conv")
def _conv() -> Space:
    axes = _conv_axes(("conv",), (1, 3, 5, 7))
    return _grid_space("conv", "conv-BN-ReLU6, k 1/3/5/7, s 1/2, 8-512 channels, 7-112 px", axes)


@register_space("dwconv")
def _dwconv() -> Space:
    axes = {"kind": ("dwconv",), "cin": CHANNELS, "h": RESOLUTIONS, "kernel": (3, 5, 7), "stride": (1, 2)}
    return _grid_space("dwconv", "depthwise conv-BN-ReLU6, k 3/5/7, s 1/2", axes)


@register_space("pwconv")
def _pwconv() -> Space:
    axes = {"kind": ("pwconv",), "cin": CHANNELS, "cout": CHANNELS, "h": RESOLUTIONS}
    return _grid_space("pwconv", "pointwise 1x1 conv-BN-ReLU6", axes)


@register_space("dsconv")
def _dsconv() -> Space:
    axes = _conv_axes(("dsconv",), (3, 5, 7))
    return _grid_space("dsconv", "DARC 3x3DS: grouped conv (groups gcd(cin, cout)), k 3/5/7", axes)


@register_space("dsconv_pw")
def _dsconv_pw() -> Space:
    axes = _conv_axes(("dsconv_pw",), (3, 5, 7))
    return _grid_space("dsconv_pw", "depthwise-separable (DARC 3x3DS+1x1, MobileNetV1 block), k 3/5/7", axes)


@register_space("resblock")
def _resblock() -> Space:
    axes = _conv_axes(("resblock",), (3,), resolutions=(7, 14, 28, 56))
    return _grid_space("resblock", "ResNet basic block 3x3, s 1/2, 7-56 px", axes, act="relu")


@register_space("linear")
def _linear() -> Space:
    widths = tuple(range(16, 2049, 16))
    axes = {"kind": ("linear",), "cin": widths, "cout": (*widths, 10, 100, 1000)}
    return _grid_space("linear", "fully connected, 16-2048 inputs, 16-2048 or 10/100/1000 outputs", axes)


@register_space("pool")
def _pool() -> Space:
    axes = {"kind": ("avgpool", "maxpool"), "cin": CHANNELS, "h": RESOLUTIONS, "kernel": (3, 5), "stride": (1, 2)}
    return _grid_space("pool", "average and max pooling, k 3/5, s 1/2", axes)


@register_space("darc")
def _darc() -> Space:
    kinds = ("conv", "dsconv", "pwconv", "dsconv_pw")
    axes = _conv_axes(kinds, (3,), channels=tuple(range(16, 257, 16)), resolutions=(8, 14, 16, 28, 32, 56))
    description = "DARC candidates (3x3, 3x3DS, 1x1, 3x3DS+1x1) at ResNet widths 16-256, 8-56 px"
    return _grid_space("darc", description, axes, act="relu")


def _capped(op: OpSpec | None) -> OpSpec | None:
    return op if op is not None and op.flops <= MAX_FLOPS else None


@register_space("mixed")
def _mixed() -> Space:
    parts = [get_space(n) for n in ("conv", "dwconv", "pwconv", "dsconv", "dsconv_pw", "resblock", "mbconv")]
    return Space(
        "mixed",
        tuple(k for p in parts for k in p.kinds),
        f"every conv-like kind, each equally likely, below {MAX_FLOPS // 10**6} MMACs",
        lambda rng: _capped(rng.choice(parts).draw(rng)),
        lambda: map(_capped, itertools.chain.from_iterable(p.grid() for p in parts)),
        lambda: sum(p.bound() for p in parts),
    )
