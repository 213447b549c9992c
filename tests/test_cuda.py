"""GPU backends: availability reasons (no GPU needed), options, the pure timing logic,
and — marked ``gpu``, skipped with the backend's own reason — real CUDA timing."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

from hwlat.devices import DeviceSpec, _gpu, create_backend, get_backend, list_backends
from hwlat.measure import Protocol, measure
from hwlat.ops import OpSpec

ROOT = Path(__file__).resolve().parents[1]
GPU_BACKENDS = ["cuda", "tensorrt", "onnxruntime-cuda", "onnxruntime-trt"]
TINY = OpSpec("mbconv", cin=8, cout=8, h=8, w=8, kernel=3, stride=1, expand=3)
QUICK = Protocol(min_rounds=3, budget_s=0.05, warmup_s=0.01, round_s=0.005)
CUDA_REASON = get_backend("cuda").check()
needs_cuda = pytest.mark.skipif(CUDA_REASON is not None, reason=f"cuda backend unavailable: {CUDA_REASON}")


# ------------------------------------------------------------ availability
def test_gpu_backends_are_registered_with_a_reason_or_none():
    assert set(GPU_BACKENDS) <= set(list_backends())
    for name in GPU_BACKENDS:
        reason = get_backend(name).check()
        assert reason is None or (isinstance(reason, str) and len(reason) > 20), (name, reason)


def test_cuda_reason_names_the_cpu_torch_build(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    reason = get_backend("cuda").check()
    assert reason.startswith(f"torch has no CUDA (torch {torch.__version__})")
    assert "install a CUDA build of torch" in reason and "download.pytorch.org/whl/cu" in reason
    with pytest.raises(RuntimeError, match="device 'cuda' is unavailable here: torch has no CUDA"):
        create_backend("cuda")


def test_cuda_reason_without_a_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert get_backend("cuda").check().startswith("no CUDA device found")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert "CUDA_VISIBLE_DEVICES='-1' hides them all" in get_backend("cuda").check()


def test_visible_gpu_count_without_nvml(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(_gpu, "_nvml_lib", lambda: None)
    n, reason = _gpu.visible_gpu_count()
    assert n == -1 and "no CUDA device found" in reason and "libnvidia-ml.so.1" in reason


def test_onnxruntime_gpu_reasons(monkeypatch):
    import onnxruntime

    versions = {"onnxruntime": "1.32.0"}
    monkeypatch.setattr(_gpu, "dist_version", lambda *names: next((versions[n] for n in names if n in versions), None))
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    expected = "onnxruntime-gpu is not installed (pip install onnxruntime-gpu; it replaces onnxruntime)"
    assert get_backend("onnxruntime-cuda").check() == expected
    assert get_backend("onnxruntime-trt").check() == expected
    versions["onnxruntime-gpu"] = "1.32.0"  # both wheels installed: the CPU one's module won
    reason = get_backend("onnxruntime-cuda").check()
    assert reason.startswith("CUDAExecutionProvider not in onnxruntime's providers ['CPUExecutionProvider']")
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in reason
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(
        _gpu, "visible_gpu_count", lambda: (0, "no CUDA device found (the NVIDIA driver reports no GPU)")
    )
    assert get_backend("onnxruntime-cuda").check() == "no CUDA device found (the NVIDIA driver reports no GPU)"
    monkeypatch.setattr(_gpu, "visible_gpu_count", lambda: (1, ""))
    assert get_backend("onnxruntime-cuda").check() is None


def test_tensorrt_reasons_name_the_version_pairing(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "__version__", "2.13.0+cu128")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    versions: dict[str, str] = {}
    monkeypatch.setattr(_gpu, "dist_version", lambda *names: next((versions[n] for n in names if n in versions), None))
    reason = get_backend("tensorrt").check()
    assert reason.startswith("torch-tensorrt is not installed: pip install 'torch-tensorrt==2.13.*'")
    assert "torch-tensorrt X.Y pins torch X.Y" in reason and "hwlat[gpu]" in reason
    versions["torch-tensorrt"] = "2.9.0"
    reason = get_backend("tensorrt").check()
    assert reason.startswith("torch-tensorrt 2.9.0 needs torch 2.9.*, but torch 2.13.0+cu128 is installed")
    assert "pip install 'torch-tensorrt==2.13.*'" in reason


def test_tensorrt_reason_lists_every_missing_piece(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(_gpu, "dist_version", lambda *names: None)
    reason = get_backend("tensorrt").check()
    assert "torch has no CUDA" in reason and "torch-tensorrt is not installed" in reason


def test_check_does_not_initialise_cuda():
    code = (
        "import torch; from hwlat.devices import get_backend\n"
        "for n in ('cuda', 'tensorrt', 'onnxruntime-cuda', 'onnxruntime-trt'): get_backend(n).check()\n"
        "print(torch.cuda.is_initialized())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_devices_command_says_why_and_how(tmp_path):
    from conftest import run_cli

    proc = run_cli("devices")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    for name in GPU_BACKENDS:
        reason = get_backend(name).check()
        assert ("  yes  " in rows[name]) == (reason is None)
        if reason is not None:
            assert reason in rows[name]


def test_gpu_marker_is_registered():
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("gpu:") for m in markers)


# ------------------------------------------------------------------ options
def test_cuda_device_keys_and_options(monkeypatch):
    spec = DeviceSpec.parse("cuda/t1/b8/fp16/mode=graph")
    assert spec.key == "cuda/t1/b8/fp16/mode=graph" and spec.batch == 8 and spec.option("mode") == "graph"
    cls = get_backend("cuda")
    b = cls(DeviceSpec.parse("cuda/b8/bf16/mode=compile/compile_mode=max-autotune/flush_l2=1/energy=1/energy_s=2"))
    assert (b.mode, b.compile_mode, b.flush_l2, b.energy, b.energy_s) == ("compile", "max-autotune", True, True, 2.0)
    assert cls(DeviceSpec.parse("cuda")).mode == "eager"
    with pytest.raises(ValueError, match="Invalid mode='fast'.*valid: eager, graph, compile"):
        cls(DeviceSpec.parse("cuda/mode=fast"))
    with pytest.raises(ValueError, match="Invalid option warp='1' .*valid options: .*flush_l2.*mode"):
        cls(DeviceSpec.parse("cuda/warp=1"))
    with pytest.raises(ValueError, match="int8.*valid: fp32, fp16, bf16"):
        cls(DeviceSpec.parse("cuda/int8"))
    with pytest.raises(ValueError, match="energy_s='0.1'.*>= 0.5"):
        cls(DeviceSpec.parse("cuda/energy=1/energy_s=0.1"))
    with pytest.raises(ValueError, match="needs mode=compile"):
        cls(DeviceSpec.parse("cuda/compile_mode=max-autotune"))
    with pytest.raises(ValueError, match="Invalid gpu='x'"):
        cls(DeviceSpec.parse("cuda/gpu=x"))


def test_onnxruntime_gpu_options():
    cuda = get_backend("onnxruntime-cuda")(DeviceSpec.parse("onnxruntime-cuda/fp16/cuda_graph=1/gpu=1"))
    ((name, opts),) = cuda.providers()
    assert name == "CUDAExecutionProvider" and opts["enable_cuda_graph"] == "1" and opts["device_id"] == "1"
    with pytest.raises(ValueError, match="bf16.*valid: fp32, fp16"):
        get_backend("onnxruntime-cuda")(DeviceSpec.parse("onnxruntime-cuda/bf16"))
    trt = get_backend("onnxruntime-trt")(DeviceSpec.parse("onnxruntime-trt/fp16"))
    assert trt.model_precision == "fp32"
    (n1, o1), (n2, _) = trt.providers(TINY)
    assert (n1, n2) == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    assert o1["trt_fp16_enable"] == "1" and o1["trt_engine_cache_enable"] == "1"
    cache = Path(o1["trt_engine_cache_path"])
    assert cache.is_dir() and o1["trt_timing_cache_path"] == str(cache)
    # one engine folder per op and options
    fp32 = get_backend("onnxruntime-trt")(DeviceSpec.parse("onnxruntime-trt"))
    assert fp32.providers(TINY)[0][1]["trt_engine_cache_path"] != str(cache)
    other = OpSpec("dwconv", cin=8, h=8, w=8, kernel=5, stride=2)
    assert trt.providers(other)[0][1]["trt_engine_cache_path"] != str(cache)


def test_fp16_onnx_export_is_half_and_cached_apart():
    import onnx

    from hwlat.devices.onnxruntime import export_onnx

    half = export_onnx(TINY, 1, "fp16")
    assert half != export_onnx(TINY, 1) and half.exists()
    model = onnx.load(str(half))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    with pytest.raises(ValueError, match="valid: fp32, fp16"):
        export_onnx(TINY, 1, "bf16")


# ------------------------------------------------------- timing logic (no GPU)
def test_settle_waits_for_agreeing_windows():
    # A GPU whose runs get faster as clocks ramp up, then hold at 1 ms.
    speeds = iter([2.0, 1.6, 1.3, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    calls = []

    def run_block(k):
        calls.append(k)
        return np.full(k, next(speeds) * 1e-3)

    spent, settled, med = _gpu.settle(run_block, min_s=0.05, window_s=0.01)
    assert settled and med == pytest.approx(1e-3)
    assert len(calls) == 7  # 1.1 -> 1.0 is 10 %: two agreeing windows needed after it
    assert spent >= 0.05


def test_settle_gives_up_at_max_s():
    drift = iter(1e-3 * 0.95 ** np.arange(1000))  # 5 % faster every window: never within 2 %
    spent, settled, _ = _gpu.settle(lambda k: np.full(k, next(drift)), min_s=0.0, max_s=0.2, window_s=0.02)
    assert not settled and spent >= 0.2


def test_energy_window_aligns_to_counter_updates():
    # Fake device: 2 ms per run at 100 W; the counter updates every 50 ms.
    t = [0.0]

    def run_once():
        t[0] += 0.002

    def read_mj():
        return 100.0 * 1000 * (math.floor(t[0] / 0.05) * 0.05)  # mJ at the last update

    r = _gpu.energy_window(run_once, read_mj, min_s=0.5, clock=lambda: t[0])
    assert r["energy_mj"] == pytest.approx(200.0, rel=0.02)  # 100 W * 2 ms
    assert r["energy_power_w"] == pytest.approx(100.0, rel=0.05)
    assert r["energy_window_s"] >= 0.5 and r["energy_runs"] >= 250


def test_energy_window_refuses_short_windows_and_stuck_counters():
    with pytest.raises(ValueError, match=">= 0.5 s"):
        _gpu.energy_window(lambda: None, lambda: 0.0, min_s=0.1)
    t = [0.0]

    def tick():
        t[0] += 0.01

    with pytest.raises(RuntimeError, match="did not change"):
        _gpu.energy_window(tick, lambda: 5.0, min_s=0.5, clock=lambda: t[0], stuck_s=0.5)


# --------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", ["eager", "graph", "compile"])
def test_cuda_modes_time_with_events_and_compute_the_same(mode):
    import torch

    backend = create_backend(f"cuda/mode={mode}")
    with backend.session():
        r = backend.prepare(TINY)
        times = backend.run(r, 20)
        with torch.no_grad():
            expected = r.module(r.x)  # eager, on the same weights and input
        assert r.result().shape == expected.shape
        assert torch.allclose(r.result(), expected, atol=1e-2, rtol=1e-2)  # TF32 convs may differ slightly
        r.close()
    assert times.shape == (20,) and np.all(np.isfinite(times)) and np.all(times > 0)
    assert np.median(times) < 0.1  # an 8x8 MBConv block takes microseconds, not 100 ms
    (m,) = measure(backend, [TINY], QUICK)
    extra = dict(m.extra)
    assert m.median_ms > 0 and "settle_s" in extra and extra["settle_s"] >= 0.1


@pytest.mark.gpu
@needs_cuda
def test_cuda_batch_precision_and_l2_flush():
    import torch

    b = create_backend("cuda/b8/fp16/flush_l2=1/mode=graph")
    with b.session():
        r = b.prepare(TINY)
        assert r.flush is not None and r.flush.numel() * r.flush.element_size() == 256 * 2**20
        assert r.result().shape[0] == 8 and r.result().dtype == torch.float16
        assert np.all(b.run(r, 5) > 0)
        r.close()
    info = b.describe()
    extra = dict(info.extra)
    assert info.hardware == torch.cuda.get_device_name(0)
    assert extra["cuda"] == torch.version.cuda and extra["mode"] == "graph" and extra["driver"]


@pytest.mark.gpu
@needs_cuda
def test_cuda_energy_per_inference():
    b = create_backend("cuda/energy=1/energy_s=0.5")
    with b.session():
        if b.nvml() is None:
            pytest.skip("pynvml is not installed or NVML is unusable: pip install 'hwlat[gpu]'")
        try:
            (m,) = measure(b, [TINY], QUICK)
        except RuntimeError as exc:
            if "energy counter" in str(exc):
                pytest.skip(str(exc))
            raise
    extra = dict(m.extra)
    assert extra["energy_window_s"] >= 0.5 and extra["energy_mj"] > 0 and extra["energy_power_w"] > 1


def test_onnxruntime_gpu_code_path_on_the_cpu_provider(monkeypatch):
    """Everything but the device: IOBinding, output buffers, settling, extras, measure()."""
    from hwlat.devices.onnxruntime import OnnxRuntimeGPUBackend

    class CPUStandIn(OnnxRuntimeGPUBackend):
        name = "ort-gpu-rehearsal"
        provider = "CPUExecutionProvider"
        ort_device = "cpu"

        def providers(self, item=None):
            return [("CPUExecutionProvider", {})]

    monkeypatch.setattr(_gpu.Nvml, "open", classmethod(lambda cls, index, uuid=None: None))
    backend = CPUStandIn(DeviceSpec.parse("ort-gpu-rehearsal/fp16/settle_s=0.02"))
    with backend.session():
        r = backend.prepare(TINY)
        assert np.all(backend.run(r, 5) > 0)
        extra = dict(backend.measurement_extra(TINY))
        assert extra["settle_s"] >= 0.02 and extra["settled"] in (0.0, 1.0)
        assert backend.measurement_extra(TINY) == ()  # handed out once
        r.close()
    (m,) = measure(backend, [TINY], QUICK)
    assert m.median_ms > 0 and dict(m.extra)["settle_s"] >= 0.02
    energy = CPUStandIn(DeviceSpec.parse("ort-gpu-rehearsal/energy=1/settle_s=0"))
    with pytest.raises(RuntimeError, match=r"energy=1 needs NVML through pynvml: pip install 'hwlat\[gpu\]'"):
        energy.prepare(TINY)


# ----------------------------------------- the cuda backend's code on the CPU
class _StandInNvml:
    """pynvml's calls that hwlat makes, on a board drawing 100 W whose energy counter ticks every 20 ms."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 1, 0

    class NVMLError(Exception):
        pass

    def __init__(self):
        import time

        self.t0, self.clock = time.perf_counter(), time.perf_counter
        self.uuids = []

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.uuids.append(uuid)
        return "handle"

    def nvmlDeviceGetHandleByIndex(self, index):
        return "handle"

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return 1980 if kind == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return 1980 if kind == self.NVML_CLOCK_SM else 3201

    def nvmlDeviceGetApplicationsClock(self, handle, kind):
        raise self.NVMLError("Not Supported")

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetPersistenceMode(self, handle):
        return 1

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 41

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        ticks = int((self.clock() - self.t0) / 0.02)
        return ticks * 2000  # mJ: 100 W for 20 ms per tick


@pytest.fixture
def cuda_on_cpu(monkeypatch):
    """Everything the cuda backend asks of torch.cuda, answered on the CPU: events read the host clock
    at record(), synchronisation is a no-op (CPU kernels finish before they return), streams and
    the device context do nothing, and a 'CUDA graph' replay only takes 50 us (the output of the one
    capturing call stays, as a real graph's static output does). Tensors stay on the CPU."""
    import contextlib
    import time
    import types

    import torch

    from hwlat.devices import cuda as cuda_mod

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self, stream=None):
            self.t = time.perf_counter()

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return (end.t - self.t) * 1e3

    class Stream:
        def __init__(self, device=None):
            self.waited = []

        def synchronize(self):
            pass

        def wait_stream(self, other):
            self.waited.append(other)

    class Graph:
        captured = 0

        def replay(self):
            time.sleep(5e-5)  # the replayed kernels' time; the output is the capture's static one

        def reset(self):
            pass

    @contextlib.contextmanager
    def graph(g):
        Graph.captured += 1
        yield

    stream = Stream()
    props = types.SimpleNamespace(
        name="Stand-in GPU",
        major=9,
        minor=0,
        multi_processor_count=132,
        total_memory=141 * 2**30,
        uuid="58a1e4ed-0000-0000-0000-000000000000",
    )
    for name, value in {
        "Event": Event,
        "Stream": Stream,
        "CUDAGraph": Graph,
        "graph": graph,
        "current_stream": lambda device=None: stream,
        "stream": lambda s: contextlib.nullcontext(),
        "synchronize": lambda device=None: None,
        "device": lambda index: contextlib.nullcontext(),
        "device_count": lambda: 1,
        "is_bf16_supported": lambda: True,
        "get_device_name": lambda index=0: props.name,
        "get_device_properties": lambda index: props,
    }.items():
        monkeypatch.setattr(torch.cuda, name, value, raising=False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(_gpu, "visible_gpu_count", lambda: (1, ""))
    monkeypatch.setattr(_gpu, "nvml_driver_version", lambda: "580.159.03")
    monkeypatch.setattr(cuda_mod.GPUBackend, "device", property(lambda self: torch.device("cpu")))
    monkeypatch.setattr(_gpu, "FLUSH_BYTES", 2**20)  # a 1 MB "L2 flush" keeps the CPU runs short
    nv = _StandInNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    return types.SimpleNamespace(graph=Graph, stream=stream, nvml=nv)


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_cuda_backend_code_path_on_the_cpu(cuda_on_cpu, mode):
    """Every line of the cuda backend but the device: prepare, warm-up until settled, the event
    clock, L2 flush, provenance, measure() and the store; the GPU run is test_cuda_modes_*."""
    import torch

    from hwlat.store import LatencyStore

    assert get_backend("cuda").check() is None
    backend = create_backend(f"cuda/b2/mode={mode}/flush_l2=1/settle_s=0.02")
    with backend.session():
        r = backend.prepare(TINY)
        assert r.flush is not None and r.flush.numel() * 4 == _gpu.FLUSH_BYTES
        times = backend.run(r, 5)
        assert times.shape == (5,) and np.all(times > 0)
        with torch.no_grad():
            expected = r.module(r.x)
        assert r.result().shape == (2, 8, 8, 8) and torch.allclose(r.result(), expected)
        extra = dict(backend.measurement_extra(TINY))
        assert extra["settle_s"] >= 0.02 and extra["sm_clock_mhz"] == 1980.0
        r.close()
    assert cuda_on_cpu.graph.captured == (1 if mode == "graph" else 0)
    assert cuda_on_cpu.nvml.uuids == ["GPU-58a1e4ed-0000-0000-0000-000000000000"]  # NVML found by UUID, not index
    info = backend.describe()
    extra = dict(info.extra)
    assert (info.hardware, info.runtime) == ("Stand-in GPU", "torch") and extra["mode"] == mode
    assert extra["driver"] == "580.159.03" and extra["compute_capability"] == "9.0" and extra["sms"] == "132"
    assert extra["sm_clock_max_mhz"] == "1980" and extra["power_limit_w"] == "700" and "sm_clock_app_mhz" not in extra
    assert extra["flush_l2"] == "1 MB zeroed before each run"
    assert extra["tf32"].startswith("matmul=") and " cudnn=" in extra["tf32"]
    with LatencyStore(":memory:") as store:
        info_id = store.add_device(info)
        (m,) = measure(backend, [TINY], QUICK, on_result=lambda m: store.add(m, info_id))
        assert store.count("cuda/t1/b2/fp32/flush_l2=1/mode=" + mode + "/settle_s=0.02") == 1
    assert m.median_ms > 0 and dict(m.extra)["settled"] in (0.0, 1.0)


def test_cuda_energy_per_inference_on_the_cpu(cuda_on_cpu):
    backend = create_backend("cuda/energy=1/energy_s=0.5/settle_s=0")
    with backend.session():
        r = backend.prepare(TINY)
        extra = dict(backend.measurement_extra(TINY))
        r.close()
    # the stand-in board draws 100 W: energy per run = 100 W x time per run, over a >= 0.5 s window
    assert extra["energy_window_s"] >= 0.5 and extra["energy_runs"] > 10
    assert extra["energy_power_w"] == pytest.approx(100.0, rel=0.1)
    per_run_s = extra["energy_window_s"] / extra["energy_runs"]
    assert extra["energy_mj"] == pytest.approx(100.0 * per_run_s * 1e3, rel=0.1)


def test_cuda_bf16_refused_where_unsupported(cuda_on_cpu, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    backend = create_backend("cuda/bf16")
    with pytest.raises(RuntimeError, match="Stand-in GPU does not support bf16; use fp16 or fp32"):
        with backend.session():
            pass
    with pytest.raises(ValueError, match="Invalid gpu=3 for device 'cuda': 1 CUDA device"):
        with create_backend("cuda/gpu=3").session():
            pass


def _stand_in_torch_tensorrt(explicit_typing: bool):
    """torch_tensorrt's compile/save/load as their documented contract, without TensorRT: compile
    returns the module (no engine), save exports it to an ExportedProgram file, load reads it back."""
    import importlib.machinery
    import types

    import torch

    mod = types.ModuleType("torch_tensorrt")
    mod.__spec__ = importlib.machinery.ModuleSpec("torch_tensorrt", None)
    mod.calls = []
    mod.dynamo = types.SimpleNamespace(_defaults=types.SimpleNamespace(USE_EXPLICIT_TYPING=explicit_typing))

    def compile(module, ir, inputs, min_block_size, **kwargs):
        mod.calls.append(
            {"ir": ir, "shapes": [tuple(x.shape) for x in inputs], "min_block_size": min_block_size, **kwargs}
        )
        if explicit_typing and "enabled_precisions" in kwargs:
            raise AssertionError("enabled_precisions should not be set when use_explicit_typing is True")
        return module

    def save(module, file_path, *, arg_inputs):
        torch.export.save(torch.export.export(module, tuple(arg_inputs)), file_path)

    mod.compile, mod.save, mod.load = compile, save, torch.export.load
    return mod


@pytest.mark.parametrize("explicit_typing", [True, False])
def test_tensorrt_backend_code_path_on_the_cpu(cuda_on_cpu, monkeypatch, tmp_path, explicit_typing):
    """Compile once per op and options, save, reload from the cache, time, describe (no TensorRT engine)."""
    import torch

    trt = _stand_in_torch_tensorrt(explicit_typing)
    monkeypatch.setitem(sys.modules, "torch_tensorrt", trt)
    versions = {"torch-tensorrt": torch.__version__.split("+")[0], "tensorrt": "10.13.0"}
    monkeypatch.setattr(_gpu, "dist_version", lambda *names: next((versions[n] for n in names if n in versions), None))
    monkeypatch.setenv("HWLAT_CACHE", str(tmp_path))
    assert get_backend("tensorrt").check() is None
    backend = create_backend("tensorrt/b2/settle_s=0.02")
    with backend.session():
        torch.manual_seed(0)  # the weights the compiled module is built with ...
        r = backend.prepare(TINY)
        times = backend.run(r, 5)
        torch.manual_seed(0)  # ... and the same weights again, for the reference
        with torch.no_grad():
            expected = TINY.build().eval()(r.x)
        assert torch.allclose(r.result(), expected, atol=1e-6)
        r.close()
        backend.prepare(TINY).close()  # the second time from the cache: no compile
    assert np.all(times > 0) and len(trt.calls) == 1
    call = trt.calls[0]
    assert call["ir"] == "dynamo" and call["shapes"] == [(2, 8, 8, 8)] and call["min_block_size"] == 1
    assert ("enabled_precisions" in call) == (not explicit_typing)
    assert len(list(tmp_path.glob("tensorrt/*.pt2"))) == 1
    create_backend("tensorrt/b2/fp16/settle_s=0.02").convert(TINY)  # another precision: another engine
    assert len(list(tmp_path.glob("tensorrt/*.pt2"))) == 2
    info = backend.describe()
    extra = dict(info.extra)
    assert (info.hardware, info.runtime) == ("Stand-in GPU", "torch-tensorrt")
    assert extra["tensorrt"] == "10.13.0" and extra["min_block_size"] == "1"


def test_tensorrt_retries_without_enabled_precisions_when_rejected(cuda_on_cpu):
    """A release with explicit typing that does not say so in _defaults rejects enabled_precisions: retry without."""
    import torch

    from hwlat.devices.tensorrt import compile_trt

    trt = _stand_in_torch_tensorrt(explicit_typing=True)
    trt.dynamo = None  # no _defaults to read: hwlat passes enabled_precisions first
    module, x = TINY.build().eval(), torch.zeros(1, 8, 8, 8)
    assert compile_trt(trt, module, x, torch.float16) is module
    assert [("enabled_precisions" in c) for c in trt.calls] == [True, False]
