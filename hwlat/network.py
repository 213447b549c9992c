"""Whole networks: a name and an ordered tuple of :class:`~hwlat.ops.OpSpec`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwlat.ops import OpSpec

__all__ = ["Network"]


@dataclass(frozen=True)
class Network:
    """An ordered list of ops run one after the other.

    Its latency estimate is the sum over its ops plus a device overhead (see
    :mod:`hwlat.predict`). Consecutive ops must chain: each op's output shape
    is the next op's input shape.

    Examples
    --------
    >>> from hwlat.ops import OpSpec
    >>> net = Network("tiny", (OpSpec("stem", cin=3, cout=8, h=32, w=32, kernel=3, stride=2),
    ...                        OpSpec("head", cin=8, cout=10, h=16, w=16)))
    >>> net.input_shape
    (1, 3, 32, 32)
    """

    name: str
    ops: tuple[OpSpec, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Invalid network name {self.name!r}: must be a non-empty string")
        object.__setattr__(self, "ops", tuple(self.ops))
        if not self.ops:
            raise ValueError(f"Network {self.name!r} has no ops")
        for i, op in enumerate(self.ops):
            if not isinstance(op, OpSpec):
                raise TypeError(f"Network {self.name!r}: op {i} is {type(op).__name__}, expected OpSpec")
        for i, (a, b) in enumerate(zip(self.ops, self.ops[1:])):
            if a.output_shape != b.input_shape:
                raise ValueError(
                    f"Network {self.name!r}: op {i} ({a.key}) outputs {a.output_shape} "
                    f"but op {i + 1} ({b.key}) expects {b.input_shape}"
                )

    @property
    def key(self) -> str:
        """Stable identity: name plus a digest of the op keys."""
        digest = hashlib.sha1("|".join(op.key for op in self.ops).encode()).hexdigest()[:12]
        return f"net:{self.name}:{digest}"

    @property
    def kind(self) -> str:
        return "network"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.ops[0].input_shape

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    def build(self):
        """One ``nn.Sequential`` (eval mode) of the ops' modules."""
        from torch import nn

        return nn.Sequential(*(op.build() for op in self.ops)).eval()

    # ------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        return {"format": "hwlat.network/1", "name": self.name, "ops": [op.key for op in self.ops]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Network:
        if not isinstance(data, dict) or data.get("format") != "hwlat.network/1":
            raise ValueError("Not an hwlat network file: expected a JSON object with format 'hwlat.network/1'")
        if "name" not in data or not isinstance(data.get("ops"), list):
            raise ValueError("hwlat network file lacks 'name' or an 'ops' list of op keys")
        return cls(data["name"], tuple(OpSpec.from_key(k) for k in data["ops"]))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Network:
        """Load a network saved by :meth:`save` or a ProxylessNAS JSON config."""
        text = Path(path).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from exc
        if isinstance(data, dict) and data.get("format") == "hwlat.network/1":
            return cls.from_dict(data)
        from hwlat.zoo import from_proxyless_config

        return from_proxyless_config(data, name=Path(path).stem)

    def __len__(self) -> int:
        return len(self.ops)
