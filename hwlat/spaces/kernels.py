"""Kernel-vocabulary spaces: the kernels real CNNs and small transformers contain besides convolutions.

One space per kind (``se``, ``gconv``, ``conv-geometry`` (2x1 strides, dilation), ``add``, ``concat``,
``resize``, ``softmax``, ``layernorm``, ``attention``, ``linear-tokens``, ``conv_transpose``,
``channel_shuffle``, ``batchnorm``, ``scalar``, ``pad``, ``act``, ``slice``, ``transpose``, ``patch_embed``)
and ``kernels``, which draws from each of them equally often. The ranges cover what MobileNetV3,
EfficientNet, ShuffleNetV2, DenseNet-style concats, U-Net/FPN decoders, text recognisers and small vision
or text transformers contain at mobile resolutions; like the generic spaces they keep ops below
:data:`~hwlat.spaces.generic.MAX_FLOPS` MACs and images square (``slice`` and ``transpose`` below
:data:`MAX_ELEMENTS` elements; their h and w are what comes before and after the axes they move).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hwlat.ops import GATES, RESIZE_MODES, OpSpec
from hwlat.spaces._base import Space, get_space, register_space
from hwlat.spaces.generic import CHANNELS, MAX_FLOPS, RESOLUTIONS

__all__ = ["KERNEL_SPACES"]

WIDE = tuple(range(16, 1025, 16))  # channels of the late stages (SE widths, transformer dims)
TOKENS = (1, 4, 16, 40, 49, 64, 80, 128, 196, 256, 384, 512)
MAPS = (7, 14, 20, 28, 40, 56)  # feature maps a decoder up-samples or a concat joins
MAX_ELEMENTS = 1 << 20  # slices and transposes compute nothing: their size is what bounds them

Make = Callable[[dict[str, Any]], dict[str, Any] | None]


def _space(name: str, description: str, kinds: tuple[str, ...], axes: dict[str, Sequence[Any]], make: Make) -> Space:
    """A space drawing each axis uniformly; ``make`` turns the values into OpSpec fields (None rejects).

    Invalid configs and those above :data:`MAX_FLOPS` are rejected."""

    def op(values: dict[str, Any]) -> OpSpec | None:
        fields = make(dict(values))
        if fields is None:
            return None
        try:
            spec = OpSpec(**fields)
        except ValueError:
            return None
        return spec if spec.flops <= MAX_FLOPS else None

    def draw(rng: random.Random) -> OpSpec | None:
        return op({k: rng.choice(v) for k, v in axes.items()})

    def grid() -> Iterator[OpSpec | None]:
        for values in itertools.product(*axes.values()):
            yield op(dict(zip(axes, values, strict=True)))

    def bound() -> int:
        total = 1
        for values in axes.values():
            total *= len(values)
        return total

    return Space(name, kinds, description, draw, grid, bound)


def _square(v: dict[str, Any]) -> dict[str, Any]:
    v["w"] = v["h"]
    return v


@register_space("se")
def _se() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any] | None:
        reduction = v.pop("reduction")
        v["mid"] = max(8, v["cin"] // reduction)
        return _square({"kind": "se", **v})

    axes = {"cin": WIDE, "reduction": (4, 8, 16), "h": RESOLUTIONS, "act": ("relu", "silu", "hswish"), "gate": GATES}
    return _space("se", "squeeze-excite: pool, 1x1 to cin/4-16, act, 1x1 back, gate, x input", ("se",), axes, make)


@register_space("gconv")
def _gconv() -> Space:
    axes = {
        "cin": CHANNELS,
        "cout": CHANNELS,
        "h": RESOLUTIONS,
        "kernel": (1, 3, 5),
        "stride": (1, 2),
        "groups": (2, 4, 8, 16, 32),
        "act": ("relu", "none"),
    }
    return _space(
        "gconv",
        "grouped conv-BN-act (conv with groups 2-32), k 1/3/5, s 1/2",
        ("conv",),
        axes,
        lambda v: _square({"kind": "conv", **v}),
    )


@register_space("conv-geometry")
def _conv_geometry() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any] | None:
        stride, stride_w = v.pop("strides")
        if stride == stride_w and v["dilation"] == 1:  # plain: the conv and dwconv spaces have those
            return None
        if v["kind"] == "dwconv":
            v.pop("cout")
        return _square({**v, "stride": stride, "stride_w": stride_w})

    axes = {
        "kind": ("conv", "dwconv"),
        "cin": CHANNELS,
        "cout": CHANNELS,
        "h": RESOLUTIONS,
        "kernel": (3, 5),
        "strides": ((2, 1), (1, 2), (1, 1), (2, 2)),
        "dilation": (1, 2, 4),
        "act": ("relu", "hswish", "none"),
    }
    return _space(
        "conv-geometry",
        "conv-BN-act and depthwise with 2x1/1x2 strides (text recognisers) or dilation 2/4 (DeepLab)",
        ("conv", "dwconv"),
        axes,
        make,
    )


@register_space("add")
def _add() -> Space:
    axes = {"cin": CHANNELS, "h": RESOLUTIONS, "act": ("none", "relu")}
    return _space(
        "add",
        "element-wise add of two activations (residual), then none/relu",
        ("add",),
        axes,
        lambda v: _square({"kind": "add", **v}),
    )


@register_space("concat")
def _concat() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any]:
        other = v.pop("other")
        return _square({"kind": "concat", **v, "cout": v["cin"] + (v["inputs"] - 1) * other})

    axes = {"cin": CHANNELS, "other": CHANNELS, "inputs": (2, 3, 4), "h": MAPS}
    return _space("concat", "channel concat of 2-4 tensors, 8-512 channels each", ("concat",), axes, make)


@register_space("resize")
def _resize() -> Space:
    axes = {"cin": CHANNELS, "h": MAPS, "scale": (2, 4, 8), "mode": RESIZE_MODES}

    def make(v: dict[str, Any]) -> dict[str, Any] | None:
        if v["h"] * v["scale"] > 224:  # decoders up-sample to the input resolution, not beyond
            return None
        return _square({"kind": "resize", **v})

    return _space("resize", "nearest/bilinear up-sampling x2/x4/x8 up to 224 px", ("resize",), axes, make)


@register_space("softmax")
def _softmax() -> Space:
    axes = {"cin": (2, 10, 40, 49, 64, 100, 128, 196, 256, 512, 1000), "tokens": (1, *TOKENS[1:], 1024, 2048, 4096)}
    return _space(
        "softmax",
        "softmax over the last axis of (1, rows, cin): logits and attention scores",
        ("softmax",),
        axes,
        lambda v: {"kind": "softmax", **v},
    )


@register_space("layernorm")
def _layernorm() -> Space:
    axes = {"cin": WIDE, "tokens": TOKENS}
    return _space(
        "layernorm",
        "LayerNorm over cin of (1, tokens, cin)",
        ("layernorm",),
        axes,
        lambda v: {"kind": "layernorm", **v},
    )


@register_space("attention")
def _attention() -> Space:
    axes = {"cin": (8, 15, 16, 32, 48, 64), "heads": (1, 2, 3, 4, 6, 8, 12), "tokens": TOKENS[1:]}
    return _space(
        "attention",
        "softmax(q k^T / sqrt(d)) v, 1-12 heads of dim 8-64, 4-512 tokens",
        ("attention",),
        axes,
        lambda v: {"kind": "attention", **v},
    )


@register_space("linear-tokens")
def _linear_tokens() -> Space:
    axes = {"cin": WIDE, "cout": WIDE, "tokens": TOKENS[1:]}
    return _space(
        "linear-tokens",
        "a linear layer over 4-512 tokens (transformer projections and MLPs)",
        ("linear",),
        axes,
        lambda v: {"kind": "linear", **v},
    )


@register_space("conv_transpose")
def _conv_transpose() -> Space:
    axes = {"cin": CHANNELS, "cout": CHANNELS, "h": MAPS, "kernel": (2, 4), "stride": (2,), "act": ("relu", "none")}
    return _space(
        "conv_transpose",
        "transposed conv x2 up-sampling, k 2/4 (with bias), relu/none",
        ("conv_transpose",),
        axes,
        lambda v: _square({"kind": "conv_transpose", **v}),
    )


@register_space("channel_shuffle")
def _channel_shuffle() -> Space:
    axes = {"cin": CHANNELS, "h": RESOLUTIONS, "groups": (2, 3, 4, 8)}
    return _space(
        "channel_shuffle",
        "ShuffleNet channel shuffle, groups 2/3/4/8",
        ("channel_shuffle",),
        axes,
        lambda v: _square({"kind": "channel_shuffle", **v}),
    )


@register_space("batchnorm")
def _batchnorm() -> Space:
    axes = {"cin": CHANNELS, "h": RESOLUTIONS, "act": ("none", "relu")}
    return _space(
        "batchnorm",
        "BatchNorm no conv absorbs (pre-activation), then none/relu",
        ("batchnorm",),
        axes,
        lambda v: _square({"kind": "batchnorm", **v}),
    )


@register_space("scalar")
def _scalar() -> Space:
    axes = {"cin": CHANNELS, "h": (*RESOLUTIONS, 160), "act": ("none", "relu", "sigmoid")}
    return _space(
        "scalar",
        "one element-wise op with a constant scalar (learnable affine blocks, output biases), then an activation",
        ("scalar",),
        axes,
        lambda v: _square({"kind": "scalar", **v}),
    )


@register_space("pad")
def _pad() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any]:
        return _square({"kind": "pad", "cin": v["cin"], "cout": v["cin"] + v["extra"], "h": v["h"]})

    axes = {"cin": CHANNELS, "extra": (4, 6, 8, 16, 24, 32, 64), "h": (8, 16, 32, 64, 128)}
    return _space("pad", "zero-padding the channels by 4-64 (BlazeFace's widening shortcuts)", ("pad",), axes, make)


@register_space("act")
def _act() -> Space:
    axes = {"cin": CHANNELS, "h": RESOLUTIONS, "act": ("hswish", "hsigmoid", "sigmoid", "silu", "gelu", "tanh", "relu")}
    return _space(
        "act",
        "an activation run as an op of its own (LiteRT's HARD_SWISH, LOGISTIC, GELU; eager torch)",
        ("act",),
        axes,
        lambda v: _square({"kind": "act", **v}),
    )


@register_space("slice")
def _slice() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any] | None:
        n, cin, hw = v["outputs"], v["cin"], v["size"] ** 2
        if cin % max(2, n) or cin * hw > MAX_ELEMENTS:
            return None
        h, w = (1, hw) if v["layout"] == "first" else (hw, 1)
        return {"kind": "slice", "cin": cin, "cout": cin // max(2, n), "h": h, "w": w, "outputs": n}

    axes = {"cin": CHANNELS, "size": RESOLUTIONS, "layout": ("first", "last"), "outputs": (1, 2, 3)}
    return _space(
        "slice",
        "a channel slice (half the channels) or split into 2/3 parts, channels first or last (ShuffleNetV2, q/k/v)",
        ("slice",),
        axes,
        make,
    )


@register_space("transpose")
def _transpose() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any] | None:
        if v["heads"] * v["h"] * v["w"] * v["cin"] > MAX_ELEMENTS:
            return None
        return {"kind": "transpose", **v}

    axes = {"cin": (1, 16, 32, 64), "h": (4, 16, 49, 64, 196, 256, 784), "w": (2, 3, 8, 12, 64, 128, 256)}
    return _space(
        "transpose",
        "(heads, h, w, cin) -> (heads, w, h, cin): layout changes, attention's head split/merge and k^T",
        ("transpose",),
        {**axes, "heads": (1, 3, 12)},
        make,
    )


@register_space("patch_embed")
def _patch_embed() -> Space:
    def make(v: dict[str, Any]) -> dict[str, Any] | None:
        if v["h"] % v["kernel"]:
            return None
        return _square({"kind": "patch_embed", **v})

    axes = {
        "cin": (3, 32, 64, 96),
        "cout": (32, 64, 96, 128, 192, 256, 384),
        "h": (14, 28, 56, 112, 224),
        "kernel": (2, 4, 8, 16),
        "act": ("none", "gelu"),
    }
    return _space(
        "patch_embed", "patch embeddings: a conv of stride = kernel 2-16, no padding", ("patch_embed",), axes, make
    )


KERNEL_SPACES = (
    "se",
    "gconv",
    "conv-geometry",
    "add",
    "concat",
    "resize",
    "softmax",
    "layernorm",
    "attention",
    "linear-tokens",
    "conv_transpose",
    "channel_shuffle",
    "batchnorm",
    "scalar",
    "pad",
    "act",
    "slice",
    "transpose",
    "patch_embed",
)


@register_space("kernels")
def _kernels() -> Space:
    parts = [get_space(n) for n in KERNEL_SPACES]
    return Space(
        "kernels",
        tuple(dict.fromkeys(k for p in parts for k in p.kinds)),
        f"every kernel-vocabulary space ({', '.join(KERNEL_SPACES)}), each equally likely",
        lambda rng: rng.choice(parts).draw(rng),
        lambda: itertools.chain.from_iterable(p.grid() for p in parts),
        lambda: sum(p.bound() for p in parts),
    )
