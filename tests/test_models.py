"""The architecture zoo (hwlat.models): registry, builds, published parameter counts and MACs, ONNX export."""

from __future__ import annotations

import collections
import dataclasses
import io
import subprocess
import sys
import warnings

import pytest

import hwlat.models as zoo
from hwlat.models import FAMILIES, MODELS, REFERENCES, count_macs, count_params, get_model, list_models

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine more threads only contend (results do not change)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _cheapest(family: str, n: int = 2) -> list[zoo.ModelSpec]:
    """The first level of a family (its narrowest or smallest) at its ``n`` smallest resolutions."""
    level, resolutions = FAMILIES.get(family).grid[0]
    return [get_model(zoo.variant_name(family, level, r)) for r in sorted(resolutions)[:n]]


# ------------------------------------------------------------------ registry (no torch needed)
def test_the_registry_holds_at_least_150_variants_with_unique_names():
    names = list_models()
    assert len(names) >= 150
    assert len(set(names)) == len(names)
    # every family's grid is registered in full: no two variants collapsed onto one name
    assert sum(len(FAMILIES.get(f).variants()) for f in zoo.list_families()) == len(MODELS)
    assert {get_model(n).family for n in names} == set(zoo.list_families())


def test_the_families_the_issue_asks_for_are_there():
    required = {
        "mobilenetv1",
        "mobilenetv2",
        "mobilenetv3-large",
        "mobilenetv3-small",
        "resnet18",
        "resnet50",
        "shufflenetv2",
        "squeezenet1.1",
        "mnasnet-a1",
        "mnasnet-b1",
        "efficientnet",
        "densenet121",
        "googlenet",
        "deit",
        "regnetx",
        "resnext50-32x4d",
    }
    assert required <= set(zoo.list_families())
    for family in zoo.list_families():  # each family has at least two levels or two resolutions
        grid = FAMILIES.get(family).grid
        assert len(grid) >= 2 or len(grid[0][1]) >= 2, family


def test_a_spec_names_its_input_and_factory():
    spec = get_model("mobilenetv2-w0.75-r160")
    assert (spec.family, spec.input_shape, spec.classes) == ("mobilenetv2", (1, 3, 160, 160), 1000)
    assert spec.factory == "hwlat.models.families:mobilenet_v2"
    assert spec.options == {"width": 0.75, "resolution": 160, "classes": 1000}
    assert get_model("efficientnet-b2-r260").options == {"variant": "b2", "resolution": 260, "classes": 1000}
    assert zoo.variant_name("resnet18", 1.0, 224) == "resnet18-w1.0-r224"
    assert zoo.variant_name("mobilenetv2", 0.35, 96) == "mobilenetv2-w0.35-r96"


def test_families_lists_before_and_after_the_factories_module_is_imported():
    code = (
        "import hwlat.models as m\n"
        "before = m.list_families()\n"
        "import hwlat.models.families\n"
        "assert m.list_families() == before and len(before) >= 15, m.list_families\n"
        "assert callable(m.families.mobilenet_v2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_list_models_filters_with_wildcards():
    assert list_models("efficientnet-b0-*") == [
        "efficientnet-b0-r160",
        "efficientnet-b0-r192",
        "efficientnet-b0-r224",
        "efficientnet-b0-r256",
    ]
    assert list_models("shufflenetv2-w*-r224") == [f"shufflenetv2-w{w}-r224" for w in ("0.5", "1.0", "1.5", "2.0")]
    assert set(list_models(["resnet18-*", "resnet50-*"])) == set(list_models("resnet[15]*"))
    assert list_models("no-such-*") == []
    assert len(list_models("mobilenetv2-*")) == 30


def test_an_unknown_name_says_what_was_meant():
    with pytest.raises(
        ValueError, match=r"Unknown model 'mobilenetv2-w0.75-r16' \(did you mean 'mobilenetv2-w0.75-r160'"
    ):
        get_model("mobilenetv2-w0.75-r16")
    with pytest.raises(ValueError, match="Unknown model family 'resnet'.*did you mean"):
        FAMILIES.get("resnet")


def test_listing_does_not_import_torch():
    code = (
        "import sys, hwlat.models as m\n"
        "m.list_models(); m.list_families(); m.get_model('resnet18-w1.0-r224').input_shape\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_factory_is_named_as_module_colon_callable():
    factory = zoo.load_factory("hwlat.models.families:mobilenet_v2")
    model = factory(width=0.5, resolution=96, classes=10)
    assert model.input_shape == (1, 3, 96, 96) and not model.training
    with torch.no_grad():
        assert model(torch.zeros(model.input_shape)).shape == (1, 10)
    for bad, why in [
        ("hwlat.models.families", "pkg.module:factory"),
        ("hwlat.models.families:nope", "no callable 'nope'"),
        ("hwlat.no_such_module:f", "cannot import"),
    ]:
        with pytest.raises(ValueError, match=why):
            zoo.load_factory(bad)


def test_bad_builder_arguments_are_one_clear_error():
    from hwlat.models import families

    with pytest.raises(ValueError, match="choose one of 0.5, 1.0, 1.5, 2.0"):
        families.shufflenet_v2(width=0.75)
    with pytest.raises(ValueError, match="multiple of 16"):
        families.deit(resolution=200)
    with pytest.raises(ValueError, match="Invalid width=-1"):
        families.mobilenet_v2(width=-1)
    with pytest.raises(ValueError, match="Unknown EfficientNet variant 'b9'"):
        families.efficientnet("b9")
    with pytest.raises(ValueError, match="Unknown RegNet regime"):
        families.regnet_x("3gf")
    with pytest.raises(ValueError, match="Invalid depth=0"):
        families.efficientnet(depth=0)


def test_the_table_command_prints_measured_next_to_published(capsys):
    from hwlat.models.__main__ import main

    assert main(["squeezenet1.1-w1.0-r224", "--reference"]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| squeezenet1.1-w1.0-r224 | 224 | 1,235,496 | 349.2 | 1,235,496 | 350 |"), row
    with pytest.raises(SystemExit):
        main(["no-such-model-*"])
    assert "no model matches" in capsys.readouterr().err


# ------------------------------------------------------------------ builds
@pytest.mark.parametrize("family", zoo.list_families())
def test_every_family_builds_and_runs_at_two_resolutions(family):
    first, second = _cheapest(family)
    assert first.resolution != second.resolution
    for spec in (first, dataclasses.replace(second, classes=10)):
        model = spec.build()
        assert not model.training and model.input_shape == spec.input_shape
        with torch.no_grad():
            out = model(torch.rand(spec.input_shape))
        assert out.shape == (1, spec.classes) and torch.isfinite(out).all()


def test_width_grows_parameters_and_resolution_grows_macs():
    narrow, wide = get_model("mobilenetv2-w0.5-r128").build(), get_model("mobilenetv2-w0.75-r128").build()
    assert count_params(narrow) < count_params(wide)
    assert count_macs(narrow, (1, 3, 96, 96)) < count_macs(narrow, (1, 3, 128, 128))
    # a CNN's parameters do not depend on its resolution; a ViT's position embedding does
    assert count_params(get_model("resnet18-w0.25-r128").build()) == count_params(
        get_model("resnet18-w0.25-r160").build()
    )
    tiny160, tiny192 = get_model("deit-tiny-r160").build(), get_model("deit-tiny-r192").build()
    assert count_params(tiny192) - count_params(tiny160) == (144 - 100) * 192


def test_macs_count_convolutions_linears_and_matmuls():
    from torch import nn

    from hwlat.models._layers import MatMul

    conv = nn.Conv2d(8, 16, 3, padding=1, groups=2)
    assert count_macs(conv, (1, 8, 10, 10)) == 16 * 10 * 10 * (8 // 2) * 9

    class TwoMatmuls(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.mm = nn.Linear(4, 6), MatMul()

        def forward(self, x):
            y = self.fc(x)
            return self.mm(y, y.transpose(-2, -1))

    # fc: 5x6 outputs x 4 inputs; matmul: (5x6) @ (6x5): 25 outputs x 6
    assert count_macs(TwoMatmuls(), (1, 5, 4)) == 5 * 6 * 4 + 25 * 6


@pytest.mark.slow
def test_parameter_counts_and_macs_match_the_published_ones():
    """Params exactly where the publication gives an exact count; MACs within 5 % (published to 2-3 digits)."""
    assert len(REFERENCES) >= 30 and set(REFERENCES) <= set(list_models())
    reference_families = {get_model(n).family for n in REFERENCES}
    assert reference_families == set(zoo.list_families())
    wrong = []
    for name, ref in REFERENCES.items():
        spec = get_model(name)
        model = spec.build()
        params, macs_m = count_params(model), count_macs(model, spec.input_shape) / 1e6
        if ref.params is not None and params != ref.params:
            wrong.append(f"{name}: {params:,} parameters, published {ref.params:,}")
        if abs(params / 1e6 - ref.params_m) > 0.051 * ref.params_m:
            wrong.append(f"{name}: {params / 1e6:.2f} M parameters, published {ref.params_m} M")
        if abs(macs_m / ref.macs_m - 1) > 0.05:
            wrong.append(f"{name}: {macs_m:.1f} M MACs, published {ref.macs_m} M")
    assert wrong == []


@pytest.mark.slow
def test_builders_beyond_the_registry_build_the_published_networks():
    from hwlat.models import families

    assert count_params(families.densenet169()) == 14_149_480  # torchvision densenet169
    assert count_params(families.efficientnet("b4")) == 19_341_616  # torchvision efficientnet_b4


# ------------------------------------------------------------------ ONNX
# Op types each family's exported graph must contain (after constant folding): its distinctive kernels.
KERNELS = {
    "mobilenetv1": {"Conv", "Relu", "GlobalAveragePool", "Gemm"},
    "mobilenetv2": {"Conv", "Clip", "Add"},
    "mobilenetv3-large": {"HardSwish", "HardSigmoid", "Mul", "GlobalAveragePool"},
    "mobilenetv3-small": {"HardSwish", "HardSigmoid", "Mul"},
    "resnet18": {"Conv", "MaxPool", "Add", "Relu"},
    "resnet34": {"Conv", "MaxPool", "Add"},
    "resnet50": {"Conv", "MaxPool", "Add"},
    "resnext50-32x4d": {"Conv", "Add"},
    "shufflenetv2": {"Split", "Concat", "Reshape", "Transpose", "ReduceMean"},
    "squeezenet1.0": {"Concat", "MaxPool", "Relu"},
    "squeezenet1.1": {"Concat", "MaxPool", "Relu"},
    "mnasnet-a1": {"Sigmoid", "Mul", "Add"},
    "mnasnet-b1": {"Conv", "Add"},
    "efficientnet": {"Sigmoid", "Mul", "GlobalAveragePool", "Add"},
    "densenet121": {"Concat", "BatchNormalization", "AveragePool"},
    "googlenet": {"Concat", "MaxPool"},
    "deit": {"MatMul", "Softmax", "LayerNormalization", "Erf", "Transpose"},
    "regnetx": {"Conv", "Add"},
    "regnety": {"Sigmoid", "Mul", "Add"},
}


def test_every_family_has_its_kernels_listed():
    assert set(KERNELS) == set(zoo.list_families())


def _grouped_convs(model) -> list[int]:
    import onnx

    groups = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            groups.append(attrs.get("group", 1))
    return groups


@pytest.mark.slow
@pytest.mark.parametrize("family", zoo.list_families())
def test_one_variant_per_family_exports_to_onnx(family):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnxscript import optimizer

    spec = _cheapest(family, 1)[0]
    model = spec.build()
    x = torch.rand(spec.input_shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == 17
    folded = optimizer.optimize(proto)
    ops = collections.Counter(n.op_type for n in folded.graph.node)
    assert KERNELS[family] <= set(ops), sorted(KERNELS[family] - set(ops))
    groups = _grouped_convs(folded)
    if family in ("resnext50-32x4d", "regnetx", "regnety"):  # grouped, not depthwise
        assert any(1 < g for g in groups)
    # the runtime computes what torch computes
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert y.shape == (1, 1000)
    assert abs(y - expected).max() <= 1e-4 * max(1.0, float(abs(expected).max()))
