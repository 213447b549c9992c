"""Search candidates: what a searchable block or a DARC conv layer may become."""

from __future__ import annotations

import itertools

from hwlat.ops import OpSpec, conv_out
from hwlat.spaces.proxyless import (
    MBCONV_EXPANDS,
    MBCONV_KERNELS,
    PROXYLESS_BACKBONE,
    Backbone,
    BlockSlot,
    Choice,
    _first_block,
    _mbconv,
    backbone_blocks,
)

__all__ = ["DARC_CANDIDATES", "block_candidates", "block_choices", "backbone_fixed_ops", "darc_candidates"]

# DARC's candidates for one conv layer (Sec. 5 of the paper), in this order.
DARC_CANDIDATES = ("original", "3x3DS", "1x1FC", "3x3DS+1x1FC")


def block_candidates(slot: BlockSlot) -> list[OpSpec | None]:
    """The candidates of one searchable block, in ProxylessNAS order.

    MBConv (kernel, expand) in (3,3), (3,6), (5,3), (5,6), (7,3), (7,6), then
    ``None`` (the zero op: the block is skipped) when ``slot.skippable``.
    """
    ops: list[OpSpec | None] = [_mbconv(slot, k, e) for k, e in itertools.product(MBCONV_KERNELS, MBCONV_EXPANDS)]
    return [*ops, None] if slot.skippable else ops


def block_choices(slot: BlockSlot) -> list[Choice]:
    """The :func:`backbone_network` choice of each of :func:`block_candidates`' entries."""
    return [None if op is None else (op.kernel, op.expand) for op in block_candidates(slot)]


def backbone_fixed_ops(backbone: Backbone = PROXYLESS_BACKBONE) -> tuple[OpSpec, OpSpec, OpSpec]:
    """The ops every network of ``backbone`` has: stem, fixed first block, head."""
    stem = OpSpec("stem", cin=3, cout=backbone.stem, h=backbone.resolution, w=backbone.resolution, kernel=3, stride=2)
    *_, last = backbone_blocks(backbone)
    size = conv_out(last.h, 3, last.stride)
    head = OpSpec("head", cin=last.cout, mid=backbone.mix, cout=backbone.classes, h=size, w=size)
    return stem, _first_block(backbone), head


def darc_candidates(op: OpSpec) -> list[OpSpec]:
    """DARC's replacements of a ``conv`` op, in :data:`DARC_CANDIDATES` order.

    The original, a 3x3 fully-grouped conv (``dsconv``), a 1x1 conv (``pwconv``,
    or a ``conv`` with kernel 1 where the stride is 2: ``pwconv`` has no stride)
    and 3x3 depthwise + 1x1 (``dsconv_pw``); all keep cin, cout, stride and act.
    """
    if op.kind != "conv":
        raise ValueError(f"DARC replaces 'conv' ops; got {op.kind!r} ({op.key})")
    shape = {"cin": op.cin, "cout": op.cout, "h": op.h, "w": op.w, "act": op.act}
    one = OpSpec("pwconv", **shape) if op.stride == 1 else OpSpec("conv", **shape, kernel=1, stride=op.stride)
    return [
        op,
        OpSpec("dsconv", **shape, kernel=3, stride=op.stride),
        one,
        OpSpec("dsconv_pw", **shape, kernel=3, stride=op.stride),
    ]
