"""Search spaces: samplers of op configurations, registered by name.

A :class:`Space` draws :class:`~hwlat.ops.OpSpec` configurations for a latency
table: ``get_space("mbconv").sample(500, seed=0)``. The ProxylessNAS backbone
is stored as data (:data:`PROXYLESS_BACKBONE`) so the MBConv spaces, random
networks and the search frontends agree on block positions.

Examples
--------
>>> ops = get_space("mbconv-backbone").sample(5, seed=1)
>>> len({op.key for op in ops})
5
>>> len(list(backbone_blocks()))
21
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

from hwlat.network import Network
from hwlat.ops import OpSpec, conv_out
from hwlat.zoo import mbconv_network

__all__ = [
    "Space",
    "Backbone",
    "BlockSlot",
    "PROXYLESS_BACKBONE",
    "MAX_FLOPS",
    "register_space",
    "get_space",
    "list_spaces",
    "backbone_blocks",
    "backbone_network",
    "random_network",
    "sample_networks",
]

# Generic spaces keep ops below this many MACs so a CPU table stays quick to measure.
MAX_FLOPS = 50_000_000
RESOLUTIONS = (7, 14, 28, 56, 112)
CHANNELS = tuple(range(8, 513, 8))
MBCONV_KERNELS = (3, 5, 7)
MBCONV_EXPANDS = (3, 6)

Choice = tuple[int, int] | None  # (kernel, expand) of a searchable block, None = zero (skipped)


# -------------------------------------------------------------------- space
@dataclass(frozen=True)
class Space:
    """A named set of op configurations and a way to draw from it.

    Parameters
    ----------
    name : str
        Registry name.
    kinds : tuple of str
        Op kinds the space produces.
    description : str
        One line for ``hwlat spaces``.
    draw : callable
        ``draw(rng) -> OpSpec | None``: one random config (None = rejected draw).
    grid : callable
        ``grid() -> iterable of OpSpec | None``: every config; used only when
        drawing does not find enough distinct ones (small spaces).
    bound : callable
        ``bound() -> int``: a cheap upper bound on the number of configs.
    """

    name: str
    kinds: tuple[str, ...]
    description: str
    draw: Callable[[random.Random], OpSpec | None] = field(repr=False, compare=False)
    grid: Callable[[], Iterable[OpSpec | None]] = field(repr=False, compare=False)
    bound: Callable[[], int] = field(repr=False, compare=False)

    def configs(self) -> list[OpSpec]:
        """Every distinct config of the space (can be slow for the large spaces)."""
        return list({op.key: op for op in self.grid() if op is not None}.values())

    def sample(self, n: int, seed: int = 0) -> list[OpSpec]:
        """``n`` distinct configs, the same ones for the same ``seed``.

        Raises
        ------
        ValueError
            If the space has fewer than ``n`` distinct configs (the message says how many).
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {n!r}")
        if n < 0:
            raise ValueError(f"Invalid n={n}: must be >= 0")
        if n > self.bound():
            self._too_few(n, len(self.configs()))
        rng = random.Random(seed)
        found: dict[str, OpSpec] = {}
        for _ in range(50 * n + 1000):
            if len(found) >= n:
                break
            op = self.draw(rng)
            if op is not None:
                found.setdefault(op.key, op)
        if len(found) < n:
            # Drawing keeps hitting known configs: the space is small, so list it.
            rest = [op for op in self.configs() if op.key not in found]
            if len(found) + len(rest) < n:
                self._too_few(n, len(found) + len(rest))
            found.update((op.key, op) for op in rng.sample(rest, n - len(found)))
        return list(found.values())

    def _too_few(self, n: int, count: int) -> NoReturn:
        raise ValueError(f"Space {self.name!r} has only {count} distinct configs; cannot sample {n}")


_SPACES: dict[str, Callable[[], Space]] = {}


def register_space(name: str) -> Callable[[Callable[[], Space]], Callable[[], Space]]:
    """Decorator registering a factory ``() -> Space`` under ``name``; re-registering warns."""

    def decorator(factory: Callable[[], Space]) -> Callable[[], Space]:
        if name in _SPACES and _SPACES[name] is not factory:
            warnings.warn(f"space {name!r} registered again; the new factory replaces the old one", stacklevel=2)
        _SPACES[name] = factory
        return factory

    return decorator


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching the ``fnmatch`` ``pattern``, sorted."""
    return sorted(n for n in _SPACES if fnmatch.fnmatch(n, pattern))


def get_space(name: str) -> Space:
    """The registered space ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        factory = _SPACES[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown space {name!r}; valid spaces: {', '.join(list_spaces())}") from None
    return factory()


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
__all__ += [
    "DIGITS_BACKBONE",
    "DARC_CANDIDATES",
    "block_candidates",
    "block_choices",
    "backbone_fixed_ops",
    "darc_candidates",
]

# A small ProxylessNAS backbone for the scikit-learn digits demos (8x8 images
# upsampled to 32x32): 9 searchable blocks, 6 of them skippable. On ONNX Runtime
# (1 CPU thread) its networks span about 0.03 ms (all skipped / 3x3 e3) to
# 0.11 ms (all 7x7 e6), a 3.4x range for latency targets.
DIGITS_BACKBONE = Backbone(
    resolution=32, stem=16, first=8, stages=((16, 3, 2), (24, 3, 2), (32, 3, 1)), mix=128, classes=10
)
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
