"""hwlat.graph.kernels and mapping: nodes grouped into the kernels a runtime runs, and the op kinds for them."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwlat.graph import GraphError, detect_kernels, item_graph, rule_set, rule_set_for
from hwlat.graph.kernels import distinct, parse_rule_sets
from hwlat.graph.mapping import compose_blocks
from hwlat.graph.onnx_import import graph_from_onnx
from hwlat.zoo import get_network


def onnx_graph(nodes, inputs, outputs, inits=()):
    """A Graph of a hand-built ONNX model: inputs/outputs as {name: shape}."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        initializer=list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return graph_from_onnx(model, name="g")


def weight(name, *shape, value=None):
    data = np.full(shape, value, np.float32) if value is not None else np.random.default_rng(0).random(shape)
    return numpy_helper.from_array(np.asarray(data, np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def node(op, ins, outs, name, **attrs):
    return helper.make_node(op, ins, outs, name=name, **attrs)


def bn(name, x, y, c):
    inits = [weight(f"{name}_{p}", c, value=1.0) for p in "sbmv"]
    return node("BatchNormalization", [x, *(i.name for i in inits)], [y], name), inits


def covers_every_node(ks):
    names = [n.name for k in ks for n in k.nodes] + [n.name for n in ks.free]
    return sorted(names) == sorted(n.name for n in ks.graph.nodes)


def conv_bn_relu_add():
    b, bn_inits = bn("bn", "c", "n", 8)
    nodes = [
        node("Conv", ["x", "w", "wb"], ["c"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        b,
        node("Relu", ["n"], ["r"], "relu"),
        node("Add", ["r", "x"], ["y"], "res"),
    ]
    inits = [weight("w", 8, 8, 3, 3), weight("wb", 8), *bn_inits]
    return onnx_graph(nodes, {"x": [1, 8, 16, 16]}, {"y": [1, 8, 16, 16]}, inits)


def test_conv_bn_relu_and_residual_add_are_one_kernel():
    g = conv_bn_relu_add()
    for device in (None, "onnxruntime-cpu", "litert-cpu", "tensorrt"):
        ks = detect_kernels(g, device=device)
        assert len(ks) == 1 and covers_every_node(ks)
        (k,) = ks
        assert (k.name, k.type, k.ops) == ("conv", "conv", "Conv+BatchNormalization+Relu+Add")
        assert [s.key for s in k.specs] == ["conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=relu"]
        assert k.note == "includes a residual add"
        assert k.macs == g.macs and k.input_shape == (1, 8, 16, 16) and k.output_shape == (1, 8, 16, 16)
        assert k.params == 8 * 8 * 9 + 8 + 4 * 8


def test_torch_rules_fuse_nothing():
    ks = detect_kernels(conv_bn_relu_add(), device="torch-cpu")
    assert ks.rules.name == "torch"
    assert [k.type for k in ks] == ["conv", "batchnorm", "activation", "elementwise"]
    assert ks.kernels[0].specs[0].key == "conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=none"
    assert [k.specs[0].key if k.specs else k.why for k in ks] == [
        "conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=none",
        "batchnorm:cin=8,h=16,w=16,act=none",  # not folded in eager torch
        "act:cin=8,h=16,w=16,act=relu",  # a lone ReLU: the standalone activation kind
        "add:cin=8,h=16,w=16,act=none",  # the residual add of two activations
    ]


def test_lone_activations_are_act_kernels_on_litert():
    """LiteRT runs HARD_SWISH and TANH as ops of their own: each is an ``act`` kernel (a sequence's
    (1, tokens, C) as h=tokens, w=1)."""
    g = onnx_graph(
        [
            node("Conv", ["x", "w"], ["c"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            node("HardSwish", ["c"], ["h"], "hswish"),
            node("Reshape", ["h", "s"], ["r"], "flat"),
            node("Tanh", ["r"], ["y"], "tanh"),
        ],
        {"x": [1, 8, 16, 16]},
        {"y": [1, 8, 256]},
        [weight("w", 8, 8, 3, 3), ints("s", [1, 8, 256])],
    )
    lite = [k.specs[0].key if k.specs else k.why for k in detect_kernels(g, device="litert-cpu")]
    assert lite == [
        "conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=none",
        "act:cin=8,h=16,w=16,act=hswish",
        "act:cin=256,h=8,w=1,act=tanh",
    ]


def test_grouped_conv_is_a_conv_with_groups():
    nodes = [
        node("Conv", ["x", "w"], ["c"], "gconv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4),
        node("Relu", ["c"], ["y"], "relu"),
    ]
    g = onnx_graph(nodes, {"x": [1, 8, 16, 16]}, {"y": [1, 16, 16, 16]}, [weight("w", 16, 2, 3, 3)])
    (k,) = detect_kernels(g)
    assert (k.type, k.ops, k.why) == ("grouped_conv", "Conv+Relu", "")
    assert k.specs[0].key == "conv:cin=8,cout=16,h=16,w=16,kernel=3,stride=1,act=relu,groups=4"
    assert k.macs == 16 * 16 * 16 * 2 * 9 == k.specs[0].flops
    assert k.signature == k.specs[0].key


def test_depthwise_hardswish_and_composites():
    dw = [
        node("Conv", ["x", "w"], ["c"], "dw", kernel_shape=[5, 5], pads=[2, 2, 2, 2], strides=[2, 2], group=16),
        node("HardSwish", ["c"], ["y"], "hsw"),
    ]
    (k,) = detect_kernels(onnx_graph(dw, {"x": [1, 16, 16, 16]}, {"y": [1, 16, 8, 8]}, [weight("w", 16, 1, 5, 5)]))
    assert k.specs[0].key == "dwconv:cin=16,h=16,w=16,kernel=5,stride=2,act=hswish"
    # x * hardsigmoid(x) is collapsed into one hardswish, then fused into the convolution
    hs = [
        node("Conv", ["x", "w"], ["c"], "pw", kernel_shape=[1, 1]),
        node("HardSigmoid", ["c"], ["s"], "hsig", alpha=1 / 6),
        node("Mul", ["c", "s"], ["y"], "mul"),
    ]
    ks = detect_kernels(onnx_graph(hs, {"x": [1, 8, 16, 16]}, {"y": [1, 16, 16, 16]}, [weight("w", 16, 8, 1, 1)]))
    assert [k.ops for k in ks] == ["Conv+HardSigmoid+Mul"] and covers_every_node(ks)
    assert ks.kernels[0].specs[0].key == "pwconv:cin=8,cout=16,h=16,w=16,act=hswish"
    silu = [hs[0], node("Sigmoid", ["c"], ["s"], "sig"), hs[2]]
    ks = detect_kernels(onnx_graph(silu, {"x": [1, 8, 16, 16]}, {"y": [1, 16, 16, 16]}, [weight("w", 16, 8, 1, 1)]))
    assert [k.ops for k in ks] == ["Conv+Sigmoid+Mul"]
    assert ks.kernels[0].specs[0].key == "pwconv:cin=8,cout=16,h=16,w=16,act=silu"
    # sigmoid(x) * y of another tensor is no SiLU: the composite must close on its own input
    gate = [node("Sigmoid", ["a"], ["s"], "sig"), node("Mul", ["b", "s"], ["y"], "mul")]
    ks = detect_kernels(onnx_graph(gate, {"a": [1, 8], "b": [1, 8]}, {"y": [1, 8]}), rules="torch")
    assert [k.ops for k in ks] == ["Sigmoid", "Mul"]


@pytest.mark.parametrize(
    ("kernel", "attrs", "why"),
    [
        ([1, 3], {"pads": [0, 1, 0, 1]}, "kernel 1x3 is not square"),
        ([3, 3], {"pads": [1, 2, 1, 2], "dilations": [1, 2]}, "dilation 1x2 is not square"),
        ([3, 3], {"pads": [1, 1, 1, 1], "strides": [3, 3]}, "stride 3x3 (op kinds have stride 1 or 2)"),
    ],
)
def test_convolutions_op_kinds_cannot_build_say_why(kernel, attrs, why):
    conv = node("Conv", ["x", "w"], ["y"], "c", kernel_shape=kernel, **attrs)
    g = onnx_graph([conv], {"x": [1, 8, 18, 18]}, {"y": None}, [weight("w", 8, 8, *kernel)])
    (k,) = detect_kernels(g)
    assert k.type == "conv" and k.specs == () and k.why == why


@pytest.mark.parametrize(
    ("attrs", "key"),
    [
        # a dilated 3x3 with pad 1 (not d * (k // 2) = 2): 18 -> 16, as the 'same' dilated conv on 16x16
        (
            {"pads": [1, 1, 1, 1], "dilations": [2, 2]},
            "conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=none,dilation=2",
        ),
        # VALID: 18 -> 16, the same MACs as the 'same' conv on 16x16
        ({"pads": [0, 0, 0, 0]}, "conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=none"),
    ],
)
def test_convolutions_not_padded_same_are_the_same_conv_of_their_output(attrs, key):
    conv = node("Conv", ["x", "w"], ["y"], "c", kernel_shape=[3, 3], **attrs)
    g = onnx_graph([conv], {"x": [1, 8, 18, 18]}, {"y": None}, [weight("w", 8, 8, 3, 3)])
    (k,) = detect_kernels(g)
    assert [s.key for s in k.specs] == [key]
    assert k.specs[0].flops == g.macs == 16 * 16 * 8 * 8 * 9  # the MACs of the conv as it is
    assert "as the 'same' conv of its output size" in k.note


def test_2x1_strides_and_dilation_are_conv_fields():
    """PP-OCR's depthwise convs strided 2x1 and 1x2, a dilated conv: ``stride_w`` and ``dilation`` (in the key only
    when set), kept out of blocks (no block kind has them)."""
    dw = [
        node("Conv", ["x", "w"], ["c"], "dw", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 1], group=8),
        node("Relu", ["c"], ["r"], "relu"),
        node("Conv", ["r", "w2"], ["y"], "pw", kernel_shape=[1, 1]),
    ]
    inits = [weight("w", 8, 1, 3, 3), weight("w2", 16, 8, 1, 1)]
    g = onnx_graph(dw, {"x": [1, 8, 24, 96]}, {"y": [1, 16, 12, 96]}, inits)
    ks = detect_kernels(g)
    assert keys(ks) == [
        "dwconv:cin=8,h=24,w=96,kernel=3,stride=2,act=relu,stride_w=1",
        "pwconv:cin=8,cout=16,h=12,w=96,act=none",
    ]
    assert ks.kernels[0].macs == ks.kernels[0].specs[0].flops == 12 * 96 * 8 * 9
    assert compose_blocks(ks.kernels, g) == []  # not an expand-1 mbconv: that would be strided 2x2
    wide = node("Conv", ["x", "w"], ["y"], "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 2])
    g = onnx_graph([wide], {"x": [1, 8, 12, 160]}, {"y": None}, [weight("w", 8, 8, 3, 3)])
    assert keys(detect_kernels(g)) == ["conv:cin=8,cout=8,h=12,w=160,kernel=3,stride=1,act=none,stride_w=2"]
    dilated = node("Conv", ["x", "w"], ["y"], "c", kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2])
    g = onnx_graph([dilated], {"x": [1, 8, 18, 18]}, {"y": None}, [weight("w", 8, 8, 3, 3)])
    (k,) = detect_kernels(g)
    assert k.specs[0].key == "conv:cin=8,cout=8,h=18,w=18,kernel=3,stride=1,act=none,dilation=2"
    assert k.macs == k.specs[0].flops and k.specs[0].output_shape == (1, 8, 18, 18)


def test_explicit_pad_then_conv_is_same_padding():
    nodes = [
        node("Pad", ["x", "p"], ["xp"], "pad"),
        node("Conv", ["xp", "w"], ["y"], "conv", kernel_shape=[3, 3], strides=[2, 2]),
    ]
    inits = [ints("p", [0, 0, 1, 1, 0, 0, 1, 1]), weight("w", 16, 8, 3, 3)]
    (k,) = detect_kernels(onnx_graph(nodes, {"x": [1, 8, 16, 16]}, {"y": [1, 16, 8, 8]}, inits))
    assert k.ops == "Pad+Conv"
    assert k.specs[0].key == "conv:cin=8,cout=16,h=16,w=16,kernel=3,stride=2,act=none"


def test_channel_shuffle_is_one_kernel():
    nodes = [
        node("Reshape", ["x", "s1"], ["a"], "split_groups"),
        node("Transpose", ["a"], ["t"], "swap", perm=[0, 2, 1, 3, 4]),
        node("Reshape", ["t", "s2"], ["y"], "merge_groups"),
    ]
    inits = [ints("s1", [1, 2, 4, 4, 4]), ints("s2", [1, 8, 4, 4])]
    ks = detect_kernels(onnx_graph(nodes, {"x": [1, 8, 4, 4]}, {"y": [1, 8, 4, 4]}, inits))
    assert [(k.type, k.ops) for k in ks] == [("channel_shuffle", "Reshape+Transpose+Reshape")]
    assert ks.kernels[0].specs[0].key == "channel_shuffle:cin=8,h=4,w=4,groups=2" and not ks.free
    # a reshape alone (flatten before a linear layer) is free
    flat = [node("Reshape", ["x", "s"], ["f"], "flat"), node("Gemm", ["f", "w"], ["y"], "fc", transB=1)]
    ks = detect_kernels(onnx_graph(flat, {"x": [1, 8, 1, 1]}, {"y": [1, 4]}, [ints("s", [1, 8]), weight("w", 4, 8)]))
    assert [k.type for k in ks] == ["linear"] and [n.name for n in ks.free] == ["flat"]
    assert ks.kernels[0].specs[0].key == "linear:cin=8,cout=4"


def test_squeeze_and_excitation_is_one_kernel():
    nodes = [
        node("GlobalAveragePool", ["x"], ["p"], "gap"),
        node("Conv", ["p", "w1", "b1"], ["c1"], "fc1", kernel_shape=[1, 1]),
        node("Relu", ["c1"], ["r"], "relu"),
        node("Conv", ["r", "w2", "b2"], ["c2"], "fc2", kernel_shape=[1, 1]),
        node("HardSigmoid", ["c2"], ["s"], "gate"),
        node("Mul", ["x", "s"], ["y"], "scale"),
    ]
    inits = [weight("w1", 4, 16, 1, 1), weight("b1", 4), weight("w2", 16, 4, 1, 1), weight("b2", 16)]
    ks = detect_kernels(onnx_graph(nodes, {"x": [1, 16, 8, 8]}, {"y": [1, 16, 8, 8]}, inits))
    (k,) = ks
    assert (k.type, k.ops) == ("se", "GlobalAveragePool+Conv+Relu+Conv+HardSigmoid+Mul")
    assert k.macs == 16 * 64 + 16 * 4 + 4 * 16 == k.specs[0].flops
    assert k.specs[0].key == "se:cin=16,mid=4,h=8,w=8,act=relu,gate=hsigmoid"
    assert k.params == 4 * 16 + 4 + 16 * 4 + 16


def test_attention_matmuls_are_one_kernel():
    nodes = [
        node("MatMul", ["q", "kt"], ["s"], "qk"),
        node("Div", ["s", "scale"], ["d"], "div"),
        node("Softmax", ["d"], ["p"], "softmax", axis=-1),
        node("MatMul", ["p", "v"], ["y"], "pv"),
    ]
    inputs = {"q": [1, 4, 16, 8], "kt": [1, 4, 8, 16], "v": [1, 4, 16, 8]}
    g = onnx_graph(nodes, inputs, {"y": [1, 4, 16, 8]}, [numpy_helper.from_array(np.array(2.0, np.float32), "scale")])
    (k,) = detect_kernels(g)
    assert (k.type, k.ops) == ("attention", "MatMul+Div+Softmax+MatMul")
    assert k.macs == 2 * (4 * 16 * 16 * 8) + 4 * 16 * 16  # two matmuls + the softmax's input
    assert k.specs[0].key == "attention:cin=8,heads=4,tokens=16" and k.macs == k.specs[0].flops
    # a lone product of two activations is a matmul kernel
    (mm,) = detect_kernels(onnx_graph(nodes[:1], inputs, {"s": [1, 4, 16, 16]}))
    assert mm.type == "matmul" and mm.why == "a product of two activations (attention) has no op kind yet"


def test_concat_pools_resize_and_softmax_kernels():
    nodes = [
        node("MaxPool", ["a"], ["pa"], "pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("AveragePool", ["b"], ["pb"], "avg", kernel_shape=[2, 2], strides=[2, 2]),
        node("Concat", ["pa", "pb"], ["c"], "cat", axis=1),
        node("Resize", ["c", "", "sc"], ["up"], "up", mode="nearest"),
        node("Softmax", ["up"], ["y"], "sm", axis=1),
    ]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]
    g = onnx_graph(nodes, {"a": [1, 8, 16, 16], "b": [1, 8, 16, 16]}, {"y": [1, 16, 16, 16]}, inits)
    ks = detect_kernels(g)
    assert [k.type for k in ks] == ["maxpool", "avgpool", "concat", "resize", "softmax"]
    assert ks.kernels[0].specs[0].key == "maxpool:cin=8,h=16,w=16,kernel=3,stride=2"
    assert ks.kernels[1].specs[0].key == "avgpool:cin=8,h=16,w=16,kernel=2,stride=2"
    assert [k.specs[0].key if k.specs else k.why for k in ks.kernels[2:]] == [
        "concat:cin=8,cout=16,h=8,w=8,inputs=2",
        "resize:cin=16,h=8,w=8,scale=2,mode=nearest",
        "softmax over another axis than the last has no op kind",  # over channels (axis 1)
    ]
    assert ks.kernels[2].output_shape == (1, 16, 8, 8) and ks.kernels[3].output_shape == (1, 16, 16, 16)
    assert ks.type_counts() == {"maxpool": 1, "avgpool": 1, "concat": 1, "resize": 1, "softmax": 1}


def test_zoo_kernels_compose_into_the_networks_blocks():
    net = get_network("mobilenetv2")
    g = item_graph(net)
    ks = detect_kernels(g, device="onnxruntime-cpu")
    assert ks.type_counts() == {"pwconv": 34, "dwconv": 17, "conv": 1, "gap": 1, "linear": 1}
    # candidates overlap (a depthwise + project pair is also an expand-1 block): take them first come
    taken, blocks = set(), []
    for parts, spec in compose_blocks(ks.kernels, g):
        if not taken & {id(k) for k in parts}:
            taken |= {id(k) for k in parts}
            blocks.append((parts, spec))
    kinds = [spec.kind for _, spec in blocks]
    # the network's own ops: a stem, 17 MBConv blocks and a head
    net_blocks = [op for op in net.ops if op.kind in ("mbconv", "head")]
    assert kinds.count("mbconv") == 17 and kinds.count("head") == 1
    assert [s.key for _, s in blocks if s.kind == "mbconv"] == [op.key for op in net_blocks if op.kind == "mbconv"]
    assert [s.key for _, s in blocks if s.kind == "head"] == [op.key for op in net.ops if op.kind == "head"]
    assert ks.kernels[0].specs[-1].key == net.ops[0].key  # the 3-channel first conv can stand as the stem
    groups = distinct(ks.kernels)
    assert sum(len(v) for v in groups.values()) == len(ks) and len(groups) < len(ks)


def test_rule_sets_by_device():
    assert rule_set_for(None).name == "default"
    assert rule_set_for("onnxruntime-cpu/t2").name == "onnxruntime"
    assert rule_set_for("litert-cpu/t1/b1/fp32").name == "litert"
    assert rule_set_for("adb:emulator-5554").name == "litert"
    assert rule_set_for("torch-cpu").name == rule_set_for("cuda/b8").name == "torch"
    assert rule_set_for("fake").name == "default"
    assert rule_set("litert").free == rule_set("default").free  # extends keeps what it does not replace
    assert rule_set("torch").kernels == () and rule_set("torch").composites == ()
    assert rule_set("litert").layout == "NHWC" and rule_set("onnxruntime").layout == ""  # LiteRT keeps images NHWC
    assert "  layout: NHWC" in rule_set("litert").describe()
    with pytest.raises(GraphError, match="Unknown kernel rule set 'nope'; known: default, onnxruntime, litert"):
        rule_set("nope")
    text = rule_set("onnxruntime").describe()
    assert text.startswith("rule set onnxruntime\n  free: cast, constant")
    assert "channel_shuffle: reshape -> transpose -> reshape" in text
    assert "se: global_avgpool|reduce_mean -> conv|gemm|matmul" in text and "(closes on the first node's input)" in text


def test_rule_documents_are_checked():
    doc = {
        "rulesets": {
            "base": {"free": ["reshape"], "kernels": [{"name": "lin", "steps": ["gemm", "@activation?"]}]},
            "child": {"extends": "base", "free": ["identity"]},
        }
    }
    sets = parse_rule_sets(doc)
    assert sets["child"].free == {"identity"} and sets["child"].kernels == sets["base"].kernels
    step = sets["base"].kernels[0].steps[1]
    assert step.optional and step.categories == {"activation"} and not step.ops
    bad = {
        "loop": ({"a": {"extends": "b"}, "b": {"extends": "a"}}, "rule set 'a' extends itself"),
        "parent": ({"a": {"extends": "zz"}}, "unknown rule set 'zz'"),
        "nosteps": ({"a": {"kernels": [{"name": "x"}]}}, "each pattern needs a name and steps"),
        "optional": ({"a": {"kernels": [{"name": "x", "steps": ["relu?"]}]}}, "first step cannot be optional"),
        "closes": ({"a": {"kernels": [{"name": "x", "steps": ["relu"], "closes": "tail"}]}}, "closes must be"),
        "empty": ({"a": {"kernels": [{"name": "x", "steps": ["relu", "|"]}]}}, "empty step"),
        "layout": ({"a": {"layout": "NCWH"}}, "layout must be NCHW or NHWC"),
    }
    for rulesets, needle in bad.values():
        with pytest.raises(GraphError, match=needle):
            parse_rule_sets({"rulesets": rulesets})


def test_a_rule_set_given_by_name_or_object():
    g = conv_bn_relu_add()
    by_name = detect_kernels(g, "torch")
    by_object = detect_kernels(g, rule_set("torch"))
    assert [k.ops for k in by_name] == [k.ops for k in by_object] == ["Conv", "BatchNormalization", "Relu", "Add"]
    table = detect_kernels(g).table()
    assert table.splitlines()[0].split() == ["kernel", "type", "nodes", "in", "out", "MMACs", "op", "kind"]
    assert "conv:cin=8,cout=8,h=16,w=16,kernel=3,stride=1,act=relu" in table


# ------------------------------------------------------------------ slices, transposes, tokens, patches
def keys(ks):
    return [k.specs[0].key if k.specs else k.why for k in ks]


def test_splits_slices_and_gathers_are_slice_kernels():
    """The input viewed as (before, axis, after): exact for any rank and layout. On a channel-last runtime
    (LiteRT) an NCHW graph's channel split is mapped as that runtime runs it, channels last."""
    split = [
        node("Split", ["x", "parts"], ["a", "b"], "split", axis=1),
        node("Relu", ["a"], ["ra"], "ra"),
        node("Relu", ["b"], ["rb"], "rb"),
    ]
    g = onnx_graph(split, {"x": [1, 8, 4, 4]}, {"ra": [1, 4, 4, 4], "rb": [1, 4, 4, 4]}, [ints("parts", [4, 4])])
    ks = detect_kernels(g, device="onnxruntime-cpu")
    assert [(k.type, k.ops) for k in ks][0] == ("slice", "Split")
    assert keys(ks)[0] == "slice:cin=8,cout=4,h=1,w=16,outputs=2" and ks.kernels[0].macs == 0
    assert keys(detect_kernels(g, device="litert-cpu"))[0] == "slice:cin=8,cout=4,h=16,w=1,outputs=2"
    tokens = [
        node("Gather", ["t", "zero"], ["cls"], "cls", axis=1),  # x[:, 0]
        node("Slice", ["t", "s0", "s1", "ax"], ["part"], "part"),  # x[..., :4]
    ]
    inits = [ints("zero", 0), ints("s0", [0]), ints("s1", [4]), ints("ax", [2])]
    g = onnx_graph(tokens, {"t": [1, 10, 16]}, {"cls": [1, 16], "part": [1, 10, 4]}, inits)
    for device in ("onnxruntime-cpu", "litert-cpu"):  # not images: the same everywhere
        assert keys(detect_kernels(g, device=device)) == [
            "slice:cin=10,cout=1,h=1,w=16,outputs=1",
            "slice:cin=16,cout=4,h=10,w=1,outputs=1",
        ]
    two_axes = node("Slice", ["t", "s0", "s1", "ax"], ["y"], "two")
    inits = [ints("s0", [0, 0]), ints("s1", [4, 4]), ints("ax", [1, 2])]
    (k,) = detect_kernels(onnx_graph([two_axes], {"t": [1, 10, 16]}, {"y": [1, 4, 4]}, inits))
    assert k.type == "slice" and k.why == "a slice along several axes has no op kind"
    uneven = node("Split", ["x", "parts"], ["a", "b"], "split", axis=1)
    g = onnx_graph([uneven], {"x": [1, 8, 4, 4]}, {"a": [1, 2, 4, 4], "b": [1, 6, 4, 4]}, [ints("parts", [2, 6])])
    assert keys(detect_kernels(g)) == ["a split into unequal parts has no op kind"]


@pytest.mark.parametrize(
    ("shape", "perm", "want"),
    [
        ([1, 10, 3, 2, 8], [2, 0, 3, 1, 4], "transpose:cin=8,h=10,w=6,heads=1"),  # q/k/v and heads to the front
        ([1, 3, 10, 8], [0, 1, 3, 2], "transpose:cin=1,h=10,w=8,heads=3"),  # k^T
        ([1, 3, 10, 8], [0, 2, 1, 3], "transpose:cin=8,h=3,w=10,heads=1"),  # the heads merged back
        ([1, 16, 5, 5], [0, 2, 3, 1], "transpose:cin=1,h=16,w=25,heads=1"),  # NCHW -> NHWC
        ([1, 1, 5, 8], [0, 2, 1, 3], "a transpose that moves only axes of size 1 has no op kind"),
        (
            [1, 2, 3, 4],
            [0, 3, 2, 1],
            "a transpose that is not a swap of two groups of axes (permutation (2, 1, 0) of (2, 3, 4))",
        ),
    ],
)
def test_transposes_are_swaps_of_two_groups_of_axes(shape, perm, want):
    out = [shape[p] for p in perm]
    (k,) = detect_kernels(onnx_graph([node("Transpose", ["x"], ["y"], "t", perm=perm)], {"x": shape}, {"y": out}))
    assert k.type == "transpose" and keys([k]) == [want] and k.macs == 0


def test_reshape_transpose_reshape_is_a_shuffle_only_on_channel_groups():
    """The channel_shuffle rule matches any reshape-transpose-reshape: an attention's head split (tokens, heads,
    d) -> (heads, tokens, d) is the transpose it is, not a shuffle."""
    nodes = [
        node("Reshape", ["x", "s1"], ["a"], "split_heads"),
        node("Transpose", ["a"], ["t"], "swap", perm=[0, 2, 1, 3]),
        node("Reshape", ["t", "s2"], ["y"], "flat"),
    ]
    inits = [ints("s1", [1, 6, 2, 4]), ints("s2", [1, 12, 4])]
    (k,) = detect_kernels(onnx_graph(nodes, {"x": [1, 6, 8]}, {"y": [1, 12, 4]}, inits))
    assert (k.type, k.ops) == ("channel_shuffle", "Reshape+Transpose+Reshape")
    assert k.specs[0].key == "transpose:cin=4,h=6,w=2,heads=1"


def test_pad_then_pool_is_a_padded_pool():
    """LiteRT converts a padded max pool to PADV2 + a VALID MAX_POOL_2D: one maxpool kernel of the unpadded size."""
    nodes = [
        node("Pad", ["x", "p"], ["xp"], "pad"),
        node("MaxPool", ["xp"], ["y"], "pool", kernel_shape=[3, 3], strides=[2, 2]),
    ]
    g = onnx_graph(nodes, {"x": [1, 8, 16, 16]}, {"y": [1, 8, 8, 8]}, [ints("p", [0, 0, 1, 1, 0, 0, 1, 1])])
    for device in ("onnxruntime-cpu", "litert-cpu", "tensorrt"):
        (k,) = detect_kernels(g, device=device)
        assert (k.type, k.ops) == ("maxpool", "Pad+MaxPool")
        assert k.specs[0].key == "maxpool:cin=8,h=16,w=16,kernel=3,stride=2"
    far = onnx_graph(nodes, {"x": [1, 8, 16, 16]}, {"y": [1, 8, 9, 9]}, [ints("p", [0, 0, 2, 2, 0, 0, 2, 2])])
    assert keys(detect_kernels(far)) == ["a pad of 16x16 to 20x20 before a 3x3 pool is not 'same' padding"]


def test_a_conv_whose_stride_is_its_kernel_is_a_patch_embedding():
    conv = node("Conv", ["x", "w", "b"], ["y"], "patches", kernel_shape=[4, 4], strides=[4, 4])
    g = onnx_graph([conv], {"x": [1, 3, 32, 32]}, {"y": [1, 16, 8, 8]}, [weight("w", 16, 3, 4, 4), weight("b", 16)])
    (k,) = detect_kernels(g)
    assert (k.type, k.ops) == ("patch_embed", "Conv")
    assert k.specs[0].key == "patch_embed:cin=3,cout=16,h=32,w=32,kernel=4,act=none"
    assert k.macs == k.specs[0].flops == 8 * 8 * 16 * 3 * 16 and k.params == k.specs[0].params
    padded = node("Conv", ["x", "w"], ["y"], "c", kernel_shape=[4, 4], strides=[4, 4], pads=[1, 1, 1, 1])
    g = onnx_graph([padded], {"x": [1, 3, 32, 32]}, {"y": None}, [weight("w", 16, 3, 4, 4)])
    assert keys(detect_kernels(g)) == ["stride 4x4 (op kinds have stride 1 or 2)"]


def _written_out_layernorm(x="x", prefix=""):
    """torch.onnx's graph of a LayerNorm written out by hand (PP-OCR's recogniser): x is read three times."""
    n = prefix
    nodes = [
        node("ReduceMean", [x], [f"{n}m"], f"{n}mean", axes=[-1]),
        node("Sub", [x, f"{n}m"], [f"{n}d"], f"{n}sub"),
        node("Pow", [f"{n}d", "two"], [f"{n}sq"], f"{n}pow"),
        node("ReduceMean", [f"{n}sq"], [f"{n}v"], f"{n}var", axes=[-1]),
        node("Add", [f"{n}v", "eps"], [f"{n}ve"], f"{n}eps"),
        node("Sqrt", [f"{n}ve"], [f"{n}s"], f"{n}sqrt"),
        node("Div", [f"{n}d", f"{n}s"], [f"{n}nrm"], f"{n}div"),
        node("Mul", [f"{n}nrm", "gamma"], [f"{n}sc"], f"{n}scale"),
        node("Add", [f"{n}sc", "beta"], [f"{n}ln"], f"{n}shift"),
    ]
    return nodes


def test_a_layernorm_written_out_is_one_layernorm_kernel():
    """Not a chain (x is read by the mean, the subtraction and, here, the residual add after it): the region
    from the mean to the one tensor the graph reads on is one layernorm, as ORT fuses it and as LiteRT runs the
    layernorm kind (MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL, SUB, MUL, ADD)."""
    scalars = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("two", 2.0), ("eps", 1e-5))]
    nodes = [
        *_written_out_layernorm(),
        node("MatMul", ["ln", "w"], ["h"], "fc"),
        node("Relu", ["h"], ["r"], "relu"),
        node("Add", ["r", "x"], ["y"], "residual"),  # reads x too: outside the region
    ]
    inits = [*scalars, weight("gamma", 16), weight("beta", 16), weight("w", 16, 16)]
    g = onnx_graph(nodes, {"x": [1, 10, 16]}, {"y": [1, 10, 16]}, inits)
    for device in ("onnxruntime-cpu", "litert-cpu", "tensorrt", None):
        ks = detect_kernels(g, device=device)
        assert [k.ops for k in ks] == [
            "ReduceMean+Sub+Pow+ReduceMean+Add+Sqrt+Div+Mul+Add",
            "MatMul+Relu",
            "Add",
        ]
        assert keys(ks) == [
            "layernorm:cin=16,tokens=10",
            "linear:cin=16,cout=16,tokens=10",
            "add:cin=16,h=10,w=1,act=none",
        ]
        assert covers_every_node(ks) and ks.kernels[0].input_shape == ks.kernels[0].output_shape == (1, 10, 16)
    torch_rules = detect_kernels(g, device="torch-cpu")  # eager torch runs each op
    assert len(torch_rules) == len(g.nodes)
    # a mean over another axis: the region is found, but no layernorm of the last axis stands for it
    nodes[0] = node("ReduceMean", ["x"], ["m"], "mean", axes=[1])
    nodes[3] = node("ReduceMean", ["sq"], ["v"], "var", axes=[1])
    g = onnx_graph(nodes, {"x": [1, 10, 16]}, {"y": [1, 10, 16]}, inits)
    assert keys(detect_kernels(g))[0] == "layernorm over another axis than the last has no op kind"
    text = rule_set("litert").describe()
    assert "layernorm: reduce_mean -> squared_difference|sub -> reduce_mean" in text and "(a region:" in text


def test_region_rules_are_only_composites():
    bad = {"a": {"kernels": [{"name": "x", "steps": ["reduce_mean", "sub"], "closes": "region"}]}}
    with pytest.raises(GraphError, match="closes: region is for composites"):
        parse_rule_sets({"rulesets": bad})


def _vit_tokens():
    """A class token joined to patch tokens, the position embedding added, an MLP with erf-GELU, the class token."""
    s2 = np.float32(np.sqrt(2))
    consts = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("s2", s2), ("one", 1.0), ("half", 0.5))]
    nodes = [
        node("Concat", ["cls", "x"], ["t"], "cat", axis=1),
        node("Add", ["t", "pos"], ["p"], "pos_add"),
        node("MatMul", ["p", "w1"], ["h"], "fc1"),
        node("Div", ["h", "s2"], ["d"], "gelu_div"),
        node("Erf", ["d"], ["e"], "gelu_erf"),
        node("Add", ["e", "one"], ["a"], "gelu_add"),
        node("Mul", ["h", "a"], ["m"], "gelu_mul"),
        node("Mul", ["m", "half"], ["g"], "gelu_half"),
        node("Gather", ["g", "zero"], ["y"], "cls_token", axis=1),
    ]
    inits = [weight("cls", 1, 1, 16), weight("pos", 1, 10, 16), weight("w1", 16, 32), ints("zero", 0), *consts]
    return onnx_graph(nodes, {"x": [1, 9, 16]}, {"y": [1, 32]}, inits)


def test_vit_token_ops_map_and_gelu_is_an_act_kernel_on_litert():
    g = _vit_tokens()
    ort = detect_kernels(g, device="onnxruntime-cpu")
    assert [k.ops for k in ort] == ["Concat", "Add", "MatMul+Div+Erf+Add+Mul+Mul", "Gather"]
    assert keys(ort) == [
        "concat:cin=9,cout=10,h=16,w=1,inputs=2",  # the class token is a constant: the concat kind holds it so too
        "add:cin=16,h=10,w=1,act=none",  # a constant as large as the input reads as much as an activation
        "linear:cin=16,cout=32,tokens=10",  # ORT fuses the GELU into the MatMul
        "slice:cin=10,cout=1,h=1,w=32,outputs=1",
    ]
    lite = detect_kernels(g, device="litert-cpu")  # LiteRT runs GELU as an op of its own
    assert [k.ops for k in lite][2:4] == ["MatMul", "Div+Erf+Add+Mul+Mul"]
    assert keys(lite)[2:4] == ["linear:cin=16,cout=32,tokens=10", "act:cin=32,h=10,w=1,act=gelu"]
    assert not lite.unmapped() and sum(k.macs for k in lite) == g.macs


@pytest.mark.parametrize("device", ["onnxruntime-cpu", "litert-cpu"])
def test_real_models_have_no_unmapped_kernels(device):
    """ShuffleNetV2's channel splits, DeiT's transposes, token ops, patch embedding and GELU, ResNet-18."""
    from hwlat.models import get_model
    from hwlat.workflows import resolve_models

    want = {
        "shufflenetv2-w1.0-r224": {"slice": 13, "channel_shuffle": 16, "concat": 16},
        "deit-tiny-r224": {"transpose": 37, "slice": 13, "patch_embed": 1, "concat": 1, "attention": 12},
        "resnet18-w1.0-r224": {"maxpool": 1, "conv": 20},
    }
    for name, kinds in want.items():
        assert get_model(name)
        (item,) = resolve_models(name)
        g = item_graph(item)
        ks = detect_kernels(g, device=device)
        assert not ks.unmapped(), (name, [(k.ops, k.why) for k in ks.unmapped()])
        counts = {kind: sum(k.specs[0].kind == kind for k in ks) for kind in kinds}
        assert counts == kinds
        assert sum(k.macs for k in ks) == g.macs
        assert all(k.macs == k.specs[0].flops for k in ks if k.specs[0].kind in ("slice", "transpose", "patch_embed"))
    deit = detect_kernels(item_graph(resolve_models("deit-tiny-r224")[0]), device=device)
    acts = [k.specs[0].key for k in deit if k.specs[0].kind == "act"]
    assert acts == (["act:cin=768,h=197,w=1,act=gelu"] * 12 if device == "litert-cpu" else [])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        # litert-torch writes each LayerNorm out in nine ops (one region) and keeps ShuffleNet's channel shuffle
        # NCHW between two layout TRANSPOSEs: every one of them is a transpose there, not a channel_shuffle
        ("deit-tiny-r160", {"layernorm": 25, "slice": 37, "patch_embed": 1, "act": 12}),
        ("shufflenetv2-w0.5-r160", {"slice": 26, "channel_shuffle": 0, "maxpool": 1}),
    ],
)
def test_converted_models_map_every_kernel_on_litert(name, kinds):
    from hwlat.devices import create_backend
    from hwlat.graph import load_model
    from hwlat.graph.tflite_import import graph_from_tflite
    from hwlat.models import get_model

    try:
        backend = create_backend("litert-cpu")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    spec = get_model(name)
    model = load_model(spec.build(), input_shape=spec.input_shape, name=name)
    g = graph_from_tflite(backend.convert(model))
    ks = detect_kernels(g, device="litert-cpu")
    assert not ks.unmapped(), [(k.ops, k.why) for k in ks.unmapped()]
    assert {kind: sum(k.specs[0].kind == kind for k in ks) for kind in kinds} == kinds
    assert sum(k.macs for k in ks) == g.macs
