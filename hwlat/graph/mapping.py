"""From a kernel to the hwlat op kinds that can stand for it (and why none can).

A convolution kernel becomes ``conv``/``pwconv``/``dwconv`` (or ``stem`` for a 3-channel input)
when its geometry is one those kinds build: a square kernel, strides of 1 or 2 (a stride along the
width of its own is ``stride_w``), a square dilation, ``same`` padding and an activation hwlat
builds; a conv whose stride is its kernel, unpadded, is a ``patch_embed``. A fused residual add
keeps the kind (the note says so). Linear layers, pools (also after LiteRT's explicit PADV2) and
global average pools map to their kinds; the rest to the kernel vocabulary (:func:`vocab_spec`).
Blocks (:func:`compose_blocks`) map consecutive kernels to ``mbconv``, ``dsconv_pw`` and
``head`` where a predictor knows those kinds but not their parts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from hwlat.graph.core import Graph, Node
from hwlat.graph.vocab import op_category

__all__ = ["compose_blocks", "describe_kernel"]

_ACT = {
    "relu": "relu",
    "relu6": "relu6",
    "hardswish": "hswish",
    "silu": "silu",
    "sigmoid": "sigmoid",
    "prelu": "prelu",
    "gelu": "gelu",
    "hardsigmoid": "hsigmoid",
    "tanh": "tanh",
}


def _activation(nodes: Sequence[Node]) -> tuple[str | None, str]:
    """The kernel's activation in OpSpec terms ("none" if there is none), or None and the reason."""
    fused = [n.attr("fused_act") for n in nodes if n.attr("fused_act")]  # TFLite: inside conv/add
    acts = fused + [n.op for n in nodes if op_category(n.op) == "activation"]
    if not acts:
        return "none", ""
    if len(acts) > 1:
        return None, f"two activations ({', '.join(acts)})"
    if acts[0] not in _ACT:
        return None, f"activation {acts[0]} has no op kind yet"
    return _ACT[acts[0]], ""


def _spec(kind: str, **fields: Any):
    """An OpSpec, or the reason it is not one."""
    from hwlat.ops import OpSpec

    try:
        return OpSpec(kind, **fields), ""
    except (ValueError, TypeError) as exc:
        return None, str(exc).split(";")[0]


def describe_kernel(
    graph: Graph, rule: str, chain: Sequence[Node], nodes: Sequence[Node], in_shape: tuple[int, ...]
) -> tuple[str, tuple, str, str]:
    """(type, OpSpecs best first, why none, note) of one kernel.

    ``chain`` holds the kernel's nodes with composites collapsed (a decomposed hardswish is one
    node there), ``nodes`` the original nodes."""
    head = chain[0]
    if rule in ("se", "attention", "channel_shuffle"):
        return rule, (), f"no op kind for {rule} kernels yet", ""
    if head.op == "pad" and len(chain) > 1 and chain[1].op == "conv":  # explicit padding, then a VALID conv
        return _conv(graph, chain[1], chain, in_shape, padded_from=in_shape)
    if head.op == "pad" and len(chain) > 1 and chain[1].op in ("maxpool", "avgpool"):  # LiteRT: PADV2 + a VALID pool
        return _pool(graph, chain[1], in_shape, padded_from=in_shape)
    if head.op == "conv":
        return _conv(graph, head, chain, in_shape)
    if rule == "linear" or head.op in ("gemm", "matmul"):
        return _linear(graph, rule, head, chain, in_shape)
    if head.op in ("maxpool", "avgpool"):
        return _pool(graph, head, in_shape)
    if head.op in ("global_avgpool", "reduce_mean") and rule not in ("se",):
        return _gap(graph, head, in_shape)
    typ = rule if rule not in ("elementwise", "norm") else _category_type(head)
    return typ, (), f"no op kind for {typ} kernels yet", ""


# ------------------------------------------------------------------ the kernel vocabulary (hwlat.ops.VOCAB_KINDS)
def vocab_spec(graph: Graph, k: Any, chain: Sequence[Node] | None = None, layout: str = "") -> tuple[Any, str]:
    """(OpSpec, "") of a kernel the conv/linear/pool kinds do not cover, from the kernel vocabulary
    (se, add, scalar, concat, resize, softmax, layernorm, attention, conv_transpose,
    channel_shuffle, batchnorm, pad, act, slice, transpose), or (None, why not). ``chain``: the kernel's
    nodes with composites collapsed (a decomposed hardswish is one node there), when the caller has
    them; ``layout``: the runtime's layout of image tensors (:attr:`hwlat.graph.kernels.RuleSet.layout`)."""
    nodes, head, ins = k.nodes, k.nodes[0], tuple(k.input_shape)
    if k.type == "se":
        return _se(graph, nodes, ins)
    chain = list(chain or nodes)
    if op_category(chain[0].op) == "activation" and len(ins) >= 2:  # also a composite (GELU as x * erf(...))
        act, why = _activation(chain)
        if act is None:
            return None, why
        cin, h, w = graph.chw(ins) if len(ins) == 4 else (ins[-1], math.prod(ins[1:-1]) or 1, 1)
        return _spec("act", cin=cin, h=h, w=w, act=act)
    if head.op in ("add", "sub", "mul", "div") and len(ins) in (2, 3, 4):
        return _elementwise(graph, head, nodes, ins)
    if head.op == "concat":
        return _concat(graph, head)
    if head.op == "resize":
        cin, h, w = graph.chw(ins)
        _, ho, wo = graph.chw(tuple(graph.out(head).shape))
        if ho % h or wo % w or ho // h != wo // w:
            return None, "resize by a non-integer or non-uniform scale has no op kind"
        mode = "bilinear" if head.attr("mode") == "linear" or head.source_op == "RESIZE_BILINEAR" else "nearest"
        return _spec("resize", cin=cin, h=h, w=w, scale=ho // h, mode=mode)
    lead = chain[0]  # a LayerNorm written out is one composite node
    if lead.op in ("softmax", "layernorm") and len(chain) == 1:
        written_out = len(nodes) > 1 and graph.out(head).size * (ins[-1] if ins else 1) != math.prod(ins)
        if lead.attr("axis", -1) % len(ins) != len(ins) - 1 or written_out:
            return None, f"{lead.op} over another axis than the last has no op kind"
        return _spec(lead.op, cin=ins[-1], tokens=math.prod(ins[1:-1]) if len(ins) > 1 else 1)
    if k.type == "attention":
        q = tuple(graph.activations(nodes[0])[0].shape)
        if len(q) < 3:
            return None, "attention on 2-D operands has no op kind"
        return _spec("attention", cin=q[-1], heads=math.prod(q[1:-2]) if len(q) > 3 else q[0], tokens=q[-2])
    if head.op == "conv_transpose":
        return _conv_transpose(graph, head, nodes, ins, k.output_shape)
    if k.type == "channel_shuffle":
        return _shuffle(graph, nodes, ins)
    if head.op == "transpose" and len(nodes) == 1:
        return _transpose(graph, head)
    if op_category(head.op) == "slice" and len(nodes) == 1:
        return _slice(graph, head, layout)
    if head.op == "batchnorm":
        cin, h, w = graph.chw(ins)
        act, why = _activation(nodes[1:])
        return _spec("batchnorm", cin=cin, h=h, w=w, act=act) if act else (None, why)
    if head.op == "pad" and len(nodes) == 1:
        cin, h, w = graph.chw(ins)
        cout, ho, wo = graph.chw(tuple(k.output_shape))
        if (ho, wo) != (h, w):
            return None, "a spatial pad not followed by a conv has no op kind"
        return _spec("pad", cin=cin, cout=cout, h=h, w=w)
    return None, ""


def _se(graph: Graph, nodes: Sequence[Node], ins: tuple[int, ...]) -> tuple[Any, str]:
    mats = [n for n in nodes if n.op in ("conv", "gemm", "matmul")]
    if len(mats) != 2:
        return None, "an SE block without two projections"
    mid = graph.out(mats[0]).shape
    mid = mid[1] if len(mid) == 4 and graph.layout == "NCHW" else mid[-1]
    after = nodes[nodes.index(mats[1]) :]
    gate = "sigmoid" if any(n.op == "sigmoid" for n in after) else "hsigmoid"
    act, why = _activation(nodes[nodes.index(mats[0]) + 1 : nodes.index(mats[1])])
    if act is None:
        return None, f"SE block: {why}"
    cin, h, w = graph.chw(ins)
    return _spec("se", cin=cin, mid=mid, h=h, w=w, act=act, gate=gate)


def _elementwise(graph: Graph, head: Node, nodes: Sequence[Node], ins: tuple[int, ...]) -> tuple[Any, str]:
    acts, consts = graph.activations(head), graph.constants(head)
    act, why = _activation(nodes[1:])
    if act is None:
        return None, why
    cin, h, w = graph.chw(ins) if len(ins) == 4 else (ins[-1], math.prod(ins[1:-1]), 1)
    if len(acts) == 2 and acts[0].shape == acts[1].shape:
        return _spec("add", cin=cin, h=h, w=w, act=act)
    if len(acts) == 1 and len(consts) == 1 and consts[0].size == math.prod(ins) > cin:
        # a constant as large as the input (a ViT's position embedding): reads as much as a second activation
        return _spec("add", cin=cin, h=h, w=w, act=act)
    if len(acts) == 1 and consts and all(c.size in (1, cin) for c in consts):
        return _spec("scalar", cin=cin, h=h, w=w, act=act)
    full = math.prod(ins)
    if len(acts) == 2 and head.op in ("mul", "add") and sorted(t.size for t in acts) == [cin, full]:
        # x * gate(c, 1, 1) (an SE gate the runtime's rules did not fold into an se kernel): a per-channel
        # broadcast, which moves the same bytes as a product with a per-channel constant
        return _spec("scalar", cin=cin, h=h, w=w, act=act)
    return None, "a broadcast product of two activations has no op kind yet"


def _concat(graph: Graph, head: Node) -> tuple[Any, str]:
    """A channel concat; or one along another axis with nothing before it or nothing after it (a ViT's class
    token joined to the patch tokens), as the concat of that many channels over h = the rest, w = 1. Constant
    inputs count as inputs: the concat kind holds its other inputs as constants too."""
    acts = graph.activations(head)
    parts = [graph.tensors[t] for t in head.inputs if t]
    out = graph.out(head).shape
    axis = head.attr("axis", 0) % max(1, len(out))
    if not acts or any(len(p.shape) != len(out) for p in parts):
        return None, "only concats of activations have an op kind"
    if len(out) == 4 and axis == (1 if graph.layout == "NCHW" else 3):
        cin, h, w = graph.chw(tuple(acts[0].shape))
        cout, n = graph.chw(tuple(out))[0], len(parts)
        if n > 1 and (cout - cin) % (n - 1):  # unequal inputs (GoogLeNet): the same total in equal other inputs
            cin += (cout - cin) % (n - 1)
        return _spec("concat", cin=cin, cout=cout, h=h, w=w, inputs=n)
    outer, inner = math.prod(out[:axis]), math.prod(out[axis + 1 :])
    if min(outer, inner) != 1:
        return None, "a concat along a middle axis (not channels) has no op kind"
    return _spec("concat", cin=acts[0].shape[axis], cout=out[axis], h=outer * inner, w=1, inputs=len(parts))


def _conv_transpose(graph: Graph, head: Node, nodes, ins, out_shape) -> tuple[Any, str]:
    cin, h, w = graph.chw(ins)
    ks, st = head.attr("kernel"), head.attr("stride")
    if len(set(ks)) != 1 or len(set(st)) != 1 or head.attr("groups", 1) != 1:
        return None, "a non-square or grouped transposed conv has no op kind"
    _, ho, wo = graph.chw(tuple(out_shape))
    if (ho, wo) != (h * st[0], w * st[0]):
        return None, "a transposed conv whose output is not stride x its input has no op kind"
    act, why = _activation(nodes)
    if act is None:
        return None, why
    return _spec("conv_transpose", cin=cin, cout=head.attr("cout"), h=h, w=w, kernel=ks[0], stride=st[0], act=act)


def _category_type(head: Node) -> str:
    from hwlat.graph.vocab import op_category

    cat = op_category(head.op)
    return head.op if cat in ("norm", "activation") else cat


def _conv(
    graph: Graph, head: Node, nodes: Sequence[Node], in_shape, padded_from: tuple[int, ...] | None = None
) -> tuple[str, tuple, str, str]:
    cin, h, w = graph.chw(tuple(in_shape))
    cout, groups = head.attr("cout"), head.attr("groups", 1)
    kernel, stride, dil = head.attr("kernel", (1, 1)), head.attr("stride", (1, 1)), head.attr("dilation", (1, 1))
    if groups == 1:
        typ = "pwconv" if tuple(kernel) == (1, 1) and tuple(stride) == (1, 1) else "conv"
    elif groups == cin and cout == cin:
        typ = "dwconv"
    elif groups == cin:
        typ = "dwconv_multiplier"
    else:
        typ = "grouped_conv"
    note = "includes a residual add" if any(n.op == "add" for n in nodes) else ""
    if _patchify(head, cin, h, w, padded_from):
        act, why = _activation(nodes)
        if act is None:
            return "patch_embed", (), why, note
        spec, why = _spec("patch_embed", cin=cin, cout=cout, h=h, w=w, kernel=kernel[0], act=act)
        return "patch_embed", (spec,) if spec else (), why, note
    if len(kernel) != 2 or kernel[0] != kernel[1]:
        return typ, (), f"kernel {'x'.join(map(str, kernel))} is not square", note
    if len(stride) != 2 or any(s not in (1, 2) for s in stride):
        return typ, (), f"stride {'x'.join(map(str, stride))} (op kinds have stride 1 or 2)", note
    if len(set(dil)) > 1:
        return typ, (), f"dilation {'x'.join(map(str, dil))} is not square", note
    k, d = kernel[0], (dil or (1,))[0]
    pads, padding = head.attr("pads"), head.attr("padding")
    if padded_from is not None:  # PAD then a VALID conv: 'same' when the pad adds d * (k - 1) or 2 * d * (k // 2)
        _, ph, pw = graph.chw(tuple(graph.activations(head)[0].shape))
        valid = padding == "valid" or (padding is None and not any(pads or ()))  # ONNX: Pad, then a conv with no pads
        same = valid and all(p - q in (d * (k - 1), 2 * d * (k // 2)) for p, q in ((ph, h), (pw, w)))
    elif padding is not None:  # TFLite: SAME or VALID
        same = padding == "same" or k == 1
    else:
        same = pads is None or all(p == d * (k // 2) for p in pads)
    if not same:  # VALID or other padding: the 'same' conv with this output size does the same MACs
        _, oh, ow = graph.chw(tuple(graph.out(head).shape))
        h, w = oh * stride[0], ow * stride[1]
        note = "; ".join(x for x in (note, f"padding {pads or padding}: as the 'same' conv of its output size") if x)
    act, why = _activation(nodes)
    if act is None:
        return typ, (), why, note
    geometry = {"stride": stride[0], "stride_w": stride[1], "dilation": d}  # 2x1 strides, dilation: conv, dwconv
    if typ == "grouped_conv" or typ == "dwconv_multiplier":  # conv with groups
        spec, why = _spec("conv", cin=cin, cout=cout, h=h, w=w, kernel=k, act=act, groups=groups, **geometry)
        return typ, (spec,) if spec else (), why, note
    if typ == "dwconv":
        spec, why = _spec("dwconv", cin=cin, h=h, w=w, kernel=k, act=act, **geometry)
        return typ, (spec,) if spec else (), why, note
    specs = []
    if typ == "pwconv":
        spec, why = _spec("pwconv", cin=cin, cout=cout, h=h, w=w, act=act)
        specs.append(spec)
    spec, why2 = _spec("conv", cin=cin, cout=cout, h=h, w=w, kernel=k, act=act, **geometry)
    specs.append(spec)
    if cin == 3 and stride[0] == stride[1] and d == 1:
        stem, _ = _spec("stem", cin=cin, cout=cout, h=h, w=w, kernel=k, stride=stride[0], act=act)
        specs.append(stem)
    specs = tuple(s for s in specs if s is not None)
    return typ, specs, "" if specs else (why or why2), note


def _patchify(head: Node, cin: int, h: int, w: int, padded_from) -> bool:
    """A conv whose stride is its (square, >= 2) kernel, with no padding, groups or dilation: a patch embedding."""
    kernel, stride = tuple(head.attr("kernel", (1, 1))), tuple(head.attr("stride", (1, 1)))
    if padded_from is not None or len(kernel) != 2 or kernel[0] != kernel[1] or kernel[0] < 2 or stride != kernel:
        return False
    if head.attr("groups", 1) != 1 or any(d != 1 for d in head.attr("dilation", (1, 1))):
        return False
    pads, padding, k = head.attr("pads"), head.attr("padding"), kernel[0]
    if padding is not None:  # TFLite: SAME pads nothing either when the kernel tiles the input
        return padding == "valid" or (h % k == 0 and w % k == 0)
    return not any(pads or ())


# ------------------------------------------------------------------ slices and transposes
def _slice(graph: Graph, head: Node, layout: str = "") -> tuple[Any, str]:
    """A Slice, Gather, Split (ONNX) or SLICE, STRIDED_SLICE, SPLIT, GATHER, UNPACK (TFLite) as the ``slice``
    kind: the input viewed as (before, axis, after) around the one axis it cuts. An NCHW graph's channel split
    on a channel-last runtime (``layout`` NHWC) is mapped as that runtime runs it (h = n * h * w, w = 1)."""
    acts = graph.activations(head)
    if not acts or not head.outputs:
        return None, ""
    ins = tuple(acts[0].shape)
    outs = [graph.tensors[t].shape for t in head.outputs if t]
    out = tuple(outs[0])
    if len(out) == len(ins):
        axes = [a for a in range(len(ins)) if ins[a] != out[a]]
        if len(axes) != 1:
            return None, "a slice along several axes has no op kind" if axes else "a slice that keeps all of its input"
        axis, cout = axes[0], out[axes[0]]
    elif len(out) == len(ins) - 1:  # Gather of one index, UNPACK: the axis is dropped
        axis = head.attr("axis")
        cands = [a for a in range(len(ins)) if ins[:a] + ins[a + 1 :] == out]
        axis = axis % len(ins) if axis is not None and axis % len(ins) in cands else (cands or [None])[0]
        if axis is None:
            return None, f"a slice of {ins} to {out} has no op kind"
        cout = 1
    else:
        return None, f"a slice of {ins} to {out} has no op kind"
    n = len(outs) if head.op == "split" else 1
    if n > 1 and any(tuple(o) != out for o in outs):
        return None, "a split into unequal parts has no op kind"
    outer, inner = math.prod(ins[:axis]), math.prod(ins[axis + 1 :])
    if layout == "NHWC" and graph.layout == "NCHW" and len(ins) == 4 and axis == 1:
        outer, inner = outer * inner, 1
    return _spec("slice", cin=ins[axis], cout=cout, h=outer, w=inner, outputs=n)


def _reduced(shape: Sequence[int], perm: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A transpose's canonical form: axes of size 1 dropped, axes that stay next to each other (and in
    order) merged. Returns the merged input shape and the permutation of its axes."""
    keep = [a for a in range(len(shape)) if shape[a] > 1]
    rank = {a: i for i, a in enumerate(keep)}
    groups: list[list[int]] = []
    for a in (a for a in perm if shape[a] > 1):
        if groups and groups[-1][-1] + 1 == rank[a]:
            groups[-1].append(rank[a])
        else:
            groups.append([rank[a]])
    order = sorted(range(len(groups)), key=lambda g: groups[g][0])
    dims = tuple(math.prod(shape[keep[r]] for r in groups[g]) for g in order)
    return dims, tuple(order.index(g) for g in range(len(groups)))


# Canonical permutations that swap two groups of axes: (heads?, h, w, cin?) -> (heads?, w, h, cin?).
_SWAPS = {(1, 0): (False, False), (0, 2, 1): (True, False), (1, 0, 2): (False, True), (0, 2, 1, 3): (True, True)}


def _swap(shape: Sequence[int], perm: Sequence[int]) -> tuple[dict[str, int] | None, str]:
    """The ``transpose`` kind's fields (heads, h, w, cin) of a transpose, or None and why not."""
    dims, q = _reduced(shape, perm)
    if len(q) < 2:
        return None, "a transpose that moves only axes of size 1 has no op kind"
    if q not in _SWAPS:
        return None, f"a transpose that is not a swap of two groups of axes (permutation {q} of {dims})"
    outer, inner = _SWAPS[q]
    heads = dims[0] if outer else 1
    return {"heads": heads, "h": dims[int(outer)], "w": dims[int(outer) + 1], "cin": dims[-1] if inner else 1}, ""


def _perm(graph: Graph, node: Node) -> tuple[int, ...] | None:
    """A transpose node's permutation: ONNX's attribute; TFLite keeps it in a constant the graph does not read,
    so it is the one the shapes allow that swaps two groups of axes (the reversal when none does)."""
    ins, out = tuple(graph.activations(node)[0].shape), tuple(graph.out(node).shape)
    perm = node.attr("perm")
    if perm is not None:
        return tuple(perm) if perm else tuple(reversed(range(len(ins))))
    if len(ins) != len(out) or len(ins) > 6:
        return None
    cands = [p for p in itertools.permutations(range(len(ins))) if tuple(ins[a] for a in p) == out]
    swaps = [p for p in cands if _reduced(ins, p)[1] in _SWAPS]
    return (swaps or cands or [None])[0]


def _transpose(graph: Graph, node: Node) -> tuple[Any, str]:
    perm = _perm(graph, node)
    if perm is None:
        return None, "a transpose whose permutation is unknown has no op kind"
    fields, why = _swap(graph.activations(node)[0].shape, perm)
    return _spec("transpose", **fields) if fields else (None, why)


def _shuffle(graph: Graph, nodes: Sequence[Node], ins: tuple[int, ...]) -> tuple[Any, str]:
    """A reshape -> transpose -> reshape kernel: a ``channel_shuffle`` when it swaps channel groups of an image
    in the graph's layout, otherwise the ``transpose`` its transpose is (attention's k^T in a TFLite graph, a
    shuffle of NCHW channels inside an NHWC graph)."""
    node = next((n for n in nodes if n.op == "transpose"), None)
    perm = _perm(graph, node) if node is not None else None
    if perm is None:
        return None, "a reshape-transpose-reshape whose permutation is unknown has no op kind"
    fields, why = _swap(graph.activations(node)[0].shape, perm)
    if fields is None:
        return None, why
    if len(ins) == 4:
        cin, h, w = graph.chw(ins)
        around = (1, h * w) if graph.layout == "NCHW" else (h * w, 1)
        if (fields["heads"], fields["cin"]) == around and fields["h"] * fields["w"] == cin:
            return _spec("channel_shuffle", cin=cin, h=h, w=w, groups=fields["h"])
    return _spec("transpose", **fields)


def _linear(graph: Graph, rule: str, head: Node, nodes: Sequence[Node], in_shape) -> tuple[str, tuple, str, str]:
    out = graph.out(head).shape
    if not head.attr("weight_const", False):
        typ = "matmul"
        return typ, (), "a product of two activations (attention) has no op kind yet", ""
    rows = 1
    for d in in_shape[:-1]:
        rows *= d
    typ = "linear"
    act, why = _activation(nodes)
    note = f"activation {act} not in the linear kind" if act not in (None, "none") else ""
    tokens = {} if rows == 1 else {"tokens": rows}  # a linear layer over tokens (transformers)
    spec, why = _spec("linear", cin=int(head.attr("k", in_shape[-1])), cout=int(out[-1]), **tokens)
    return typ, (spec,) if spec else (), why, note


def _pool(
    graph: Graph, head: Node, in_shape, padded_from: tuple[int, ...] | None = None
) -> tuple[str, tuple, str, str]:
    cin, h, w = graph.chw(tuple(in_shape))
    kernel, stride = head.attr("kernel", (1, 1)), head.attr("stride", (1, 1))
    if len(set(kernel)) != 1 or len(set(stride)) != 1:
        return head.op, (), "non-square pooling has no op kind yet", ""
    if padded_from is not None:  # PAD then a VALID pool: 'same' when the pad adds k - 1 or 2 * (k // 2)
        k = kernel[0]
        _, ph, pw = graph.chw(tuple(graph.activations(head)[0].shape))
        pads = head.attr("pads")
        valid = head.attr("padding") == "valid" or (head.attr("padding") is None and not any(pads or ()))
        if not valid or not all(p - q in (k - 1, 2 * (k // 2)) for p, q in ((ph, h), (pw, w))):
            return head.op, (), f"a pad of {h}x{w} to {ph}x{pw} before a {k}x{k} pool is not 'same' padding", ""
    spec, why = _spec(head.op, cin=cin, h=h, w=w, kernel=kernel[0], stride=stride[0])
    return head.op, (spec,) if spec else (), why, ""


def _gap(graph: Graph, head: Node, in_shape) -> tuple[str, tuple, str, str]:
    cin, h, w = graph.chw(tuple(in_shape))
    out = graph.out(head).shape
    if len(in_shape) == 4 and len(out) == 2 and out[-1] != cin and out[-1] in in_shape[1:]:
        # a mean over the other layout (TFLite converters transpose NHWC -> NCHW first): the channels are kept
        rest = list(in_shape[1:])
        rest.remove(out[-1])
        cin, (h, w) = out[-1], rest
    spatial_gone = len(out) == 2 or (len(out) == 4 and graph.chw(tuple(out))[1:] == (1, 1))
    if not spatial_gone or len(in_shape) != 4:
        return "reduce", (), "a reduction that is not a global average pool has no op kind yet", ""
    spec, why = _spec("gap", cin=cin, h=h, w=w)
    return "gap", (spec,) if spec else (), why, ""


# ------------------------------------------------------------------ blocks
def compose_blocks(kernels: Sequence[Any], graph: Graph) -> list[tuple[tuple[Any, ...], Any]]:
    """Runs of consecutive kernels that one block kind builds: ``[(kernels, OpSpec), ...]``.

    Recognised: ``mbconv`` (1x1 expand with act, depthwise with act, 1x1 project without act, the
    residual add when the block has one), ``mbconv`` with expand 1 (depthwise, 1x1 project),
    ``dsconv_pw`` (depthwise, 1x1 both with act) and ``head`` (1x1 conv with act, global pool, linear).
    A predictor uses a block where it knows the block's kind but not its parts.
    """
    from hwlat.ops import OpSpec

    out: list[tuple[tuple[Any, ...], Any]] = []
    outputs = [k.nodes[-1].outputs[0] if k.nodes[-1].outputs else "" for k in kernels]

    def follows(i: int, j: int) -> bool:
        return j < len(kernels) and outputs[i] in kernels[j].nodes[0].inputs

    def kind(k) -> str:
        """The kernel's kind; a conv strided 2x1 or dilated is none of the blocks' parts."""
        s = k.specs[0] if k.specs else None
        return "" if s is None else s.kind if s.stride_w == 0 and s.dilation == 1 else f"{s.kind}*"

    for i, k in enumerate(kernels):
        s = k.specs[0] if k.specs else None
        if s is None:
            continue
        cand = None
        if kind(k) == "pwconv" and s.act != "none" and follows(i, i + 1) and kind(kernels[i + 1]) == "dwconv":
            dw = kernels[i + 1].specs[0]
            if (
                follows(i + 1, i + 2)
                and kind(kernels[i + 2]) in ("pwconv", "conv")
                and kernels[i + 2].specs[0].act == "none"
            ):
                pj = kernels[i + 2].specs[0]
                if s.cout % s.cin == 0 and dw.act == s.act and pj.kernel == 1:
                    cand = (
                        (k, kernels[i + 1], kernels[i + 2]),
                        dict(
                            expand=s.cout // s.cin,
                            kernel=dw.kernel,
                            stride=dw.stride,
                            cout=pj.cout,
                            act=s.act,
                            cin=s.cin,
                            h=s.h,
                            w=s.w,
                        ),
                    )
        elif kind(k) == "dwconv" and follows(i, i + 1) and kind(kernels[i + 1]) in ("pwconv", "conv"):
            pj = kernels[i + 1].specs[0]
            if pj.kernel == 1 and pj.act == "none":
                cand = (
                    (k, kernels[i + 1]),
                    dict(expand=1, kernel=s.kernel, stride=s.stride, cout=pj.cout, act=s.act, cin=s.cin, h=s.h, w=s.w),
                )
            elif pj.kernel == 1 and pj.act == s.act:
                try:
                    spec = OpSpec(
                        "dsconv_pw", cin=s.cin, cout=pj.cout, h=s.h, w=s.w, kernel=s.kernel, stride=s.stride, act=s.act
                    )
                    out.append(((k, kernels[i + 1]), spec))
                except ValueError:
                    pass
        elif kind(k) == "pwconv" and s.act != "none" and follows(i, i + 1) and kind(kernels[i + 1]) == "gap":
            if follows(i + 1, i + 2) and kind(kernels[i + 2]) == "linear":
                lin = kernels[i + 2].specs[0]
                try:
                    spec = OpSpec("head", cin=s.cin, mid=s.cout, cout=lin.cout, h=s.h, w=s.w, act=s.act)
                    out.append(((k, kernels[i + 1], kernels[i + 2]), spec))
                except ValueError:
                    pass
        if cand is not None:
            parts, f = cand
            try:
                out.append((parts, OpSpec("mbconv", **f)))
            except ValueError:
                pass
    return out
