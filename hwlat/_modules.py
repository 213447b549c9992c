"""PyTorch modules behind :meth:`hwlat.ops.OpSpec.build` (imported lazily: needs torch).

Kernels with several inputs take one input tensor, as every op does, and hold the others as
buffers (``add``, ``concat``) or derive them from it (``attention``: q = k = v = the input), so
that the exported graph is that kernel and nothing else.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from hwlat.ops import OpSpec


def activation(name: str, channels: int = 1) -> nn.Module:
    """The activation ``name`` (one of :data:`hwlat.ops.ACTIVATIONS`); PReLU gets one slope per channel."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "gelu":
        return nn.GELU()
    if name == "hsigmoid":
        return nn.Hardsigmoid()
    if name == "tanh":
        return nn.Tanh()
    return nn.Identity()


def conv_bn_act(
    cin: int, cout: int, kernel: int, stride: int, groups: int, act: str, stride_w: int = 0, dilation: int = 1
) -> nn.Sequential:
    """Conv ('same' padding: ``dilation * (kernel // 2)``), BatchNorm, act; ``stride_w`` (0: ``stride``): the
    stride along the width."""
    s = stride if not stride_w or stride_w == stride else (stride, stride_w)
    extra = {"dilation": dilation} if dilation != 1 else {}
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, s, dilation * (kernel // 2), groups=groups, bias=False, **extra),
        nn.BatchNorm2d(cout),
        activation(act, cout),
    )


class MBConv(nn.Module):
    """MobileNetV2 inverted residual (ProxylessNAS ``MBInvertedConvLayer`` + shortcut)."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if op.expand > 1:
            layers.append(conv_bn_act(op.cin, op.hidden, 1, 1, 1, op.act))
        layers.append(conv_bn_act(op.hidden, op.hidden, op.kernel, op.stride, op.hidden, op.act))
        layers.append(conv_bn_act(op.hidden, op.cout, 1, 1, 1, "none"))
        self.body = nn.Sequential(*layers)
        self.skip = op.has_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


class ResBlock(nn.Module):
    """ResNet basic block: two kxk conv-BN (ReLU between), shortcut, ReLU."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(op.cin, op.cout, op.kernel, op.stride, 1, op.act),
            conv_bn_act(op.cout, op.cout, op.kernel, 1, 1, "none"),
        )
        self.shortcut = conv_bn_act(op.cin, op.cout, 1, op.stride, 1, "none") if op.has_projection else nn.Identity()
        self.act = activation(op.act, op.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Zero(nn.Module):
    """ProxylessNAS ``ZeroLayer``: outputs zeros of the op's output shape."""

    def __init__(self, cout: int, stride: int) -> None:
        super().__init__()
        self.cout, self.stride = cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.cout, -(-h // self.stride), -(-w // self.stride))


class Head(nn.Module):
    """Feature-mix 1x1 conv-BN-act (optional), global average pooling, classifier."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.mix = conv_bn_act(op.cin, op.mid, 1, 1, 1, op.act) if op.mid else nn.Identity()
        self.classifier = nn.Linear(op.mid or op.cin, op.cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mix(x).mean((2, 3))
        return self.classifier(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class GlobalAvgPoolNHWC(nn.Module):
    """:class:`GlobalAvgPool` on channel-last input (LiteRT's MEAN over the spatial axes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((1, 2))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average pool, 1x1 conv (with bias) to ``mid``, act, 1x1 conv back
    to ``cin``, gate (sigmoid or hard sigmoid), times the input (as in MobileNetV3 and EfficientNet)."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(op.cin, op.mid, 1)
        self.act = activation(op.act, op.mid)
        self.expand = nn.Conv2d(op.mid, op.cin, 1)
        self.gate = nn.Hardsigmoid() if op.gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _operand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A fixed pseudo-random tensor (a buffer standing for another activation input)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) - 0.5


class Add(nn.Module):
    """Element-wise sum of two activations (a residual add), then ``act``. The second summand is a
    buffer of the input's shape (batch 1; at a larger batch it broadcasts over the batch)."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.register_buffer("other", _operand(op.input_shape, 1))
        self.act = activation(op.act, op.cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.other)


def _batch(x: torch.Tensor) -> int:
    """The batch size as a Python int: exports are traced at one fixed batch, so the branch on it is
    meant to be static (no Expand copies the buffers at batch 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return int(x.shape[0])


class Concat(nn.Module):
    """Channel concat of ``inputs`` tensors: the input (``cin`` channels) first, then ``inputs - 1``
    buffers of ``(cout - cin) / (inputs - 1)`` channels each (repeated over the batch when it is > 1)."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        c = (op.cout - op.cin) // max(1, op.inputs - 1)  # one input: a concat of the input alone (a copy)
        for i in range(op.inputs - 1):
            self.register_buffer(f"other{i}", _operand((1, c, op.h, op.w), i + 1))
        self.n = op.inputs - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        others = [getattr(self, f"other{i}") for i in range(self.n)]
        if _batch(x) != 1:
            others = [o.expand(x.shape[0], -1, -1, -1) for o in others]
        return torch.cat([x, *others], 1)


class Resize(nn.Module):
    """Up-sampling by ``scale`` (nearest, or bilinear with half-pixel centres as ONNX and TFLite do)."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.scale, self.mode = float(op.scale), op.mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


class Attention(nn.Module):
    """Scaled dot-product attention of ``heads`` heads over ``tokens`` tokens of dimension ``cin``:
    ``softmax(q @ k^T / sqrt(cin)) @ v``, with q = k = v = the input, which holds (1, heads, tokens,
    cin) flat as (1, heads * tokens, cin) so that no converter treats it as an image."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.heads, self.tokens, self.dim = op.heads, op.tokens, op.cin
        self.scale = 1.0 / math.sqrt(op.cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.reshape(x.shape[0], self.heads, self.tokens, self.dim)
        scores = torch.matmul(q, q.transpose(-1, -2)) * self.scale
        out = torch.matmul(torch.softmax(scores, dim=-1), q)
        return out.reshape(x.shape)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape to (groups, cin / groups), swap the two, reshape back."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExciteNHWC(nn.Module):
    """:class:`SqueezeExcite` on channel-last input, with the same weights (its 1x1 convs as linears)."""

    def __init__(self, se: SqueezeExcite) -> None:
        super().__init__()
        self.se = se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        se = self.se
        s = x.mean((1, 2))  # (n, c): a linear on a 4-D tensor would be a batched matmul in TFLite
        s = se.act(nn.functional.linear(s, se.reduce.weight.flatten(1), se.reduce.bias))
        s = nn.functional.linear(s, se.expand.weight.flatten(1), se.expand.bias)
        return x * se.gate(s)[:, None, None, :]


class ConcatNHWC(nn.Module):
    """:class:`Concat` on channel-last input: the same buffers, joined on the last axis."""

    def __init__(self, cat: Concat) -> None:
        super().__init__()
        for i in range(cat.n):
            self.register_buffer(f"other{i}", getattr(cat, f"other{i}").permute(0, 2, 3, 1).contiguous())
        self.n = cat.n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        others = [getattr(self, f"other{i}") for i in range(self.n)]
        if _batch(x) != 1:
            others = [o.expand(x.shape[0], -1, -1, -1) for o in others]
        return torch.cat([x, *others], 3)


class ChannelShuffleNHWC(nn.Module):
    """:class:`ChannelShuffle` on channel-last input (as TensorFlow's ShuffleNets write it)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        return x.reshape(n, h, w, self.groups, c // self.groups).transpose(3, 4).reshape(n, h, w, c)


class PReLUNHWC(nn.Module):
    """:class:`torch.nn.PReLU` with one slope per channel on channel-last input."""

    def __init__(self, prelu: nn.PReLU) -> None:
        super().__init__()
        self.weight = prelu.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * self.weight)


class Scalar(nn.Module):
    """One element-wise op with a constant scalar (``x * a``; ``x + b`` costs the same), then ``act``."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.register_buffer("a", torch.tensor([0.75]))
        self.act = activation(op.act, op.cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x * self.a)


class ChannelPad(nn.Module):
    """Zero-pads the channels (axis ``dim``) at their end: BlazeFace's widening residual branches."""

    def __init__(self, extra: int, dim: int = 1) -> None:
        super().__init__()
        self.extra, self.dim = extra, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (0, 0, 0, 0, 0, self.extra) if self.dim == 1 else (0, self.extra)
        return nn.functional.pad(x, pad)


class Slice(nn.Module):
    """The input, viewed as ``(h, cin, w)`` (:attr:`OpSpec.view_shape`), cut along ``cin``: its first ``cout``
    (one output: ONNX Slice, TFLite SLICE) or ``outputs`` parts of ``cout`` (ONNX Split; LiteRT runs one
    SLICE per part). The outputs are made contiguous, so that eager torch copies as the runtimes do."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.view = op.view_shape[1:] if len(op.input_shape) != len(op.view_shape) else None
        self.axis = 1 if op.h == 1 else 2
        self.cout, self.outputs = op.cout, op.outputs

    def forward(self, x: torch.Tensor):
        if self.view is not None:  # held flat (a 4-D input would be taken for an image)
            x = x.reshape(-1, *self.view)
        if self.outputs == 1:
            return x.narrow(self.axis, 0, self.cout).contiguous()
        return tuple(part.contiguous() for part in x.split(self.cout, self.axis))


class Transpose(nn.Module):
    """The input, viewed as ``(heads, h, w, cin)`` (:attr:`OpSpec.view_shape`), permuted to ``(heads, w, h, cin)``:
    one Transpose (TRANSPOSE) node; contiguous, so that eager torch copies as the runtimes do."""

    def __init__(self, op: OpSpec) -> None:
        super().__init__()
        self.view = op.view_shape[1:] if len(op.input_shape) != len(op.view_shape) else None
        self.axis = 1 if op.heads == 1 else 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.view is not None:  # held flat (a 4-D input would be taken for an image)
            x = x.reshape(-1, *self.view)
        return x.transpose(self.axis, self.axis + 1).contiguous()


def build_op_nhwc(op: OpSpec, module: nn.Module) -> nn.Module:
    """The channel-last twin of ``module`` (``op``'s NCHW module) for kinds that litert-torch's layout
    pass leaves wrapped in TRANSPOSEs (it moves to NHWC only what a conv or pool anchors)."""
    if op.kind == "se":
        return SqueezeExciteNHWC(module)
    if op.kind == "concat":
        return ConcatNHWC(module)
    if op.kind == "channel_shuffle":
        return ChannelShuffleNHWC(op.groups)
    if op.kind == "pad":
        return ChannelPad(op.cout - op.cin, dim=3)
    if op.kind == "gap":
        return GlobalAvgPoolNHWC()
    if op.kind == "act":
        return PReLUNHWC(module) if isinstance(module, nn.PReLU) else module  # element-wise: any layout
    raise AssertionError(f"no channel-last twin for {op.kind!r}")  # OpSpec.build_nhwc checked has_nhwc_twin


def conv_transpose_act(op: OpSpec) -> nn.Sequential:
    """Transposed conv (with bias) whose output is exactly ``stride`` x the input, then ``act``."""
    k, s = op.kernel, op.stride
    # OpSpec allows only kernel - stride even: padding (k - s) / 2 and no output padding (which
    # litert-torch cannot legalise) make the output (h - 1) * s - (k - s) + k == s * h.
    return nn.Sequential(nn.ConvTranspose2d(op.cin, op.cout, k, s, padding=(k - s) // 2), activation(op.act, op.cout))


def build_op(op: OpSpec) -> nn.Module:
    kind, k, s = op.kind, op.kernel, op.stride
    if kind in ("conv", "stem"):
        return conv_bn_act(op.cin, op.cout, k, s, op.groups, op.act, op.stride_w, op.dilation)
    if kind == "dwconv":
        return conv_bn_act(op.cin, op.cin, k, s, op.cin, op.act, op.stride_w, op.dilation)
    if kind == "pwconv":
        return conv_bn_act(op.cin, op.cout, 1, 1, 1, op.act)
    if kind == "dsconv":
        return conv_bn_act(op.cin, op.cout, k, s, math.gcd(op.cin, op.cout), op.act)
    if kind == "dsconv_pw":
        return nn.Sequential(
            conv_bn_act(op.cin, op.cin, k, s, op.cin, op.act), conv_bn_act(op.cin, op.cout, 1, 1, 1, op.act)
        )
    if kind == "mbconv":
        return MBConv(op)
    if kind == "resblock":
        return ResBlock(op)
    if kind == "linear":
        return nn.Linear(op.cin, op.cout)
    if kind == "avgpool":
        return nn.AvgPool2d(k, s, k // 2, count_include_pad=False)
    if kind == "maxpool":
        return nn.MaxPool2d(k, s, k // 2)
    if kind == "gap":
        return GlobalAvgPool()
    if kind == "identity":
        return nn.Identity()
    if kind == "zero":
        return Zero(op.cout, s)
    if kind == "head":
        return Head(op)
    if kind == "se":
        return SqueezeExcite(op)
    if kind == "add":
        return Add(op)
    if kind == "concat":
        return Concat(op)
    if kind == "resize":
        return Resize(op)
    if kind == "softmax":
        return nn.Softmax(dim=-1)
    if kind == "layernorm":
        return nn.LayerNorm(op.cin)
    if kind == "attention":
        return Attention(op)
    if kind == "conv_transpose":
        return conv_transpose_act(op)
    if kind == "channel_shuffle":
        return ChannelShuffle(op.groups)
    if kind == "batchnorm":
        return nn.Sequential(nn.BatchNorm2d(op.cin), activation(op.act, op.cin))
    if kind == "scalar":
        return Scalar(op)
    if kind == "pad":
        return ChannelPad(op.cout - op.cin)
    if kind == "act":
        return activation(op.act, op.cin)
    if kind == "slice":
        return Slice(op)
    if kind == "transpose":
        return Transpose(op)
    if kind == "patch_embed":  # no padding: the output is (h // kernel) x (w // kernel)
        return nn.Sequential(nn.Conv2d(op.cin, op.cout, k, k), activation(op.act, op.cout))
    raise AssertionError(f"no builder for {kind!r}")  # OpSpec validated the kind
