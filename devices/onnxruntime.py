"""ONNX Runtime: export with ``torch.onnx``, run on the CPU or on a CUDA GPU.

Exported models are cached by op key, batch, and the torch/opset versions
(:mod:`hwlat.cache`: written atomically, checked against their size and SHA-256 on use).
The session uses full graph optimisation, sequential execution and
``intra_op_num_threads`` = the device's threads (inter-op 1).

Backends: ``onnxruntime-cpu`` (CPUExecutionProvider), and with
``onnxruntime-gpu`` installed, ``onnxruntime-cuda`` (CUDAExecutionProvider;
fp32/fp16; option ``cuda_graph=1``) and ``onnxruntime-trt``
(TensorrtExecutionProvider with the CUDA EP as fallback; fp32/fp16/bf16;
engine cache per op). GPU options: ``gpu`` (device index), ``cuda_graph``,
``energy``/``energy_s`` (NVML energy per inference), ``settle_s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from pathlib import Path
from typing import ClassVar

from hwlat.cache import cached_file, touch
from hwlat.devices import _gpu
from hwlat.devices._base import (
    Backend,
    DeviceInfo,
    Item,
    Runnable,
    cache_path,
    cpu_model,
    example_input,
    model_file,
    quiet_fds,
    torch_threads,
)
from hwlat.devices._options import Options, option
from hwlat.devices._registry import register_backend

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(item: Item, batch: int, precision: str = "fp32") -> Path:
    """Export ``item`` to ONNX (cached); returns the file path.

    ``precision="fp16"`` exports the module in half precision (weights,
    input and output are float16), for the CUDA execution provider.
    """
    import torch

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"Invalid ONNX export precision {precision!r}; valid: fp32, fp16")
    salt = (f"b{batch}", torch.__version__, f"opset{OPSET}") + ((precision,) if precision != "fp32" else ())
    path = cache_path("onnx", item, ".onnx", *salt)

    def build(tmp: Path) -> None:
        x = torch.rand((batch, *item.input_shape[1:])) - 0.5
        if getattr(item, "format", "") == "exported":  # a saved torch.export program: the dynamo exporter takes it
            with torch_threads(1), quiet_fds():
                program = torch.export.load(str(item.path))
                torch.onnx.export(
                    program, (x,), str(tmp), dynamo=True, opset_version=max(OPSET, 18), external_data=False
                )
            return
        module = item.build()
        if precision == "fp16":
            module, x = module.half(), x.half()
        # The TorchScript exporter is quiet and fast for these small static graphs.
        with torch_threads(1), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            torch.onnx.export(
                module, (x,), str(tmp), dynamo=False, opset_version=OPSET, input_names=["x"], output_names=["y"]
            )

    # Atomic (a killed export never leaves a half file), recorded and checked on every use (a corrupted
    # file is exported again, with a warning).
    return cached_file(path, build, what=f"{item.key} b{batch} {precision} ONNX")


@register_backend
class OnnxRuntimeCPUBackend(Backend):
    name: ClassVar[str] = "onnxruntime-cpu"
    description: ClassVar[str] = "ONNX Runtime, CPUExecutionProvider, full graph optimisation"
    install_hint: ClassVar[str] = "pip install onnxruntime onnx onnxscript (included in `pip install hwlat`)"
    MODEL_FORMATS: ClassVar[tuple[str, ...]] = ("onnx", "torch", "exported")

    @classmethod
    def check(cls) -> str | None:
        try:
            import onnx  # noqa: F401  (only whether it imports)
            import onnxruntime  # noqa: F401  (only whether it imports)
        except ImportError as exc:
            return f"{exc.name} is not installed: {cls.install_hint}"
        return None

    def describe(self) -> DeviceInfo:
        import onnxruntime as ort
        import torch

        return DeviceInfo(
            self.name,
            self.spec.key,
            cpu_model(),
            "onnxruntime",
            ort.__version__,
            self.spec.threads,
            extra=(
                ("providers", "CPUExecutionProvider"),
                ("exporter", f"torch.onnx {torch.__version__} opset {OPSET}"),
            ),
        )

    def session_options(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.spec.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return so

    def convert(self, item: Item) -> Path:
        return model_file(item, "onnx") or export_onnx(item, self.spec.batch)

    def prepare(self, item: Item) -> Runnable:
        import onnxruntime as ort

        path = self.convert(item)
        sess = ort.InferenceSession(str(path), self.session_options(), providers=["CPUExecutionProvider"])
        if model_file(item, "onnx"):  # the user's file: every input, at the model's shapes and the device's batch
            feed = item.feeds(self.spec.batch)
        else:  # trivial graphs (identity, zero) can export with no input at all
            feed = {i.name: example_input(self, item).numpy() for i in sess.get_inputs()[:1]}
        run = sess.run
        return Runnable(item, lambda: run(None, feed))


# ------------------------------------------------------------------ GPU providers
def ort_gpu_reason(provider: str) -> str | None:
    """Why ``provider`` cannot run here (None: listed by onnxruntime and a GPU is visible)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime-gpu is not installed (pip install onnxruntime-gpu; it replaces onnxruntime)"
    providers = ort.get_available_providers()
    if provider not in providers:
        gpu_dist = _gpu.dist_version("onnxruntime-gpu")
        if gpu_dist is None:
            return "onnxruntime-gpu is not installed (pip install onnxruntime-gpu; it replaces onnxruntime)"
        fix = (
            "onnxruntime and onnxruntime-gpu are both installed and share one module: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
            if _gpu.dist_version("onnxruntime")
            else "this onnxruntime-gpu build lacks it"
        )
        return f"{provider} not in onnxruntime's providers {providers}: {fix}"
    n, reason = _gpu.visible_gpu_count()
    return None if n > 0 else reason


def _tensorrt_libs_reason() -> str | None:
    """The TensorRT EP loads libnvinfer at session creation; say early if it is nowhere to be found."""
    import ctypes.util
    import importlib.util

    if any(importlib.util.find_spec(m) for m in ("tensorrt_libs", "tensorrt")) or ctypes.util.find_library("nvinfer"):
        return None
    return (
        "TensorRT libraries (libnvinfer) not found: pip install tensorrt-cu12 (the TensorRT version "
        "onnxruntime-gpu was built for; see onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider) "
        "and make libnvinfer loadable (LD_LIBRARY_PATH)"
    )


@dataclasses.dataclass(frozen=True)
class OrtGpuOptions(_gpu.GpuOptions):
    """Options of the ONNX Runtime GPU backends: ``cuda_graph=1`` replays a captured CUDA graph."""

    cuda_graph: bool = option(False)


class OnnxRuntimeGPUBackend(OnnxRuntimeCPUBackend):
    """ONNX Runtime on a CUDA GPU. Inputs and outputs stay on the GPU (IOBinding),
    so the timed ``run_with_iobinding`` holds no host copies; ONNX Runtime
    synchronises its CUDA stream before returning, so the host clock measures
    complete inferences (synchronisation inside the clock)."""

    provider: ClassVar[str] = ""
    ort_device: ClassVar[str] = "cuda"  # where IOBinding puts inputs and outputs
    PRECISIONS: ClassVar[tuple[str, ...]] = ("fp32", "fp16")
    OPTIONS: ClassVar[type[Options]] = OrtGpuOptions

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self._extra: dict[str, tuple[tuple[str, float], ...]]
        self._nvml: object
        self.options: OrtGpuOptions
        _gpu.init_common(self, spec, self.PRECISIONS)
        self.cuda_graph = self.options.cuda_graph

    @classmethod
    def check(cls) -> str | None:
        return ort_gpu_reason(cls.provider)

    def nvml(self):
        if self._nvml is None:
            self._nvml = _gpu.Nvml.open(self.index) or False
        return self._nvml or None

    def describe(self) -> DeviceInfo:
        import onnxruntime as ort

        extra = [
            ("providers", ",".join(p for p, _ in self.providers())),
            ("cuda_graph", str(self.cuda_graph)),
            ("exporter", _exporter()),
            ("driver", _gpu.nvml_driver_version()),
            ("onnxruntime_dist", f"onnxruntime-gpu {_gpu.dist_version('onnxruntime-gpu')}"),
        ]
        nv = self.nvml()
        name = _gpu.nvml_device_name(self.index) or "NVIDIA GPU (name unknown)"
        if nv is not None:
            extra += sorted(nv.info().items())
        extra.append(("timer", "host clock around run_with_iobinding (ONNX Runtime synchronises the stream)"))
        return DeviceInfo(
            self.name, self.spec.key, name, "onnxruntime", ort.__version__, self.spec.threads, extra=tuple(extra)
        )

    @property
    def model_precision(self) -> str:
        return self.spec.precision

    def providers(self, item: Item | None = None) -> list[tuple[str, dict[str, str]]]:
        cuda = {
            "device_id": str(self.index),
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "enable_cuda_graph": "1" if self.cuda_graph else "0",
        }
        return [("CUDAExecutionProvider", cuda)]

    def convert(self, item: Item) -> Path:
        return model_file(item, "onnx") or export_onnx(item, self.spec.batch, self.model_precision)

    def prepare(self, item: Item) -> Runnable:
        import numpy as np
        import onnxruntime as ort

        if hasattr(ort, "preload_dlls"):  # 1.21+: CUDA/cuDNN from the nvidia-* wheels or torch, if present
            try:
                ort.preload_dlls()
            except Exception as exc:  # best effort: the session check below is what counts
                log.info("onnxruntime.preload_dlls failed: %s", exc)
        path = self.convert(item)
        sess = ort.InferenceSession(str(path), self.session_options(), providers=self.providers(item))
        used = sess.get_providers()
        if not used or used[0] != self.provider:
            raise RuntimeError(
                f"{self.provider} could not be loaded (the session uses {used}): check that the CUDA, cuDNN"
                f"{' and TensorRT' if 'Tensorrt' in self.provider else ''} libraries match onnxruntime-gpu "
                f"{ort.__version__} (onnxruntime.ai/docs/execution-providers)"
            )
        dtype = np.float16 if self.model_precision == "fp16" else np.float32
        binding = sess.io_binding()
        inputs = sess.get_inputs()[:1]  # trivial graphs (identity, zero) can export with no input
        keep = []
        if model_file(item, "onnx"):  # the user's file: all its inputs; ORT allocates its outputs on the GPU
            for name, host in item.feeds(self.spec.batch).items():
                x = ort.OrtValue.ortvalue_from_numpy(host, self.ort_device, self.index)
                binding.bind_ortvalue_input(name, x)
                keep.append(x)
            for out in sess.get_outputs():
                binding.bind_output(out.name, self.ort_device, self.index)
        else:
            if inputs:
                host = example_input(self, item).numpy().astype(dtype)
                x = ort.OrtValue.ortvalue_from_numpy(host, self.ort_device, self.index)
                binding.bind_ortvalue_input(inputs[0].name, x)
                keep.append(x)
            out = sess.get_outputs()[0]
            out_dtype = np.float16 if "float16" in out.type else np.float32
            y = ort.OrtValue.ortvalue_from_shape_and_type(list(out.shape), out_dtype, self.ort_device, self.index)
            binding.bind_ortvalue_output(out.name, y)
            keep.append(y)
        run = sess.run_with_iobinding

        def call() -> None:
            run(binding)

        for _ in range(3):  # engine build / CUDA-graph capture happen in the first runs
            call()
        runnable = Runnable(item, call)
        runnable.keep = (sess, binding, keep)  # the device buffers must outlive the binding
        self._extra[item.key] = _gpu.warm_up_extras(
            lambda k: Backend.run(self, runnable, k),
            call,
            self.nvml(),
            settle_s=self.settle_s,
            energy=self.energy,
            energy_s=self.energy_s,
            label=item.key,
        )
        return runnable

    def measurement_extra(self, item: Item) -> tuple[tuple[str, float], ...]:
        return self._extra.pop(item.key, ())


def _exporter() -> str:
    import torch

    return f"torch.onnx {torch.__version__} opset {OPSET}"


@register_backend
class OnnxRuntimeCUDABackend(OnnxRuntimeGPUBackend):
    name: ClassVar[str] = "onnxruntime-cuda"
    provider: ClassVar[str] = "CUDAExecutionProvider"
    description: ClassVar[str] = "ONNX Runtime, CUDAExecutionProvider, IOBinding on the GPU (cuda_graph=1: CUDA graphs)"
    install_hint: ClassVar[str] = "pip install onnxruntime-gpu (it replaces onnxruntime)"


@register_backend
class OnnxRuntimeTensorRTBackend(OnnxRuntimeGPUBackend):
    """TensorRT EP first, CUDA EP for nodes TensorRT does not take.

    Engines are cached by ONNX Runtime (``trt_engine_cache_enable``) in a
    folder per op and options: ``$HWLAT_CACHE/ort-trt/<hash of op key, batch,
    precision, onnxruntime version, cuda_graph>/``, together with TensorRT's
    timing cache. fp16/bf16 build the engine from the fp32 model with
    ``trt_fp16_enable`` / ``trt_bf16_enable`` (TensorRT picks per-layer kernels).
    """

    name: ClassVar[str] = "onnxruntime-trt"
    provider: ClassVar[str] = "TensorrtExecutionProvider"
    description: ClassVar[str] = "ONNX Runtime, TensorrtExecutionProvider (engine cache), IOBinding on the GPU"
    install_hint: ClassVar[str] = "pip install onnxruntime-gpu tensorrt-cu12"
    PRECISIONS: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "bf16")

    @classmethod
    def check(cls) -> str | None:
        return ort_gpu_reason(cls.provider) or _tensorrt_libs_reason()

    @property
    def model_precision(self) -> str:
        return "fp32"  # TensorRT lowers precision itself (trt_fp16_enable / trt_bf16_enable)

    def engine_cache(self, item: Item) -> Path:
        import onnxruntime as ort

        folder = cache_path(
            "ort-trt",
            item,
            "",
            f"b{self.spec.batch}",
            self.spec.precision,
            ort.__version__,
            f"graph{int(self.cuda_graph)}",
            f"gpu{self.index}",
        )
        folder.mkdir(parents=True, exist_ok=True)
        touch(folder)  # recently used: the cache's size limit removes the least recently used first
        return folder

    def providers(self, item: Item | None = None) -> list[tuple[str, dict[str, str]]]:
        trt = {
            "device_id": str(self.index),
            "trt_fp16_enable": "1" if self.spec.precision == "fp16" else "0",
            "trt_cuda_graph_enable": "1" if self.cuda_graph else "0",
        }
        if self.spec.precision == "bf16":
            trt["trt_bf16_enable"] = "1"  # ONNX Runtime 1.23+ knows this option
        if item is not None:
            cache = str(self.engine_cache(item))
            trt.update(
                trt_engine_cache_enable="1",
                trt_engine_cache_path=cache,
                trt_timing_cache_enable="1",
                trt_timing_cache_path=cache,
            )
        cuda = {"device_id": str(self.index), "cudnn_conv_algo_search": "EXHAUSTIVE"}
        return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", cuda)]
