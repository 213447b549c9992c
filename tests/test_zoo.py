"""The network zoo, the ProxylessNAS config loader and ``--networks`` parsing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hwlat import workflows, zoo
from hwlat.network import Network
from hwlat.ops import OpSpec

torch = pytest.importorskip("torch")

SHARED = Path(__file__).resolve().parents[1] / "datasets_lat" / "published"
CONFIGS = {
    "proxyless-gpu": "proxylessnas_proxyless_gpu.config",
    "proxyless-cpu": "proxylessnas_proxyless_cpu.config",
    "proxyless-mobile": "proxylessnas_proxyless_mobile.config",
    "proxyless-mobile-14": "proxylessnas_proxyless_mobile_14.config",
}


def _config(name: str) -> dict:
    return json.loads((SHARED / CONFIGS[name]).read_text())


def _forward(net: Network) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(net.build()(torch.randn(net.input_shape)).shape)


# ------------------------------------------------------------------ registry
def test_list_and_patterns():
    names = zoo.list_networks()
    assert {"mobilenetv1", "mobilenetv2", "resnet18", *CONFIGS} <= set(names)
    assert names == sorted(names)
    assert zoo.list_networks("proxyless-*") == sorted(CONFIGS)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet18") as info:
        zoo.get_network("resnet19")
    assert "resnet19" in str(info.value) and "proxyless-mobile" in str(info.value)


def test_reregistering_warns():
    @zoo.register_network("_test-net")
    def first(resolution=224, classes=1000):
        return zoo.get_network("proxyless-mobile", resolution=resolution, classes=classes)

    try:
        with pytest.warns(UserWarning, match="_test-net"):
            zoo.register_network("_test-net")(lambda **kw: first(**kw))
        assert zoo.get_network("_test-net", resolution=32).input_shape == (1, 3, 32, 32)
    finally:
        zoo.NETWORKS.unregister("_test-net")


@pytest.mark.parametrize("name", zoo.list_networks())
def test_every_network_builds_and_runs(name):
    net = zoo.get_network(name, resolution=64, classes=10)
    assert net.input_shape == (1, 3, 64, 64)
    assert net.ops[-1].output_shape == (1, 10)
    assert _forward(net) == (1, 10)


@pytest.mark.parametrize("name", [n for n in zoo.list_networks() if not n.endswith("-digits")])
def test_default_input_is_imagenet(name):
    net = zoo.get_network(name)
    assert net.input_shape == (1, 3, 224, 224)
    assert net.ops[-1].output_shape == (1, 1000)
    assert net.name == name


@pytest.mark.parametrize("name", zoo.list_networks("*-digits"))
def test_digits_networks_default_to_digits(name):
    net = zoo.get_network(name)
    assert net.input_shape[:2] == (1, 3) and net.input_shape[2] <= 32
    assert net.ops[-1].output_shape == (1, 10)


# ------------------------------------------------------- published numbers
@pytest.mark.parametrize(
    ("name", "kwargs", "params"),
    [
        ("resnet18", {}, 11_689_512),  # torchvision.models.resnet18
        ("mobilenetv2", {}, 3_504_872),  # torchvision.models.mobilenet_v2
        ("mobilenetv1", {}, 4_231_976),  # Keras MobileNet (trainable)
    ],
)
def test_params_match_published_and_torch(name, kwargs, params):
    net = zoo.get_network(name, **kwargs)
    assert net.params == sum(op.params for op in net.ops) == params
    assert sum(p.numel() for p in net.build().parameters()) == params


def test_mobilenetv2_width_rounding():
    net = zoo.get_network("mobilenetv2", width_mult=1.4)
    assert net.ops[0].cout == 48  # _make_divisible(32 * 1.4, 8)
    assert net.ops[-1].mid == 1792  # the last layer widens above 1.0
    assert all(op.cout % 8 == 0 for op in net.ops[:-1])
    assert zoo.get_network("mobilenetv2", width_mult=0.5).ops[-1].mid == 1280
    assert net.name == "mobilenetv2-w1.4"
    with pytest.raises(ValueError, match="width_mult"):
        zoo.get_network("mobilenetv2", width_mult=0)


def test_make_divisible():
    assert [zoo.make_divisible(v) for v in (32, 44.8, 3, 11.9, 20)] == [32, 48, 8, 16, 24]


def test_resnet18_layout():
    ops = zoo.get_network("resnet18").ops
    assert [op.kind for op in ops] == ["conv", "maxpool", *["resblock"] * 8, "head"]
    assert ops[0].kernel == 7 and ops[0].act == "relu" and ops[1].out_hw == (56, 56)
    assert ops[-1].mid == 0 and (ops[-1].h, ops[-1].cin) == (7, 512)


def test_proxyless_published_sizes():
    # ProxylessNAS paper: mobile 4.1M params / 320M MACs, GPU 7.1M / 465M.
    mobile, gpu = zoo.get_network("proxyless-mobile"), zoo.get_network("proxyless-gpu")
    assert round(mobile.params / 1e6, 1) == 4.1 and round(mobile.flops / 1e6) == 320
    assert round(gpu.params / 1e6, 1) == 7.1 and round(gpu.flops / 1e6) == 465


# --------------------------------------------------------- config loader
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_builtin_proxyless_equals_config(name):
    assert zoo.from_proxyless_config(_config(name), name=name) == zoo.get_network(name)
    small = zoo.from_proxyless_config(_config(name), name="x", resolution=96)
    assert small.ops == zoo.get_network(name, resolution=96).ops


def test_network_load_reads_proxyless_config(tmp_path):
    path = tmp_path / "proxyless-cpu.json"
    path.write_text(json.dumps(_config("proxyless-cpu")))
    assert Network.load(path) == zoo.get_network("proxyless-cpu")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda c: c.pop("first_conv"), ["first_conv"]),
        (lambda c: c["blocks"][1]["mobile_inverted_conv"].update(kernel_size=4), ["block 1", "kernel", "[3, 5, 7]"]),
        (lambda c: c["blocks"][1]["mobile_inverted_conv"].update(in_channels=24), ["block 1", "in_channels"]),
        (lambda c: c["blocks"][2].update(shortcut=None), ["block 2", "shortcut"]),
        (lambda c: c["blocks"][1].update(shortcut=c["blocks"][2]["shortcut"]), ["block 1", "shortcut"]),
        (lambda c: c["blocks"][3].update(shortcut=None), ["block 3", "ZeroLayer"]),
        (lambda c: c["blocks"][0]["mobile_inverted_conv"].update(name="SepConv"), ["block 0", "SepConv"]),
        (lambda c: c["feature_mix_layer"].update(in_channels=7), ["feature_mix_layer", "in_channels"]),
        (lambda c: c["classifier"].update(in_features=7), ["classifier", "in_features"]),
        (lambda c: c["first_conv"].update(act_func="gelu"), ["first_conv", "gelu"]),
        (lambda c: c.update(blocks={}), ["blocks"]),
    ],
)
def test_bad_configs_say_what_is_wrong(edit, words):
    config = copy.deepcopy(_config("proxyless-mobile"))
    edit(config)
    with pytest.raises(ValueError) as info:
        zoo.from_proxyless_config(config, name="bad")
    for word in words:
        assert word in str(info.value)


def test_non_object_config():
    with pytest.raises(ValueError, match="JSON object"):
        zoo.from_proxyless_config([1, 2], name="bad")


# ------------------------------------------------------------- save/load
@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "proxyless-gpu", "mobilenetv1"])
def test_save_load_round_trip(tmp_path, name):
    net = zoo.get_network(name, resolution=128)
    loaded = Network.load(net.save(tmp_path / "net.json"))
    assert loaded == net and loaded.key == net.key


def test_load_rejects_bad_files(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        Network.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "hwlat.network/1"}))
    with pytest.raises(ValueError, match="ops"):
        Network.load(tmp_path / "b.json")


# ------------------------------------------------------- --networks values
def test_resolve_names_random_and_files(tmp_path):
    path = zoo.get_network("resnet18", resolution=64).save(tmp_path / "small.json")
    nets = workflows.resolve_networks(f"mobilenetv2, random:2 ,random:1:7,{path}", seed=3)
    assert [n.name for n in nets] == ["mobilenetv2", "random-3-0", "random-3-1", "random-7-0", "resnet18-r64"]
    assert nets[1] != nets[2]
    assert workflows.resolve_networks("random:2", seed=3) == nets[1:3]


@pytest.mark.parametrize("spec", ["resnet19", "random:x", "random:", "", " , "])
def test_resolve_rejects_unknown(spec):
    with pytest.raises(ValueError) as info:
        workflows.resolve_networks(spec)
    if spec.strip(" ,"):
        assert "resnet18" in str(info.value) and "random:N" in str(info.value)


def test_resolve_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        workflows.resolve_networks(str(tmp_path / "missing.json"))


def test_mbconv_network_skips_none_blocks():
    net = zoo.mbconv_network("t", [(3, 1, 16, 1), (3, 6, 24, 2), None, (5, 3, 24, 1)], resolution=32, classes=5)
    assert [op.kind for op in net.ops] == ["stem", "mbconv", "mbconv", "mbconv", "head"]
    assert net.ops[3] == OpSpec("mbconv", cin=24, cout=24, h=8, w=8, kernel=5, stride=1, expand=3)
    assert _forward(net) == (1, 5)
