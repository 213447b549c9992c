"""Spaces and candidates of the scikit-learn digits demos (widths, MBConv blocks, DARC)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.spaces._base import Space, register_space
from hwlat.spaces.candidates import backbone_fixed_ops, block_candidates, darc_candidates
from hwlat.spaces.proxyless import Backbone, backbone_blocks

# ------------------------------------------------------------ digits widths
DIGITS_RESOLUTIONS = (16, 32)
DIGITS_WIDTH_RANGE = (-3.0, 2.0)  # log2 of the per-layer width multiplier: 1/8 to 4 times the base width
# ONNX Runtime's CPU depthwise conv is 3-7x faster when channels are a multiple of 4 (measured),
# a step no size feature can learn; the digits searches keep widths on this grid, and so does the space.
DIGITS_CHANNEL_MULTIPLE = 4
_DIGITS_KINDS = ("stem", "dwconv", "pwconv", "head")


@register_space("digits-widths")
def _digits_widths() -> Space:
    """Every layer shape of ``mobilenet-digits`` at per-layer widths 1/8x-4x, resolutions 16 and 32.

    The predictor behind the digits splitting and width searches: draws a
    network with independent log-uniform width multipliers per layer (widths
    rounded to multiples of 4), then one of its ops (a kind first, so stems
    and heads are not rare).
    """
    from hwlat.zoo import get_network

    base = [op.cout for op in get_network("mobilenet-digits").ops if op.kind in ("stem", "pwconv")]
    q = DIGITS_CHANNEL_MULTIPLE

    def network(rng: random.Random) -> Network:
        res = rng.choice(DIGITS_RESOLUTIONS)
        widths = [max(q, round(b * 2 ** rng.uniform(*DIGITS_WIDTH_RANGE) / q) * q) for b in base]
        return get_network("mobilenet-digits", widths=widths, resolution=res)

    def draw(rng: random.Random) -> OpSpec:
        net = network(rng)
        kind = rng.choices(_DIGITS_KINDS, weights=(0.15, 0.35, 0.35, 0.15))[0]
        return rng.choice([op for op in net.ops if op.kind == kind])

    def grid() -> Iterator[OpSpec]:
        mults = [2.0**e for e in range(int(DIGITS_WIDTH_RANGE[0]), int(DIGITS_WIDTH_RANGE[1]) + 1)]
        for res in DIGITS_RESOLUTIONS:
            for op in get_network("mobilenet-digits", resolution=res).ops:
                for a, b in itertools.product(mults, mults):
                    cin, cout = max(q, round(op.cin * a / q) * q), max(q, round(op.cout * b / q) * q)
                    yield op.replace(cin=cin if op.kind != "stem" else 3, cout=cout)

    return Space(
        "digits-widths",
        _DIGITS_KINDS,
        "mobilenet-digits layers (stem, dwconv, pwconv, head), widths 1/8x-4x in multiples of 4, 16/32 px",
        draw,
        grid,
        lambda: 10**6,
    )


# ------------------------------------------------------------ digits searches

# A small ProxylessNAS backbone for the scikit-learn digits demos (8x8 images
# upsampled to 32x32): 9 searchable blocks, 6 of them skippable. On ONNX Runtime
# (1 CPU thread) its networks span about 0.03 ms (all skipped / 3x3 e3) to
# 0.11 ms (all 7x7 e6), a 3.4x range for latency targets.
DIGITS_BACKBONE = Backbone(
    resolution=32, stem=16, first=8, stages=((16, 3, 2), (24, 3, 2), (32, 3, 1)), mix=128, classes=10
)


def _listed_space(name: str, description: str, ops: Sequence[OpSpec]) -> Space:
    unique = list({op.key: op for op in ops}.values())
    kinds = tuple(dict.fromkeys(op.kind for op in unique))
    return Space(name, kinds, description, lambda rng: rng.choice(unique), lambda: unique, lambda: len(unique))


@register_space("digits-mbconv")
def _digits_mbconv() -> Space:
    """Every op of :data:`DIGITS_BACKBONE` (39): stem, first block, head and all MBConv candidates.

    Measure all of them (``--n 39``) and fit a predictor for the digits ProxylessNAS search.
    """
    ops = list(backbone_fixed_ops(DIGITS_BACKBONE))
    for slot in backbone_blocks(DIGITS_BACKBONE):
        ops += [op for op in block_candidates(slot) if op is not None]
    return _listed_space("digits-mbconv", "every op of the digits ProxylessNAS backbone (32 px, 9 blocks)", ops)


@register_space("digits-darc")
def _digits_darc() -> Space:
    """Every op of ``resnet-digits`` and of its DARC candidates (stem, head, 4 candidates per conv)."""
    from hwlat.zoo import get_network

    ops = []
    for op in get_network("resnet-digits").ops:
        ops += darc_candidates(op) if op.kind == "conv" else [op]
    return _listed_space("digits-darc", "resnet-digits ops and their DARC candidates (3x3DS, 1x1FC, 3x3DS+1x1FC)", ops)
