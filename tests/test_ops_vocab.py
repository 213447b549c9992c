"""The kernel vocabulary of real models: the op kinds after ``head``, conv ``groups``, linear ``tokens``
and the activations silu/sigmoid/prelu. Each is checked against its torch module, its exported ONNX
graph (MACs as hwlat's graph counts them), both CPU runtimes, the predictor and its spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwlat.ops import OP_KINDS, VOCAB_KINDS, OpSpec
from hwlat.spaces import KERNEL_SPACES, MAX_FLOPS, get_space
from hwlat.spaces.kernels import MAX_ELEMENTS

torch = pytest.importorskip("torch")

EXAMPLES = [
    OpSpec("act", cin=24, h=14, w=14, act="hswish"),
    OpSpec("act", cin=64, h=197, w=1, act="gelu"),
    OpSpec("se", cin=16, mid=4, h=12, w=24, act="relu", gate="hsigmoid"),
    OpSpec("se", cin=32, mid=8, h=7, w=7, act="silu", gate="sigmoid"),
    OpSpec("add", cin=16, h=14, w=14, act="relu"),
    OpSpec("add", cin=8, h=7, w=9, act="none"),
    OpSpec("concat", cin=16, cout=48, h=14, w=14, inputs=3),
    OpSpec("concat", cin=8, cout=40, h=5, w=7, inputs=2),
    OpSpec("resize", cin=16, h=10, w=12, scale=2, mode="nearest"),
    OpSpec("resize", cin=8, h=10, w=10, scale=4, mode="bilinear"),
    OpSpec("softmax", cin=40, tokens=320),
    OpSpec("softmax", cin=2, tokens=1),
    OpSpec("layernorm", cin=120, tokens=40),
    OpSpec("attention", cin=15, heads=8, tokens=40),
    OpSpec("conv_transpose", cin=16, cout=8, h=10, w=10, kernel=2, stride=2, act="relu"),
    OpSpec("conv_transpose", cin=16, cout=8, h=9, w=9, kernel=4, stride=2, act="none"),
    OpSpec("conv_transpose", cin=8, cout=8, h=9, w=9, kernel=3, stride=1, act="prelu"),
    OpSpec("channel_shuffle", cin=24, h=14, w=14, groups=2),
    OpSpec("batchnorm", cin=16, h=14, w=14, act="relu"),
    OpSpec("scalar", cin=16, h=14, w=14, act="none"),
    OpSpec("scalar", cin=8, h=10, w=10, act="sigmoid"),
    OpSpec("pad", cin=24, cout=28, h=16, w=16),
    OpSpec("slice", cin=24, cout=12, h=1, w=49, outputs=2),  # a channel split of a 7x7 map, NCHW
    OpSpec("slice", cin=24, cout=12, h=49, w=1, outputs=1),  # one half of it, NHWC
    OpSpec("slice", cin=3, cout=1, h=1, w=640, outputs=3),  # q/k/v of 10 tokens x 64
    OpSpec("slice", cin=17, cout=1, h=1, w=64),  # the class token
    OpSpec("slice", cin=12, cout=4, h=5, w=7, outputs=3),  # an axis in the middle: held flat
    OpSpec("transpose", cin=16, h=10, w=6, heads=1),  # (tokens, 3 * heads, d) -> (3 * heads, tokens, d)
    OpSpec("transpose", cin=1, h=10, w=16, heads=3),  # k^T
    OpSpec("transpose", cin=1, h=24, w=49, heads=1),  # NCHW -> NHWC of a 7x7 map
    OpSpec("transpose", cin=8, h=5, w=6, heads=3),
    OpSpec("patch_embed", cin=3, cout=32, h=32, w=32, kernel=8, act="none"),
    OpSpec("patch_embed", cin=16, cout=32, h=14, w=14, kernel=2, act="relu"),
    # attributes of existing kinds
    OpSpec("dwconv", cin=16, h=12, w=40, kernel=5, stride=2, stride_w=1, act="relu"),  # PP-OCR's 2x1 strides
    OpSpec("conv", cin=8, cout=16, h=15, w=15, kernel=3, stride=1, dilation=2, act="relu"),
    OpSpec("conv", cin=32, cout=64, h=14, w=14, kernel=3, stride=2, groups=4, act="relu"),
    OpSpec("conv", cin=16, cout=32, h=8, w=8, kernel=3, groups=16, act="none"),  # depthwise, multiplier 2
    OpSpec("linear", cin=120, cout=360, tokens=40),
    OpSpec("conv", cin=16, cout=16, h=14, w=14, kernel=3, act="prelu"),
    OpSpec("dwconv", cin=16, h=14, w=14, kernel=3, act="silu"),
    OpSpec("pwconv", cin=16, cout=8, h=7, w=7, act="sigmoid"),
    OpSpec("mbconv", cin=16, cout=16, h=8, w=8, kernel=3, expand=3, act="prelu"),
    OpSpec("resblock", cin=8, cout=16, h=8, w=8, kernel=3, stride=2, act="prelu"),
]
ONE_PER_KIND = list({op.kind: op for op in EXAMPLES if op.kind in VOCAB_KINDS}.values())


def _ids(op: OpSpec) -> str:
    return op.key


def test_new_kinds_come_after_the_old_ones():
    assert OP_KINDS[: OP_KINDS.index("head") + 1] == (
        "conv",
        "stem",
        "dwconv",
        "pwconv",
        "mbconv",
        "resblock",
        "dsconv",
        "dsconv_pw",
        "linear",
        "avgpool",
        "maxpool",
        "gap",
        "identity",
        "zero",
        "head",
    )
    assert {op.kind for op in EXAMPLES} >= set(VOCAB_KINDS)


def test_old_keys_are_unchanged():
    """Optional fields at their defaults stay out of keys and dicts: every table row keeps its key."""
    conv = OpSpec("conv", cin=8, cout=16, h=15, w=15, kernel=3, stride=2)
    assert conv.key == "conv:cin=8,cout=16,h=15,w=15,kernel=3,stride=2,act=relu6"
    assert conv.to_dict() == dict(kind="conv", cin=8, cout=16, h=15, w=15, kernel=3, stride=2, act="relu6")
    assert OpSpec("linear", cin=64, cout=10).key == "linear:cin=64,cout=10"
    assert OpSpec("linear", cin=64, cout=10, tokens=1) == OpSpec("linear", cin=64, cout=10)
    assert OpSpec("linear", cin=64, cout=10).input_shape == (1, 64)
    assert OpSpec.from_key("conv:cin=8,cout=16,h=15,w=15,kernel=3,stride=2,act=relu6,groups=1") == conv
    # fields a kind does not use are normalised away, as before
    assert OpSpec("pwconv", cin=8, cout=8, h=7, w=7, groups=4, tokens=9) == OpSpec("pwconv", cin=8, cout=8, h=7, w=7)


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_key_round_trips(op):
    assert OpSpec.from_key(op.key) == op
    assert OpSpec(**op.to_dict()) == op
    assert hash(OpSpec.from_key(op.key)) == hash(op)


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_module_matches_shapes_and_params(op):
    module = op.build()
    with torch.no_grad():
        y = module(torch.randn(op.input_shape))
    ys = y if isinstance(y, tuple) else (y,)  # a split has one output per part
    assert len(ys) == (op.outputs if op.kind == "slice" else 1)
    assert all(tuple(part.shape) == op.output_shape for part in ys)
    assert not module.training
    assert op.params == sum(p.numel() for p in module.parameters())


# torch.onnx writes F.pad's pads as a Constant -> ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose ->
# Reshape -> Cast chain; hwlat.graph.onnx_import folds all of it but the Transpose (remove the mark when it does).


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_flops_match_the_exported_graph(op):
    """op.flops counts what hwlat's graph counts in the exported ONNX (node_macs), exactly."""
    pytest.importorskip("onnx")
    from hwlat.devices.onnxruntime import export_onnx
    from hwlat.graph.onnx_import import graph_from_onnx

    graph = graph_from_onnx(export_onnx(op, 1))
    assert graph.macs == op.flops


def test_slices_and_transposes_move_what_they_say():
    """slice: the input viewed as (h, cin, w), cut along cin; transpose: (heads, h, w, cin) -> (heads, w, h, cin);
    axes of size 1 dropped, four axes held flat (a converter would take them for an image)."""
    x = torch.arange(2 * 6 * 5, dtype=torch.float32)
    split = OpSpec("slice", cin=6, cout=3, h=2, w=5, outputs=2)
    assert split.view_shape == (1, 2, 6, 5) and split.input_shape == (1, 12, 5) and split.output_shape == (1, 2, 3, 5)
    a, b = split.build()(x.reshape(split.input_shape))
    torch.testing.assert_close(a, x.reshape(1, 2, 6, 5)[:, :, :3])
    torch.testing.assert_close(b, x.reshape(1, 2, 6, 5)[:, :, 3:])
    assert split.bytes == 4 * (60 + 60) and split.flops == 0 and split.features()["expand"] == 2
    one = OpSpec("slice", cin=197, cout=1, h=1, w=192)
    assert one.input_shape == (1, 197, 192) and one.output_shape == (1, 1, 192)
    assert one.bytes == 4 * (197 * 192 + 192)
    assert OpSpec("slice", cin=116, cout=58, h=784, w=1, outputs=2).input_shape == (1, 784, 116)
    t = OpSpec("transpose", cin=4, h=3, w=5, heads=1)
    assert t.view_shape == (1, 3, 5, 4) and t.input_shape == (1, 3, 20) and t.output_shape == (1, 5, 3, 4)
    y = t.build()(torch.arange(60, dtype=torch.float32).reshape(t.input_shape))
    torch.testing.assert_close(y, torch.arange(60, dtype=torch.float32).reshape(1, 3, 5, 4).transpose(1, 2))
    assert y.is_contiguous() and t.bytes == 4 * 2 * 60 and t.out_hw == (5, 3)
    kt = OpSpec("transpose", cin=1, h=197, w=64, heads=3)
    assert kt.input_shape == (1, 591, 64) and kt.output_shape == (1, 3, 64, 197) and kt.features()["mid"] == 3
    assert OpSpec("transpose", cin=8, h=5, w=6, heads=3).input_shape == (1, 3, 5, 6, 8)
    # h and w are products of axes: a 112x112 map's channel split is within the bounds
    assert OpSpec("slice", cin=64, cout=32, h=1, w=112 * 112, outputs=2).w == 12544
    pe = OpSpec("patch_embed", cin=3, cout=192, h=224, w=224, kernel=16, act="none")
    assert pe.output_shape == (1, 192, 14, 14) and pe.flops == 14 * 14 * 192 * 3 * 16 * 16
    assert pe.params == 192 * 3 * 16 * 16 + 192 and pe.features()["stride"] == 16


def test_kernel_values():
    se = OpSpec("se", cin=16, mid=4, h=12, w=24)
    assert se.flops == 16 * 12 * 24 + 2 * 16 * 4 and se.params == 2 * 16 * 4 + 16 + 4
    att = OpSpec("attention", cin=15, heads=8, tokens=40)
    assert att.input_shape == (1, 320, 15) and att.flops == 2 * 8 * 40 * 40 * 15 + 8 * 40 * 40
    assert OpSpec("conv", cin=32, cout=64, h=14, w=14, kernel=3, groups=4).flops == 14 * 14 * 64 * 8 * 9
    assert OpSpec("linear", cin=120, cout=360, tokens=40).flops == 40 * 120 * 360
    assert OpSpec("resize", cin=8, h=10, w=12, scale=4).output_shape == (1, 8, 40, 48)
    assert OpSpec("conv_transpose", cin=8, cout=4, h=5, w=5, kernel=2, stride=2).output_shape == (1, 4, 10, 10)
    cat = OpSpec("concat", cin=16, cout=48, h=14, w=14, inputs=3)
    assert cat.output_shape == (1, 48, 14, 14) and cat.bytes == 4 * 2 * 48 * 14 * 14
    assert OpSpec("add", cin=8, h=4, w=4).bytes == 4 * 3 * 8 * 16
    assert OpSpec("conv", cin=8, cout=8, h=4, w=4, kernel=3, act="prelu").params == 8 * 8 * 9 + 2 * 8 + 8


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_features(op):
    feats = op.features()
    assert tuple(feats) == OpSpec.FEATURE_NAMES
    assert all(isinstance(v, float) and np.isfinite(v) for v in feats.values())
    assert feats["bytes"] > 0


def test_features_tell_variants_apart():
    """A predictor fits one model per kind: a kind's variants must differ in its feature columns."""
    from hwlat.predict.predictor import op_features

    pairs = [
        (OpSpec("resize", cin=8, h=14, w=14, scale=2), OpSpec("resize", cin=8, h=14, w=14, scale=2, mode="bilinear")),
        (OpSpec("se", cin=64, mid=16, h=7, w=7), OpSpec("se", cin=64, mid=16, h=7, w=7, gate="hsigmoid")),
        (OpSpec("concat", cin=8, cout=24, h=7, w=7, inputs=2), OpSpec("concat", cin=8, cout=24, h=7, w=7, inputs=3)),
        (OpSpec("channel_shuffle", cin=24, h=7, w=7, groups=2), OpSpec("channel_shuffle", cin=24, h=7, w=7, groups=3)),
        (OpSpec("attention", cin=16, heads=2, tokens=64), OpSpec("attention", cin=32, heads=1, tokens=64)),
    ]
    for a, b in pairs:
        fa, fb = op_features([a, b])
        assert not np.array_equal(fa, fb), (a.key, b.key)
    # existing ops' feature rows are untouched by the new fields
    conv = OpSpec("conv", cin=8, cout=16, h=15, w=15, kernel=3, stride=2)
    assert conv.features()["expand"] == 1.0 and OpSpec("linear", cin=64, cout=10).features()["h"] == 1.0


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (dict(kind="conv", cin=16, cout=24, h=8, w=8, kernel=3, groups=5), ["groups=5", "divide"]),
        (dict(kind="concat", cin=8, cout=8, h=4, w=4, inputs=2), ["cout=8", "concat"]),
        (dict(kind="concat", cin=8, cout=17, h=4, w=4, inputs=3), ["cout=17"]),
        (dict(kind="concat", cin=8, cout=16, h=4, w=4, inputs=1), ["inputs=1"]),
        (dict(kind="resize", cin=8, h=4, w=4, scale=3), ["scale", "[2, 4, 8]"]),
        (dict(kind="resize", cin=8, h=4, w=4, scale=2, mode="bicubic"), ["mode", "bilinear"]),
        (dict(kind="se", cin=8, mid=0, h=4, w=4), ["mid=0", "se"]),
        (dict(kind="se", cin=8, mid=2, h=4, w=4, gate="tanh"), ["gate", "hsigmoid"]),
        (dict(kind="conv_transpose", cin=8, cout=8, h=4, w=4, kernel=3, stride=2), ["kernel=3", "even"]),
        (dict(kind="channel_shuffle", cin=8, h=4, w=4, groups=1), ["groups=1"]),
        (dict(kind="pad", cin=8, cout=8, h=4, w=4), ["cout=8", "pad"]),
        (dict(kind="slice", cin=8, cout=8, h=4, w=4), ["cout=8", "fewer than cin=8"]),
        (dict(kind="slice", cin=8, cout=3, h=4, w=4, outputs=2), ["cout=3", "outputs * cout == cin=8"]),
        (dict(kind="slice", cin=8, cout=4, h=4, w=4, outputs=0), ["outputs=0"]),
        (dict(kind="transpose", cin=8, h=1, w=4), ["h=1", "swapped axes"]),
        (dict(kind="transpose", cin=8, h=4, w=70_000_000), ["w=70000000", "at most 67108864"]),
        (dict(kind="patch_embed", cin=3, cout=8, h=8, w=8, kernel=1), ["kernel=1", "pwconv"]),
        (dict(kind="patch_embed", cin=3, cout=8, h=8, w=8, kernel=16), ["kernel=16", "min(h, w)=8"]),
        (dict(kind="attention", cin=8, heads=0, tokens=4), ["heads=0"]),
        (dict(kind="layernorm", cin=8, tokens=10000), ["tokens=10000", "HWLAT_MAX_SIZE"]),
        (dict(kind="conv", cin=8, cout=8, h=8, w=8, kernel=3, act="elu"), ["act", "prelu"]),
    ],
)
def test_invalid_values_name_the_field(fields, words):
    with pytest.raises(ValueError) as info:
        OpSpec(**fields)
    assert "\n" not in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_bad_keys():
    with pytest.raises(ValueError, match="tokens"):
        OpSpec.from_key("conv:cin=8,cout=8,h=8,w=8,kernel=3,stride=1,act=relu,tokens=4")
    with pytest.raises(ValueError, match="groups='two'"):
        OpSpec.from_key("conv:cin=8,cout=8,h=8,w=8,kernel=3,stride=1,act=relu,groups=two")


@pytest.mark.parametrize("op", ONE_PER_KIND, ids=_ids)
def test_nhwc_twin_computes_the_same(op):
    twin = op.build_nhwc()
    twins = ("se", "concat", "channel_shuffle", "pad", "act", "gap")  # slice and transpose take no images
    assert op.has_nhwc_twin == (op.kind in twins) == (twin is not None)
    if twin is None:
        return
    x = torch.rand(op.input_shape) - 0.5
    ref = twin.se if op.kind == "se" else op.build()
    with torch.no_grad():
        want = ref(x).permute(0, 2, 3, 1)
        got = twin(x.permute(0, 2, 3, 1).contiguous())
    torch.testing.assert_close(got, want)


def test_prelu_twin_keeps_one_slope_per_channel():
    from hwlat._modules import build_op_nhwc

    op = OpSpec("act", cin=6, h=5, w=5, act="prelu")
    module = op.build()
    with torch.no_grad():
        module.weight.copy_(torch.arange(6, dtype=torch.float32) / 10)
    twin = build_op_nhwc(op, module)
    x = torch.rand(op.input_shape) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(twin(x.permute(0, 2, 3, 1)), module(x).permute(0, 2, 3, 1))


VIEWS = [op for op in EXAMPLES if op.kind in ("slice", "transpose", "patch_embed")]
# ... and what else real models needed mapped: 2x1 strides, dilation, a LayerNorm (written out by LiteRT)
ROUND_TRIP = [
    *VIEWS,
    *(op for op in EXAMPLES if op.stride_w or op.dilation > 1),
    OpSpec("layernorm", cin=120, tokens=40),
]


@pytest.mark.parametrize("op", ROUND_TRIP, ids=_ids)
def test_the_exported_op_is_one_kernel_that_maps_back(op):
    """What inspect shows for the exported op: one kernel (views free), mapped to the op itself."""
    pytest.importorskip("onnx")
    from hwlat.graph import detect_kernels, item_graph

    for device in ("onnxruntime-cpu", "litert-cpu"):
        ks = detect_kernels(item_graph(op), device=device)
        assert [k.specs[0].key if k.specs else k.why for k in ks] == [op.key]
        assert {n.op for n in ks.free} <= {"reshape"} and ks.kernels[0].macs == op.flops


@pytest.mark.slow
@pytest.mark.parametrize("op", ROUND_TRIP, ids=_ids)
def test_the_converted_op_maps_back_on_litert(op):
    """The .tflite LiteRT runs: one TRANSPOSE, one CONV_2D (then a GELU of its own, as for every conv kind), one
    SLICE per part (litert-torch lowers every split to SLICEs, so a split is that many one-part slices there),
    a LayerNorm written out in nine ops (one layernorm kernel)."""
    _litert_ready()
    from hwlat.devices import create_backend
    from hwlat.graph import detect_kernels
    from hwlat.graph.tflite_import import graph_from_tflite

    backend = create_backend("litert-cpu")
    ks = detect_kernels(graph_from_tflite(backend.convert(op)), device="litert-cpu")
    keys = [k.specs[0].key if k.specs else k.why for k in ks]
    if op.kind == "slice":
        assert keys == [op.replace(outputs=1).key] * op.outputs
    elif op.kind == "patch_embed" and op.act == "gelu":
        assert keys == [
            op.replace(act="none").key,
            OpSpec("act", cin=op.cout, h=op.h // op.kernel, w=op.w // op.kernel, act="gelu").key,
        ]
    else:
        assert keys == [op.key]
    backend.prepare(op).call()


# ------------------------------------------------------------------ predictor and spaces
def test_predictor_fits_every_new_kind():
    """The per-kind roofline prior reads the new kinds' counters: on a latency that is linear in
    them it predicts held-out configs closely."""
    from hwlat.predict import LatencyPredictor

    ops = get_space("kernels").sample(600, seed=3)
    y = np.array([0.01 + 2e-9 * op.bytes + 1e-9 * op.flops for op in ops])
    train, test = slice(0, 450), slice(450, None)
    p = LatencyPredictor(model="prior").fit(ops[train], y[train])
    assert set(VOCAB_KINDS) <= set(p.kinds_)
    err = np.abs(p.predict(ops[test]) / y[test] - 1)
    assert float(np.median(err)) < 0.05


@pytest.mark.parametrize("name", [*KERNEL_SPACES, "kernels"])
def test_spaces_sample_valid_small_ops(name):
    space = get_space(name)
    ops = space.sample(60, seed=1)
    assert len({op.key for op in ops}) == 60
    assert all(op.kind in space.kinds and op.flops <= MAX_FLOPS for op in ops)
    views = [op for op in ops if op.kind in ("slice", "transpose")]  # h, w: what is before and after the axes
    assert all(op.h == op.w for op in ops if op not in views)
    assert all(max(math.prod(op.input_shape), math.prod(op.output_shape)) <= MAX_ELEMENTS for op in views)


def test_slice_and_transpose_spaces_cover_both_layouts_and_attention():
    slices = get_space("slice").sample(120, seed=0)
    assert {op.outputs for op in slices} == {1, 2, 3} and all(
        op.outputs * op.cout == op.cin or op.outputs == 1 for op in slices
    )
    assert any(op.h == 1 and op.w > 1 for op in slices) and any(op.w == 1 and op.h > 1 for op in slices)
    transposes = get_space("transpose").sample(120, seed=0)
    assert {op.heads for op in transposes} == {1, 3, 12} and {op.cin for op in transposes} >= {1, 64}
    assert all(op.h == op.w for op in get_space("patch_embed").sample(40)) and {
        op.kernel for op in get_space("patch_embed").sample(200)
    } == {2, 4, 8, 16}


def test_kernels_space_covers_the_vocabulary():
    ops = get_space("kernels").sample(400, seed=0)
    assert {op.kind for op in ops} >= set(VOCAB_KINDS)
    assert any(op.kind == "conv" and op.groups > 1 for op in ops)
    assert any(op.kind == "linear" and op.tokens > 1 for op in ops)
    assert all(op.groups > 1 for op in get_space("gconv").sample(50))


# ------------------------------------------------------------------ runtimes
@pytest.mark.parametrize("op", ONE_PER_KIND + EXAMPLES[-8:-5], ids=_ids)
def test_runs_on_onnxruntime(op):
    pytest.importorskip("onnxruntime")
    from hwlat.devices import create_backend

    create_backend("onnxruntime-cpu").prepare(op).call()  # raises if the session cannot run it


def _litert_ready() -> None:
    from hwlat.devices import create_backend

    try:
        create_backend("litert-cpu")
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
@pytest.mark.parametrize(
    "op", [op for op in ONE_PER_KIND if not op.has_nhwc_twin] + [EXAMPLES[-8], EXAMPLES[-6]], ids=_ids
)
def test_converts_and_runs_on_litert(op):
    _litert_ready()
    from hwlat.devices import create_backend

    create_backend("litert-cpu").prepare(op).call()


@pytest.mark.slow
@pytest.mark.parametrize("op", [op for op in ONE_PER_KIND if op.has_nhwc_twin], ids=_ids)
def test_nhwc_twin_converts_without_layout_transposes(op, tmp_path):
    """What convert_tflite should convert for these kinds: no TRANSPOSE at either end, same numbers."""
    _litert_ready()
    from ai_edge_litert.interpreter import Interpreter

    from hwlat.devices._base import quiet_fds
    from hwlat.devices.litert import graph_ops

    with quiet_fds():
        import litert_torch

    twin = op.build_nhwc()
    x = torch.rand(op.input_shape).permute(0, 2, 3, 1).contiguous() - 0.5
    with quiet_fds():
        litert_torch.convert(twin, (x,)).export(str(tmp_path / "op.tflite"))
    interp = Interpreter(model_path=str(tmp_path / "op.tflite"))
    interp.allocate_tensors()
    ops = graph_ops(interp)
    assert "TRANSPOSE" not in (ops[0], ops[-1])
    interp.set_tensor(interp.get_input_details()[0]["index"], x.numpy())
    interp.invoke()
    with torch.no_grad():
        want = twin(x).numpy()
    np.testing.assert_allclose(interp.get_tensor(interp.get_output_details()[0]["index"]), want, atol=1e-5)
