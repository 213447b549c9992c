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
    "LIMITS",
    "list_op_kinds",
    "register_kind",
    "conv_out",
    "shape_limits",
]

ACTIVATIONS = ("relu", "relu6", "hswish", "none")
BYTES_PER_ELEMENT = 4  # fp32

# Shape bounds: (fields, default maximum, environment variable that overrides it). Far beyond any
# network measured here (the shipped tables stay under 1280 channels, 224 px, kernel 7), small enough
# that a typo (cin=1000000) is refused at once instead of being measured or predicted for hours.
LIMITS: dict[str, tuple[tuple[str, ...], int, str]] = {
    "channels": (("cin", "cout", "mid"), 65536, "HWLAT_MAX_CHANNELS"),
    "size": (("h", "w"), 8192, "HWLAT_MAX_SIZE"),
    "kernel": (("kernel",), 31, "HWLAT_MAX_KERNEL"),
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
    in this order) and the values some fields allow."""

    name: str
    fields: tuple[str, ...]
    allowed: tuple[tuple[str, tuple[int, ...]], ...] = (("stride", (1, 2)),)


KINDS: Registry[OpKind] = Registry("op kind")


def register_kind(name: str, fields: tuple[str, ...], **allowed: tuple[int, ...]) -> OpKind:
    """Register an op kind; ``allowed`` adds value sets (``stride`` is 1 or 2 for every kind)."""
    return KINDS.register(name, OpKind(name, fields, tuple({"stride": (1, 2), **allowed}.items())))


# Registration order, not sorted: feature columns and messages list the kinds this way.
OP_KINDS: tuple[str, ...] = tuple(
    k.name
    for k in (
        register_kind("conv", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("stem", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("dwconv", ("cin", "h", "w", "kernel", "stride", "act")),
        register_kind("pwconv", ("cin", "cout", "h", "w", "act")),
        register_kind(
            "mbconv", ("cin", "cout", "h", "w", "kernel", "stride", "expand", "act"), kernel=(3, 5, 7), expand=(1, 3, 6)
        ),
        register_kind("resblock", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("dsconv", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("dsconv_pw", ("cin", "cout", "h", "w", "kernel", "stride", "act")),
        register_kind("linear", ("cin", "cout")),
        register_kind("avgpool", ("cin", "h", "w", "kernel", "stride")),
        register_kind("maxpool", ("cin", "h", "w", "kernel", "stride")),
        register_kind("gap", ("cin", "h", "w")),
        register_kind("identity", ("cin", "h", "w")),
        register_kind("zero", ("cin", "cout", "h", "w", "stride")),
        register_kind("head", ("cin", "mid", "cout", "h", "w", "act")),
    )
)
_KIND_FIELDS: dict[str, tuple[str, ...]] = {k: KINDS.get(k).fields for k in OP_KINDS}
_INT_FIELDS = ("cin", "cout", "h", "w", "kernel", "stride", "expand", "mid")


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
        keep the channel count).
    h, w : int
        Input height and width (1 for ``linear``).
    kernel, stride, expand : int
        Kernel size, stride, MBConv expansion ratio.
    act : str
        Activation after the normalisation: one of :data:`ACTIVATIONS`.
    mid : int
        ``head`` only: width of the 1x1 feature-mix layer (0 = none).

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

    FIELDS: ClassVar[dict[str, tuple[str, ...]]] = _KIND_FIELDS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid op kind {self.kind!r}; valid kinds: {', '.join(OP_KINDS)}")
        used = _KIND_FIELDS[self.kind]
        if "cout" not in used or self.cout == 0:
            object.__setattr__(self, "cout", self.cin)
        # Fields a kind does not use are normalised so equal ops compare equal.
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in ("h", "w", "kernel", "stride", "expand", "act", "mid"):
            if name not in used:
                object.__setattr__(self, name, defaults[name])
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"OpSpec field {name!r} must be an int, got {value!r}")
        for name in ("cin", "cout", "h", "w", "kernel", "stride", "expand"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid {name}={getattr(self, name)} for {self.kind!r}: must be >= 1")
        if self.mid < 0:
            raise ValueError(f"Invalid mid={self.mid} for {self.kind!r}: must be >= 0")
        for name, limit, var in _current_limits():
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

    # ----------------------------------------------------------------- keys
    @property
    def key(self) -> str:
        """Canonical string, unique per op, parseable by :meth:`from_key`."""
        parts = [f"{name}={getattr(self, name)}" for name in _KIND_FIELDS[self.kind]]
        return f"{self.kind}:{','.join(parts)}"

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
            if not sep or name not in _KIND_FIELDS[kind]:
                raise ValueError(f"Invalid field {item!r} in op key {key!r}")
            try:
                kwargs[name] = value if name == "act" else int(value)
            except ValueError:
                raise ValueError(f"Invalid {name}={value!r} in op key {key!r}: must be an int") from None
        return cls(kind, **kwargs)

    def replace(self, **changes: Any) -> OpSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{n: getattr(self, n) for n in _KIND_FIELDS[self.kind]}}

    # --------------------------------------------------------------- shapes
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Input tensor shape for batch 1 (NCHW, or (1, C) for ``linear``)."""
        if self.kind == "linear":
            return (1, self.cin)
        return (1, self.cin, self.h, self.w)

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.kind in ("linear", "gap", "head"):
            return (1, 1)
        if self.kind == "identity":
            return (self.h, self.w)
        if self.kind in ("avgpool", "maxpool"):
            return (conv_out(self.h, self.kernel, self.stride), conv_out(self.w, self.kernel, self.stride))
        if self.kind == "zero" or self.kind == "pwconv":
            s = 1 if self.kind == "pwconv" else self.stride
            return (-(-self.h // s), -(-self.w // s))
        return (conv_out(self.h, self.kernel, self.stride), conv_out(self.w, self.kernel, self.stride))

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.kind in ("linear", "head"):
            return (1, self.cout)
        if self.kind == "gap":
            return (1, self.cin)
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
        """Layers as (type, cin, cout, k, groups, out_h, out_w) for costing."""
        ho, wo = self.out_hw
        k, kind = self.kernel, self.kind
        if kind in ("conv", "stem"):
            return [("conv", self.cin, self.cout, k, 1, ho, wo)]
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
            return [("linear", self.cin, self.cout, 1, 1, 1, 1)]
        if kind == "head":
            parts = []
            width = self.cin
            if self.mid:
                parts.append(("conv", self.cin, self.mid, 1, 1, self.h, self.w))
                width = self.mid
            parts.append(("linear", width, self.cout, 1, 1, 1, 1))
            return parts
        return []

    @property
    def flops(self) -> int:
        """Multiply-accumulates for batch 1 (pooling counts one per window element)."""
        total = 0
        for _typ, cin, cout, k, groups, ho, wo in self._parts():
            total += ho * wo * cout * (cin // groups) * k * k
        if self.kind in ("avgpool", "maxpool"):
            ho, wo = self.out_hw
            total += ho * wo * self.cin * self.kernel * self.kernel
        elif self.kind == "gap" or (self.kind == "head"):
            total += self.h * self.w * (self.mid or self.cin)
        return total

    @property
    def params(self) -> int:
        """Trainable parameters: conv weights, BatchNorm scale+shift, linear weight+bias."""
        total = 0
        for typ, cin, cout, k, groups, _, _ in self._parts():
            if typ == "linear":
                total += cin * cout + cout
            else:
                total += cout * (cin // groups) * k * k + 2 * cout
        return total

    @property
    def bytes(self) -> int:
        """Bytes moved in fp32: input + output + weights (intermediates excluded)."""
        n_in = math.prod(self.input_shape)
        n_out = math.prod(self.output_shape) if self.kind != "zero" else 0
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
        an int64 array would overflow); the features are their float values."""
        ho, wo = self.out_hw
        values = {
            "cin": self.cin,
            "cout": self.cout,
            "h": self.h,
            "w": self.w,
            "kernel": self.kernel,
            "stride": self.stride,
            "expand": self.expand,
            "mid": self.mid,
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

    def __str__(self) -> str:
        return self.key
