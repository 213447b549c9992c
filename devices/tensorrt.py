"""Torch-TensorRT: ``torch_tensorrt.compile(m, ir="dynamo", ...)``, timed with CUDA events.

Device string: ``tensorrt[/bN][/fp32|fp16|bf16][/option=value...]``; options
as for ``cuda`` (``flush_l2``, ``energy``, ``energy_s``, ``settle_s``, ``gpu``,
``cores``) plus ``min_block_size`` (default 1, so that a single-layer op is
compiled to TensorRT instead of falling back to PyTorch).

Precision: the module and its input are cast to the device's precision
(fp16/bf16). Torch-TensorRT releases that type the network explicitly
(``use_explicit_typing``, the default in recent releases) follow those dtypes;
older ones get ``enabled_precisions={dtype}`` as well.

Build cache: :meth:`TensorRTBackend.convert` saves each compiled program with
``torch_tensorrt.save`` (ExportedProgram format, a ``.pt2`` archive: torch.export.load
warns on other suffixes and falls back to a legacy reader) under
``$HWLAT_CACHE/tensorrt/``, keyed by op key, batch, precision, min_block_size, the GPU's name and the torch /
torch-tensorrt / TensorRT versions;
:meth:`prepare` loads it with ``torch_tensorrt.load(path).module()``. So a
resumed or repeated table does not rebuild engines, and ``hwlat measure
--jobs N`` builds them in parallel before timing.

Version pairing: torch-tensorrt X.Y pins torch X.Y (``torch>=X.Y,<X.(Y+1)``);
:meth:`check` names the release that matches the installed torch.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import logging
from pathlib import Path
from typing import Any, ClassVar

from hwlat.cache import cached_file
from hwlat.devices import _gpu
from hwlat.devices._base import DeviceInfo, Item, Runnable, cache_path, example_input, quiet_fds
from hwlat.devices._options import option
from hwlat.devices._registry import register_backend
from hwlat.devices.cuda import CudaRunnable, GPUBackend, TorchGpuOptions

log = logging.getLogger(__name__)


def _minor(version: str) -> str:
    """'2.13.0+cu128' -> '2.13'."""
    return ".".join(version.split("+")[0].split(".")[:2])


def pairing_reason() -> str | None:
    """Why the installed torch-tensorrt cannot work with the installed torch (None: they pair)."""
    import torch

    want = _minor(torch.__version__)
    have = _gpu.dist_version("torch-tensorrt", "torch_tensorrt")
    if have is None:
        return (
            f"torch-tensorrt is not installed: pip install 'torch-tensorrt=={want}.*' "
            f"(torch-tensorrt X.Y pins torch X.Y, and torch here is {torch.__version__}; "
            f"`{_gpu.GPU_EXTRA}` picks the newest torch-tensorrt, which may replace torch)"
        )
    if _minor(have) != want:
        return (
            f"torch-tensorrt {have} needs torch {_minor(have)}.*, but torch {torch.__version__} is installed: "
            f"pip install 'torch-tensorrt=={want}.*' (torch-tensorrt X.Y pins torch X.Y)"
        )
    return None


@dataclasses.dataclass(frozen=True)
class TensorRTOptions(TorchGpuOptions):
    """Options of ``tensorrt``: the smallest subgraph Torch-TensorRT turns into an engine."""

    min_block_size: int = option(1, minimum=1)


@register_backend
class TensorRTBackend(GPUBackend):
    name: ClassVar[str] = "tensorrt"
    description: ClassVar[str] = "Torch-TensorRT (dynamo IR) engines on a CUDA GPU, CUDA-event timing"
    install_hint: ClassVar[str] = "a CUDA build of torch and the torch-tensorrt release of the same X.Y"
    OPTIONS: ClassVar[type[_gpu.GpuOptions]] = TensorRTOptions

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.min_block_size = self.options.min_block_size

    @classmethod
    def check(cls) -> str | None:
        reasons = []
        torch_reason = _gpu.torch_cuda_reason()
        if torch_reason:
            reasons.append(torch_reason)
        if importlib.util.find_spec("torch") is not None:
            pairing = pairing_reason()
            if pairing:
                reasons.append(pairing)
        if reasons:
            return "; ".join(reasons)
        if importlib.util.find_spec("torch_tensorrt") is None:
            return "torch-tensorrt is installed but its module cannot be found (find_spec('torch_tensorrt') is None)"
        return cls._device_reason()

    def describe(self) -> DeviceInfo:
        import torch

        name, extra = self.gpu_info()
        extra = [
            ("torch", torch.__version__),
            ("tensorrt", _gpu.dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11") or "unknown"),
            ("min_block_size", str(self.min_block_size)),
            ("build_cache", "torch_tensorrt.save (ExportedProgram) per op"),
        ] + extra
        version = _gpu.dist_version("torch-tensorrt", "torch_tensorrt") or "unknown"
        return DeviceInfo(
            self.name, self.spec.key, name, "torch-tensorrt", version, self.spec.threads, extra=tuple(extra)
        )

    def _inputs(self, item: Item):
        module = item.build().eval().to(device=self.device, dtype=self.dtype)
        module.requires_grad_(False)
        x = example_input(self, item).to(device=self.device, dtype=self.dtype)
        return module, x

    def convert(self, item: Item) -> Path:
        """Compile ``item`` with Torch-TensorRT and save it (cached); returns the file."""
        import torch

        gpu = torch.cuda.get_device_name(self.index)
        versions = (
            torch.__version__,
            _gpu.dist_version("torch-tensorrt", "torch_tensorrt") or "?",
            _gpu.dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu13") or "?",
        )
        path = cache_path(
            "tensorrt",
            item,
            ".pt2",
            f"b{self.spec.batch}",
            self.spec.precision,
            f"mbs{self.min_block_size}",
            gpu,
            *versions,
        )

        def build(tmp: Path) -> None:  # tmp keeps the .pt2 suffix torch.export's archive loader wants
            with quiet_fds():
                import torch_tensorrt
            module, x = self._inputs(item)
            with torch.cuda.device(self.index):  # also in --jobs workers, which run outside session()
                compiled = compile_trt(torch_tensorrt, module, x, self.dtype, self.min_block_size)
            save = torch_tensorrt.save
            key = "arg_inputs" if "arg_inputs" in inspect.signature(save).parameters else "inputs"
            save(compiled, str(tmp), **{key: [x]})

        return cached_file(path, build, what=f"{item.key} b{self.spec.batch} {self.spec.precision} TensorRT")

    def prepare(self, item: Item) -> Runnable:
        import torch

        path = self.convert(item)
        import torch_tensorrt  # after convert(), which imports it quietly

        load = getattr(torch_tensorrt, "load", None) or torch.export.load  # torch_tensorrt.load: 2.2+
        module = load(str(path)).module()
        x = example_input(self, item).to(device=self.device, dtype=self.dtype)
        box: dict[str, Any] = {}

        def call() -> None:
            box["y"] = module(x)

        for _ in range(3):
            call()
        torch.cuda.synchronize(self.device)
        runnable = CudaRunnable(item, call, result=lambda: box["y"], flush=self.flush_buffer(), module=module, x=x)
        return self.finish_prepare(runnable)


def compile_trt(torch_tensorrt: Any, module: Any, x: Any, dtype: Any, min_block_size: int = 1) -> Any:
    """``torch_tensorrt.compile(module, ir="dynamo", inputs=[x], ...)`` across API generations.

    Releases with explicit typing on by default reject ``enabled_precisions``
    (the dtypes of the module and input decide); older ones need it.
    """
    import torch

    kwargs: dict[str, Any] = {"ir": "dynamo", "inputs": [x], "min_block_size": min_block_size}
    defaults = getattr(getattr(torch_tensorrt, "dynamo", None), "_defaults", None)
    if not getattr(defaults, "USE_EXPLICIT_TYPING", False):
        kwargs["enabled_precisions"] = {dtype} if dtype != torch.float32 else {torch.float32}
    try:
        return torch_tensorrt.compile(module, **kwargs)
    except (AssertionError, ValueError) as exc:
        if "enabled_precisions" not in str(exc) or "enabled_precisions" not in kwargs:
            raise
        log.info("torch-tensorrt rejected enabled_precisions (%s); compiling with explicit typing", exc)
        kwargs.pop("enabled_precisions")
        return torch_tensorrt.compile(module, **kwargs)
