"""The ProxylessNAS backbone as data, its random networks and the MBConv spaces on it."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from hwlat.network import Network
from hwlat.ops import OpSpec, conv_out
from hwlat.spaces._base import Space, register_space
from hwlat.zoo import mbconv_network

MBCONV_KERNELS = (3, 5, 7)
MBCONV_EXPANDS = (3, 6)

Choice = tuple[int, int] | None  # (kernel, expand) of a searchable block, None = zero (skipped)


# ----------------------------------------------------------------- backbone
class BlockSlot(NamedTuple):
    """One searchable block position of a backbone."""

    cin: int
    cout: int
    h: int
    w: int
    stride: int
    skippable: bool  # not the first block of its stage, so `zero` may replace it


@dataclass(frozen=True)
class Backbone:
    """A ProxylessNAS-style backbone as data.

    Parameters
    ----------
    resolution : int
        Input height and width.
    stem : int
        Width of the 3x3 stride-2 stem.
    first : int
        Output width of the fixed first block (MBConv expand 1, kernel 3, stride 1).
    stages : tuple of (cout, n_blocks, first_stride)
        The searchable stages.
    mix, classes : int
        Feature-mix width and number of classes of the head.
    """

    resolution: int = 224
    stem: int = 32
    first: int = 16
    stages: tuple[tuple[int, int, int], ...] = (
        (24, 4, 2),
        (40, 4, 2),
        (80, 4, 2),
        (96, 4, 1),
        (192, 4, 2),
        (320, 1, 1),
    )
    mix: int = 1280
    classes: int = 1000

    def replace(self, **changes: Any) -> Backbone:
        return dataclasses.replace(self, **changes)


PROXYLESS_BACKBONE = Backbone()


def backbone_blocks(backbone: Backbone = PROXYLESS_BACKBONE) -> Iterator[BlockSlot]:
    """Yield each searchable block position as (cin, cout, h, w, stride, skippable)."""
    size = conv_out(backbone.resolution, 3, 2)  # after the stem; the first block keeps it
    cin = backbone.first
    for cout, n_blocks, first_stride in backbone.stages:
        for i in range(n_blocks):
            stride = first_stride if i == 0 else 1
            yield BlockSlot(cin, cout, size, size, stride, i > 0)
            cin, size = cout, conv_out(size, 3, stride)


def _first_block(backbone: Backbone) -> OpSpec:
    size = conv_out(backbone.resolution, 3, 2)
    return OpSpec("mbconv", cin=backbone.stem, cout=backbone.first, h=size, w=size, kernel=3, expand=1)


def backbone_network(
    choices: Sequence[Choice], name: str = "proxyless-backbone", backbone: Backbone = PROXYLESS_BACKBONE
) -> Network:
    """Network of ``backbone`` with one choice per searchable block.

    Parameters
    ----------
    choices : sequence of (kernel, expand) or None
        One entry per :func:`backbone_blocks` position; None (the ``zero``
        choice) skips the block and is allowed only where ``skippable``.
    name : str
        Network name.
    backbone : Backbone
        Widths, stages and resolution.
    """
    slots = list(backbone_blocks(backbone))
    if len(choices) != len(slots):
        raise ValueError(f"Expected {len(slots)} block choices (one per searchable block), got {len(choices)}")
    blocks: list[tuple[int, int, int, int] | None] = [(3, 1, backbone.first, 1)]
    for i, (choice, slot) in enumerate(zip(choices, slots, strict=True)):
        if choice is None:
            if not slot.skippable:
                raise ValueError(f"Block {i} is the first of its stage and cannot be zero (skipped)")
            blocks.append(None)
            continue
        kernel, expand = choice
        if kernel not in MBCONV_KERNELS or expand not in MBCONV_EXPANDS:
            raise ValueError(
                f"Invalid choice {choice!r} for block {i}: kernel must be in {list(MBCONV_KERNELS)} "
                f"and expand in {list(MBCONV_EXPANDS)}"
            )
        blocks.append((kernel, expand, slot.cout, slot.stride))
    return mbconv_network(
        name, blocks, stem=backbone.stem, mix=backbone.mix, resolution=backbone.resolution, classes=backbone.classes
    )


def _random_choices(rng: random.Random, backbone: Backbone) -> list[Choice]:
    options: list[Choice] = list(itertools.product(MBCONV_KERNELS, MBCONV_EXPANDS))
    # `zero` is the 7th candidate of skippable blocks, as in ProxylessNAS.
    return [rng.choice([*options, None] if slot.skippable else options) for slot in backbone_blocks(backbone)]


def random_network(seed: int, name: str | None = None, backbone: Backbone = PROXYLESS_BACKBONE) -> Network:
    """A random network of ``backbone``: each block uniform over the 6 MBConvs (+ zero where skippable)."""
    rng = random.Random(seed)
    return backbone_network(_random_choices(rng, backbone), name or f"random-{seed}", backbone)


def sample_networks(n: int, seed: int = 0, backbone: Backbone = PROXYLESS_BACKBONE) -> list[Network]:
    """``n`` distinct random backbone networks named ``random-{seed}-{i}``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"Invalid n={n!r}: must be an int >= 0")
    rng = random.Random(seed)
    seen: set[tuple[Choice, ...]] = set()
    networks = []
    while len(networks) < n:  # ~10^16 distinct networks: duplicates are rare, so this ends
        choices = tuple(_random_choices(rng, backbone))
        if choices not in seen:
            seen.add(choices)
            networks.append(backbone_network(choices, f"random-{seed}-{len(networks)}", backbone))
    return networks


# --------------------------------------------------------------- mbconv spaces
def _mbconv_positions(backbone: Backbone) -> list[tuple[BlockSlot, tuple[int, ...]]]:
    """Distinct block shapes of ``backbone`` with their expand choices (first block: expand 1)."""
    first = _first_block(backbone)
    positions = {(first.cin, first.cout, first.h, first.w, 1): (1,)}
    for slot in backbone_blocks(backbone):
        positions.setdefault((slot.cin, slot.cout, slot.h, slot.w, slot.stride), MBCONV_EXPANDS)
    return [(BlockSlot(*shape, skippable=False), expands) for shape, expands in positions.items()]


def _mbconv(slot: BlockSlot, kernel: int, expand: int, cin: int | None = None, cout: int | None = None) -> OpSpec:
    return OpSpec(
        "mbconv",
        cin=cin or slot.cin,
        cout=cout or slot.cout,
        h=slot.h,
        w=slot.w,
        kernel=kernel,
        stride=slot.stride,
        expand=expand,
    )


def _scaled(channels: int, factor: float) -> int:
    return max(8, round(channels * factor / 8) * 8)


def _scaled_range(channels: int) -> range:
    """Every width :func:`_scaled` can give for factors in [0.5, 1.5]."""
    return range(_scaled(channels, 0.5), _scaled(channels, 1.5) + 1, 8)


@register_space("mbconv")
def _mbconv_space(backbone: Backbone = PROXYLESS_BACKBONE) -> Space:
    positions = _mbconv_positions(backbone)

    def draw(rng: random.Random) -> OpSpec:
        slot, expands = rng.choice(positions)
        kernel, expand = rng.choice(MBCONV_KERNELS), rng.choice(expands)
        if rng.random() >= 0.5:
            return _mbconv(slot, kernel, expand)
        # Widths off the backbone grid, so predictors learn channels as a variable.
        cin = _scaled(slot.cin, rng.uniform(0.5, 1.5))
        keep_skip = slot.cin == slot.cout and slot.stride == 1
        cout = cin if keep_skip else _scaled(slot.cout, rng.uniform(0.5, 1.5))
        return _mbconv(slot, kernel, expand, cin, cout)

    def grid() -> Iterator[OpSpec]:
        for slot, expands in positions:
            for kernel, expand, cin in itertools.product(MBCONV_KERNELS, expands, _scaled_range(slot.cin)):
                keep_skip = slot.cin == slot.cout and slot.stride == 1
                for cout in (cin,) if keep_skip else _scaled_range(slot.cout):
                    yield _mbconv(slot, kernel, expand, cin, cout)
            for kernel, expand in itertools.product(MBCONV_KERNELS, expands):
                yield _mbconv(slot, kernel, expand)  # backbone widths need not be multiples of 8

    return Space(
        "mbconv",
        ("mbconv",),
        "ProxylessNAS MBConv (k 3/5/7, e 3/6) at every backbone block, half with widths x U(0.5, 1.5)",
        draw,
        grid,
        lambda: sum(1 for _ in grid()),
    )


@register_space("mbconv-backbone")
def _mbconv_backbone(backbone: Backbone = PROXYLESS_BACKBONE) -> Space:
    stem = OpSpec("stem", cin=3, cout=backbone.stem, h=backbone.resolution, w=backbone.resolution, kernel=3, stride=2)
    *_, last = backbone_blocks(backbone)
    size = conv_out(last.h, 3, last.stride)
    head = OpSpec("head", cin=last.cout, mid=backbone.mix, cout=backbone.classes, h=size, w=size)
    grid = [stem, head]
    for slot, expands in _mbconv_positions(backbone):
        grid += [_mbconv(slot, k, e) for k, e in itertools.product(MBCONV_KERNELS, expands)]
    return Space(
        "mbconv-backbone",
        ("stem", "mbconv", "head"),
        "exactly the stem, MBConv and head configs of a ProxylessNAS lookup table",
        lambda rng: rng.choice(grid),
        lambda: grid,
        lambda: len(grid),
    )
