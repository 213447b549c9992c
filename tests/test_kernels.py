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
        ([3, 3], {"pads": [2, 2, 2, 2], "dilations": [2, 2]}, "dilation 2x2 has no op kind yet"),
        ([3, 3], {"pads": [1, 1, 1, 1], "strides": [3, 3]}, "stride 3x3 (op kinds have stride 1 or 2)"),
        ([3, 3], {"pads": [0, 0, 0, 0]}, "padding (0, 0, 0, 0) is not 'same' (k // 2)"),
    ],
)
def test_convolutions_op_kinds_cannot_build_say_why(kernel, attrs, why):
    conv = node("Conv", ["x", "w"], ["y"], "c", kernel_shape=kernel, **attrs)
    g = onnx_graph([conv], {"x": [1, 8, 18, 18]}, {"y": None}, [weight("w", 8, 8, *kernel)])
    (k,) = detect_kernels(g)
    assert k.type == "conv" and k.specs == () and k.why == why


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
