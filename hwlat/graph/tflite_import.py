"""TFLite flatbuffers into a :class:`~hwlat.graph.core.Graph`: ops and tensor shapes as LiteRT reads them.

LiteRT's interpreter lists each op (its builtin name, input and output tensor indices) and each
tensor (name, shape, dtype). Tensors no op writes and that are not model inputs are constants
(weights). Convolution geometry comes from the weight shapes (``CONV_2D`` weights are
``[cout, kh, kw, cin]``, ``DEPTHWISE_CONV_2D`` ``[1, kh, kw, cout]``) and the stride from the input
and output sizes; padding is taken to be ``same`` when the output size is ``ceil(in / stride)``.
Graphs are NHWC. A custom op LiteRT cannot resolve, an op outside
:data:`hwlat.graph.vocab.TFLITE_OPS` or control flow is refused with the op names and counts.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from hwlat.graph.core import DTYPE_BYTES, Graph, GraphError, Node, Tensor, format_shape
from hwlat.graph.vocab import CONTROL_FLOW, TFLITE_OPS, refuse_ops

__all__ = ["graph_from_tflite", "tflite_interpreter"]


def tflite_interpreter(path: str | Path, threads: int = 1):
    """A LiteRT interpreter of ``path`` (tensors not allocated); one-line errors for bad files and custom ops."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise GraphError("ai-edge-litert is not installed: pip install 'hwlat[tflite]'") from None
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise GraphError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier; corrupt or another format?)")
    try:
        return Interpreter(model_path=str(path), num_threads=threads)
    except (RuntimeError, ValueError) as exc:
        msg = str(exc)
        custom = re.findall(r"[Uu]nresolved custom op:? *'?([\w./-]+)", msg) or re.findall(
            r"custom op[^']*'([^']+)'", msg
        )
        if custom:
            ops = ", ".join(sorted(set(custom)))
            raise GraphError(
                f"{path}: uses custom op {ops}, which LiteRT cannot resolve (it needs the application's own "
                "op library; hwlat cannot run or import it)"
            ) from None
        first = next((line for line in msg.splitlines() if line.strip()), msg)
        raise GraphError(f"{path}: LiteRT cannot read the model (corrupt or truncated?): {first}") from None


def _dtype(value: Any, where: str) -> str:
    import numpy as np

    name = np.dtype(value).name
    if name not in DTYPE_BYTES:
        raise GraphError(f"{where}: element type {name} is not supported (float, int and bool types are)")
    return name


def graph_from_tflite(
    path: str | Path, *, name: str | None = None, batch: int | None = None, source: dict | None = None
) -> Graph:
    """A Graph of a ``.tflite`` file. The batch is the file's (``batch`` must agree or be None)."""
    path = Path(path)
    interp = tflite_interpreter(path)
    label = str(path)
    ops = interp._get_ops_details()
    details = interp.get_tensor_details()
    _check_ops(ops, label)
    options = _builtin_options(path)
    written = {int(t) for op in ops for t in op["outputs"]}
    input_ids = [d["index"] for d in interp.get_input_details()]
    output_ids = [d["index"] for d in interp.get_output_details()]
    names: dict[int, str] = {}
    tensors: dict[str, Tensor] = {}
    for d in details:
        tname = d["name"] or f"t{d['index']}"
        if tname in tensors:
            tname = f"{tname}#{d['index']}"
        names[d["index"]] = tname
        shape = tuple(int(s) for s in d["shape"])
        sig = tuple(int(s) for s in d.get("shape_signature", d["shape"]))
        if any(s < 0 for s in sig) and d["index"] in input_ids and batch is not None:
            shape = (batch, *shape[1:])
        const = d["index"] not in written and d["index"] not in input_ids
        tensors[tname] = Tensor(tname, shape, _dtype(d["dtype"], f"{label}: tensor {tname!r}"), const)
    if batch is not None and input_ids:
        first = tensors[names[input_ids[0]]].shape
        if first and first[0] != batch:
            raise GraphError(
                f"{label}: the model's batch is fixed at {first[0]} (input {format_shape(first)}); "
                f"use a device with /b{first[0]}"
            )
    nodes = []
    for op in ops:
        ins = tuple(names[int(t)] for t in op["inputs"] if int(t) >= 0)
        outs = tuple(names[int(t)] for t in op["outputs"] if int(t) >= 0)
        if ins and all(tensors[t].const for t in ins):  # DEQUANTIZE/DENSIFY of weights: prepared once, free
            for t in outs:
                tensors[t] = Tensor(t, tensors[t].shape, tensors[t].dtype, const=True)
            continue
        nodes.append(_node(op, ins, outs, tensors, options.get(int(op["index"]), {})))
    src = {"format": "tflite", **(source or {})}
    if input_ids:
        src.setdefault("input_shape", format_shape(tensors[names[input_ids[0]]].shape))
    return Graph(
        name or path.stem,
        tuple(nodes),
        tensors,
        tuple(names[i] for i in input_ids),
        tuple(names[i] for i in output_ids),
        "NHWC",
        src,
    )


def _check_ops(ops: list[dict], label: str) -> None:
    found = [
        (str(op["op_name"]), f"op {op['index']}")
        for op in ops
        if str(op["op_name"]) not in TFLITE_OPS or str(op["op_name"]) in CONTROL_FLOW
    ]
    refuse_ops(label, found, "ops")


_FUSED = {1: "relu", 2: "clip", 3: "relu6", 4: "tanh"}  # ActivationFunctionType (0: none)


def _builtin_options(path: Path) -> dict[int, dict[str, Any]]:
    """Per operator index of the main subgraph: padding, stride, dilation, pool window, fused activation.

    Read with the flatbuffer schema LiteRT ships (lazily, without unpacking the weights); empty when
    the schema module is not there (shapes then stand in for stride and padding).
    """
    try:
        from ai_edge_litert import schema_py_generated as S
    except ImportError:
        return {}
    buf = path.read_bytes()
    try:
        sub = S.Model.GetRootAs(buf, 0).Subgraphs(0)
    except Exception:  # noqa: BLE001  (a damaged file: the interpreter has read it, so keep the shapes' view)
        return {}
    kinds = {
        S.BuiltinOptions.Conv2DOptions: S.Conv2DOptions,
        S.BuiltinOptions.DepthwiseConv2DOptions: S.DepthwiseConv2DOptions,
        S.BuiltinOptions.Pool2DOptions: S.Pool2DOptions,
        S.BuiltinOptions.AddOptions: S.AddOptions,
        S.BuiltinOptions.SubOptions: S.SubOptions,
        S.BuiltinOptions.MulOptions: S.MulOptions,
        S.BuiltinOptions.DivOptions: S.DivOptions,
        S.BuiltinOptions.FullyConnectedOptions: S.FullyConnectedOptions,
        S.BuiltinOptions.ConcatenationOptions: S.ConcatenationOptions,
    }
    out: dict[int, dict[str, Any]] = {}
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        cls, table = kinds.get(op.BuiltinOptionsType()), op.BuiltinOptions()
        if cls is None or table is None:
            continue
        o = cls()
        o.Init(table.Bytes, table.Pos)
        d: dict[str, Any] = {}
        if hasattr(o, "FusedActivationFunction"):
            d["fused_act"] = _FUSED.get(o.FusedActivationFunction(), "none")
        if hasattr(o, "Padding"):
            d["padding"] = "same" if o.Padding() == S.Padding.SAME else "valid"
        if hasattr(o, "StrideH"):
            d["stride"] = (int(o.StrideH()), int(o.StrideW()))
        if hasattr(o, "DilationHFactor"):
            d["dilation"] = (int(o.DilationHFactor()), int(o.DilationWFactor()))
        if hasattr(o, "FilterHeight"):
            d["kernel"] = (int(o.FilterHeight()), int(o.FilterWidth()))
        if hasattr(o, "Axis"):
            d["axis"] = int(o.Axis())
        out[i] = d
    return out


def _node(
    op: dict, ins: tuple[str, ...], outs: tuple[str, ...], tensors: dict[str, Tensor], opts: dict[str, Any]
) -> Node:
    src = str(op["op_name"])
    canon = TFLITE_OPS[src]
    attrs: dict[str, Any] = {}
    x = tensors[ins[0]] if ins else None
    y = tensors[outs[0]] if outs else None
    if src in ("CONV_2D", "DEPTHWISE_CONV_2D") and x is not None and y is not None and len(ins) > 1:
        w = tensors[ins[1]].shape  # CONV_2D [cout, kh, kw, cin/groups]; DEPTHWISE [1, kh, kw, cout]
        cin, cout = x.shape[-1], y.shape[-1]
        kernel = (int(w[1]), int(w[2])) if len(w) == 4 else (1, 1)
        groups = cin if src == "DEPTHWISE_CONV_2D" else max(1, cin // int(w[3])) if len(w) == 4 and w[3] else 1
        stride = _stride(x.shape, y.shape)
        attrs.update(
            cin=int(cin),
            cout=int(cout),
            groups=int(groups),
            kernel=kernel,
            stride=stride,
            dilation=(1, 1),
            padding=_padding(x.shape, y.shape, stride, kernel),
            pads=None,
        )
    elif src == "Convolution2DTransposeBias" and x is not None and y is not None and len(ins) > 1:
        w = tensors[ins[1]].shape  # [cout, kh, kw, cin]
        attrs.update(
            cin=int(x.shape[-1]),
            cout=int(w[0]),
            groups=1,
            kernel=(int(w[1]), int(w[2])),
            stride=_stride(y.shape, x.shape),
        )
    elif src == "TRANSPOSE_CONV" and len(ins) > 2:
        w = tensors[ins[1]].shape  # [cout, kh, kw, cin]
        xin = tensors[ins[2]]
        attrs.update(
            cin=int(xin.shape[-1]),
            cout=int(w[0]),
            groups=1,
            kernel=(int(w[1]), int(w[2])),
            stride=_stride(y.shape, xin.shape) if y is not None else (1, 1),
        )
        ins = (ins[2], *ins[:2], *ins[3:])  # the activation first, as in ONNX
    elif src in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and x is not None and y is not None:
        stride = _stride(x.shape, y.shape)
        # the window is not in the op list; a 'same' pool of stride s is taken to have a window of
        # max(s, 2) + (s == 1), the common 2x2/s2 and 3x3/s1,s2 pools
        k = 3 if stride[0] == 1 else stride[0] + (1 if x.shape[1] % stride[0] else 0)
        attrs.update(kernel=(k, k), stride=stride, padding="same")
    elif src == "FULLY_CONNECTED" and x is not None and len(ins) > 1:
        w = tensors[ins[1]]  # [cout, cin]
        attrs.update(k=int(w.shape[-1]) if w.shape else 1, weight_const=w.const)
        if x.shape and len(x.shape) > 2:  # FC flattens all but the last dimension
            attrs["rows"] = math.prod(x.shape[:-1])
    elif src == "BATCH_MATMUL" and x is not None:
        attrs.update(k=int(x.shape[-1]) if x.shape else 1, weight_const=len(ins) > 1 and tensors[ins[1]].const)
    elif src == "MEAN" and x is not None and y is not None and len(x.shape) == 4:
        if len(y.shape) in (2, 4) and (len(y.shape) == 2 or y.shape[1:3] == (1, 1)):
            canon = "global_avgpool"
    if src == "AVERAGE_POOL_2D" and y is not None and len(y.shape) == 4 and y.shape[1:3] == (1, 1):
        canon = "global_avgpool"  # a window over the whole input (SE blocks in MediaPipe models)
    for name in ("padding", "stride", "dilation", "kernel", "axis"):
        if name in opts and (name != "kernel" or canon in ("maxpool", "avgpool")):
            attrs[name] = opts[name]
    if opts.get("fused_act", "none") != "none":
        attrs["fused_act"] = opts["fused_act"]
    return Node(f"{src}_{op['index']}", canon, ins, outs, tuple(attrs.items()), src)


def _stride(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, int]:
    if len(x) != 4 or len(y) != 4 or not y[1] or not y[2]:
        return (1, 1)
    return (max(1, round(x[1] / y[1])), max(1, round(x[2] / y[2])))


def _padding(x, y, stride, kernel) -> str:
    if len(x) != 4 or len(y) != 4:
        return "same"
    same = all(y[i] == -(-x[i] // s) for i, s in zip((1, 2), stride))
    return "same" if same or kernel == (1, 1) else "valid"
