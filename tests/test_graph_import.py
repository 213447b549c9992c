"""Importing models into the graph type: ONNX files (hand-built edge cases and hwlat's own exports),
torch modules and factories, TFLite files converted by hwlat, and real files out of PyPI wheels."""

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwlat.graph import GraphError, detect_kernels, item_graph, load_model
from hwlat.graph.onnx_import import graph_from_onnx
from hwlat.zoo import get_network


# ------------------------------------------------------------------ hand-built ONNX
def onnx_model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def weight(name, *shape, seed=0):
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def relu_model(shape):
    return onnx_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [vi("x", shape)], [vi("y", shape)])


def test_if_and_loop_are_refused_naming_them():
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "b", [], [vi("t", [1])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Identity", ["v"], ["v2"])],
        "body",
        [vi("i", [], TensorProto.INT64), vi("c", [], TensorProto.BOOL), vi("v", [1])],
        [vi("c2", [], TensorProto.BOOL), vi("v2", [1])],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["a"], then_branch=branch, else_branch=branch, name="branchy"),
        helper.make_node("Loop", ["n", "cond", "a"], ["y"], body=body, name="loopy"),
    ]
    inputs = [vi("cond", [], TensorProto.BOOL), vi("x", [1]), vi("n", [], TensorProto.INT64)]
    with pytest.raises(GraphError) as err:
        graph_from_onnx(onnx_model(nodes, inputs, [vi("y", [1])]), name="flow")
    msg = str(err.value)
    assert "\n" not in msg
    assert "control flow is not supported" in msg
    assert "If x1 (at branchy)" in msg and "Loop x1 (at loopy)" in msg


def test_unknown_ops_are_named_with_count_and_nodes():
    nodes = [
        helper.make_node("NonMaxSuppression", ["x", "x"], ["a"], name="nms_a"),
        helper.make_node("NonMaxSuppression", ["a", "x"], ["b"], name="nms_b"),
        helper.make_node("NonMaxSuppression", ["b", "x"], ["c"], name="nms_c"),
        helper.make_node("Hardmax", ["c"], ["d"], name="hm"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    model = onnx_model(nodes, [vi("x", [1, 2, 4])], [vi("y", [1, 2, 4])])
    with pytest.raises(GraphError) as err:
        graph_from_onnx(model, name="odd")
    msg = str(err.value)
    assert msg.startswith("odd: 4 nodes of 2 op types cannot be imported (hwlat has no mapping for them)")
    assert "NonMaxSuppression x3 (at nms_a, nms_b, ...)" in msg and "Hardmax x1 (at hm)" in msg
    assert "Relu" not in msg


def test_a_custom_domain_op_is_named_with_its_domain():
    node = helper.make_node("Fancy", ["x"], ["y"], name="f", domain="com.example")
    model = onnx_model([node], [vi("x", [1, 4])], [vi("y", [1, 4])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(GraphError, match=r"com\.example\.Fancy x1 \(at f\)"):
        graph_from_onnx(model)


def test_a_string_input_is_an_unknown_dtype():
    model = onnx_model(
        [helper.make_node("Identity", ["x"], ["y"])], [vi("x", [1, 2], TensorProto.STRING)], [vi("y", [1, 2])]
    )
    with pytest.raises(GraphError, match="element type STRING is not supported"):
        graph_from_onnx(model, name="s")


def test_dynamic_input_needs_input_shape(tmp_path):
    path = save(relu_model(["N", 3, "H", "W"]), tmp_path / "dyn.onnx")
    with pytest.raises(GraphError) as err:
        load_model(path)
    msg = str(err.value)
    assert "\n" not in msg and "input 'x' has dynamic dimensions (Nx3xHxW)" in msg
    assert "--input-shape 1x3x224x224" in msg  # the batch from the device (1), a runnable example
    m = load_model(path, input_shape="1x3x32x48")
    assert m.input_shape == (1, 3, 32, 48) and m.graph().tensors["y"].shape == (1, 3, 32, 48)
    assert m.key.endswith(":3x32x48")
    with pytest.raises(GraphError, match="input 'x' is fixed at Nx3xHxW; --input-shape 1x4x32x32 disagrees"):
        load_model(path, input_shape="1x4x32x32")
    with pytest.raises(GraphError, match=r"has 4 dimensions \(Nx3xHxW\), --input-shape gives 2 \(3x32\)"):
        load_model(path, input_shape="3x32")
    with pytest.raises(GraphError, match="has no input 'img'; its inputs are x"):
        load_model(path, input_shape="img:1x3x8x8")


def test_dynamic_input_example_has_batch_1_without_a_batch():
    with pytest.raises(GraphError, match="--input-shape 1x3x224x224"):
        graph_from_onnx(relu_model(["N", 3, "H", "W"]))


def test_a_dynamic_batch_is_filled_from_the_batch():
    g = graph_from_onnx(relu_model(["N", 3, 8, 8]), batch=4)
    assert g.input_shape == (4, 3, 8, 8) and g.source["input_shape"] == "4x3x8x8"


def test_several_inputs_need_a_shape_each(tmp_path):
    nodes = [helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    path = save(onnx_model(nodes, [vi("a", ["N", 4]), vi("b", ["N", 4])], [vi("y", ["N", 4])]), tmp_path / "two.onnx")
    with pytest.raises(GraphError, match=r"has 2 inputs \(a, b\): give --input-shape NAME:SHAPE"):
        load_model(path, input_shape="2x4")
    m = load_model(path, input_shape="a:2x4,b:2x4")
    assert m.inputs == (("a", (2, 4), "float32"), ("b", (2, 4), "float32"))
    assert {k: v.shape for k, v in m.feeds(batch=3).items()} == {"a": (3, 4), "b": (3, 4)}


def test_bad_files_are_one_line_errors(tmp_path, monkeypatch):
    good = save(relu_model([1, 3, 8, 8]), tmp_path / "good.onnx")
    data = good.read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer at all")
    (tmp_path / "model.bin").write_bytes(data)
    (tmp_path / "dir.onnx").mkdir()
    cases = {
        "trunc.onnx": "not a readable ONNX file (corrupt or truncated?)",
        "junk.onnx": "not a readable ONNX file",
        "empty.onnx": "the file is empty",
        "junk.tflite": "not a TFLite flatbuffer (no TFL3 identifier",
        "model.bin": "unknown model format .bin; give .onnx, .tflite, .pt2",
        "dir.onnx": "is a folder; give a model file",
        "missing.onnx": "no such file",
    }
    for name, needle in cases.items():
        with pytest.raises(GraphError) as err:
            load_model(tmp_path / name)
        assert needle in str(err.value) and "\n" not in str(err.value), (name, str(err.value))
    with pytest.raises(GraphError, match="'resnet' is not a model: give an .onnx, .tflite or .pt2 file"):
        load_model("resnet")
    big = save(_gemm_model(1024, 768), tmp_path / "big.onnx")  # 3 MB of weights
    monkeypatch.setenv("HWLAT_MAX_MODEL_MB", "1")
    with pytest.raises(GraphError, match=r"big\.onnx: 3 MB is over the 1 MB limit \(raise HWLAT_MAX_MODEL_MB\)"):
        load_model(big)
    monkeypatch.setenv("HWLAT_MAX_MODEL_MB", "4")
    assert load_model(big).sha256 == hashlib.sha256(big.read_bytes()).hexdigest()


def _gemm_model(cin, cout):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")]
    return onnx_model(nodes, [vi("x", [1, cin])], [vi("y", [1, cout])], [weight("w", cout, cin)])


def test_size_limit_message_shows_the_limit(tmp_path, monkeypatch):
    path = save(_gemm_model(256, 768), tmp_path / "mid.onnx")  # 0.75 MB
    monkeypatch.setenv("HWLAT_MAX_MODEL_MB", "0.5")
    with pytest.raises(GraphError, match="over the 0.5 MB limit"):
        load_model(path)


def test_a_file_model_has_provenance(tmp_path):
    path = save(relu_model([1, 3, 8, 8]), tmp_path / "r.onnx")
    m = load_model(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (m.name, m.format, m.sha256, m.input_shape) == ("r", "onnx", sha, (1, 3, 8, 8))
    assert m.key == f"model:r:{sha[:12]}:3x8x8"
    assert dict(m.provenance) == {
        "model_sha256": sha,
        "input_shape": "1x3x8x8",
        "model_format": "onnx",
        "model_source": str(path),
    }
    assert m.graph().source["model_sha256"] == sha
    assert load_model(path, name="other").key == f"model:other:{sha[:12]}:3x8x8"
    with pytest.raises(GraphError, match=r"^r is a \.onnx file: it runs on onnxruntime-cpu"):
        m.build()


def test_grouped_conv_attributes_and_macs():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4, name="g")]
    g = graph_from_onnx(
        onnx_model(nodes, [vi("x", [1, 8, 16, 16])], [vi("y", [1, 16, 16, 16])], [weight("w", 16, 2, 3, 3)])
    )
    (node,) = g.nodes
    assert node.op == "conv" and node.source_op == "Conv"
    assert (node.attr("cin"), node.attr("cout"), node.attr("groups")) == (8, 16, 4)
    assert node.attr("kernel") == (3, 3) and node.attr("stride") == (1, 1) and node.attr("pads") == (1, 1, 1, 1)
    assert g.macs == 16 * 16 * 16 * (8 // 4) * 9
    assert g.params == 16 * 2 * 9


def test_shape_arithmetic_is_folded_into_constants():
    # y = reshape(x, concat(shape(x)[0:1], [-1])): the target shape is computed at run time from x's shape
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0, name="gather"),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0, name="cat"),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
        helper.make_node("MatMul", ["y", "w"], ["z"], name="mm"),
    ]
    inits = [ints("zero", 0), ints("axes", [0]), ints("minus1", [-1]), weight("w", 48, 5)]
    model = onnx_model(nodes, [vi("x", ["N", 3, 4, 4])], [vi("z", ["N", 5])], inits)
    g = graph_from_onnx(model, batch=2)
    assert g.tensors["y"].shape == (2, 48) and g.tensors["z"].shape == (2, 5)
    assert [n.op for n in g.nodes] == ["reshape", "matmul"]  # Shape/Gather/Unsqueeze/Concat folded away
    assert g.tensors["target"].const
    assert g.macs == 2 * 5 * 48


def test_clip_0_6_is_relu6():
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="c")]
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
    g = graph_from_onnx(onnx_model(nodes, [vi("x", [1, 4])], [vi("y", [1, 4])], inits))
    assert g.nodes[0].op == "relu6" and g.nodes[0].attr("max") == 6.0


# ------------------------------------------------------------------ hwlat's own networks through ONNX
@pytest.fixture(scope="module")
def session_cache(tmp_path_factory):
    """The session's cache (conftest's) also for module fixtures, which run before its autouse fixture."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.mark.parametrize(
    ("name", "macs"),
    [("mobilenetv2", 300_836_992), ("mobilenetv1", 568_790_528), ("resnet18", 1_815_904_768), ("mobilenet-digits", 0)],
)
def test_zoo_graph_macs_equal_network_flops(session_cache, name, macs):
    net = get_network(name)
    g = item_graph(net)
    assert g.macs == net.flops
    if macs:
        assert g.macs == macs
    # BatchNorm is folded into the convolutions by the export: a few parameters fewer, never more
    assert 0.97 * net.params < g.params <= net.params
    assert g.source["format"] == "network" and g.input_shape == net.input_shape
    # every node is in exactly one kernel, or free
    ks = detect_kernels(g, device="onnxruntime-cpu")
    names = [n.name for k in ks for n in k.nodes] + [n.name for n in ks.free]
    assert sorted(names) == sorted(n.name for n in g.nodes)
    assert ks.macs == g.macs and not ks.unmapped()


def test_zoo_graph_at_batch_4_has_4_times_the_macs(session_cache):
    net = get_network("mobilenet-digits")
    assert item_graph(net, batch=4).macs == 4 * net.flops
    assert item_graph(net, batch=4).input_shape == (4, *net.input_shape[1:])


# ------------------------------------------------------------------ torch modules and factories
def _tiny_module():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def test_a_torch_module_is_a_model(session_cache):
    m = load_model(_tiny_module(), input_shape=(1, 3, 32, 32))
    assert (m.name, m.format, m.input_shape) == ("sequential", "torch", (1, 3, 32, 32))
    assert m.flops == 32 * 32 * 8 * 27 + 8 * 32 * 32 + 8 * 10  # conv + global pool + linear (BN folded)
    assert m.output_shape == (1, 10)
    assert m.key == f"model:sequential:{m.sha256[:12]}:3x32x32"
    # the digest is the module's structure and shape, not its weights
    assert load_model(_tiny_module(), input_shape=(1, 3, 32, 32)).sha256 == m.sha256
    assert load_model(_tiny_module(), input_shape="1x3x16x16").sha256 != m.sha256
    assert [k.type for k in detect_kernels(m.graph(), device="onnxruntime-cpu")] == ["conv", "gap", "linear"]
    assert type(m.build()).__name__ == "Sequential"
    with pytest.raises(GraphError, match="a torch module needs an input shape: give --input-shape 1x3x224x224"):
        load_model(_tiny_module())


FACTORY = """
import torch.nn as nn

def small():
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())

def broken():
    raise RuntimeError("no weights here")

def not_a_module():
    return 42

value = 3
"""


def test_pkg_module_factory(session_cache, tmp_path, monkeypatch):
    (tmp_path / "user_models_for_hwlat.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    m = load_model("user_models_for_hwlat:small", input_shape="1x3x8x8")
    assert (m.name, m.format, m.source) == ("small", "torch", "user_models_for_hwlat:small")
    assert m.flops == 8 * 8 * 4 * 3
    assert m.key.startswith("model:small:") and m.key.endswith(":3x8x8")
    errors = {
        "user_models_for_hwlat:broken": "calling broken() failed: RuntimeError: no weights here",
        "user_models_for_hwlat:not_a_module": "not_a_module() returned int, not a torch.nn.Module",
        "user_models_for_hwlat:value": "module 'user_models_for_hwlat' has no callable 'value'",
        "user_models_for_hwlat:nothing": "has no callable 'nothing'",
        "no_such_module_for_hwlat:f": "cannot import module 'no_such_module_for_hwlat'",
    }
    for spec, needle in errors.items():
        with pytest.raises(GraphError) as err:
            load_model(spec, input_shape="1x3x8x8")
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)
    sys.modules.pop("user_models_for_hwlat", None)


def test_a_saved_exported_program(session_cache, tmp_path):
    import torch

    module = _tiny_module().eval()
    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(module, (torch.zeros(1, 3, 16, 16),)), str(path))
    m = load_model(path)
    assert (m.name, m.format, m.input_shape) == ("tiny", "exported", (1, 3, 16, 16))
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.flops == 16 * 16 * 8 * 27 + 8 * 16 * 16 + 8 * 10
    assert m.key == f"model:tiny:{m.sha256[:12]}:3x16x16"
    (tmp_path / "bad.pt2").write_bytes(b"zzzz" * 100)
    with pytest.raises(GraphError, match=r"bad\.pt2: not a readable exported program \(torch\.export\.save\)"):
        load_model(tmp_path / "bad.pt2")


# ------------------------------------------------------------------ TFLite files converted by hwlat
@pytest.fixture(scope="module")
def mobilenetv2_files(session_cache):
    from hwlat.devices.litert import convert_tflite
    from hwlat.devices.onnxruntime import export_onnx

    net = get_network("mobilenetv2")
    return net, export_onnx(net, 1), convert_tflite(net, 1)


def _specs(kset):
    return [k.specs[0].key for k in kset if k.specs]


@pytest.mark.slow
def test_converted_tflite_graph_counts_like_the_network(mobilenetv2_files):
    net, _, tfl = mobilenetv2_files
    m = load_model(tfl)
    g = m.graph()
    assert m.format == "tflite" and g.layout == "NHWC"
    assert m.input_shape == (1, 224, 224, 3)
    assert g.macs == net.flops == 300_836_992
    assert 0.97 * net.params < g.params <= net.params


@pytest.mark.slow
def test_tflite_convolutions_map_to_the_same_op_configs_as_onnx(mobilenetv2_files):
    _, onnx_path, tfl = mobilenetv2_files
    ko = detect_kernels(load_model(onnx_path).graph(), device="onnxruntime-cpu")
    kt = detect_kernels(load_model(tfl).graph(), device="litert-cpu")
    conv_kinds = ("conv", "pwconv", "dwconv")
    convs_o = [s for s in _specs(ko) if s.split(":")[0] in conv_kinds]
    convs_t = [s for s in _specs(kt) if s.split(":")[0] in conv_kinds]
    assert len(convs_o) == 52 and convs_o == convs_t
    # TFLite fuses RELU6 into the convolution: the activations agree kernel by kernel
    assert [s.rsplit("act=", 1)[1] for s in convs_t].count("relu6") == 35


@pytest.mark.slow
def test_tflite_kernels_map_to_the_same_op_configs_as_onnx(mobilenetv2_files):
    _, onnx_path, tfl = mobilenetv2_files
    ko = detect_kernels(load_model(onnx_path).graph(), device="onnxruntime-cpu")
    kt = detect_kernels(load_model(tfl).graph(), device="litert-cpu")
    # the converter keeps one layout change LiteRT really runs: the 7x7x1280 map transposed before the mean
    head = _specs(kt)[-3:]
    assert head == ["transpose:cin=1,h=49,w=1280,heads=1", "gap:cin=1280,h=7,w=7", "linear:cin=1280,cout=1000"]
    assert [s for s in _specs(kt) if not s.startswith("transpose:")] == _specs(ko)


@pytest.mark.slow
def test_a_tflite_file_refuses_input_shape(mobilenetv2_files):
    with pytest.raises(GraphError, match="a .tflite file's input shapes are fixed; --input-shape does not apply"):
        load_model(mobilenetv2_files[2], input_shape="1x224x224x3")
    with pytest.raises(GraphError, match="the model's batch is fixed at 1 .*use a device with /b1"):
        load_model(mobilenetv2_files[2], batch=2)


# ------------------------------------------------------------------ real files out of PyPI wheels
MEDIAPIPE_CUSTOM_OP = "face_landmark_with_attention"
MEDIAPIPE_IMPORTABLE = [
    "face_detection_full_range_sparse",  # DENSIFY of sparse weights
    "face_detection_short_range",
    "face_landmark",
    "hand_landmark_full",
    "hand_landmark_lite",
    "hand_recrop",
    "iris_landmark",
    "palm_detection_full",
    "palm_detection_lite",
    "pose_detection",
    "pose_landmark_full",
    "selfie_segmentation",  # Convolution2DTransposeBias, a custom op XNNPACK runs
    "selfie_segmentation_landscape",
]
RAPIDOCR_SHAPES = {
    "ch_PP-OCRv4_det_infer": "1x3x640x640",
    "ch_PP-OCRv4_rec_infer": "1x3x48x320",
    "ch_ppocr_mobile_v2.0_cls_infer": "1x3x48x192",
}


@pytest.fixture(scope="module")
def wheel_files(session_cache):
    from hwlat.graph.wheels import DownloadError, fixture_models

    try:
        return {p.stem: p for name in ("mediapipe", "rapidocr") for p in fixture_models(name)}
    except DownloadError as exc:
        pytest.skip(f"pip cannot download the fixture wheels: {exc}")


def _tflite_macs(path: Path) -> int:
    """Convolution and fully-connected MACs counted straight from LiteRT's op and tensor lists."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    shapes = {d["index"]: tuple(d["shape"]) for d in interp.get_tensor_details()}
    total = 0
    for op in interp._get_ops_details():
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        out = int(np.prod(shapes[outs[0]])) if len(outs) else 0
        if name == "CONV_2D":
            w = shapes[ins[1]]
            total += out * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":
            w = shapes[ins[1]]
            total += out * w[1] * w[2]
        elif name == "FULLY_CONNECTED":
            total += out * shapes[ins[1]][-1]
    return int(total)


@pytest.mark.slow
@pytest.mark.parametrize("name", MEDIAPIPE_IMPORTABLE)
def test_mediapipe_model_imports(wheel_files, name):
    from ai_edge_litert.interpreter import Interpreter

    path = wheel_files[name]
    m = load_model(path)
    g = m.graph()
    detail = Interpreter(model_path=str(path)).get_input_details()[0]
    assert m.format == "tflite" and g.layout == "NHWC"
    assert m.input_shape == tuple(int(d) for d in detail["shape"])
    assert g.source["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    conv_fc = sum(g.node_macs(n) for n in g.nodes if n.source_op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    assert conv_fc == _tflite_macs(path) > 0
    ks = detect_kernels(g, device="litert-cpu")
    names = [n.name for k in ks for n in k.nodes] + [n.name for n in ks.free]
    assert sorted(names) == sorted(n.name for n in g.nodes)
    assert ks.macs == g.macs


@pytest.mark.slow
def test_mediapipe_custom_op_is_one_clear_error(wheel_files):
    with pytest.raises(GraphError) as err:
        load_model(wheel_files[MEDIAPIPE_CUSTOM_OP])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(wheel_files[MEDIAPIPE_CUSTOM_OP]))
    for op in ("TransformLandmarks x5", "Landmarks2TransformMatrix x3", "TransformTensorBilinear x3"):
        assert op in msg


@pytest.mark.slow
def test_float16_weights_are_constants(wheel_files):
    g = load_model(wheel_files["hand_landmark_full"]).graph()
    ks = detect_kernels(g, device="litert-cpu")
    assert "meta" not in ks.type_counts()
    assert [k.type for k in ks if k.nodes[0].source_op == "FULLY_CONNECTED"] == ["linear"] * 4


@pytest.mark.slow
def test_rapidocr_models_import_at_their_shapes(wheel_files):
    outputs = {
        "ch_PP-OCRv4_det_infer": (1, 1, 640, 640),  # a text probability map at the input's size
        "ch_PP-OCRv4_rec_infer": (1, 40, 6625),  # 40 time steps (320 / 8) over 6625 characters
        "ch_ppocr_mobile_v2.0_cls_infer": (1, 2),  # 0 or 180 degrees
    }
    ops = {
        "ch_PP-OCRv4_det_infer": {"ConvTranspose", "Resize", "Conv", "HardSigmoid"},
        "ch_PP-OCRv4_rec_infer": {"MatMul", "Softmax", "ReduceMean", "Transpose", "Conv"},
        "ch_ppocr_mobile_v2.0_cls_infer": {
            "Conv",
            "BatchNormalization",
            "HardSigmoid",
            "MaxPool",
            "MatMul",
            "GlobalAveragePool",
        },
    }
    for name, shape in RAPIDOCR_SHAPES.items():
        path = wheel_files[name]
        with pytest.raises(GraphError, match="has dynamic dimensions .*give --input-shape"):
            load_model(path)
        m = load_model(path, input_shape=shape)
        g = m.graph()
        assert m.input_shape == tuple(int(d) for d in shape.split("x"))
        assert g.tensors[g.outputs[0]].shape == outputs[name], name
        assert ops[name] <= {n.source_op for n in g.nodes}, name
        ks = detect_kernels(g, device="onnxruntime-cpu")
        assert ks.macs == g.macs > 0
    det = load_model(wheel_files["ch_PP-OCRv4_det_infer"], input_shape="1x3x320x320").graph()
    assert det.tensors[det.outputs[0]].shape == (1, 1, 320, 320)
