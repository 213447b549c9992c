import math

import pytest

from hwlat.devices import DeviceSpec, create_backend, get_backend, list_backends
from hwlat.measure import Protocol, measure
from hwlat.network import Network
from hwlat.ops import OpSpec

QUICK = Protocol(min_rounds=3, budget_s=0.02, warmup_s=0.005, round_s=0.002)
CPU_BACKENDS = ["torch-cpu", "onnxruntime-cpu", "litert-cpu"]
TINY = [
    OpSpec("mbconv", cin=8, cout=8, h=8, w=8, kernel=3, stride=1, expand=3),
    OpSpec("dwconv", cin=8, h=8, w=8, kernel=5, stride=2),
    OpSpec("linear", cin=16, cout=10),
    OpSpec("identity", cin=8, h=4, w=4),
]


def test_registry_lists_and_rejects():
    assert {"fake", "torch-cpu", "onnxruntime-cpu", "litert-cpu"} <= set(list_backends())
    assert list_backends("*-cpu") == ["litert-cpu", "onnxruntime-cpu", "torch-cpu"]
    with pytest.raises(ValueError, match="valid devices: .*onnxruntime-cpu"):
        get_backend("tpu")


def test_device_spec_keys_parse_back():
    spec = DeviceSpec.parse("onnxruntime-cpu", threads=2)
    assert spec.key == "onnxruntime-cpu/t2/b1/fp32"
    assert DeviceSpec.parse(spec.key) == spec
    adb = DeviceSpec.parse("adb:emulator-5554")
    assert adb.backend == "adb" and adb.option("serial") == "emulator-5554"
    assert DeviceSpec.parse("fake/t1/b8/fp16/noise=0.1").key == "fake/t1/b8/fp16/noise=0.1"
    with pytest.raises(ValueError, match="threads"):
        DeviceSpec("fake", threads=0)
    with pytest.raises(ValueError, match="precision"):
        DeviceSpec("fake", precision="fp64")
    with pytest.raises(ValueError, match="Invalid device part"):
        DeviceSpec.parse("fake/x9")
    # the string's /bN and /tN stand unless an override says otherwise; a contradiction is an error
    assert DeviceSpec.parse("cuda/b8", batch=None, threads=None).key == "cuda/t1/b8/fp32"
    assert DeviceSpec.parse("cuda/b8", batch=8).batch == 8
    with pytest.raises(
        ValueError, match="Conflicting batch for device 'cuda/b8': the device string says 8, the option says 4"
    ):
        DeviceSpec.parse("cuda/b8", batch=4)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_cpu_backend_measures_tiny_ops(name):
    backend = create_backend(name)
    info = backend.describe()
    assert info.device_key == f"{name}/t1/b1/fp32" and info.runtime_version and info.threads == 1
    results = measure(backend, TINY, QUICK)
    assert {m.op_key for m in results} == {op.key for op in TINY}
    for m in results:
        assert math.isfinite(m.median_ms) and m.median_ms > 0
        assert m.n >= QUICK.min_rounds and m.device_key == info.device_key


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_cpu_backend_measures_a_network(name):
    net = Network(
        "tiny",
        (
            OpSpec("stem", cin=3, cout=8, h=16, w=16, kernel=3, stride=2),
            OpSpec("mbconv", cin=8, cout=16, h=8, w=8, kernel=3, stride=2, expand=3),
            OpSpec("head", cin=16, mid=32, cout=10, h=4, w=4),
        ),
    )
    (m,) = measure(create_backend(name), [net], QUICK)
    assert m.kind == "network" and m.op_key == net.key and m.median_ms > 0


def test_litert_graph_has_no_layout_transposes():
    from ai_edge_litert.interpreter import Interpreter

    from hwlat.devices.litert import convert_tflite, graph_ops

    for op in TINY[:2] + [OpSpec("conv", cin=3, cout=8, h=16, w=16, kernel=3, stride=2)]:
        interp = Interpreter(model_path=str(convert_tflite(op, 1)), num_threads=1)
        assert "TRANSPOSE" not in graph_ops(interp), op.key


def test_onnx_export_is_cached(tmp_path, monkeypatch):
    from hwlat.devices.onnxruntime import export_onnx

    monkeypatch.setenv("HWLAT_CACHE", str(tmp_path))
    a = export_onnx(TINY[0], 1)
    mtime = a.stat().st_mtime_ns
    assert export_onnx(TINY[0], 1) == a and a.stat().st_mtime_ns == mtime
    assert export_onnx(TINY[0], 2) != a  # batch is part of the cache key


def test_batch_option_scales_input():
    backend = create_backend("torch-cpu", batch=4)
    assert backend.input_shape(TINY[0]) == (4, 8, 8, 8)
    (m,) = measure(backend, TINY[:1], QUICK)
    assert m.device_key == "torch-cpu/t1/b4/fp32"


def test_fake_follows_roofline_and_options():
    big = OpSpec("conv", cin=64, cout=64, h=56, w=56, kernel=3)
    slow = create_backend(DeviceSpec("fake", options=(("peak_gmacs", "5"),)))
    fast = create_backend("fake")
    assert slow.true_latency_s(big) > 3 * fast.true_latency_s(big)
    assert create_backend("fake", batch=8).true_latency_s(big) == pytest.approx(8 * fast.true_latency_s(big))
