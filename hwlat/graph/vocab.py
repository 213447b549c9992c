"""hwlat's op vocabulary: the canonical op names graphs use, and how each format's ops map to them.

ONNX op types and TFLite builtin operators are renamed to one set of lower-case names (``conv``,
``matmul``, ``add``, ``hardswish``, ...), so the kernel rules and the MAC counts are written once.
An op missing from these tables cannot be imported: the importer's error names it with its count
and where it occurs. The tables are data; add a line to support a new op.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwlat.graph.core import Graph, Node

__all__ = ["CONTROL_FLOW", "ONNX_OPS", "TFLITE_OPS", "node_macs", "op_category", "refuse_ops"]

# Canonical op -> category (what a kernel made of it is called when nothing fuses it).
_CATEGORY: dict[str, str] = {
    **dict.fromkeys(("conv",), "conv"),
    **dict.fromkeys(("conv_transpose",), "conv_transpose"),
    **dict.fromkeys(("gemm", "matmul", "einsum"), "matmul"),
    **dict.fromkeys(
        (
            "relu",
            "relu6",
            "clip",
            "sigmoid",
            "hardsigmoid",
            "hardswish",
            "silu",
            "gelu",
            "tanh",
            "prelu",
            "leakyrelu",
            "elu",
            "selu",
            "softplus",
            "mish",
            "erf",
        ),
        "activation",
    ),
    **dict.fromkeys(
        (
            "add",
            "sub",
            "mod",
            "mul",
            "div",
            "pow",
            "sqrt",
            "rsqrt",
            "exp",
            "log",
            "neg",
            "abs",
            "reciprocal",
            "maximum",
            "minimum",
            "square",
            "squared_difference",
            "floor",
            "ceil",
            "round",
            "sign",
            "where",
            "equal",
            "greater",
            "less",
            "not",
            "and",
            "or",
            "sin",
            "cos",
        ),
        "elementwise",
    ),
    **dict.fromkeys(("batchnorm", "layernorm", "instancenorm", "groupnorm", "l2norm", "lrn"), "norm"),
    **dict.fromkeys(("softmax", "log_softmax"), "softmax"),
    **dict.fromkeys(("maxpool", "avgpool"), "pool"),
    **dict.fromkeys(("global_avgpool", "global_maxpool"), "global_pool"),
    **dict.fromkeys(
        ("reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin"), "reduce"
    ),
    **dict.fromkeys(("concat",), "concat"),
    **dict.fromkeys(("split", "slice", "gather", "strided_slice"), "slice"),
    **dict.fromkeys(("resize",), "resize"),
    **dict.fromkeys(("pad",), "pad"),
    **dict.fromkeys(("transpose", "depth_to_space", "space_to_depth"), "transpose"),
    **dict.fromkeys(("reshape", "flatten", "squeeze", "unsqueeze", "expand", "tile"), "reshape"),
    **dict.fromkeys(
        (
            "identity",
            "dropout",
            "shape",
            "constant",
            "constant_of_shape",
            "cast",
            "range",
            "size",
            "quantize",
            "dequantize",
            "densify",
        ),
        "meta",
    ),
    **dict.fromkeys(("topk",), "reduce"),
}

CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "WHILE", "IF", "CALL_ONCE", "CALL"})


def op_category(op: str) -> str:
    return _CATEGORY.get(op, op)


def ops_in_category(category: str) -> frozenset[str]:
    """The canonical ops of ``category`` (``activation``, ``elementwise``, ``norm``, ...)."""
    return frozenset(op for op, cat in _CATEGORY.items() if cat == category)


ONNX_OPS: dict[str, str] = {
    "Conv": "conv",
    "ConvTranspose": "conv_transpose",
    "Gemm": "gemm",
    "MatMul": "matmul",
    "Einsum": "einsum",
    "Relu": "relu",
    "Clip": "clip",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish",
    "Gelu": "gelu",
    "Tanh": "tanh",
    "PRelu": "prelu",
    "LeakyRelu": "leakyrelu",
    "Elu": "elu",
    "Selu": "selu",
    "Softplus": "softplus",
    "Mish": "mish",
    "Erf": "erf",
    "Add": "add",
    "Sub": "sub",
    "Mod": "mod",
    "Mul": "mul",
    "Div": "div",
    "Pow": "pow",
    "Sqrt": "sqrt",
    "Exp": "exp",
    "Log": "log",
    "Neg": "neg",
    "Abs": "abs",
    "Reciprocal": "reciprocal",
    "Max": "maximum",
    "Min": "minimum",
    "Floor": "floor",
    "Ceil": "ceil",
    "Round": "round",
    "Sign": "sign",
    "Where": "where",
    "Equal": "equal",
    "Greater": "greater",
    "Less": "less",
    "Not": "not",
    "And": "and",
    "Or": "or",
    "Sin": "sin",
    "Cos": "cos",
    "BatchNormalization": "batchnorm",
    "LayerNormalization": "layernorm",
    "InstanceNormalization": "instancenorm",
    "GroupNormalization": "groupnorm",
    "LRN": "lrn",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "MaxPool": "maxpool",
    "AveragePool": "avgpool",
    "GlobalAveragePool": "global_avgpool",
    "GlobalMaxPool": "global_maxpool",
    "ReduceMean": "reduce_mean",
    "ReduceSum": "reduce_sum",
    "ReduceMax": "reduce_max",
    "ReduceMin": "reduce_min",
    "ReduceProd": "reduce_prod",
    "ArgMax": "argmax",
    "ArgMin": "argmin",
    "TopK": "topk",
    "Concat": "concat",
    "Split": "split",
    "Slice": "slice",
    "Gather": "gather",
    "Resize": "resize",
    "Upsample": "resize",
    "Pad": "pad",
    "Transpose": "transpose",
    "DepthToSpace": "depth_to_space",
    "SpaceToDepth": "space_to_depth",
    "Reshape": "reshape",
    "Flatten": "flatten",
    "Squeeze": "squeeze",
    "Unsqueeze": "unsqueeze",
    "Expand": "expand",
    "Tile": "tile",
    "Identity": "identity",
    "Dropout": "dropout",
    "Shape": "shape",
    "Constant": "constant",
    "ConstantOfShape": "constant_of_shape",
    "Cast": "cast",
    "Range": "range",
    "Size": "size",
    "QuantizeLinear": "quantize",
    "DequantizeLinear": "dequantize",
}

TFLITE_OPS: dict[str, str] = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "conv",
    "TRANSPOSE_CONV": "conv_transpose",
    "FULLY_CONNECTED": "gemm",
    "BATCH_MATMUL": "matmul",
    "RELU": "relu",
    "RELU6": "relu6",
    "RELU_N1_TO_1": "clip",
    "RELU_0_TO_1": "clip",
    "LOGISTIC": "sigmoid",
    "HARD_SWISH": "hardswish",
    "GELU": "gelu",
    "TANH": "tanh",
    "PRELU": "prelu",
    "LEAKY_RELU": "leakyrelu",
    "ELU": "elu",
    "ADD": "add",
    "SUB": "sub",
    "MUL": "mul",
    "DIV": "div",
    "POW": "pow",
    "SQRT": "sqrt",
    "RSQRT": "rsqrt",
    "EXP": "exp",
    "LOG": "log",
    "NEG": "neg",
    "ABS": "abs",
    "MAXIMUM": "maximum",
    "MINIMUM": "minimum",
    "SQUARE": "square",
    "SQUARED_DIFFERENCE": "squared_difference",
    "FLOOR": "floor",
    "CEIL": "ceil",
    "ROUND": "round",
    "SIGN": "sign",
    "SELECT": "where",
    "SELECT_V2": "where",
    "EQUAL": "equal",
    "GREATER": "greater",
    "LESS": "less",
    "LOGICAL_NOT": "not",
    "SIN": "sin",
    "COS": "cos",
    "L2_NORMALIZATION": "l2norm",
    "LOCAL_RESPONSE_NORMALIZATION": "lrn",
    "SOFTMAX": "softmax",
    "LOG_SOFTMAX": "log_softmax",
    "MAX_POOL_2D": "maxpool",
    "AVERAGE_POOL_2D": "avgpool",
    "MEAN": "reduce_mean",
    "SUM": "reduce_sum",
    "REDUCE_MAX": "reduce_max",
    "REDUCE_MIN": "reduce_min",
    "REDUCE_PROD": "reduce_prod",
    "ARG_MAX": "argmax",
    "ARG_MIN": "argmin",
    "TOPK_V2": "topk",
    "CONCATENATION": "concat",
    "SPLIT": "split",
    "SPLIT_V": "split",
    "SLICE": "slice",
    "STRIDED_SLICE": "strided_slice",
    "GATHER": "gather",
    "GATHER_ND": "gather",
    "UNPACK": "split",
    "PACK": "concat",
    "RESIZE_BILINEAR": "resize",
    "RESIZE_NEAREST_NEIGHBOR": "resize",
    "PAD": "pad",
    "PADV2": "pad",
    "MIRROR_PAD": "pad",
    "TRANSPOSE": "transpose",
    "DEPTH_TO_SPACE": "depth_to_space",
    "SPACE_TO_DEPTH": "space_to_depth",
    "RESHAPE": "reshape",
    "SQUEEZE": "squeeze",
    "EXPAND_DIMS": "unsqueeze",
    "BROADCAST_TO": "expand",
    "TILE": "tile",
    "SHAPE": "shape",
    "CAST": "cast",
    "QUANTIZE": "quantize",
    "DEQUANTIZE": "dequantize",
    "DENSIFY": "densify",
    # MediaPipe's custom op, which LiteRT's XNNPACK delegate runs: inputs (x, weights [cout, kh, kw, cin], bias)
    "Convolution2DTransposeBias": "conv_transpose",
}


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of ``node`` at batch as in its shapes."""
    op = node.op
    out = graph.out(node) if node.outputs else None
    if op == "conv":
        return out.size * (node.attr("cin", 1) // max(1, node.attr("groups", 1))) * math.prod(node.attr("kernel", (1,)))
    if op == "conv_transpose":
        x = graph.activations(node)[0]
        return x.size * (node.attr("cout", 1) // max(1, node.attr("groups", 1))) * math.prod(node.attr("kernel", (1,)))
    if op in ("gemm", "matmul"):
        return out.size * int(node.attr("k", 1))
    if op in ("maxpool", "avgpool"):
        return out.size * math.prod(node.attr("kernel", (1,)))
    if op_category(op) in ("global_pool", "reduce", "softmax", "norm"):
        acts = graph.activations(node)
        return acts[0].size if acts else 0
    return 0


def refuse_ops(label: str, found: list[tuple[str, str]], unit: str = "nodes") -> None:
    """Raise one GraphError naming each op type of ``found`` ((op, where) pairs) with its count and first places."""
    from collections import Counter

    from hwlat.graph.core import GraphError

    if not found:
        return
    bad = Counter(op for op, _ in found)
    where: dict[str, list[str]] = {}
    for op, at in found:
        where.setdefault(op, []).append(at)
    parts = [f"{op} x{n} (at {', '.join(where[op][:2])}{', ...' if n > 2 else ''})" for op, n in bad.most_common()]
    why = "control flow is not supported" if any(op in CONTROL_FLOW for op in bad) else "hwlat has no mapping for them"
    raise GraphError(
        f"{label}: {len(found)} {unit} of {len(bad)} {'op ' if unit == 'nodes' else ''}types cannot be imported "
        f"({why}): " + "; ".join(parts)
    )
