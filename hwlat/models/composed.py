"""Random networks composed of the blocks real networks are made of: the calibration set for whole models.

A kernel table says what each kernel costs measured alone; what a runtime saves or adds when the
kernels run together in one model (a single call instead of one per kernel, layouts kept between
kernels, copies at layout boundaries) is fitted on whole networks measured on the device
(:mod:`hwlat.predict.composition`). Fitted on the ProxylessNAS backbone alone, those terms only
know MBConv chains; these networks give the fit what real models have: the zoo's block types
(inverted residuals with and without squeeze-and-excitation and with every activation, basic and
bottleneck residual blocks, grouped and RegNet blocks, ShuffleNet units with split, concat and
shuffle, fire modules, dense blocks, inception branches, and vision transformers), with random
widths, depths, kernels, strides and input sizes. No network here is a zoo model: the zoo stays a
test set.

``random_network(seed)`` builds one (its description: :func:`describe_network`); ``seed`` decides
everything, so the same seed gives the same network on every machine. :func:`sample_networks`
gives ``n`` of them as :class:`~hwlat.models.ModelSpec` (family ``composed``), which
``hwlat measure --model composed:N[:SEED]`` measures.
"""

from __future__ import annotations

import functools
import math
import random
from typing import Any

from hwlat.models._registry import FACTORIES, ModelSpec

__all__ = ["BLOCKS", "describe_network", "network_spec", "plan_of", "random_network", "sample_networks"]

# Block types a CNN stage is drawn from (a vision transformer is drawn as a whole network).
BLOCKS = ("mbconv", "basic", "bottleneck", "regnet", "shuffle", "fire", "dense", "inception")
RESOLUTIONS = (128, 160, 192, 224, 256)
MAX_WIDTH = 1024  # a stage's width at most (a bottleneck's output 4x that): the widths of real networks
MAX_MACS = 2_500_000_000  # a 224-px ResNet-50 is 4.1 GMACs; bigger networks add measuring time, not variety
_ACTS = ("relu", "relu6", "hswish", "silu")
_DRAW = ("mbconv", "mbconv", *BLOCKS)  # inverted residuals twice as likely: most efficient networks are made of them


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _round8(x: float, low: int = 8) -> int:
    return max(low, int(round(x / 8)) * 8)


def _stage(rng: random.Random, block: str, width: int) -> dict[str, Any]:
    """One stage: its block type, output width, depth and the block's own choices."""
    stage: dict[str, Any] = {"block": block, "width": width, "depth": rng.randint(1, 4)}
    if block == "mbconv":
        stage.update(
            expand=rng.choice((1, 3, 4, 6)),
            kernel=rng.choice((3, 3, 5, 7)),
            act=rng.choice(_ACTS),
            se=rng.choice((0, 0, 4, 4)),  # squeeze ratio (0: no SE)
            gate=rng.choice(("sigmoid", "hsigmoid")),
        )
    elif block == "bottleneck":
        stage.update(groups=rng.choice((1, 1, 8, 32)))
    elif block == "regnet":
        stage.update(group_width=rng.choice((8, 16, 24)), se=rng.choice((0, 0.25)))
    elif block == "dense":
        stage.update(growth=rng.choice((12, 16, 24, 32)), depth=rng.randint(2, 8))
    return stage


def _cnn(rng: random.Random, resolution: int) -> dict[str, Any]:
    mixed = rng.random() < 0.4  # else one block type throughout, as in real networks
    style = rng.choice(_DRAW)
    stem = _round8(_log_uniform(rng, 16, 64))
    n_stages = rng.randint(3, 5)
    width = _log_uniform(rng, 16, 96)
    stages = []
    for _ in range(n_stages):
        width *= _log_uniform(rng, 1.4, 2.4)
        stages.append(_stage(rng, rng.choice(_DRAW) if mixed else style, min(MAX_WIDTH, _round8(width, 16))))
    return {
        "type": "cnn",
        "resolution": resolution,
        "stem": {"width": stem, "kernel": rng.choice((3, 3, 7)), "act": rng.choice(_ACTS), "pool": rng.random() < 0.4},
        "stages": stages,
        "last": rng.choice((0, 0, 1024, 1280)),
    }


def _vit(rng: random.Random, resolution: int) -> dict[str, Any]:
    heads = rng.choice((1, 2, 3, 4, 6, 8))
    return {
        "type": "vit",
        "resolution": resolution,
        "dim": heads * rng.choice((32, 48, 64)),
        "heads": heads,
        "depth": rng.randint(2, 8),
        "mlp": rng.choice((2, 3, 4)),
    }


def describe_network(seed: int, resolution: int | None = None) -> dict[str, Any]:
    """The plan of network ``seed``: a CNN (stem, stages of blocks, head) or a vision transformer."""
    rng = random.Random(f"hwlat.composed:{seed}")
    r = rng.choice(RESOLUTIONS)  # drawn even when given, so the rest of the plan does not depend on it
    r = resolution or r
    return _vit(rng, r) if rng.random() < 0.1 else _cnn(rng, r)


def _act(name: str):
    from torch import nn

    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "silu": nn.SiLU}[name]


def _build_stage(stage: dict[str, Any], c: int, layers: list) -> int:
    """Append a stage's blocks (its first block strides by 2); returns the output channels."""
    from torch import nn

    from hwlat.models._layers import InvertedResidual
    from hwlat.models.densenet import DenseBlock, _bn_relu_conv
    from hwlat.models.googlenet import Inception
    from hwlat.models.regnet import RegNetBlock
    from hwlat.models.resnet import BasicBlock, Bottleneck
    from hwlat.models.shufflenet import ShuffleBlock
    from hwlat.models.squeezenet import Fire

    block, width, depth = stage["block"], stage["width"], stage["depth"]
    if block == "mbconv":
        act = _act(stage["act"])
        gate = nn.Sigmoid if stage["gate"] == "sigmoid" else nn.Hardsigmoid
        for i in range(depth):
            mid = _round8(c * stage["expand"]) if stage["expand"] > 1 else c
            se = max(8, _round8(mid / stage["se"])) if stage["se"] else 0
            layers.append(
                InvertedResidual(c, mid, width, stage["kernel"], 2 if i == 0 else 1, act=act, se=se, se_gate=gate)
            )
            c = width
    elif block in ("basic", "bottleneck"):
        for i in range(depth):
            if block == "basic":
                layers.append(BasicBlock(c, width, 2 if i == 0 else 1))
                c = width
            else:  # ResNet-50's (groups 1) or ResNeXt's (4 channels per group at 64 planes) bottleneck
                groups = stage["groups"]
                planes = max(16, _round8(width / 4))
                layers.append(Bottleneck(c, planes, 2 if i == 0 else 1, groups, 64 if groups == 1 else 4))
                c = planes * Bottleneck.expansion
    elif block == "regnet":
        g = stage["group_width"]
        width = max(g, width // g * g)
        for i in range(depth):
            layers.append(RegNetBlock(c, width, 2 if i == 0 else 1, g, stage["se"]))
            c = width
    elif block == "shuffle":
        width = max(16, width // 2 * 2)
        layers.append(ShuffleBlock(c, width, 2))
        layers += [ShuffleBlock(width, width, 1) for _ in range(depth - 1)]
        c = width
    elif block == "fire":
        layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        for _ in range(depth):
            squeeze = max(8, _round8(width / 8))
            layers.append(Fire(c, squeeze, width // 2, width - width // 2))
            c = width
    elif block == "dense":
        layers += [*_bn_relu_conv(c, max(16, _round8(c / 2)), 1), nn.AvgPool2d(2, 2)]
        c = max(16, _round8(c / 2))
        layers.append(DenseBlock(depth, c, stage["growth"]))
        c += depth * stage["growth"]
    elif block == "inception":
        layers.append(nn.MaxPool2d(3, 2, 1))
        for _ in range(depth):
            q = max(8, _round8(width / 8))
            c1, c3, c5, proj = 2 * q, 3 * q, q, width - 6 * q if width > 6 * q + 8 else q
            layers.append(Inception(c, c1, max(8, c3 // 2), c3, max(8, c5 // 2), c5, proj))
            c = c1 + c3 + c5 + proj
    else:
        raise ValueError(f"unknown block {block!r}; blocks: {', '.join(BLOCKS)}")
    return c


def _build(plan: dict[str, Any], classes: int):
    from torch import nn

    from hwlat.models._layers import classifier, conv_bn, tag

    if plan["type"] == "vit":
        from hwlat.models.vit import VisionTransformer

        model = VisionTransformer(plan["dim"], plan["depth"], plan["heads"], plan["resolution"], 16, classes)
        for block in model.blocks:
            hidden = plan["mlp"] * plan["dim"]
            block.mlp = nn.Sequential(nn.Linear(plan["dim"], hidden), nn.GELU(), nn.Linear(hidden, plan["dim"]))
        return tag(model, plan["resolution"])
    stem = plan["stem"]
    c = stem["width"]
    layers: list[nn.Module] = [conv_bn(3, c, stem["kernel"], 2, act=_act(stem["act"]))]
    if stem["pool"]:
        layers.append(nn.MaxPool2d(3, 2, 1))
    for stage in plan["stages"]:
        c = _build_stage(stage, c, layers)
    if plan["last"]:
        layers.append(conv_bn(c, plan["last"], 1, act=_act(plan["stem"]["act"])))
        c = plan["last"]
    return tag(nn.Sequential(nn.Sequential(*layers), classifier(c, classes)), plan["resolution"])


@functools.cache
def plan_of(seed: int) -> dict[str, Any]:
    """The plan network ``seed`` is built from: :func:`describe_network`, drawn again with derived seeds
    while the network has more than :data:`MAX_MACS` multiply-accumulates (imports torch)."""
    from hwlat.models._count import count_macs

    for attempt in range(50):
        plan = describe_network(seed if attempt == 0 else 1_000_003 * (attempt + 1) + seed)
        model = _build(plan, 1000)
        if count_macs(model, model.input_shape) <= MAX_MACS:
            return plan
    raise RuntimeError(f"no composed network under {MAX_MACS} MACs from seed {seed}")  # pragma: no cover


def random_network(seed: int = 0, resolution: int | None = None, classes: int = 1000):
    """Network ``seed`` as an eval-mode ``nn.Module`` (``model.input_shape`` set, ``model.plan`` its plan).

    ``resolution`` replaces the plan's input size (a transformer's position embedding follows it)."""
    plan = dict(plan_of(seed))
    if resolution is not None:
        plan["resolution"] = int(resolution)
    model = _build(plan, classes)
    model.plan = plan
    return model


def network_spec(seed: int, classes: int = 1000) -> ModelSpec:
    """Network ``seed`` as a ModelSpec named ``composed-SEED`` (built through ``hwlat.models.families``)."""
    plan = plan_of(seed)
    return ModelSpec(
        f"composed-{seed}", "composed", f"{FACTORIES}:random_network", (("seed", seed),), plan["resolution"], classes
    )


def sample_networks(n: int, seed: int = 0) -> list[ModelSpec]:
    """``n`` composed networks, seeds ``seed`` ... ``seed + n - 1``."""
    if n < 1:
        raise ValueError(f"Invalid number of composed networks {n}: must be >= 1")
    return [network_spec(s) for s in range(seed, seed + n)]
