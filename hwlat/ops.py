"""Operator specifications: what to run, as frozen, hashable, parseable values.

An :class:`OpSpec` names one operator (or block) and its shapes. It knows its
canonical ``key`` (parseable back with :meth:`OpSpec.from_key`), its input
shape, its cost counters (``flops`` in multiply-accumulates, ``params``,
``bytes`` moved in fp32) and how to ``build()`` an ``nn.Module``. ``torch`` is
imported only by :meth:`OpSpec.build`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from hwlat.registry import Registry

__all__ = [
    "OpSpec",
    "OpKind",
    "KINDS",
    "OP_KINDS",
    "ACTIVATIONS",
    "GATES",
    "RESIZE_MODES",
    "VOCAB_KINDS",
    "WHOLE_KINDS",
    "LIMITS",
    "list_op_kinds",
    "register_kind",
    "conv_out",
    "shape_limits",
]

# The first four are what every kind has always built; silu, sigmoid and prelu (one slope per channel: it
# adds parameters) came with the kernel vocabulary, gelu, hsigmoid and tanh with the standalone ``act`` kind
# (LiteRT runs HARD_SWISH, LOGISTIC, GELU, TANH as ops of their own, not fused into a conv).
ACTIVATIONS = ("relu", "relu6", "hswish", "none", "silu", "sigmoid", "prelu", "gelu", "hsigmoid", "tanh")
# SE gates (``se`` kind) and resize modes (``resize`` kind): the string-valued fields besides ``act``.
GATES = ("sigmoid", "hsigmoid")
RESIZE_MODES = ("nearest", "bilinear")
# Row kinds of whole models in a latency table (hwlat networks and users' models), not op kinds.
WHOLE_KINDS = ("network", "model")
BYTES_PER_ELEMENT = 4  # fp32

# Shape bounds: (fields, default maximum, environment variable that overrides it). Far beyond any
# network measured here (the shipped tables stay under 1280 channels, 224 px, kernel 7), small enough
# that a typo (cin=1000000) is refused at once instead of being measured or predicted for hours.
LIMITS: dict[str, tuple[tuple[str, ...], int, str]] = {
    "channels": (("cin", "cout", "mid", "groups", "heads", "inputs", "outputs"), 65536, "HWLAT_MAX_CHANNELS"),
    "size": (("h", "w", "tokens"), 8192, "HWLAT_MAX_SIZE"),
    "kernel": (("kernel", "dilation"), 31, "HWLAT_MAX_KERNEL"),
}


_LIMIT_VARS = tuple(var for _fields, _default, var in LIMITS.values())


@functools.lru_cache(maxsize=16)
def _limits(raw: tuple[str | None, ...]) -> tuple[tuple[str, int, str], ...]:
    """(field, maximum, variable) for the environment's values ``raw`` of :data:`_LIMIT_VARS`."""
    out = []
    for (fields, default, var), text in zip(LIMITS.values(), raw):
        limit = default
        if text is not None and text.strip():
            try:
                limit = int(text)
            except ValueError:
                limit = 0
            if limit < 1:
                raise ValueError(f"Invalid {var}={text!r}: must be an int >= 1 (default {default})")
        out += [(f, limit, var) for f in fields]
    return tuple(out)


def _current_limits() -> tuple[tuple[str, int, str], ...]:
    return _limits(tuple(map(os.environ.get, _LIMIT_VARS)))


def shape_limits() -> dict[str, tuple[int, str]]:
    """Each bounded field's maximum and the environment variable that raises it, e.g.
    ``{"cin": (65536, "HWLAT_MAX_CHANNELS"), ...}`` (read from the environment on every call)."""
    return {f: (limit, var) for f, limit, var in _current_limits()}


@dataclass(frozen=True)
class OpKind:
    """One registered op kind: the fields it uses besides ``kind`` (so they appear in its key,
    in this order), the values some fields allow, and optional fields: those appear in the key
    only when they differ from their default (``conv``'s ``groups``, ``linear``'s ``tokens``), so the
    keys of ops that do not use them stay what they always were."""

    name: str
    fields: tuple[str, ...]
    allowed: tuple[tuple[str, tuple[Any, ...]], ...] = (("stride", (1, 2)),)
    optional: tuple[str, ...] = ()


KINDS: Registry[OpKind] = Registry("op kind")


def register_kind(
    name: str, fields: tuple[str, ...], optional: tuple[str, ...] = (), **allowed: tuple[Any, ...]
) -> OpKind:
    """Register an op kind; ``allowed`` adds value sets (``stride`` is 1 or 2 for every kind)."""
    return KINDS.register(name, OpKind(name, fields, tuple({"stride": (1, 2), **allowed}.items()), optional))


# Registration order, not sorted: feature columns and messages list the kinds this way.
OP_KINDS: tuple[str, ...] = tuple(
    k.name
    for k in (
        register_kind(
            "conv",
            ("cin", "cout", "h", "w", "kernel", "stride", "act"),
            optional=("groups", "stride_w", "dilation"),
            stride_w=(0, 1, 2),
        ),
        register_kind("stem", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind(
            "dwconv",
            ("cin", "h", "w", "kernel", "stride", "act"),
            optional=("stride_w", "dilation"),
            stride_w=(0, 1, 2),
        ),
        register_kind("pwconv", ("cin", "cout", "h", "w", "act")),
        register_kind(
            "mbconv", ("cin", "cout", "h", "w", "kernel", "stride", "expand", "act"), kernel=(3, 5, 7), expand=(1, 3, 6)
        ),
        register_kind("resblock", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("dsconv", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("dsconv_pw", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("linear", ("cin", "cout"), optional=("tokens",)),
        register_kind("avgpool", ("cin", "h", "w", "kernel", "stride")),
        register_kind("maxpool", ("cin", "h", "w", "kernel", "stride")),
        register_kind("gap", ("cin", "h", "w")),
        register_kind("identity", ("cin", "h", "w")),
        register_kind("zero", ("cin", "cout", "h", "w", "stride")),
        register_kind("head", ("cin", "mid", "cout", "h", "w", "act")),
        # The kernel vocabulary of real models (VOCAB_KINDS): added at the end, so the kinds above keep their order.
        register_kind("se", ("cin", "mid", "h", "w", "act", "gate"), gate=GATES),
        register_kind("add", ("cin", "h", "w", "act")),
        register_kind("concat", ("cin", "cout", "h", "w", "inputs")),
        register_kind("resize", ("cin", "h", "w", "scale", "mode"), scale=(2, 4, 8), mode=RESIZE_MODES),
        register_kind("softmax", ("cin", "tokens")),
        register_kind("layernorm", ("cin", "tokens")),
        register_kind("attention", ("cin", "heads", "tokens")),
        register_kind("conv_transpose", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("channel_shuffle", ("cin", "h", "w", "groups")),
        register_kind("batchnorm", ("cin", "h", "w", "act")),
        register_kind("scalar", ("cin", "h", "w", "act")),
        register_kind("pad", ("cin", "cout", "h", "w")),
        register_kind("act", ("cin", "h", "w", "act")),
        register_kind("slice", ("cin", "cout", "h", "w", "outputs")),
        register_kind("transpose", ("cin", "h", "w", "heads")),
        register_kind("patch_embed", ("cin", "cout", "h", "w", "kernel", "act")),
    )
)
# The kinds added for real models' kernels (everything after ``head``).
VOCAB_KINDS: tuple[str, ...] = OP_KINDS[OP_KINDS.index("head") + 1 :]
_KIND_FIELDS: dict[str, tuple[str, ...]] = {k: KINDS.get(k).fields for k in OP_KINDS}
_KIND_OPTIONAL: dict[str, tuple[str, ...]] = {k: KINDS.get(k).optional for k in OP_KINDS}
_INT_FIELDS = (
    "cin",
    "cout",
    "h",
    "w",
    "kernel",
    "stride",
    "expand",
    "mid",
    "groups",
    "tokens",
    "heads",
    "inputs",
    "scale",
    "outputs",
    "dilation",
)
_STR_FIELDS = ("act", "gate", "mode")
# Kinds with a channel-last twin module (OpSpec.build_nhwc) for TFLite converters.
_NHWC_TWINS = ("se", "concat", "channel_shuffle", "pad", "act", "gap")
# Kinds whose input is a sequence (1, tokens, cin) rather than an image (1, cin, h, w).
_TOKEN_KINDS = ("softmax", "layernorm")
# Kinds whose h and w are what comes before and after the axes they work on (OpSpec.view_shape), not an image's.
_VIEW_KINDS = ("slice", "transpose")


def list_op_kinds(pattern: str = "*") -> list[str]:
    """Names of the operator kinds matching the wildcard ``pattern``, in registration order."""
    return [k for k in OP_KINDS if k in KINDS.names(pattern)]


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output size of a 'same'-padded convolution (padding ``kernel // 2``)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class OpSpec:
    """One operator with its shapes (batch size is a device option, not a field).

    Parameters
    ----------
    kind : str
        One of :data:`OP_KINDS`.
    cin, cout : int
        Input and output channels (``cout`` defaults to ``cin`` for kinds that
        keep the channel count). ``attention``: the per-head dimension.
    h, w : int
        Input height and width (1 for ``linear``); ``slice``: the sizes before and after the axis it cuts
        (``cin`` long); ``transpose``: the two sizes it swaps (``cin``: the size after them).
    kernel, stride, expand : int
        Kernel size, stride, MBConv expansion ratio.
    act : str
        Activation after the normalisation: one of :data:`ACTIVATIONS`.
    mid : int
        ``head``: width of the 1x1 feature-mix layer (0 = none); ``se``: the squeezed width.
    groups : int
        ``conv``: convolution groups (optional, default 1; it divides ``cin`` and ``cout``);
        ``channel_shuffle``: the groups shuffled.
    tokens : int
        Sequence length: ``softmax``, ``layernorm``, ``attention``; ``linear`` (optional, default 1:
        a vector) applies to each of ``tokens`` rows.
    heads : int
        ``attention``: the number of heads; ``transpose``: the leading axes it keeps in place.
    inputs : int
        ``concat``: the number of tensors concatenated (at least 2).
    scale : int
        ``resize``: the up-sampling factor (2, 4 or 8).
    gate : str
        ``se``: the gate, one of :data:`GATES`.
    mode : str
        ``resize``: one of :data:`RESIZE_MODES`.
    outputs : int
        ``slice``: 1 for one slice (the first ``cout`` of ``cin``), n >= 2 for a split into n parts of ``cout``.
    stride_w, dilation : int
        ``conv``, ``dwconv`` (optional): the stride along the width when it is not ``stride`` (a text
        recogniser's 2x1 strides: ``stride=2, stride_w=1``; 0, the default, is ``stride``), and the dilation
        (default 1; the padding ``dilation * (kernel // 2)`` keeps the output size, for odd kernels).

    The kernel-vocabulary kinds (:data:`VOCAB_KINDS`), each one kernel as runtimes execute it:
    ``se`` squeeze-excite (pool, 1x1 to ``mid``, act, 1x1 back, gate, times the input); ``add`` two
    activations summed, then act; ``concat`` ``inputs`` tensors joined on channels (the input has
    ``cin``, the others share ``cout - cin``); ``resize`` up-sampling; ``softmax`` over the last axis
    and ``layernorm`` over ``cin``, both of (1, tokens, cin); ``attention`` softmax(q k^T / sqrt(d)) v;
    ``conv_transpose`` (with bias) to ``stride`` x the input, then act; ``channel_shuffle``;
    ``batchnorm`` that no conv absorbs, then act; ``scalar`` one element-wise op with a constant
    scalar (x * a or x + b), then act; ``pad`` zero-padding the channels from ``cin`` to ``cout``;
    ``act`` an activation a runtime runs as an op of its own (a sequence's (1, tokens, cin) as ``h=tokens, w=1``);
    ``slice`` a tensor viewed as (h, cin, w) cut along its middle axis (``h``: what comes before that axis, ``w``:
    what comes after, so layouts and ranks map exactly): ``outputs`` 1 keeps the first ``cout`` (a Slice, Gather,
    STRIDED_SLICE: ViTs' class token), ``outputs`` n >= 2 splits it into n parts of ``cout`` (n * cout == cin:
    ShuffleNetV2's channel split, an attention's q/k/v); ``transpose`` a tensor viewed as (heads, h, w, cin)
    permuted to (heads, w, h, cin), which every transpose that swaps two groups of axes is (attention's head
    split and merge, k^T, NCHW <-> NHWC, a patch grid's flatten); ``patch_embed`` a conv whose stride is its
    kernel and that pads nothing (ViT patch embeddings, 4x4 ConvNeXt/Swin stems; with bias), then act.

    Shapes are bounded (:data:`LIMITS`): channels at most 65536, ``h``/``w`` at most 8192, ``kernel``
    at most 31; the environment variables ``HWLAT_MAX_CHANNELS``, ``HWLAT_MAX_SIZE`` and
    ``HWLAT_MAX_KERNEL`` raise them. A value beyond is a ValueError naming the field and the limit.

    Examples
    --------
    >>> op = OpSpec("mbconv", cin=16, cout=24, h=112, w=112, kernel=5, stride=2, expand=3)
    >>> op.key
    'mbconv:cin=16,cout=24,h=112,w=112,kernel=5,stride=2,expand=3,act=relu6'
    >>> OpSpec.from_key(op.key) == op
    True
    >>> OpSpec("conv", cin=32, cout=64, h=14, w=14, kernel=3, groups=4).key
    'conv:cin=32,cout=64,h=14,w=14,kernel=3,stride=1,act=relu6,groups=4'
    """

    kind: str
    cin: int
    cout: int = 0
    h: int = 1
    w: int = 1
    kernel: int = 1
    stride: int = 1
    expand: int = 1
    act: str = "relu6"
    mid: int = 0
    groups: int = 1
    tokens: int = 1
    heads: int = 1
    inputs: int = 1
    scale: int = 1
    gate: str = "sigmoid"
    mode: str = "nearest"
    outputs: int = 1
    stride_w: int = 0
    dilation: int = 1

    FIELDS: ClassVar[dict[str, tuple[str, ...]]] = _KIND_FIELDS
    OPTIONAL_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = _KIND_OPTIONAL

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid op kind {self.kind!r}; valid kinds: {', '.join(OP_KINDS)}")
        used = _KIND_FIELDS[self.kind] + _KIND_OPTIONAL[self.kind]
        if "cout" not in used or self.cout == 0:
            object.__setattr__(self, "cout", self.cin)
        # Fields a kind does not use are normalised so equal ops compare equal.
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in defaults:
            if name not in ("kind", "cin", "cout") and name not in used:
                object.__setattr__(self, name, defaults[name])
        for name in (*_INT_FIELDS, "stride_w"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"OpSpec field {name!r} must be an int, got {value!r}")
        if self.stride_w == self.stride:  # a square stride is written once
            object.__setattr__(self, "stride_w", 0)
        for name in ("cin", "cout", "h", "w", "kernel", "stride", "expand", *_INT_FIELDS[8:]):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid {name}={getattr(self, name)} for {self.kind!r}: must be >= 1")
        if self.mid < 0:
            raise ValueError(f"Invalid mid={self.mid} for {self.kind!r}: must be >= 0")
        for name, limit, var in _current_limits():
            if name in ("h", "w") and self.kind in _VIEW_KINDS:  # products of axes (a 112x112 map's h * w)
                limit *= limit
            if getattr(self, name) > limit:
                raise ValueError(
                    f"Invalid {name}={getattr(self, name)} for {self.kind!r}: at most {limit} (set {var} to allow more)"
                )
        if self.act not in ACTIVATIONS:
            raise ValueError(f"Invalid act={self.act!r} for {self.kind!r}; valid: {', '.join(ACTIVATIONS)}")
        for name, allowed in KINDS.get(self.kind).allowed:
            if name in used and getattr(self, name) not in allowed:
                raise ValueError(f"Invalid {name}={getattr(self, name)} for {self.kind!r}; allowed: {list(allowed)}")
        if self.kind in ("conv", "stem", "dwconv", "dsconv", "dsconv_pw", "resblock", "avgpool", "maxpool") and (
            self.kernel > max(self.h, self.w) + 2 * (self.kernel // 2)
        ):
            raise ValueError(f"Invalid kernel={self.kernel} for a {self.h}x{self.w} input")
        if self.dilation > 1 and self.kernel % 2 == 0:
            raise ValueError(f"Invalid dilation={self.dilation} for kernel={self.kernel}: a dilated kernel must be odd")
        if self.kind in VOCAB_KINDS or self.groups != 1:
            self._check_vocab()

    def _check_vocab(self) -> None:
        """The rules of the kernel-vocabulary kinds (and of ``conv`` with groups) beyond single fields."""
        kind = self.kind
        if kind in ("conv", "channel_shuffle") and (self.cin % self.groups or self.cout % self.groups):
            raise ValueError(
                f"Invalid groups={self.groups} for {kind!r}: must divide cin={self.cin} and cout={self.cout}"
            )
        if kind == "channel_shuffle" and self.groups < 2:
            raise ValueError(f"Invalid groups={self.groups} for 'channel_shuffle': must be >= 2")
        if kind == "se" and self.mid < 1:
            raise ValueError(f"Invalid mid={self.mid} for 'se': the squeezed width must be >= 1")
        if kind == "concat":
            if self.inputs < 2 and self.cout != self.cin:
                raise ValueError(
                    f"Invalid inputs={self.inputs} for 'concat': must be >= 2 (or 1 with cout == cin: a copy, "
                    "as DenseNet's first layer concatenates one tensor)"
                )
            rest = self.cout - self.cin
            if self.inputs > 1 and (rest < self.inputs - 1 or rest % (self.inputs - 1)):
                raise ValueError(
                    f"Invalid cout={self.cout} for 'concat': cout - cin must split evenly into the other "
                    f"{self.inputs - 1} input(s) of at least 1 channel"
                )
        if kind == "pad" and self.cout <= self.cin:
            raise ValueError(f"Invalid cout={self.cout} for 'pad': the zero-padded width must exceed cin={self.cin}")
        if kind == "slice" and self.outputs == 1 and self.cout >= self.cin:
            raise ValueError(f"Invalid cout={self.cout} for 'slice': one slice keeps fewer than cin={self.cin}")
        if kind == "slice" and self.outputs > 1 and self.outputs * self.cout != self.cin:
            raise ValueError(
                f"Invalid cout={self.cout} for 'slice' with outputs={self.outputs}: a split into equal parts "
                f"needs outputs * cout == cin={self.cin}"
            )
        if kind == "transpose" and min(self.h, self.w) < 2:
            raise ValueError(f"Invalid h={self.h}, w={self.w} for 'transpose': both swapped axes must be >= 2")
        if kind == "patch_embed" and not 2 <= self.kernel <= min(self.h, self.w):
            raise ValueError(
                f"Invalid kernel={self.kernel} for 'patch_embed': 2 to min(h, w)={min(self.h, self.w)} "
                "(kernel 1 is a pwconv)"
            )
        if kind == "conv_transpose":
            k, s = self.kernel, self.stride
            if k < s or (k - s) % 2:
                raise ValueError(
                    f"Invalid kernel={k} for 'conv_transpose' with stride={s}: need kernel >= stride and "
                    "kernel - stride even (e.g. 2 or 4 at stride 2), so the output is exactly stride x the input"
                )

    # ----------------------------------------------------------------- keys
    @property
    def key(self) -> str:
        """Canonical string, unique per op, parseable by :meth:`from_key`."""
        parts = [f"{name}={getattr(self, name)}" for name in self._key_fields()]
        return f"{self.kind}:{','.join(parts)}"

    def _key_fields(self) -> tuple[str, ...]:
        """The kind's fields, then its optional fields that differ from their defaults."""
        extra = tuple(n for n in _KIND_OPTIONAL[self.kind] if getattr(self, n) != _DEFAULTS[n])
        return _KIND_FIELDS[self.kind] + extra

    @classmethod
    def from_key(cls, key: str) -> OpSpec:
        """Parse a key made by :attr:`key` back into an :class:`OpSpec`."""
        if not isinstance(key, str) or ":" not in key:
            raise ValueError(f"Invalid op key {key!r}: expected 'kind:field=value,...'")
        kind, _, rest = key.partition(":")
        if kind not in KINDS:  # say so, rather than blame the first field
            raise ValueError(f"Invalid op kind {kind!r} in op key {key!r}; valid kinds: {', '.join(OP_KINDS)}")
        kwargs: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            name, sep, value = item.partition("=")
            if not sep or name not in _KIND_FIELDS[kind] + _KIND_OPTIONAL[kind]:
                raise ValueError(f"Invalid field {item!r} in op key {key!r}")
            try:
                kwargs[name] = value if name in _STR_FIELDS else int(value)
            except ValueError:
                raise ValueError(f"Invalid {name}={value!r} in op key {key!r}: must be an int") from None
        return cls(kind, **kwargs)

    def replace(self, **changes: Any) -> OpSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{n: getattr(self, n) for n in self._key_fields()}}

    # --------------------------------------------------------------- shapes
    @property
    def view_shape(self) -> tuple[int, ...]:
        """``slice`` and ``transpose``: the tensor they work on at batch 1, ``(1, h, cin, w)`` and
        ``(1, heads, h, w, cin)`` without the axes of size 1 (but the sliced or swapped ones); () for other kinds."""
        if self.kind == "slice":
            return (1, *(() if self.h == 1 else (self.h,)), self.cin, *(() if self.w == 1 else (self.w,)))
        if self.kind == "transpose":
            heads, cin = (() if self.heads == 1 else (self.heads,)), (() if self.cin == 1 else (self.cin,))
            return (1, *heads, self.h, self.w, *cin)
        return ()

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Input tensor shape for batch 1: NCHW; (1, C) for ``linear`` (``(1, tokens, C)`` with
        tokens); ``(1, tokens, C)`` for ``softmax``/``layernorm``; ``attention``: its q (= k = v)
        of shape (1, heads, tokens, C) held flat as ``(1, heads * tokens, C)``; ``slice`` and
        ``transpose``: :attr:`view_shape`, held flat as ``(1, h * cin, w)`` and ``(1, heads * h, w * cin)``
        where it has four axes (a converter would take those for an NCHW image)."""
        if self.kind in ("slice", "transpose"):
            view = self.view_shape
            if len(view) != 4:
                return view
            if self.kind == "slice":
                return (1, self.h * self.cin, self.w)
            return (1, self.heads * self.h, self.w * self.cin)
        if self.kind == "linear":
            return (1, self.tokens, self.cin) if self.tokens > 1 else (1, self.cin)
        if self.kind in _TOKEN_KINDS:
            return (1, self.tokens, self.cin)
        if self.kind == "attention":
            return (1, self.heads * self.tokens, self.cin)
        return (1, self.cin, self.h, self.w)

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.kind == "linear" or self.kind in _TOKEN_KINDS:
            return (self.tokens, 1)
        if self.kind in ("gap", "head"):
            return (1, 1)
        if self.kind in (
            "identity",
            "se",
            "add",
            "concat",
            "channel_shuffle",
            "batchnorm",
            "scalar",
            "pad",
            "act",
            "slice",
        ):
            return (self.h, self.w)
        if self.kind == "transpose":
            return (self.w, self.h)
        if self.kind == "patch_embed":
            return (self.h // self.kernel, self.w // self.kernel)
        if self.kind == "attention":  # each head's score map
            return (self.tokens, self.tokens)
        if self.kind == "resize":
            return (self.h * self.scale, self.w * self.scale)
        if self.kind == "conv_transpose":
            return (self.h * self.stride, self.w * self.stride)
        if self.kind in ("avgpool", "maxpool"):
            return (conv_out(self.h, self.kernel, self.stride), conv_out(self.w, self.kernel, self.stride))
        if self.kind == "zero" or self.kind == "pwconv":
            s = 1 if self.kind == "pwconv" else self.stride
            return (-(-self.h // s), -(-self.w // s))
        return (conv_out(self.h, self.kernel, self.stride), conv_out(self.w, self.kernel, self.stride_w or self.stride))

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.kind == "linear" and self.tokens > 1:
            return (1, self.tokens, self.cout)
        if self.kind in ("linear", "head"):
            return (1, self.cout)
        if self.kind == "gap":
            return (1, self.cin)
        if self.kind in (*_TOKEN_KINDS, "attention"):
            return self.input_shape
        if self.kind == "slice":  # each output's
            view = list(self.view_shape)
            view[1 if self.h == 1 else 2] = self.cout
            return tuple(view)
        if self.kind == "transpose":
            view = list(self.view_shape)
            i = 1 if self.heads == 1 else 2
            view[i], view[i + 1] = view[i + 1], view[i]
            return tuple(view)
        return (1, self.cout, *self.out_hw)

    @property
    def hidden(self) -> int:
        """MBConv expanded width."""
        return self.cin * self.expand

    @property
    def has_skip(self) -> bool:
        """MBConv identity shortcut: present whenever the shapes allow it."""
        return self.kind == "mbconv" and self.stride == 1 and self.cin == self.cout

    @property
    def has_projection(self) -> bool:
        """ResNet basic block: 1x1 conv-BN shortcut when the shapes change."""
        return self.kind == "resblock" and (self.stride != 1 or self.cin != self.cout)

    # ---------------------------------------------------------------- costs
    def _parts(self) -> list[tuple[str, int, int, int, int, int, int]]:
        """Layers as (type, cin, cout, k, groups, out_h, out_w) for costing.

        Types: ``conv`` (no bias, BatchNorm after), ``conv_bias`` (with bias, no BatchNorm: ``patch_embed``),
        ``linear`` (weight + bias; also the SE's 1x1 convs on a 1x1 map), ``deconv`` (transposed conv with
        bias: out_h/out_w are its *input* size, so ``out_h * out_w * cout * cin * k * k`` counts its MACs as
        ONNX's graph does), ``matmul`` (a product of two activations: no weights)."""
        ho, wo = self.out_hw
        k, kind = self.kernel, self.kind
        if kind in ("conv", "stem"):
            return [("conv", self.cin, self.cout, k, self.groups, ho, wo)]
        if kind == "dwconv":
            return [("conv", self.cin, self.cin, k, self.cin, ho, wo)]
        if kind == "pwconv":
            return [("conv", self.cin, self.cout, 1, 1, ho, wo)]
        if kind == "dsconv":
            return [("conv", self.cin, self.cout, k, math.gcd(self.cin, self.cout), ho, wo)]
        if kind == "dsconv_pw":
            return [("conv", self.cin, self.cin, k, self.cin, ho, wo), ("conv", self.cin, self.cout, 1, 1, ho, wo)]
        if kind == "mbconv":
            parts = []
            if self.expand > 1:
                parts.append(("conv", self.cin, self.hidden, 1, 1, self.h, self.w))
            parts.append(("conv", self.hidden, self.hidden, k, self.hidden, ho, wo))
            parts.append(("conv", self.hidden, self.cout, 1, 1, ho, wo))
            return parts
        if kind == "resblock":
            parts = [("conv", self.cin, self.cout, k, 1, ho, wo), ("conv", self.cout, self.cout, k, 1, ho, wo)]
            if self.has_projection:
                parts.append(("conv", self.cin, self.cout, 1, 1, ho, wo))
            return parts
        if kind == "linear":
            return [("linear", self.cin, self.cout, 1, 1, self.tokens, 1)]
        if kind == "head":
            parts = []
            width = self.cin
            if self.mid:
                parts.append(("conv", self.cin, self.mid, 1, 1, self.h, self.w))
                width = self.mid
            parts.append(("linear", width, self.cout, 1, 1, 1, 1))
            return parts
        if kind == "se":
            return [("linear", self.cin, self.mid, 1, 1, 1, 1), ("linear", self.mid, self.cin, 1, 1, 1, 1)]
        if kind == "attention":  # q @ k^T (contracting the head dim), then scores @ v (contracting tokens)
            n, t, d = self.heads, self.tokens, self.cin
            return [("matmul", d, t, 1, 1, n, t), ("matmul", t, d, 1, 1, n, t)]
        if kind == "conv_transpose":
            return [("deconv", self.cin, self.cout, k, 1, self.h, self.w)]
        if kind == "patch_embed":
            return [("conv_bias", self.cin, self.cout, k, 1, ho, wo)]
        return []

    @property
    def flops(self) -> int:
        """Multiply-accumulates for batch 1, counted as :func:`hwlat.graph.vocab.node_macs` counts an
        exported graph: convs, linears and matmuls; one per window element for pooling; one per input
        element for global pooling (``gap``, ``head``, the squeeze of ``se``), softmax (also inside
        ``attention``) and normalisation (``layernorm``, ``batchnorm``); nothing for element-wise ops,
        activations, concat, resize, shuffles, pads, slices and transposes (``add``, ``scalar``, ``concat``,
        ``resize``, ``channel_shuffle``, ``pad``, ``slice``, ``transpose`` are 0)."""
        total = 0
        for _typ, cin, cout, k, groups, ho, wo in self._parts():
            total += ho * wo * cout * (cin // groups) * k * k
        if self.kind in ("avgpool", "maxpool"):
            ho, wo = self.out_hw
            total += ho * wo * self.cin * self.kernel * self.kernel
        elif self.kind == "gap" or (self.kind == "head"):
            total += self.h * self.w * (self.mid or self.cin)
        elif self.kind in ("se", "batchnorm"):
            total += self.h * self.w * self.cin
        elif self.kind in _TOKEN_KINDS:
            total += self.tokens * self.cin
        elif self.kind == "attention":
            total += self.heads * self.tokens * self.tokens
        return total

    def _act_channels(self) -> int:
        """Channels of every activation the op applies (PReLU has one slope per channel)."""
        kind = self.kind
        if kind in ("conv", "stem", "dwconv", "pwconv", "dsconv", "conv_transpose", "patch_embed"):
            return self.cout
        if kind == "dsconv_pw":
            return self.cin + self.cout
        if kind == "mbconv":
            return self.hidden * (2 if self.expand > 1 else 1)
        if kind == "resblock":
            return 2 * self.cout
        if kind == "head":
            return self.mid
        if kind == "se":
            return self.mid
        if kind in ("add", "batchnorm", "scalar", "act"):
            return self.cin
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters: conv weights, BatchNorm scale+shift, linear weight+bias, transposed-conv
        weight+bias, LayerNorm/BatchNorm scale+shift, PReLU slopes."""
        total = 0
        for typ, cin, cout, k, groups, _, _ in self._parts():
            if typ == "linear":
                total += cin * cout + cout
            elif typ in ("deconv", "conv_bias"):
                total += cin * (cout // groups) * k * k + cout
            elif typ == "conv":
                total += cout * (cin // groups) * k * k + 2 * cout
        if self.kind in ("layernorm", "batchnorm"):
            total += 2 * self.cin
        if self.act == "prelu":
            total += self._act_channels()
        return total

    @property
    def bytes(self) -> int:
        """Bytes moved in fp32: input + output + weights (intermediates excluded); ``add`` and ``concat``
        also read their other inputs, a ``slice`` into n parts writes all n."""
        n_in = math.prod(self.input_shape)
        n_out = math.prod(self.output_shape) if self.kind != "zero" else 0
        if self.kind == "add":
            n_in *= 2
        elif self.kind == "concat":
            n_in = n_out
        elif self.kind == "slice":
            n_out *= self.outputs
        return BYTES_PER_ELEMENT * (n_in + n_out + self.params)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, MACs per byte moved."""
        return self.flops / self.bytes

    FEATURE_NAMES: ClassVar[tuple[str, ...]] = (
        "cin",
        "cout",
        "h",
        "w",
        "kernel",
        "stride",
        "expand",
        "mid",
        "out_h",
        "out_w",
        "flops",
        "params",
        "bytes",
        "intensity",
    )

    def features(self) -> dict[str, float]:
        """Numeric features for predictors: shape parameters and cost counters, as floats.

        The counters are exact Python ints (:attr:`flops` of a large op can pass 2**63, where
        an int64 array would overflow); the features are their float values.

        The kernel-vocabulary kinds fill the same columns (a predictor fits one model per kind):
        sequence kinds report ``tokens`` as ``h``; ``attention`` ``heads`` as ``mid``; ``concat``
        ``inputs``, ``channel_shuffle`` ``groups`` and ``slice`` ``outputs`` as ``expand``; ``conv`` with groups
        its group count as ``expand`` (1, as before, without); ``resize`` its scale as ``stride`` and its taps
        per axis (nearest 1, bilinear 2) as ``kernel``; ``se`` a hard-sigmoid gate as ``kernel`` 2;
        ``transpose`` ``heads`` as ``mid``; ``patch_embed`` its stride (= kernel) as ``stride``; ``conv`` and
        ``dwconv`` a dilation above 1 as ``mid`` (0 without; a stride along the width shows in ``out_w``)."""
        ho, wo = self.out_hw
        h, kernel, stride, expand, mid = self.h, self.kernel, self.stride, self.expand, self.mid
        if self.kind in (*_TOKEN_KINDS, "attention") or (self.kind == "linear" and self.tokens > 1):
            h = self.tokens
        if self.kind in ("attention", "transpose"):
            mid = self.heads
        elif self.kind == "slice":
            expand = self.outputs
        elif self.kind == "patch_embed":
            stride = self.kernel
        elif self.kind == "concat":
            expand = self.inputs
        elif self.kind in ("conv", "channel_shuffle"):
            expand = self.groups
        elif self.kind == "resize":
            stride, kernel = self.scale, RESIZE_MODES.index(self.mode) + 1
        elif self.kind == "se":
            kernel = GATES.index(self.gate) + 1
        if self.dilation > 1:  # conv, dwconv
            mid = self.dilation
        values = {
            "cin": self.cin,
            "cout": self.cout,
            "h": h,
            "w": self.w,
            "kernel": kernel,
            "stride": stride,
            "expand": expand,
            "mid": mid,
            "out_h": ho,
            "out_w": wo,
            "flops": self.flops,
            "params": self.params,
            "bytes": self.bytes,
            "intensity": self.intensity,
        }
        return {k: float(v) for k, v in values.items()}

    # ---------------------------------------------------------------- build
    def build(self):
        """Return an ``nn.Module`` (eval mode) computing this op on :attr:`input_shape`."""
        from hwlat import _modules

        return _modules.build_op(self).eval()

    @property
    def has_nhwc_twin(self) -> bool:
        """Whether :meth:`build_nhwc` returns a module (cheap: imports no torch)."""
        return self.kind in _NHWC_TWINS

    def build_nhwc(self):
        """The module on channel-last input and output (NHWC), with :meth:`build`'s weights, for the kinds
        a TFLite converter would otherwise leave wrapped in layout TRANSPOSEs (``se``, ``concat``,
        ``channel_shuffle``, ``pad``); None for the others, whose :meth:`build` converts cleanly."""
        if not self.has_nhwc_twin:
            return None
        from hwlat import _modules

        return _modules.build_op_nhwc(self, _modules.build_op(self)).eval()

    def __str__(self) -> str:
        return self.key


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(OpSpec)}
