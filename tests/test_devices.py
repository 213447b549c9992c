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


# ------------------------------------------------------------------ options
def test_fake_options_are_typed_and_typos_raise():
    backend = create_backend("fake/noise=0/peak_gmacs=10/realtime=0/drift=1:1.5/unstable=k=7")
    o = backend.options
    assert (o.noise, o.peak_gmacs, o.bandwidth_gbs, o.overhead_us) == (0.0, 10.0, 10.0, 20.0)
    assert o.realtime is False and o.drift == (1.0, 1.5) and o.unstable == "k=7" and o.drift_phase == 0
    with pytest.raises(
        ValueError, match=r"Invalid option tpyo='1' for device 'fake'; valid options: .*noise.*realtime"
    ):
        create_backend("fake/tpyo=1")
    with pytest.raises(ValueError, match="Invalid noise='lots' for device 'fake': must be a number"):
        create_backend("fake/noise=lots")
    with pytest.raises(ValueError, match="Invalid realtime='yes' for device 'fake'; valid: 0, 1"):
        create_backend("fake/realtime=yes")
    with pytest.raises(ValueError, match="Invalid drift='0:2' for device 'fake': PERIOD and FACTOR must be positive"):
        create_backend("fake/drift=0:2")
    # a GPU session is rehearsed on the fake device: the GPU knobs are accepted
    assert create_backend("fake/b8/mode=graph/gpu=1/energy=1").options.mode == "graph"


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_cpu_backends_take_only_cores(name):
    assert create_backend(f"{name}/cores=0", check=False).options.cores == "0"
    with pytest.raises(ValueError, match=f"Invalid option mode='graph' for device '{name}'; valid options: cores"):
        create_backend(f"{name}/mode=graph", check=False)


def test_options_parser_types_and_limits():
    import dataclasses

    from hwlat.devices._options import Options, option

    @dataclasses.dataclass(frozen=True)
    class Demo(Options):
        flag: bool = option(False)
        count: int = option(1, minimum=1)
        ratio: float | None = option(None, minimum=0.5)
        kind: str = option("a", choices=("a", "b"))
        index: int = option(0, minimum=0, hint="an index such as 0")

    assert Demo.names() == ["cores", "count", "flag", "index", "kind", "ratio"]
    d = Demo.from_spec(DeviceSpec.parse("demo/flag=1/count=3/ratio=0.75/kind=b"))
    assert (d.flag, d.count, d.ratio, d.kind, d.index, d.cores) == (True, 3, 0.75, "b", 0, None)
    assert Demo.from_options({}, device="demo") == Demo()
    for text, message in [
        ("count=0", "Invalid count='0' for device 'demo': must be >= 1"),
        ("count=1.5", "Invalid count='1.5' for device 'demo': must be an integer"),
        ("ratio=0.1", "Invalid ratio='0.1' for device 'demo': must be >= 0.5"),
        ("kind=c", "Invalid kind='c' for device 'demo'; valid: a, b"),
        ("index=-1", "Invalid index='-1' for device 'demo': an index such as 0"),
        ("index=x", "Invalid index='x' for device 'demo': an index such as 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            Demo.from_spec(DeviceSpec.parse(f"demo/{text}"))


def test_options_problems_hook_and_error_words():
    """``problems`` checks what one field cannot say; ``invalid`` sets a bad value's first words."""
    import dataclasses
    from typing import ClassVar

    from hwlat.devices._options import Options, option

    @dataclasses.dataclass(frozen=True)
    class Window(Options):
        invalid: ClassVar[str] = "Invalid window option"
        low: float = option(0.0)
        high: float = option(1.0)

        def problems(self):
            if self.high <= self.low:
                yield "high", f"must be > low={self.low:g}"

    assert Window.names() == ["cores", "high", "low"]  # the class attribute is no option
    assert Window.from_options({"low": "0.5"}, device="demo") == Window(low=0.5)
    with pytest.raises(ValueError, match=r"^Invalid window option high='0.2' for device 'demo': must be > low=0.5$"):
        Window.from_options({"low": "0.5", "high": "0.2"}, device="demo")
    with pytest.raises(ValueError, match=r"^Invalid window option high='1.0' for device 'demo': must be > low=2$"):
        Window.from_options({"low": "2"}, device="demo")  # a default is named by its value
    with pytest.raises(ValueError, match=r"^Invalid window option low='x' for device 'demo': must be a number$"):
        Window.from_options({"low": "x"}, device="demo")
    with pytest.raises(ValueError, match=r"^Invalid option lo='1' for device 'demo'; valid options: cores, high, low$"):
        Window.from_options({"lo": "1"}, device="demo")


def test_unknown_device_names_the_valid_ones_and_the_closest():
    with pytest.raises(
        ValueError, match=r"Unknown device 'faek' \(did you mean 'fake'\?\); valid devices: .*torch-cpu"
    ):
        get_backend("faek")


def test_options_refuse_non_finite_numbers_and_check_cores():
    import dataclasses
    import os

    from hwlat.devices._options import Options, option

    @dataclasses.dataclass(frozen=True)
    class Rates(Options):
        rate: float = option(1.0, above=0.0)
        anything: float = option(1.0, finite=False)

    for text, words in (("nan", "must be a finite number"), ("inf", "must be a finite number"), ("0", "must be > 0")):
        with pytest.raises(ValueError, match=f"^Invalid rate='{text}' for device 'demo': {words}$"):
            Rates.from_options({"rate": text}, device="demo")
    assert Rates.from_options({"anything": "inf"}, device="demo").anything == float("inf")
    count = os.cpu_count()
    assert Rates.from_options({"cores": "0"}, device="demo").cores == "0"
    for text in (str(count), "abc", "0-1", "", "1,,2"):
        with pytest.raises(
            ValueError, match=f"Invalid cores='{text}' for device 'demo'.*this machine has {count} CPUs"
        ):
            Rates.from_options({"cores": text}, device="demo")
    # a phone's cores are the phone's: checked by the adb backend, not against this machine
    from hwlat.devices.adb.settings import AdbSettings

    assert AdbSettings.from_options({"cores": "4-7"}).cores == "4-7"


def test_fake_options_that_would_divide_by_zero_are_refused():
    for spec in ("fake/peak_gmacs=0", "fake/bandwidth_gbs=-1", "fake/bandwidth_gbs=inf", "fake/noise=nan"):
        with pytest.raises(ValueError, match=r"^Invalid \w+='[^']+' for device 'fake': must be"):
            create_backend(spec)
