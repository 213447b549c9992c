"""OpSpec: keys, shapes, cost counters and validation, checked against the torch modules."""

from __future__ import annotations

import pytest

from hwlat.ops import OP_KINDS, VOCAB_KINDS, OpSpec

torch = pytest.importorskip("torch")
nn = torch.nn

# Small but non-trivial examples: odd sizes, strides, channel changes, both skip cases.
EXAMPLES = [
    OpSpec("conv", cin=8, cout=16, h=15, w=15, kernel=3, stride=2),
    OpSpec("conv", cin=3, cout=8, h=16, w=16, kernel=7, stride=2, act="relu"),
    OpSpec("stem", cin=3, cout=16, h=32, w=32, kernel=3, stride=2),
    OpSpec("dwconv", cin=16, h=14, w=14, kernel=5, stride=1, act="hswish"),
    OpSpec("pwconv", cin=16, cout=24, h=7, w=7),
    OpSpec("mbconv", cin=16, cout=24, h=16, w=16, kernel=5, stride=2, expand=3),
    OpSpec("mbconv", cin=16, cout=16, h=14, w=14, kernel=7, stride=1, expand=6),
    OpSpec("mbconv", cin=32, cout=16, h=16, w=16, kernel=3, stride=1, expand=1),
    OpSpec("resblock", cin=16, cout=16, h=14, w=14, kernel=3, stride=1, act="relu"),
    OpSpec("resblock", cin=16, cout=32, h=14, w=14, kernel=3, stride=2, act="relu"),
    OpSpec("dsconv", cin=24, cout=16, h=14, w=14, kernel=3, stride=1),
    OpSpec("dsconv_pw", cin=16, cout=32, h=13, w=13, kernel=3, stride=2),
    OpSpec("linear", cin=64, cout=10),
    OpSpec("avgpool", cin=8, h=15, w=15, kernel=3, stride=2),
    OpSpec("maxpool", cin=8, h=14, w=14, kernel=5, stride=1),
    OpSpec("gap", cin=16, h=7, w=7),
    OpSpec("identity", cin=16, h=7, w=7),
    OpSpec("zero", cin=16, cout=24, h=7, w=7, stride=2),
    OpSpec("head", cin=32, mid=64, cout=10, h=7, w=7),
    OpSpec("head", cin=32, mid=0, cout=10, h=4, w=4, act="relu"),
    # optional geometry of conv and dwconv: a stride along the width of its own, dilation
    OpSpec("dwconv", cin=16, h=12, w=40, kernel=3, stride=2, stride_w=1, act="hswish"),
    OpSpec("conv", cin=8, cout=16, h=15, w=15, kernel=3, stride=1, stride_w=2, dilation=2, act="relu"),
]
NO_COMPUTE = ("identity", "zero")


def _ids(op: OpSpec) -> str:
    return op.key


def test_examples_cover_every_kind():
    # the kernel-vocabulary kinds are covered by tests/test_ops_vocab.py
    assert {op.kind for op in EXAMPLES} == set(OP_KINDS) - set(VOCAB_KINDS)


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_key_round_trips(op):
    assert OpSpec.from_key(op.key) == op
    assert OpSpec(**op.to_dict()) == op
    assert hash(OpSpec.from_key(op.key)) == hash(op)


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_forward_shape_matches_output_shape(op):
    module = op.build()
    with torch.no_grad():
        y = module(torch.randn(op.input_shape))
    assert tuple(y.shape) == op.output_shape
    assert not module.training


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_params_match_module(op):
    assert op.params == sum(p.numel() for p in op.build().parameters())


def _hooked_macs(op: OpSpec) -> int:
    """MACs of the Conv2d/Linear layers, counted from the shapes seen at run time."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * (module.in_channels // module.groups) * k
        else:
            total += module.in_features * module.out_features

    module = op.build()
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        module(torch.randn(op.input_shape))
    return total


def _window_macs(op: OpSpec) -> int:
    """The non-conv terms OpSpec.flops documents: one per pooling-window element."""
    if op.kind in ("avgpool", "maxpool"):
        ho, wo = op.out_hw
        return ho * wo * op.cin * op.kernel**2
    if op.kind == "gap":
        return op.h * op.w * op.cin
    if op.kind == "head":  # global average pool over the feature-mix output
        return op.h * op.w * (op.mid or op.cin)
    return 0


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_flops_match_hooked_count(op):
    assert op.flops == _hooked_macs(op) + _window_macs(op)


@pytest.mark.parametrize("op", EXAMPLES, ids=_ids)
def test_features(op):
    feats = op.features()
    assert tuple(feats) == OpSpec.FEATURE_NAMES
    assert all(isinstance(v, (int, float)) for v in feats.values())
    assert feats["bytes"] > 0
    if op.kind not in NO_COMPUTE:
        assert feats["flops"] > 0 and feats["intensity"] > 0


def test_skip_and_projection():
    assert OpSpec("mbconv", cin=16, cout=16, h=8, w=8, kernel=3).has_skip
    assert not OpSpec("mbconv", cin=16, cout=16, h=8, w=8, kernel=3, stride=2).has_skip
    assert not OpSpec("mbconv", cin=16, cout=24, h=8, w=8, kernel=3).has_skip
    assert OpSpec("resblock", cin=16, cout=32, h=8, w=8, kernel=3).has_projection
    assert not OpSpec("resblock", cin=16, cout=16, h=8, w=8, kernel=3).has_projection


def test_stride_w_and_dilation_are_optional_geometry():
    """Keys stay what they were unless set; a square stride is written once; out_w follows stride_w."""
    dw = OpSpec("dwconv", cin=8, h=24, w=96, kernel=3, stride=2, stride_w=1)
    assert dw.key == "dwconv:cin=8,h=24,w=96,kernel=3,stride=2,act=relu6,stride_w=1"
    assert dw.out_hw == (12, 96) and dw.flops == 12 * 96 * 8 * 9
    assert OpSpec("dwconv", cin=8, h=24, w=96, kernel=3, stride=2, stride_w=2) == OpSpec(
        "dwconv", cin=8, h=24, w=96, kernel=3, stride=2
    )
    dil = OpSpec("conv", cin=8, cout=8, h=15, w=15, kernel=3, dilation=4)
    assert dil.out_hw == (15, 15) and dil.flops == OpSpec("conv", cin=8, cout=8, h=15, w=15, kernel=3).flops
    assert dil.features()["mid"] == 4.0 and OpSpec("conv", cin=8, cout=8, h=15, w=15, kernel=3).features()["mid"] == 0
    # kinds without them normalise them away (as every unused field)
    assert OpSpec("pwconv", cin=8, cout=8, h=7, w=7, stride_w=2, dilation=2) == OpSpec(
        "pwconv", cin=8, cout=8, h=7, w=7
    )
    with pytest.raises(ValueError, match=r"Invalid stride_w=3 for 'dwconv'; allowed: \[0, 1, 2\]"):
        OpSpec("dwconv", cin=8, h=8, w=8, kernel=3, stride_w=3)
    with pytest.raises(ValueError, match="Invalid dilation=2 for kernel=2: a dilated kernel must be odd"):
        OpSpec("conv", cin=8, cout=8, h=8, w=8, kernel=2, dilation=2)
    with pytest.raises(ValueError, match="dilation=40 .* at most 31"):
        OpSpec("conv", cin=8, cout=8, h=8, w=8, kernel=3, dilation=40)


def test_unused_fields_are_normalised():
    a = OpSpec("pwconv", cin=8, cout=16, h=7, w=7, kernel=3, stride=2)
    assert a == OpSpec("pwconv", cin=8, cout=16, h=7, w=7)
    assert OpSpec("linear", cin=8, cout=4, h=7, w=7).input_shape == (1, 8)
    assert OpSpec("dwconv", cin=8, cout=99, h=7, w=7, kernel=3).cout == 8


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (dict(kind="mbconv", cin=16, h=8, w=8, kernel=4), ["kernel", "[3, 5, 7]"]),
        (dict(kind="mbconv", cin=16, h=8, w=8, kernel=3, expand=2), ["expand", "[1, 3, 6]"]),
        (dict(kind="conv", cin=16, h=8, w=8, kernel=3, stride=3), ["stride", "[1, 2]"]),
        (dict(kind="conv", cin=0, h=8, w=8, kernel=3), ["cin"]),
        (dict(kind="conv", cin=8, h=0, w=8, kernel=3), ["h="]),
        (dict(kind="conv", cin=8, h=8, w=8, kernel=3, act="elu"), ["act", "relu6"]),
        (dict(kind="head", cin=8, mid=-1, h=8, w=8), ["mid"]),
    ],
)
def test_invalid_values_name_the_field(fields, words):
    with pytest.raises(ValueError) as info:
        OpSpec(**fields)
    for word in words:
        assert word in str(info.value)


def test_unknown_kind_lists_kinds():
    with pytest.raises(ValueError, match="valid kinds") as info:
        OpSpec("conv3d", cin=8)
    assert all(kind in str(info.value) for kind in OP_KINDS)


@pytest.mark.parametrize("value", [8.0, "8", True])
def test_non_int_channels_are_type_errors(value):
    with pytest.raises(TypeError, match="cin"):
        OpSpec("conv", cin=value, cout=8, h=8, w=8, kernel=3)


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("conv", ["expected"]),
        ("conv:cin=8,depth=3", ["depth"]),
        ("conv:cin=eight", ["cin", "eight"]),
        ("conv3d:cin=8", ["conv3d", "valid kinds"]),
        ("mbconv:cin=8,h=8,w=8,kernel=4", ["kernel", "[3, 5, 7]"]),
    ],
)
def test_bad_keys(key, words):
    with pytest.raises(ValueError) as info:
        OpSpec.from_key(key)
    for word in words:
        assert word in str(info.value)


# ------------------------------------------------------------------ shape bounds
@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("mbconv:cin=1000000,cout=24,h=8,w=8,kernel=3,stride=1,expand=6", ["cin=1000000", "65536", "MAX_CHANNELS"]),
        ("conv:cin=8,cout=70000,h=8,w=8,kernel=3,stride=1", ["cout=70000", "65536", "HWLAT_MAX_CHANNELS"]),
        ("head:cin=8,mid=100000,cout=10,h=7,w=7", ["mid=100000", "65536"]),
        ("conv:cin=8,cout=8,h=10000,w=8,kernel=3,stride=1", ["h=10000", "8192", "HWLAT_MAX_SIZE"]),
        ("gap:cin=8,h=8,w=9000", ["w=9000", "8192", "HWLAT_MAX_SIZE"]),
        ("conv:cin=8,cout=8,h=64,w=64,kernel=33,stride=1", ["kernel=33", "31", "HWLAT_MAX_KERNEL"]),
        # slice and transpose: h and w are products of axes (before and after the ones they move), bounded by 8192^2
        ("transpose:cin=1,h=70000000,w=2,heads=1", ["h=70000000", "67108864", "HWLAT_MAX_SIZE"]),
        ("slice:cin=4,cout=2,h=1,w=70000000,outputs=2", ["w=70000000", "67108864"]),
        ("slice:cin=4,cout=2,h=1,w=64,outputs=70000", ["outputs=70000", "65536", "HWLAT_MAX_CHANNELS"]),
    ],
)
def test_shapes_beyond_the_limits_are_refused_in_one_line(key, words):
    with pytest.raises(ValueError) as info:
        OpSpec.from_key(key)
    message = str(info.value)
    assert "\n" not in message and "at most" in message
    for word in words:
        assert word in message


def test_the_limits_are_inclusive_and_the_environment_raises_them(monkeypatch):
    assert OpSpec("conv", cin=65536, cout=8, h=8192, w=8192, kernel=31).cin == 65536  # the bounds themselves pass
    assert OpSpec("slice", cin=64, cout=32, h=1, w=8192**2, outputs=2).w == 8192**2  # a product of two sizes
    with pytest.raises(ValueError, match="HWLAT_MAX_CHANNELS"):
        OpSpec("linear", cin=100_000, cout=10)
    monkeypatch.setenv("HWLAT_MAX_CHANNELS", "200000")
    assert OpSpec("linear", cin=100_000, cout=10).cin == 100_000
    monkeypatch.setenv("HWLAT_MAX_CHANNELS", "lots")
    with pytest.raises(ValueError, match=r"Invalid HWLAT_MAX_CHANNELS='lots': must be an int >= 1"):
        OpSpec("linear", cin=8, cout=10)


def test_counts_are_exact_ints_and_features_floats_beyond_int64():
    """The largest op within the bounds: its MAC count passes 2**63 (an int64 overflows; log1p failed on it)."""
    import numpy as np

    op = OpSpec("conv", cin=65536, cout=65536, h=8192, w=8192, kernel=31)
    assert isinstance(op.flops, int) and op.flops == 8192 * 8192 * 65536 * 65536 * 31 * 31 > 2**63
    assert isinstance(op.params, int) and isinstance(op.bytes, int)
    feats = op.features()
    assert all(type(v) is float for v in feats.values())
    assert feats["flops"] == float(op.flops)
    logs = np.log1p(np.asarray(list(feats.values())))
    assert logs.dtype == np.float64 and np.isfinite(logs).all()
