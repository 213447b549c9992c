"""``model-kernels``: the kernels of real CNNs and small vision transformers, sampled over their ranges.

The spaces of :mod:`hwlat.spaces.generic` and :mod:`hwlat.spaces.kernels` are grids at five
resolutions below 50 MMACs, quick to measure; a predictor for models a user brings needs the
ranges those models have: inputs of 128-256 px (every size in between after strides), stems
with 3 input channels, channel counts that are not powers of two, classifier heads to 1000
classes, convolutions of ResNet-50 size (up to 300 MMACs). One space per op kind
(:func:`kind_spaces`), each drawing channels log-uniformly (real networks have as many layers
at 16-64 channels as at 256-1024) and sizes from the feature maps strided real inputs have;
``model-kernels`` mixes them, each kind equally likely. None of it is taken from a particular
model: the benchmark of predicting real models (``benchmarks/model_accuracy.py``) samples these
spaces, not the models' own kernels.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from hwlat.ops import OpSpec
from hwlat.spaces._base import Space, register_space

__all__ = ["MODEL_KERNEL_FLOPS", "MODEL_KINDS", "kind_spaces", "sample_per_kind"]

MODEL_KERNEL_FLOPS = 300_000_000
# Real networks trade channels for resolution: no activation of theirs exceeds ~1.6M elements
# (EfficientNet-B0's 96 x 128 x 128 at 256 px), so drawn configs above 2M are rejected.
MODEL_KERNEL_ELEMENTS = 2_000_000
# Feature maps of 128-256 px inputs after strides 1-32, and ViT token grids.
SIZES = (2, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256)
TOKENS = (17, 50, 65, 101, 145, 197, 257)  # (r/16)^2 + 1 for r = 64 ... 256
CONV_ACTS = ("relu", "relu6", "hswish", "silu", "none")

Draw = Callable[[random.Random], dict[str, Any] | None]


def _channels(rng: random.Random, low: int = 8, high: int = 1024, step: int = 8) -> int:
    """Log-uniform in [low, high], snapped to a multiple of ``step``."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return max(low, min(high, int(round(value / step)) * step))


def _size(rng: random.Random, low: int = 2, high: int = 256) -> int:
    return rng.choice([s for s in SIZES if low <= s <= high])


def _conv(rng: random.Random) -> dict[str, Any]:
    kernel = rng.choice((1, 3, 3, 3, 5, 7))
    stem = rng.random() < 0.15
    cin = 3 if stem else _channels(rng, 8, 1024)
    groups = 1
    cout = _channels(rng, 8, 64) if stem else _channels(rng, 8, 1024)
    if not stem and rng.random() < 0.3:
        if rng.random() < 0.5:  # a group count (ResNeXt's 32, ShuffleNetV1)
            groups = rng.choice([g for g in (2, 4, 8, 16, 32, 64) if cin % g == 0] or [1])
        else:  # a group width, any count of groups, as wide in as out (RegNet's 8-64 channels a group)
            width = rng.choice((8, 16, 24, 32, 48, 64))
            cin = cout = max(width, cin // width * width)
            groups = cin // width
    if cout % groups:
        cout = max(groups, cout // groups * groups)
    h = _size(rng, 96, 256) if stem else _size(rng, 4, 160)
    return {
        "kind": "conv",
        "cin": cin,
        "cout": cout,
        "h": h,
        "kernel": kernel,
        "stride": rng.choice((1, 2)),
        "act": rng.choice(CONV_ACTS),
        "groups": groups,
    }


def _dwconv(rng: random.Random) -> dict[str, Any]:
    return {
        "kind": "dwconv",
        "cin": _channels(rng, 8, 2048),
        "h": _size(rng, 4, 160),
        "kernel": rng.choice((3, 3, 5, 7)),
        "stride": rng.choice((1, 2)),
        "act": rng.choice(CONV_ACTS),
    }


def _pwconv(rng: random.Random) -> dict[str, Any]:
    return {
        "kind": "pwconv",
        "cin": _channels(rng, 8, 2048),
        "cout": _channels(rng, 8, 2048),
        "h": _size(rng, 2, 160),
        "act": rng.choice(CONV_ACTS),
    }


def _linear(rng: random.Random) -> dict[str, Any]:
    tokens = 1 if rng.random() < 0.5 else rng.choice(TOKENS)
    cout = rng.choice((10, 100, 1000, 1000)) if tokens == 1 and rng.random() < 0.5 else _channels(rng, 16, 2048, 16)
    return {"kind": "linear", "cin": _channels(rng, 16, 2048, 16), "cout": cout, "tokens": tokens}


def _pool(kind: str) -> Draw:
    def draw(rng: random.Random) -> dict[str, Any]:
        return {
            "kind": kind,
            "cin": _channels(rng, 8, 1024),
            "h": _size(rng, 4, 128),
            "kernel": rng.choice((2, 3, 3, 5)),
            "stride": rng.choice((1, 2, 2)),
        }

    return draw


def _gap(rng: random.Random) -> dict[str, Any]:
    return {"kind": "gap", "cin": _channels(rng, 16, 2048), "h": _size(rng, 2, 56)}


def _se(rng: random.Random) -> dict[str, Any]:
    cin = _channels(rng, 16, 2048)
    return {
        "kind": "se",
        "cin": cin,
        "mid": max(8, int(cin / rng.choice((4, 4, 8, 16, 24)))),
        "h": _size(rng, 2, 112),
        "act": rng.choice(("relu", "silu", "hswish")),
        "gate": rng.choice(("sigmoid", "hsigmoid")),
    }


def _map_op(kind: str, acts: tuple[str, ...] = ("none", "relu")) -> Draw:
    def draw(rng: random.Random) -> dict[str, Any]:
        return {"kind": kind, "cin": _channels(rng, 8, 1024), "h": _size(rng, 4, 128), "act": rng.choice(acts)}

    return draw


def _concat(rng: random.Random) -> dict[str, Any]:
    inputs = rng.choice((2, 2, 3, 4))
    cin = _channels(rng, 8, 1024)
    other = _channels(rng, 8, 512)
    return {"kind": "concat", "cin": cin, "cout": cin + (inputs - 1) * other, "h": _size(rng, 4, 112), "inputs": inputs}


def _channel_shuffle(rng: random.Random) -> dict[str, Any]:
    groups = rng.choice((2, 2, 3, 4, 8))
    cin = _channels(rng, 16, 1024)
    return {
        "kind": "channel_shuffle",
        "cin": max(groups, cin // groups * groups),
        "h": _size(rng, 4, 112),
        "groups": groups,
    }


def _layernorm(rng: random.Random) -> dict[str, Any]:
    return {"kind": "layernorm", "cin": _channels(rng, 64, 1024, 16), "tokens": rng.choice(TOKENS)}


def _softmax(rng: random.Random) -> dict[str, Any]:
    return {
        "kind": "softmax",
        "cin": rng.choice((10, 100, 1000, *TOKENS, _channels(rng))),
        "tokens": rng.choice((1, *TOKENS)),
    }


def _attention(rng: random.Random) -> dict[str, Any]:
    return {
        "kind": "attention",
        "cin": rng.choice((32, 48, 64)),
        "heads": rng.choice((1, 2, 3, 4, 6, 8, 12)),
        "tokens": rng.choice(TOKENS),
    }


def _slice(rng: random.Random) -> dict[str, Any] | None:
    """ShuffleNetV2's channel halves (a Split, or a SLICE per half on LiteRT) in either layout; a ViT's q/k/v
    split (of (3, tokens * dim), or of (tokens, 3 * dim) along its last axis); its class token (one of the tokens)."""
    r, tokens = rng.random(), rng.choice(TOKENS)
    if r < 0.55:
        cin, size = _channels(rng, 24, 1024, 2), _size(rng, 7, 56)
        h, w = (1, size * size) if rng.random() < 0.5 else (size * size, 1)
        return {"kind": "slice", "cin": cin, "cout": cin // 2, "h": h, "w": w, "outputs": rng.choice((1, 2))}
    dim = rng.choice((32, 48, 64)) * rng.choice((1, 2, 3, 4, 6, 8, 12))
    if r < 0.7:
        return {"kind": "slice", "cin": 3, "cout": 1, "h": 1, "w": tokens * dim, "outputs": rng.choice((1, 3))}
    if r < 0.85:
        return {"kind": "slice", "cin": 3 * dim, "cout": dim, "h": tokens, "w": 1, "outputs": rng.choice((1, 3))}
    return {"kind": "slice", "cin": tokens, "cout": 1, "h": 1, "w": _channels(rng, 64, 768, 16)}


def _transpose(rng: random.Random) -> dict[str, Any]:
    """Layout changes of c x (size^2) maps, a shuffle of NCHW channel halves in an NHWC graph, and attention's
    transposes: (tokens, 3 * heads, d) -> (3 * heads, tokens, d), the heads merged back, k^T, a patch grid's flatten."""
    r, tokens = rng.random(), rng.choice(TOKENS)
    heads, d = rng.choice((1, 2, 3, 4, 6, 8, 12)), rng.choice((32, 48, 64))
    if r < 0.3:
        c, hw = _channels(rng, 16, 1024), _size(rng, 4, 56) ** 2
        h, w = (c, hw) if rng.random() < 0.5 else (hw, c)
        return {"kind": "transpose", "cin": 1, "h": h, "w": w, "heads": 1}
    if r < 0.4:
        c = _channels(rng, 24, 1024, 2)
        return {"kind": "transpose", "cin": _size(rng, 4, 56) ** 2, "h": 2, "w": c // 2, "heads": 1}
    if r < 0.55:
        return {"kind": "transpose", "cin": d, "h": tokens, "w": rng.choice((3, 1)) * heads, "heads": 1}
    if r < 0.7:
        return {"kind": "transpose", "cin": d, "h": max(2, heads), "w": tokens, "heads": 1}
    if r < 0.9:
        return {"kind": "transpose", "cin": 1, "h": tokens, "w": d, "heads": heads}
    return {"kind": "transpose", "cin": 1, "h": heads * d, "w": tokens - 1, "heads": 1}


def _patch_embed(rng: random.Random) -> dict[str, Any]:
    """ViT/DeiT patch embeddings (3 channels, patches of 4-16 px) and ConvNeXt-style 2x2 downsampling."""
    if rng.random() < 0.7:
        kernel = rng.choice((4, 8, 14, 16, 16))
        size = rng.choice([s for s in (112, 128, 160, 192, 224, 256) if s % kernel == 0])
        cin, cout = 3, _channels(rng, 64, 768, 16)
    else:
        kernel, size = 2, _size(rng, 14, 112)
        cin = _channels(rng, 48, 512, 16)
        cout = 2 * cin
    act = "none" if rng.random() < 0.8 else rng.choice(("relu", "gelu"))
    return {"kind": "patch_embed", "cin": cin, "cout": cout, "h": size, "kernel": kernel, "act": act}


# kind -> drawer of OpSpec fields.
_DRAWERS: dict[str, Draw] = {
    "conv": _conv,
    "dwconv": _dwconv,
    "pwconv": _pwconv,
    "linear": _linear,
    "maxpool": _pool("maxpool"),
    "avgpool": _pool("avgpool"),
    "gap": _gap,
    "se": _se,
    "add": _map_op("add"),
    "batchnorm": _map_op("batchnorm"),
    "scalar": _map_op("scalar", ("none", "relu", "sigmoid")),
    "concat": _concat,
    "channel_shuffle": _channel_shuffle,
    "layernorm": _layernorm,
    "softmax": _softmax,
    "attention": _attention,
    "act": _map_op("act", ("hswish", "sigmoid", "silu", "gelu", "hsigmoid", "relu", "relu6", "tanh")),
    "slice": _slice,
    "transpose": _transpose,
    "patch_embed": _patch_embed,
}
MODEL_KINDS: tuple[str, ...] = tuple(_DRAWERS)


def _spec(fields: dict[str, Any] | None) -> OpSpec | None:
    if fields is None:
        return None
    fields = dict(fields)
    if "h" in fields:
        fields.setdefault("w", fields["h"])  # square maps; slices and transposes give their own w
    try:
        spec = OpSpec(**fields)
    except ValueError:
        return None
    elements = max(math.prod(spec.input_shape), math.prod(spec.output_shape))
    return spec if spec.flops <= MODEL_KERNEL_FLOPS and elements <= MODEL_KERNEL_ELEMENTS else None


def _no_grid() -> Iterator[OpSpec | None]:
    return iter(())


def _kind_space(kind: str) -> Space:
    draw = _DRAWERS[kind]
    return Space(
        f"model-kernels:{kind}",
        (kind,),
        f"{kind} kernels at the ranges of real CNNs and small ViTs",
        lambda rng: _spec(draw(rng)),
        _no_grid,
        lambda: 10**12,  # continuous-looking ranges: drawing never runs out
    )


@functools.cache
def kind_spaces() -> dict[str, Space]:
    """One :class:`Space` per kind of :data:`MODEL_KINDS` (named ``model-kernels:KIND``)."""
    return {kind: _kind_space(kind) for kind in MODEL_KINDS}


def sample_per_kind(n: int, seed: int = 0, kinds: tuple[str, ...] | None = None) -> list[OpSpec]:
    """``n`` distinct configs of every kind (``kinds``: a subset of :data:`MODEL_KINDS`), reproducible by ``seed``."""
    spaces = kind_spaces()
    unknown = sorted(set(kinds or ()) - set(spaces))
    if unknown:
        raise ValueError(f"no model-kernels space for {', '.join(unknown)}; kinds: {', '.join(MODEL_KINDS)}")
    return [op for i, kind in enumerate(kinds or MODEL_KINDS) for op in spaces[kind].sample(n, seed=seed + 7919 * i)]


@register_space("model-kernels")
def _model_kernels() -> Space:
    parts = list(kind_spaces().values())
    return Space(
        "model-kernels",
        MODEL_KINDS,
        f"the kernels of real CNNs and small ViTs ({len(parts)} kinds, each equally likely, up to 300 MMACs)",
        lambda rng: rng.choice(parts).draw(rng),
        lambda: itertools.chain.from_iterable(p.grid() for p in parts),
        lambda: 10**12,
    )
