"""hwlat.graph.core: the graph type (Tensor, Node, Graph), its counters and shape strings."""

import pytest

from hwlat.graph import Graph, GraphError, Node, Tensor, format_shape, parse_shape
from hwlat.graph.model import max_model_mb
from hwlat.graph.vocab import ONNX_OPS, TFLITE_OPS, op_category


def _conv_graph(layout: str = "NCHW") -> Graph:
    """x -> conv 3x3 (8 -> 16, groups 2) -> relu -> global pool -> gemm 16 -> 10."""
    nchw = layout == "NCHW"
    x = (1, 8, 12, 12) if nchw else (1, 12, 12, 8)
    c = (1, 16, 12, 12) if nchw else (1, 12, 12, 16)
    p = (1, 16, 1, 1) if nchw else (1, 1, 1, 16)
    tensors = {
        "x": Tensor("x", x),
        "w": Tensor("w", (16, 4, 3, 3), const=True),
        "b": Tensor("b", (16,), const=True),
        "c": Tensor("c", c),
        "r": Tensor("r", c),
        "p": Tensor("p", p),
        "f": Tensor("f", (1, 16)),
        "fw": Tensor("fw", (10, 16), const=True),
        "fb": Tensor("fb", (10,), dtype="float16", const=True),
        "y": Tensor("y", (1, 10)),
        "shape": Tensor("shape", (2,), dtype="int64", const=True),
    }
    conv = (("cin", 8), ("cout", 16), ("groups", 2), ("kernel", (3, 3)), ("stride", (1, 1)), ("pads", (1,) * 4))
    nodes = (
        Node("conv", "conv", ("x", "w", "b"), ("c",), conv, "Conv"),
        Node("relu", "relu", ("c",), ("r",), (), "Relu"),
        Node("gap", "global_avgpool", ("r",), ("p",), (), "GlobalAveragePool"),
        Node("flat", "reshape", ("p", "shape"), ("f",), (), "Reshape"),
        Node("fc", "gemm", ("f", "fw", "fb"), ("y",), (("k", 16), ("weight_const", True)), "Gemm"),
    )
    return Graph("toy", nodes, tensors, ("x",), ("y",), layout, {"format": "onnx"})


def test_shape_strings_round_trip():
    assert format_shape((1, 3, 224, 224)) == "1x3x224x224"
    assert parse_shape("1x3x224x224") == (1, 3, 224, 224)
    assert parse_shape("1,3,48,320") == (1, 3, 48, 320)
    assert parse_shape(" 1X3x8x8 ") == (1, 3, 8, 8)
    assert parse_shape(format_shape((2, 5))) == (2, 5)


@pytest.mark.parametrize("bad", ["", "x", "1x0x3", "1x-3", "1xax3", "1.5x3"])
def test_bad_shape_strings_are_one_clear_error(bad):
    with pytest.raises(GraphError, match=r"Invalid input shape .*e\.g\. 1x3x224x224"):
        parse_shape(bad)


def test_tensor_size_and_bytes_follow_dtype():
    assert Tensor("a", (2, 3, 4)).size == 24
    assert Tensor("a", (2, 3, 4)).nbytes == 96
    assert Tensor("a", (2, 3, 4), dtype="float16").nbytes == 48
    assert Tensor("a", (10,), dtype="int8").nbytes == 10
    assert Tensor("a", (), dtype="int64").size == 1  # a scalar


def test_node_attributes():
    n = Node("c", "conv", ("x",), ("y",), (("groups", 4), ("kernel", (3, 3))), "Conv")
    assert n.attr("groups") == 4 and n.attr("kernel") == (3, 3)
    assert n.attr("stride") is None and n.attr("stride", (1, 1)) == (1, 1)


def test_graph_counts_macs_params_and_bytes():
    g = _conv_graph()
    conv_macs = 16 * 12 * 12 * (8 // 2) * 9  # out elements x cin/groups x k*k
    gap_macs = 16 * 12 * 12  # one per input element
    fc_macs = 10 * 16
    assert g.node_macs(g.nodes[0]) == conv_macs
    assert g.node_macs(g.nodes[1]) == 0  # an activation
    assert g.node_macs(g.nodes[2]) == gap_macs
    assert g.macs == conv_macs + gap_macs + fc_macs
    # the int64 shape constant is not a parameter
    assert g.params == 16 * 4 * 9 + 16 + 10 * 16 + 10
    conv_bytes = 4 * (8 * 144 + 16 * 144 + 16 * 36 + 16)
    assert g.node_bytes(g.nodes[0]) == conv_bytes
    assert g.node_bytes(g.nodes[4]) == 4 * (16 + 10 + 160) + 2 * 10  # float16 bias: 2 bytes each
    assert g.bytes == sum(g.node_bytes(n) for n in g.nodes)
    assert g.op_counts() == {"conv": 1, "relu": 1, "global_avgpool": 1, "reshape": 1, "gemm": 1}
    assert len(g) == 5 and [n.name for n in g] == ["conv", "relu", "gap", "flat", "fc"]


def test_graph_structure_producer_consumers_and_layout():
    g = _conv_graph()
    assert g.producer["r"].name == "relu"
    assert [n.name for n in g.consumers["x"]] == ["conv"]
    assert "y" not in g.consumers  # the output feeds nothing
    assert [t.name for t in g.activations(g.nodes[0])] == ["x"]
    assert [t.name for t in g.constants(g.nodes[0])] == ["w", "b"]
    assert g.input_shape == (1, 8, 12, 12)
    assert g.chw((1, 8, 12, 10)) == (8, 12, 10)
    nhwc = _conv_graph("NHWC")
    assert nhwc.chw((1, 12, 10, 8)) == (8, 12, 10)
    assert nhwc.macs == g.macs  # the same network in the other layout counts the same
    assert g.chw((1, 64)) == (64, 1, 1)


def test_summary_names_format_shape_and_size():
    assert _conv_graph().summary() == "toy (onnx, input 1x8x12x12): 5 nodes, 0.1 M MACs, 0.00 M params"


def test_graph_refuses_what_is_not_a_dag():
    t = {"x": Tensor("x", (1, 4)), "a": Tensor("a", (1, 4)), "b": Tensor("b", (1, 4))}
    backwards = (Node("n1", "relu", ("b",), ("a",)), Node("n2", "relu", ("a",), ("b",)))
    with pytest.raises(GraphError, match="node n1 reads 'b' before it is written"):
        Graph("g", backwards, t, ("x",), ("b",))
    with pytest.raises(GraphError, match="node n1 reads tensor 'q', which has no shape"):
        Graph("g", (Node("n1", "relu", ("q",), ("a",)),), t, ("x",), ("a",))
    with pytest.raises(GraphError, match="node n1 writes tensor 'z', which has no shape"):
        Graph("g", (Node("n1", "relu", ("x",), ("z",)),), t, ("x",), ("z",))
    with pytest.raises(GraphError, match="Invalid layout 'NCWH'"):
        Graph("g", (), t, ("x",), ("x",), "NCWH")


def test_vocab_tables_map_to_known_categories():
    # every op a file can name maps to a canonical op, and every canonical op has a category
    known = {
        "conv",
        "conv_transpose",
        "matmul",
        "activation",
        "elementwise",
        "norm",
        "softmax",
        "pool",
        "global_pool",
        "reduce",
        "concat",
        "slice",
        "resize",
        "pad",
        "transpose",
        "reshape",
        "meta",
    }
    for table in (ONNX_OPS, TFLITE_OPS):
        for src, canon in table.items():
            assert op_category(canon) in known, (src, canon)
    assert ONNX_OPS["Conv"] == TFLITE_OPS["DEPTHWISE_CONV_2D"] == "conv"
    assert ONNX_OPS["Gemm"] == TFLITE_OPS["FULLY_CONNECTED"] == "gemm"
    assert op_category("hardswish") == "activation" and op_category("reduce_mean") == "reduce"


def test_max_model_mb_reads_the_environment(monkeypatch):
    monkeypatch.delenv("HWLAT_MAX_MODEL_MB", raising=False)
    assert max_model_mb() == 2048.0
    monkeypatch.setenv("HWLAT_MAX_MODEL_MB", "0.5")
    assert max_model_mb() == 0.5
    for bad in ("0", "-1", "inf", "nan", "lots"):
        monkeypatch.setenv("HWLAT_MAX_MODEL_MB", bad)
        with pytest.raises(GraphError, match=f"Invalid HWLAT_MAX_MODEL_MB='{bad}': must be a number of MB > 0"):
            max_model_mb()
