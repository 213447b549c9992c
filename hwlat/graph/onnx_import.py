"""ONNX files (and ModelProtos) into a :class:`~hwlat.graph.core.Graph`.

Shapes come from onnx's shape inference after the inputs' dynamic dimensions are fixed (from
``input_shape`` and the batch); when onnx leaves a tensor unresolved, ONNX Runtime's symbolic
shape inference is tried; what neither resolves is refused with the node names. Control flow
(If, Loop, Scan), ops outside :data:`hwlat.graph.vocab.ONNX_OPS` and unknown element types are
refused with one error naming each op type, its count and where it occurs.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from hwlat.graph.core import DTYPE_BYTES, Graph, GraphError, Node, Tensor, format_shape
from hwlat.graph.vocab import CONTROL_FLOW, ONNX_OPS, refuse_ops

__all__ = ["graph_from_onnx", "load_onnx", "onnx_input_specs"]


def load_onnx(path: str | Path):
    """The ModelProto of ``path`` (external data is not loaded: weights' values are not needed)."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise GraphError(f"{path}: not a readable ONNX file (corrupt or truncated?): {exc}") from None
    except Exception as exc:  # onnx raises its own errors for bad protobufs
        raise GraphError(f"{path}: not a readable ONNX file (corrupt or truncated?): {exc}") from None
    if not model.graph.node:
        raise GraphError(f"{path}: the ONNX file has no nodes (not a model, or truncated)")
    return model


def _dtype(elem_type: int, where: str) -> str:
    import onnx

    try:
        name = onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError):
        name = ""
    if name not in DTYPE_BYTES:
        label = (
            onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        )
        raise GraphError(f"{where}: element type {label} is not supported (float, int and bool types are)")
    return name


def _dims(type_proto) -> list[int | str | None]:
    """A tensor type's dims: ints, names of symbolic dims, or None where nothing is known."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return []
    out: list[int | str | None] = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def onnx_input_specs(model) -> list[tuple[str, list[int | str | None], int]]:
    """(name, dims, elem_type) of each real input (initializers listed as inputs are not inputs)."""
    inits = {i.name for i in model.graph.initializer}
    return [(i.name, _dims(i.type), i.type.tensor_type.elem_type) for i in model.graph.input if i.name not in inits]


def _fixed_inputs(model, input_shapes: dict[str, tuple[int, ...]], batch: int | None, label: str) -> dict[str, tuple]:
    """Each input's static shape: the file's, with ``input_shapes`` and ``batch`` filling dynamic dims."""
    specs = onnx_input_specs(model)
    names = [n for n, _, _ in specs]
    if None in input_shapes:  # a shape given without a name is the first input's
        if len(specs) > 1 and len(input_shapes) == 1:
            raise GraphError(
                f"{label} has {len(specs)} inputs ({', '.join(names)}): "
                "give --input-shape NAME:SHAPE for each dynamic one"
            )
        input_shapes = {names[0]: input_shapes[None], **{k: v for k, v in input_shapes.items() if k is not None}}
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise GraphError(f"{label} has no input {unknown[0]!r}; its inputs are {', '.join(names)}")
    fixed: dict[str, tuple] = {}
    for name, dims, _ in specs:
        if name in input_shapes:
            shape = input_shapes[name]
            if len(shape) != len(dims) and dims:
                raise GraphError(
                    f"{label}: input {name!r} has {len(dims)} dimensions ({_show(dims)}), --input-shape gives "
                    f"{len(shape)} ({format_shape(shape)})"
                )
            for d, s in zip(dims, shape):
                if isinstance(d, int) and d != s:
                    raise GraphError(
                        f"{label}: input {name!r} is fixed at {_show(dims)}; --input-shape {format_shape(shape)} "
                        "disagrees (only dynamic dimensions can be set)"
                    )
            fixed[name] = tuple(shape)
            continue
        filled = list(dims)
        if filled and not isinstance(filled[0], int) and batch is not None:
            filled[0] = batch
        if not filled or any(not isinstance(d, int) for d in filled):
            example = "x".join(
                str(d) if isinstance(d, int) else ("1" if i == 0 else "224") for i, d in enumerate(filled or [None])
            )
            raise GraphError(
                f"{label}: input {name!r} has dynamic dimensions ({_show(dims)}): give "
                f"--input-shape {'' if len(specs) == 1 else name + ':'}{example} "
                "(or input_shape= in Python)"
            )
        fixed[name] = tuple(filled)
    return fixed


def _show(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims) or "no shape"


def _set_input_dims(model, fixed: dict[str, tuple]) -> None:
    for inp in model.graph.input:
        if inp.name in fixed:
            shape = inp.type.tensor_type.shape
            del shape.dim[:]
            for d in fixed[inp.name]:
                shape.dim.add().dim_value = int(d)


def _infer(model, label: str):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # noqa: BLE001  (onnx raises InferenceError and others)
        raise GraphError(f"{label}: onnx shape inference failed: {str(exc).splitlines()[0]}") from None


def _fold_shapes(model, label: str, rounds: int = 10):
    """Shape inference, with shape arithmetic (Shape, Cast, Slice, Concat, Gather, ...) folded into
    constants between rounds, until nothing more folds: onnx's data propagation stops at Cast."""
    for _ in range(rounds):
        del model.graph.value_info[:]
        model = _infer(model, label)
        if not _fold_once(model):
            break
    return model


_INT_OPS = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "floor_divide", "Mod": "mod"}
# What shape arithmetic is made of; only tensors of at most _SMALL elements are ever folded.
_FOLDABLE = frozenset(
    {"Constant", "Shape", "Cast", "Slice", "Concat", "Gather", "Unsqueeze", "Squeeze", "Reshape", "Equal", "Less"}
    | {"Greater", "Max", "Min", "Where", "Neg", "Expand", "ConstantOfShape", "Transpose", *_INT_OPS}
)
_SMALL = 64


def _fold_once(model) -> int:
    """Replace nodes computing small integer tensors from known values by initializers; the count folded."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    shapes = {n: d for n, (d, _) in _value_shapes(model).items()}
    # weights are never part of shape arithmetic: only small tensors are read (and converted) at all
    val = {i.name: numpy_helper.to_array(i) for i in g.initializer if math.prod(i.dims) <= _SMALL}
    folded = []
    for n in g.node:
        if n.op_type not in _FOLDABLE:
            continue
        if n.op_type == "Constant":
            t = next((x.t for x in n.attribute if x.name == "value"), None)
            if t is not None and math.prod(t.dims) <= _SMALL:
                val[n.output[0]] = numpy_helper.to_array(t)
            continue
        a = _attrs(n)
        ins = [val.get(i) for i in n.input]
        out = None
        try:
            if n.op_type == "Shape":
                d = shapes.get(n.input[0])
                if d and all(isinstance(x, int) for x in d):
                    out = np.array(d, np.int64)[slice(a.get("start"), a.get("end"))]
            elif not n.input or ins[0] is None or ins[0].dtype.kind not in "iub":
                out = None
            elif n.op_type == "Cast":
                out = ins[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]))
            elif n.op_type == "Slice" and all(x is not None for x in ins):
                starts, ends = ins[1], ins[2]
                axes = ins[3] if len(ins) > 3 else np.arange(len(starts))
                steps = ins[4] if len(ins) > 4 else np.ones_like(starts)
                sl = [slice(None)] * ins[0].ndim
                for st, en, ax, sp in zip(starts, ends, axes, steps):
                    sl[int(ax)] = slice(int(st), int(en), int(sp))
                out = ins[0][tuple(sl)]
            elif n.op_type == "Concat" and all(x is not None for x in ins):
                out = np.concatenate(ins, axis=a.get("axis", 0))
            elif n.op_type == "Gather" and all(x is not None for x in ins):
                out = np.take(ins[0], ins[1], axis=a.get("axis", 0))
            elif n.op_type in ("Unsqueeze", "Squeeze"):
                axes = a.get("axes") if "axes" in a else (ins[1] if len(ins) > 1 else None)
                if axes is not None:
                    axes = tuple(int(x) for x in np.atleast_1d(axes))
                    out = np.expand_dims(ins[0], axes) if n.op_type == "Unsqueeze" else np.squeeze(ins[0], axes)
                elif n.op_type == "Squeeze":
                    out = np.squeeze(ins[0])
            elif n.op_type in _INT_OPS and all(x is not None for x in ins):
                out = getattr(np, _INT_OPS[n.op_type])(*ins)
            elif n.op_type == "Reshape" and len(ins) > 1 and ins[1] is not None:
                target = [int(d) for d in ins[1]]
                target = [ins[0].shape[i] if d == 0 and not a.get("allowzero") else d for i, d in enumerate(target)]
                out = ins[0].reshape(target)
            elif n.op_type in ("Equal", "Less", "Greater", "Max", "Min") and all(x is not None for x in ins):
                fn = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "Max": np.maximum, "Min": np.minimum}
                out = functools.reduce(fn[n.op_type], ins)
            elif n.op_type == "Where" and all(x is not None for x in ins):
                out = np.where(*ins)
            elif n.op_type == "Transpose":
                perm = a.get("perm")
                out = np.transpose(ins[0], [int(p) for p in perm] if perm is not None else None)
            elif n.op_type == "Neg":
                out = -ins[0]
            elif n.op_type == "Expand" and len(ins) > 1 and ins[1] is not None:
                out = ins[0] * np.ones([int(d) for d in ins[1]], dtype=ins[0].dtype)
            elif n.op_type == "ConstantOfShape":
                fill = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
                shape = [int(d) for d in ins[0]]
                out = np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype) if np.prod(shape) <= 64 else None
        except (ValueError, IndexError, TypeError, KeyError):
            out = None
        if out is not None and len(n.output) == 1 and np.asarray(out).size <= _SMALL:
            val[n.output[0]] = np.asarray(out)
            folded.append(n)
    for n in folded:
        g.node.remove(n)
        g.initializer.append(numpy_helper.from_array(val[n.output[0]], n.output[0]))
    return len(folded)


def _symbolic(model):
    """ONNX Runtime's symbolic shape inference (resolves more than onnx's), or None where it fails."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return None
    try:
        return SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
    except Exception:  # noqa: BLE001  (a best effort; the caller reports what stays unresolved)
        return None


def _value_shapes(model) -> dict[str, tuple[list, int]]:
    out = {}
    for vi in (*model.graph.input, *model.graph.value_info, *model.graph.output):
        out[vi.name] = (_dims(vi.type), vi.type.tensor_type.elem_type)
    return out


def _unresolved(model, shapes) -> list[str]:
    missing = []
    for node in model.graph.node:
        for t in node.output:
            dims, _ = shapes.get(t, ([None], 0))
            if t and (not shapes.get(t) or any(not isinstance(d, int) for d in dims)):
                missing.append(f"{node.name or node.op_type}:{t}")
    return missing


def _attrs(node) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def graph_from_onnx(
    model_or_path,
    *,
    input_shape: tuple[int, ...] | dict | None = None,
    batch: int | None = None,
    name: str | None = None,
    source: dict | None = None,
    label: str | None = None,
) -> Graph:
    """A Graph of an ONNX model (a path or a ModelProto).

    ``input_shape`` fixes the dynamic dimensions of the (first) input, or pass ``{name: shape}``;
    ``batch`` fills a dynamic batch dimension. Refuses control flow, unknown ops and dtypes, and
    shapes that cannot be inferred, with one error each.
    """
    import onnx

    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        model = load_onnx(path)
        label = label or str(path)
        name = name or path.stem
    else:
        model = onnx.ModelProto()
        model.CopyFrom(model_or_path)
        name = name or model.graph.name or "model"
        label = label or name
    _check_ops(model, label)
    shapes_in = input_shape if isinstance(input_shape, dict) else ({None: tuple(input_shape)} if input_shape else {})
    fixed = _fixed_inputs(model, shapes_in, batch, label)
    _set_input_dims(model, fixed)
    inferred = _fold_shapes(model, label)
    shapes = _value_shapes(inferred)
    consts = _constants(inferred)
    missing = [m for m in _unresolved(inferred, {**shapes, **consts}) if m.split(":", 1)[1] not in consts]
    if missing:
        better = _symbolic(inferred)
        if better is not None:
            shapes = {**shapes, **_value_shapes(better)}
            missing = [m for m in _unresolved(inferred, {**shapes, **consts}) if m.split(":", 1)[1] not in consts]
    if missing:
        raise GraphError(
            f"{label}: shape inference cannot resolve {len(missing)} tensors (e.g. {', '.join(missing[:3])}) at input "
            f"{', '.join(format_shape(s) for s in fixed.values())}; the model computes shapes at run time, "
            "which hwlat does not support"
        )
    tensors: dict[str, Tensor] = {}
    for t, (dims, elem) in consts.items():
        tensors[t] = Tensor(t, tuple(dims), _dtype(elem, f"{label}: constant {t!r}"), const=True)
    for t, (dims, elem) in shapes.items():
        if t not in tensors:
            tensors[t] = Tensor(t, tuple(dims), _dtype(elem, f"{label}: tensor {t!r}") if elem else "float32")
    nodes = []
    for i, node in enumerate(inferred.graph.node):
        nname = node.name or f"{node.op_type}_{i}"
        if node.op_type == "Constant":
            continue  # its output is a constant tensor
        if node.input and all(not t or tensors[t].const for t in node.input):
            for t in node.output:  # computed from constants only: folded by every runtime
                tensors[t] = Tensor(t, tensors[t].shape, tensors[t].dtype, const=True)
            continue
        nodes.append(_node(node, nname, tensors, inferred))
    inputs = tuple(fixed)
    outputs = tuple(o.name for o in inferred.graph.output)
    src = {"format": "onnx", "input_shape": format_shape(fixed[inputs[0]]) if inputs else "", **(source or {})}
    return Graph(name, tuple(_shape_only(nodes, tensors)), tensors, inputs, outputs, "NCHW", src)


def _check_ops(model, label: str) -> None:
    found = []
    for i, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type not in ONNX_OPS or node.op_type in CONTROL_FLOW:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            found.append((op, node.name or f"node {i}"))
    refuse_ops(label, found, "nodes")


def _constants(model) -> dict[str, tuple[list, int]]:
    out = {init.name: (list(init.dims), init.data_type) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None and value.t is not None:
                out[node.output[0]] = (list(value.t.dims), value.t.data_type)
            else:
                out[node.output[0]] = ([1], 1)
    return out


def _const_value(model, name: str):
    """The numpy value of a constant input (initializer or Constant node), or None."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def _node(node, nname: str, tensors: dict[str, Tensor], model) -> Node:
    op = ONNX_OPS[node.op_type]
    a = _attrs(node)
    ins = tuple(node.input)
    attrs: dict[str, Any] = {}
    x = tensors.get(ins[0]) if ins and ins[0] else None
    if op in ("conv", "conv_transpose"):
        w = tensors[ins[1]]
        groups = int(a.get("group", 1))
        kernel = tuple(int(k) for k in a.get("kernel_shape", w.shape[2:]))
        cin = x.shape[1] if x is not None and len(x.shape) > 1 else w.shape[1] * groups
        cout = w.shape[0] if op == "conv" else w.shape[1] * groups
        attrs.update(
            cin=int(cin),
            cout=int(cout),
            groups=groups,
            kernel=kernel,
            stride=tuple(int(s) for s in a.get("strides", (1,) * len(kernel))),
            dilation=tuple(int(d) for d in a.get("dilations", (1,) * len(kernel))),
            pads=tuple(int(p) for p in a.get("pads", (0,) * (2 * len(kernel)))),
            auto_pad=a.get("auto_pad", b"NOTSET").decode() if isinstance(a.get("auto_pad"), bytes) else "NOTSET",
        )
    elif op in ("maxpool", "avgpool"):
        kernel = tuple(int(k) for k in a.get("kernel_shape", (1, 1)))
        attrs.update(
            kernel=kernel,
            stride=tuple(int(s) for s in a.get("strides", (1,) * len(kernel))),
            pads=tuple(int(p) for p in a.get("pads", (0,) * (2 * len(kernel)))),
        )
    elif op == "gemm":
        shape = x.shape if x is not None else (1, 1)
        attrs.update(k=int(shape[0] if a.get("transA", 0) else shape[-1]), weight_const=tensors[ins[1]].const)
    elif op == "matmul":
        attrs.update(k=int(x.shape[-1]) if x is not None and x.shape else 1, weight_const=tensors[ins[1]].const)
    elif op == "clip":
        lo, hi = a.get("min"), a.get("max")
        if len(ins) > 1 and ins[1]:
            v = _const_value(model, ins[1])
            lo = float(v) if v is not None else None
        if len(ins) > 2 and ins[2]:
            v = _const_value(model, ins[2])
            hi = float(v) if v is not None else None
        if lo == 0.0 and hi == 6.0:
            op = "relu6"
        attrs.update(min=lo, max=hi)
    elif op in ("softmax", "log_softmax", "concat", "split", "gather", "flatten"):
        attrs["axis"] = int(a.get("axis", -1 if op in ("softmax", "log_softmax") else 0))
    elif op == "resize":
        mode = a.get("mode", b"nearest")
        attrs["mode"] = mode.decode() if isinstance(mode, bytes) else str(mode)
    elif op == "transpose":
        attrs["perm"] = tuple(int(p) for p in a.get("perm", ()))
    return Node(nname, op, ins, tuple(node.output), tuple(attrs.items()), node.op_type)


def _shape_only(nodes: list[Node], tensors: dict[str, Tensor]) -> list[Node]:
    """Mark nodes that only compute shapes (Shape, and integer ops on small tensors): they cost nothing."""
    out = []
    shape_tensors: set[str] = set()
    for n in nodes:
        outs = [tensors[t] for t in n.outputs if t]
        small_int = all(t.dtype in ("int64", "int32", "bool") and t.size <= 16 for t in outs)
        acts = [t for t in n.inputs if t and not tensors[t].const]
        if n.op == "shape" or (small_int and all(t in shape_tensors for t in acts)):
            shape_tensors.update(n.outputs)
            n = Node(n.name, n.op, n.inputs, n.outputs, (*n.attrs, ("shape_only", True)), n.source_op)
        out.append(n)
    return out
