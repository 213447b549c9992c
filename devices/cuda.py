"""PyTorch on a CUDA GPU: eager, CUDA graphs or ``torch.compile``, timed with CUDA events.

Device string: ``cuda[/tN][/bN][/fp32|fp16|bf16][/option=value...]``, e.g.
``cuda/b8/fp16/mode=graph``. Options:

=================  ==========================================================
``mode``           ``eager`` (default), ``graph`` (captured once into a CUDA
                   graph, then replayed: no launch overhead), ``compile``
                   (``torch.compile``)
``compile_mode``   ``torch.compile`` mode: ``default``, ``reduce-overhead``,
                   ``max-autotune``, ``max-autotune-no-cudagraphs``
``flush_l2``       ``1``: zero a 256 MB buffer before every run (cold L2)
``channels_last``  ``1``: NHWC memory format (what cuDNN prefers in fp16)
``energy``         ``1``: energy per inference from NVML's counter (needs
                   pynvml), over a window of ``energy_s`` seconds (default
                   1, at least 0.5); stored in ``Measurement.extra``
``settle_s``       minimum warm-up per op before timing (default 0.1 s)
``gpu``            CUDA device index (default 0)
``cores``          CPU(s) the launching thread is pinned to
=================  ==========================================================

Timing: CUDA events around each run and a synchronisation inside the clock
(:func:`hwlat.devices._gpu.time_cuda_events`); before timing, each op runs
until successive 25 ms windows agree (clocks settled). ``torch.backends.cudnn
.benchmark`` is on while measuring (fixed shapes), parameters are frozen, so
no autograd graph is recorded. Batch size is the device's ``bN``
(ProxylessNAS reports GPU latency at batch 8: ``cuda/b8``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from hwlat.devices import _gpu
from hwlat.devices._base import Backend, DeviceInfo, Item, Runnable, example_input, torch_threads
from hwlat.devices._options import option
from hwlat.devices._registry import register_backend

log = logging.getLogger(__name__)

MODES = ("eager", "graph", "compile")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclasses.dataclass(frozen=True)
class TorchGpuOptions(_gpu.GpuOptions):
    """Options of the torch-based GPU backends: ``flush_l2=1`` starts every run with a cold L2 cache."""

    flush_l2: bool = option(False)


@dataclasses.dataclass(frozen=True)
class CudaOptions(TorchGpuOptions):
    """Options of ``cuda``: how torch runs the module, and its memory format."""

    mode: str = option("eager", choices=MODES)
    compile_mode: str | None = option(None, choices=COMPILE_MODES)  # None: not given (torch.compile's "default")
    channels_last: bool = option(False)


class CudaRunnable(Runnable):
    """A prepared op on the GPU: ``call()`` launches one inference (asynchronously)."""

    def __init__(
        self,
        item: Item,
        call: Any,
        *,
        result: Any = None,
        flush: Any = None,
        close: Any = None,
        module: Any = None,
        x: Any = None,
    ) -> None:
        super().__init__(item, call, close)
        self.flush = flush
        self._result = result
        self.module, self.x = module, x  # the eager module and its input, for checks

    def result(self):
        """The output of the last run (for checks; graph mode returns its static output)."""
        return self._result()


class GPUBackend(Backend):
    """What the torch-based GPU backends share: options, session, CUDA-event clock,
    warm-up until settled, optional L2 flush and NVML energy."""

    OPTIONS: ClassVar[type[_gpu.GpuOptions]] = TorchGpuOptions
    PRECISIONS: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "bf16")

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self._extra: dict[str, tuple[tuple[str, float], ...]]
        self._nvml: Any
        self.options: TorchGpuOptions
        _gpu.init_common(self, spec, self.PRECISIONS)
        self.flush_l2 = self.options.flush_l2
        self._flush_buf: Any = None

    @classmethod
    def check(cls) -> str | None:
        reason = _gpu.torch_cuda_reason()
        if reason:
            return reason
        return cls._device_reason()

    @staticmethod
    def _device_reason() -> str | None:
        n, reason = _gpu.visible_gpu_count()
        if n < 0:  # no NVML library: ask the CUDA runtime (initialises the driver, no context)
            import torch

            n = torch.cuda.device_count()
            reason = "no CUDA device found (torch.cuda.device_count() is 0)"
        return None if n > 0 else reason

    # ------------------------------------------------------------- pieces
    @property
    def device(self):
        import torch

        return torch.device("cuda", self.index)

    @property
    def dtype(self):
        import torch

        return getattr(torch, DTYPES[self.spec.precision])

    def _check_device(self) -> None:
        import torch

        n = torch.cuda.device_count()
        if self.index >= n:
            raise ValueError(f"Invalid gpu={self.index} for device {self.spec.backend!r}: {n} CUDA device(s) visible")
        if self.spec.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise RuntimeError(f"{torch.cuda.get_device_name(self.index)} does not support bf16; use fp16 or fp32")

    def nvml(self) -> Any:
        if self._nvml is None:
            import torch

            uuid = getattr(torch.cuda.get_device_properties(self.index), "uuid", None)
            self._nvml = _gpu.Nvml.open(self.index, str(uuid) if uuid is not None else None) or False
        return self._nvml or None

    def flush_buffer(self):
        if self.flush_l2 and self._flush_buf is None:
            import torch

            self._flush_buf = torch.empty(_gpu.FLUSH_BYTES // 4, dtype=torch.int32, device=self.device)
        return self._flush_buf if self.flush_l2 else None

    def gpu_info(self) -> tuple[str, list[tuple[str, str]]]:
        """(GPU name, provenance pairs): driver, CUDA, cuDNN, clocks, ..."""
        import torch

        props = torch.cuda.get_device_properties(self.index)
        extra = [
            ("driver", _gpu.nvml_driver_version()),
            ("cuda", str(torch.version.cuda)),
            ("cudnn", str(torch.backends.cudnn.version())),
            ("compute_capability", f"{props.major}.{props.minor}"),
            ("sms", str(props.multi_processor_count)),
            ("memory_gib", f"{props.total_memory / 2**30:.1f}"),
            ("gpu_index", str(self.index)),
        ]
        nv = self.nvml()
        if nv is not None:
            extra += sorted(nv.info().items())
        else:
            extra.append(("clocks", f"unknown: pynvml not installed or NVML unusable ({_gpu.GPU_EXTRA})"))
        extra += [
            ("timer", "CUDA events, synchronised after each run"),
            ("flush_l2", f"{_gpu.FLUSH_BYTES >> 20} MB zeroed before each run" if self.flush_l2 else "no"),
            ("tf32", _tf32_flags()),
        ]
        return props.name, extra

    # ------------------------------------------------------------ protocol
    @contextlib.contextmanager
    def session(self) -> Iterator[Backend]:
        import torch

        self._check_device()
        old_bench = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest algorithm once
        try:
            with super().session(), torch_threads(self.spec.threads), torch.cuda.device(self.index):
                yield self
        finally:
            torch.backends.cudnn.benchmark = old_bench

    def run(self, runnable: Runnable, n: int) -> np.ndarray:
        flush = runnable.flush if isinstance(runnable, CudaRunnable) else None
        return _gpu.time_cuda_events(runnable.call, n, flush, self.device)

    def finish_prepare(self, runnable: CudaRunnable) -> CudaRunnable:
        """Warm up until settled, then (option energy=1) measure energy per run."""
        import torch

        call, sync = runnable.call, torch.cuda.synchronize

        def once() -> None:
            call()
            sync()

        self._extra[runnable.item.key] = _gpu.warm_up_extras(
            lambda k: self.run(runnable, k),
            once,
            self.nvml(),
            settle_s=self.settle_s,
            energy=self.energy,
            energy_s=self.energy_s,
            label=runnable.item.key,
        )
        return runnable

    def measurement_extra(self, item: Item) -> tuple[tuple[str, float], ...]:
        return self._extra.pop(item.key, ())


@register_backend
class CudaBackend(GPUBackend):
    name: ClassVar[str] = "cuda"
    description: ClassVar[str] = "PyTorch on a CUDA GPU (mode=eager|graph|compile), CUDA-event timing"
    install_hint: ClassVar[str] = f"a CUDA build of torch; {_gpu.GPU_EXTRA} for NVML clocks and energy"
    OPTIONS: ClassVar[type[_gpu.GpuOptions]] = CudaOptions

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.mode = self.options.mode
        self.compile_mode = self.options.compile_mode or "default"
        if self.options.compile_mode is not None and self.mode != "compile":
            raise ValueError(f"compile_mode={self.compile_mode} needs mode=compile (device {spec.key!r})")
        self.channels_last = self.options.channels_last

    def describe(self) -> DeviceInfo:
        import torch

        name, extra = self.gpu_info()
        extra = [
            ("mode", self.mode if self.mode != "compile" else f"compile ({self.compile_mode})"),
            ("cudnn_benchmark", "on while measuring"),
            ("channels_last", str(self.channels_last)),
        ] + extra
        return DeviceInfo(
            self.name, self.spec.key, name, "torch", torch.__version__, self.spec.threads, extra=tuple(extra)
        )

    def _module_and_input(self, item: Item):
        import torch

        module = item.build().eval().to(device=self.device, dtype=self.dtype)
        module.requires_grad_(False)  # no autograd bookkeeping in the timed calls
        x = example_input(self, item).to(device=self.device, dtype=self.dtype)
        if self.channels_last and x.dim() == 4:
            module = module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        return module, x

    def prepare(self, item: Item) -> Runnable:
        import torch

        module, x = self._module_and_input(item)
        box: dict[str, Any] = {}
        if self.mode == "graph":
            runnable = self._capture(item, module, x)
        else:
            fn = module
            if self.mode == "compile":
                fn = torch.compile(module, mode=self.compile_mode, dynamic=False)

            def call() -> None:
                box["y"] = fn(x)

            for _ in range(3):  # compile / autotune / pick cuDNN algorithms outside the timed runs
                call()
            torch.cuda.synchronize(self.device)
            runnable = CudaRunnable(item, call, result=lambda: box["y"], flush=self.flush_buffer(), module=module, x=x)
        return self.finish_prepare(runnable)

    def _capture(self, item: Item, module, x) -> CudaRunnable:
        """Capture one inference into a CUDA graph (warm-up on a side stream first, as the docs ask)."""
        import torch

        with torch.no_grad():
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    module(x)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                y = module(x)
        torch.cuda.synchronize(self.device)

        return CudaRunnable(
            item, graph.replay, result=lambda: y, flush=self.flush_buffer(), close=graph.reset, module=module, x=x
        )


def _tf32_flags() -> str:
    """Whether fp32 matmuls and convolutions may use TF32 (affects fp32 latency on Ampere+).

    Newer torch steers towards ``fp32_precision`` and warns on the old flags; both are
    recorded where they exist, and a flag that cannot be read says so instead of failing
    the provenance of every row.
    """
    import warnings

    import torch

    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, flags in (("matmul", torch.backends.cuda.matmul), ("cudnn", torch.backends.cudnn)):
            try:
                parts.append(f"{label}={flags.allow_tf32}")
            except Exception as exc:  # a future torch may drop the old flag
                parts.append(f"{label}=unknown ({type(exc).__name__})")
            precision = getattr(flags, "fp32_precision", None)
            if precision is not None:
                parts.append(f"{label}_fp32_precision={precision}")
    return " ".join(parts)
