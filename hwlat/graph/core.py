"""The graph type: a DAG of nodes over named tensors, whatever file or module it came from.

A :class:`Graph` holds :class:`Node` objects in topological order and a :class:`Tensor` (shape,
dtype, constant or not) for every tensor they read or write. Node ops are hwlat's canonical op
names (:mod:`hwlat.graph.vocab`), so kernel rules (:mod:`hwlat.graph.kernels`) are written once
for ONNX, TFLite and torch models alike; ``source_op`` keeps the name the file used. Attributes
are canonical too: convolutions carry ``kernel``, ``stride``, ``dilation``, ``groups``, ``pads``,
``cin`` and ``cout`` in every format, and the graph knows its layout (NCHW or NHWC).

Only the standard library is imported here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["DTYPE_BYTES", "Graph", "GraphError", "Node", "Tensor", "format_shape", "parse_shape"]

DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "bool": 1,
}


class GraphError(ValueError):
    """A model hwlat cannot turn into a graph: the message names what and how to fix it."""


def format_shape(shape: Iterable[int]) -> str:
    """``(1, 3, 224, 224)`` -> ``"1x3x224x224"``."""
    return "x".join(str(int(d)) for d in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` (or ``1,3,224,224``) -> ``(1, 3, 224, 224)``; every dimension a whole number >= 1."""
    parts = [p for p in str(text).replace(",", "x").lower().split("x") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise GraphError(f"Invalid input shape {text!r}: give whole numbers >= 1 joined by x, e.g. 1x3x224x224")
    return dims


@dataclass(frozen=True)
class Tensor:
    """One tensor: its static shape, element type and whether it is a constant (weights)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    const: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES.get(self.dtype, 4)

    @property
    def is_weight(self) -> bool:
        """A constant that counts as parameters: float or 8-bit (quantised) values, not integer shapes."""
        return self.const and self.dtype.startswith(("float", "bfloat", "int8", "uint8"))


@dataclass(frozen=True)
class Node:
    """One operation: canonical ``op``, the file's ``source_op``, tensor names in and out, attributes."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: tuple[tuple[str, Any], ...] = ()
    source_op: str = ""

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default


@dataclass(eq=False)
class Graph:
    """A model as a DAG: nodes in topological order over named tensors.

    ``source`` is the provenance: ``format`` (onnx, tflite, torch, network), ``path``, ``sha256``
    of the file (or of the module's structure), and ``input_shape``.
    """

    name: str
    nodes: tuple[Node, ...]
    tensors: Mapping[str, Tensor]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    layout: str = "NCHW"
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = tuple(self.nodes)
        if self.layout not in ("NCHW", "NHWC"):
            raise GraphError(f"Invalid layout {self.layout!r}: NCHW or NHWC")
        known = set(self.inputs) | {t for t, v in self.tensors.items() if v.const}
        for node in self.nodes:
            for t in node.inputs:
                if t and t not in self.tensors:
                    raise GraphError(f"{self.name}: node {node.name} reads tensor {t!r}, which has no shape")
                if t and t not in known:
                    raise GraphError(f"{self.name}: node {node.name} reads {t!r} before it is written (not a DAG)")
            known.update(node.outputs)
            for t in node.outputs:
                if t not in self.tensors:
                    raise GraphError(f"{self.name}: node {node.name} writes tensor {t!r}, which has no shape")

    # ------------------------------------------------------------ structure
    @cached_property
    def producer(self) -> dict[str, Node]:
        return {t: n for n in self.nodes for t in n.outputs}

    @cached_property
    def consumers(self) -> dict[str, tuple[Node, ...]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for t in dict.fromkeys(n.inputs):
                if t:
                    out.setdefault(t, []).append(n)
        return {t: tuple(v) for t, v in out.items()}

    def activations(self, node: Node) -> list[Tensor]:
        """The node's non-constant inputs."""
        return [self.tensors[t] for t in node.inputs if t and not self.tensors[t].const]

    def constants(self, node: Node) -> list[Tensor]:
        return [self.tensors[t] for t in node.inputs if t and self.tensors[t].const]

    def out(self, node: Node, i: int = 0) -> Tensor:
        return self.tensors[node.outputs[i]]

    def chw(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(channels, height, width) of a 4-D activation shape in this graph's layout."""
        if len(shape) != 4:
            return (shape[-1] if shape else 1, 1, 1)
        if self.layout == "NCHW":
            return shape[1], shape[2], shape[3]
        return shape[3], shape[1], shape[2]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.tensors[self.inputs[0]].shape if self.inputs else ()

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    # ------------------------------------------------------------ counters
    def node_macs(self, node: Node) -> int:
        """Multiply-accumulates of one node (pooling counts one per window element, as OpSpec does)."""
        from hwlat.graph.vocab import node_macs

        return node_macs(self, node)

    def node_params(self, node: Node) -> int:
        return sum(t.size for t in self.constants(node) if t.is_weight)

    def node_bytes(self, node: Node) -> int:
        """Bytes read and written: activations in and out, plus its constants."""
        ins = sum(t.nbytes for t in self.activations(node))
        outs = sum(self.tensors[t].nbytes for t in node.outputs)
        return ins + outs + sum(t.nbytes for t in self.constants(node))

    @cached_property
    def macs(self) -> int:
        return sum(self.node_macs(n) for n in self.nodes)

    @cached_property
    def params(self) -> int:
        used = {t for n in self.nodes for t in n.inputs if t and self.tensors[t].is_weight}
        return sum(self.tensors[t].size for t in used)

    @cached_property
    def bytes(self) -> int:
        return sum(self.node_bytes(n) for n in self.nodes)

    def op_counts(self) -> Counter[str]:
        return Counter(n.op for n in self.nodes)

    def summary(self) -> str:
        fmt = self.source.get("format", "?")
        shape = format_shape(self.input_shape) if self.inputs else "?"
        return (
            f"{self.name} ({fmt}, input {shape}): {len(self.nodes)} nodes, {self.macs / 1e6:.1f} M MACs, "
            f"{self.params / 1e6:.2f} M params"
        )
