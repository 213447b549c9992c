"""From a kernel to the hwlat op kinds that can stand for it (and why none can).

A convolution kernel becomes ``conv``/``pwconv``/``dwconv`` (or ``stem`` for a 3-channel input)
when its geometry is one those kinds build: a square kernel, stride 1 or 2, no dilation,
``same`` padding and an activation hwlat builds (relu, relu6, hswish or none). A fused residual
add keeps the kind (the note says so). Linear layers, pools and global average pools map to their
kinds. Blocks (:func:`compose_blocks`) map consecutive kernels to ``mbconv``, ``dsconv_pw`` and
``head`` where a predictor knows those kinds but not their parts.
"""

from __future__ import annotations

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
def vocab_spec(graph: Graph, k: Any, chain: Sequence[Node] | None = None) -> tuple[Any, str]:
    """(OpSpec, "") of a kernel the conv/linear/pool kinds do not cover, from the kernel vocabulary
    (se, add, scalar, concat, resize, softmax, layernorm, attention, conv_transpose,
    channel_shuffle, batchnorm, pad, act), or (None, why not). ``chain``: the kernel's nodes with
    composites collapsed (a decomposed hardswish is one node there), when the caller has them."""
    nodes, head, ins = k.nodes, k.nodes[0], tuple(k.input_shape)
    if k.type == "se":
        return _se(graph, nodes, ins)
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
    if head.op in ("softmax", "layernorm") and len(nodes) == 1:
        if head.attr("axis", -1) % len(ins) != len(ins) - 1:
            return None, f"{head.op} over another axis than the last has no op kind"
        return _spec(head.op, cin=ins[-1], tokens=math.prod(ins[1:-1]) if len(ins) > 1 else 1)
    if k.type == "attention":
        q = tuple(graph.activations(nodes[0])[0].shape)
        if len(q) < 3:
            return None, "attention on 2-D operands has no op kind"
        return _spec("attention", cin=q[-1], heads=math.prod(q[1:-2]) if len(q) > 3 else q[0], tokens=q[-2])
    if head.op == "conv_transpose":
        return _conv_transpose(graph, head, nodes, ins, k.output_shape)
    if k.type == "channel_shuffle":
        cin, h, w = graph.chw(ins)
        five = graph.out(head).shape
        return _spec("channel_shuffle", cin=cin, h=h, w=w, groups=five[1] if graph.layout == "NCHW" else five[3])
    if head.op == "batchnorm":
        cin, h, w = graph.chw(ins)
        act, why = _activation(nodes[1:])
        return _spec("batchnorm", cin=cin, h=h, w=w, act=act) if act else (None, why)
    chain = list(chain or nodes)
    if op_category(chain[0].op) == "activation" and len(ins) >= 2:
        act, why = _activation(chain)
        if act is None:
            return None, why
        cin, h, w = graph.chw(ins) if len(ins) == 4 else (ins[-1], math.prod(ins[1:-1]) or 1, 1)
        return _spec("act", cin=cin, h=h, w=w, act=act)
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
    if len(acts) == 1 and consts and all(c.size in (1, cin) for c in consts):
        return _spec("scalar", cin=cin, h=h, w=w, act=act)
    full = math.prod(ins)
    if len(acts) == 2 and head.op in ("mul", "add") and sorted(t.size for t in acts) == [cin, full]:
        # x * gate(c, 1, 1) (an SE gate the runtime's rules did not fold into an se kernel): a per-channel
        # broadcast, which moves the same bytes as a product with a per-channel constant
        return _spec("scalar", cin=cin, h=h, w=w, act=act)
    return None, "a broadcast product of two activations has no op kind yet"


def _concat(graph: Graph, head: Node) -> tuple[Any, str]:
    acts = graph.activations(head)
    out = graph.out(head).shape
    axis = head.attr("axis", 0) % max(1, len(out))
    if len(out) != 4 or axis != (1 if graph.layout == "NCHW" else 3) or len(acts) != len(head.inputs):
        return None, "only channel concats of activations have an op kind"
    cin, h, w = graph.chw(tuple(acts[0].shape))
    return _spec("concat", cin=cin, cout=graph.chw(tuple(out))[0], h=h, w=w, inputs=len(acts))


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
    if len(kernel) != 2 or kernel[0] != kernel[1]:
        return typ, (), f"kernel {'x'.join(map(str, kernel))} is not square", note
    if len(set(stride)) != 1 or stride[0] not in (1, 2):
        return typ, (), f"stride {'x'.join(map(str, stride))} (op kinds have stride 1 or 2)", note
    if any(d != 1 for d in dil):
        return typ, (), f"dilation {'x'.join(map(str, dil))} has no op kind yet", note
    k = kernel[0]
    pads, padding = head.attr("pads"), head.attr("padding")
    if padded_from is not None:  # PAD then a VALID conv: 'same' when the pad adds k - 1 or 2 * (k // 2)
        _, ph, pw = graph.chw(tuple(graph.activations(head)[0].shape))
        valid = padding == "valid" or (padding is None and not any(pads or ()))  # ONNX: Pad, then a conv with no pads
        same = valid and all(p - q in (k - 1, 2 * (k // 2)) for p, q in ((ph, h), (pw, w)))
    elif padding is not None:  # TFLite: SAME or VALID
        same = padding == "same" or k == 1
    else:
        same = pads is None or all(p == k // 2 for p in pads)
    if not same:
        return typ, (), f"padding {pads} is not 'same' (k // 2)", note
    act, why = _activation(nodes)
    if act is None:
        return typ, (), why, note
    if typ == "grouped_conv" or typ == "dwconv_multiplier":  # conv with groups
        spec, why = _spec("conv", cin=cin, cout=cout, h=h, w=w, kernel=k, stride=stride[0], act=act, groups=groups)
        return typ, (spec,) if spec else (), why, note
    if typ == "dwconv":
        spec, why = _spec("dwconv", cin=cin, h=h, w=w, kernel=k, stride=stride[0], act=act)
        return typ, (spec,) if spec else (), why, note
    specs = []
    if typ == "pwconv":
        spec, why = _spec("pwconv", cin=cin, cout=cout, h=h, w=w, act=act)
        specs.append(spec)
    spec, why2 = _spec("conv", cin=cin, cout=cout, h=h, w=w, kernel=k, stride=stride[0], act=act)
    specs.append(spec)
    if cin == 3:
        stem, _ = _spec("stem", cin=cin, cout=cout, h=h, w=w, kernel=k, stride=stride[0], act=act)
        specs.append(stem)
    specs = tuple(s for s in specs if s is not None)
    return typ, specs, "" if specs else (why or why2), note


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


def _pool(graph: Graph, head: Node, in_shape) -> tuple[str, tuple, str, str]:
    cin, h, w = graph.chw(tuple(in_shape))
    kernel, stride = head.attr("kernel", (1, 1)), head.attr("stride", (1, 1))
    if len(set(kernel)) != 1 or len(set(stride)) != 1:
        return head.op, (), "non-square pooling has no op kind yet", ""
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
        return k.specs[0].kind if k.specs else ""

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
