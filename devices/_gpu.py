"""Helpers shared by the GPU backends (``cuda``, ``tensorrt``, ``onnxruntime-cuda``/``-trt``).

- :func:`visible_gpu_count` asks the NVIDIA driver's NVML library through
  ``ctypes``: no CUDA initialisation and no extra package, so ``check()`` stays
  fast and safe to call before a fork.
- :func:`time_cuda_events` is the CUDA clock: one pair of CUDA events around
  each run and a synchronisation on the end event *inside* the clock, so each
  run starts on an idle GPU and its time includes the kernel launches.
- :func:`settle` warms up until successive windows agree (GPU clocks ramp up
  from idle over tens to hundreds of milliseconds).
- :func:`energy_window` turns NVML's total-energy counter (mJ since the
  driver loaded, refreshed only every ~20-100 ms) into energy per run over a
  window of at least 0.5 s whose ends are aligned to counter updates.
- :class:`Nvml` wraps ``pynvml`` (``pip install 'hwlat[gpu]'``), imported lazily.

Pure-logic pieces (settle, energy_window, option checks) take callables, so
they are tested without a GPU.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import numpy as np

from hwlat.devices._base import DeviceSpec
from hwlat.devices._options import Options, option

log = logging.getLogger(__name__)

GPU_EXTRA = "pip install 'hwlat[gpu]'"
TORCH_CUDA_HINT = (
    "install a CUDA build of torch, e.g. pip install torch --index-url https://download.pytorch.org/whl/cu128 "
    "(see https://pytorch.org/get-started/locally/)"
)
FLUSH_BYTES = 256 * 1024 * 1024  # Triton's do_bench zeroes 256 MB: larger than any GPU's L2
MIN_ENERGY_WINDOW_S = 0.5  # NVML's energy counter refreshes every ~20-100 ms


# ------------------------------------------------------------------ versions
def dist_version(*names: str) -> str | None:
    """Installed version of the first of ``names`` (distribution names), or None."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def torch_cuda_reason() -> str | None:
    """Why torch cannot run on a GPU here (None: a CUDA build of torch is installed)."""
    try:
        import torch
    except ImportError:
        return f"PyTorch is not installed: {TORCH_CUDA_HINT}"
    if torch.version.cuda is None:
        return f"torch has no CUDA (torch {torch.__version__}): {TORCH_CUDA_HINT}"
    return None


# ---------------------------------------------------------------------- NVML
def _nvml_lib() -> ctypes.CDLL | None:
    name = "nvml.dll" if os.name == "nt" else "libnvidia-ml.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _visible_limit() -> int | None:
    """How many devices CUDA_VISIBLE_DEVICES lets CUDA see (None: not set)."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return None
    parts = [p.strip() for p in cvd.split(",") if p.strip()]
    # CUDA stops at the first invalid entry; "-1" hides every device.
    count = 0
    for p in parts:
        if p.startswith("-"):
            break
        count += 1
    return count


def visible_gpu_count() -> tuple[int, str]:
    """``(number of NVIDIA GPUs CUDA will see, reason when 0)`` without initialising CUDA.

    Returns ``(-1, reason)`` when the NVML library cannot be loaded (no
    NVIDIA driver, or an unusual install): callers may then ask their runtime.
    """
    limit = _visible_limit()
    if limit == 0:
        return (
            0,
            f"no CUDA device found: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r} hides them all",
        )
    lib = _nvml_lib()
    if lib is None:
        return -1, "no CUDA device found: the NVIDIA driver's NVML library (libnvidia-ml.so.1) is missing"
    rc = lib.nvmlInit_v2()
    if rc != 0:
        return (
            0,
            f"no CUDA device found: NVML failed to initialise (error {rc}; "
            f"is the NVIDIA driver loaded? try nvidia-smi)",
        )
    count = ctypes.c_uint(0)
    try:
        rc = lib.nvmlDeviceGetCount_v2(ctypes.byref(count))
    finally:
        lib.nvmlShutdown()
    n = count.value if rc == 0 else 0
    if limit is not None:
        n = min(n, limit)
    if n == 0:
        return 0, "no CUDA device found (the NVIDIA driver reports no GPU)"
    return n, ""


def nvml_driver_version() -> str:
    """The NVIDIA driver version through NVML (ctypes), or 'unknown'."""
    lib = _nvml_lib()
    if lib is None or lib.nvmlInit_v2() != 0:
        return "unknown"
    try:
        buf = ctypes.create_string_buffer(96)
        if lib.nvmlSystemGetDriverVersion(buf, ctypes.c_uint(96)) == 0:
            return buf.value.decode()
        return "unknown"
    finally:
        lib.nvmlShutdown()


def nvml_device_name(index: int) -> str | None:
    """Name of the GPU at NVML ``index`` through ctypes (no pynvml needed), or None."""
    lib = _nvml_lib()
    if lib is None or lib.nvmlInit_v2() != 0:
        return None
    try:
        handle = ctypes.c_void_p()
        if lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)) != 0:
            return None
        buf = ctypes.create_string_buffer(96)
        return buf.value.decode() if lib.nvmlDeviceGetName(handle, buf, ctypes.c_uint(96)) == 0 else None
    finally:
        lib.nvmlShutdown()


class Nvml:
    """One GPU through ``pynvml`` (clocks, power limit, energy counter).

    ``Nvml.open(index, uuid)`` returns None (and logs why) when pynvml or the
    GPU's NVML handle is not available; energy then cannot be measured.
    """

    def __init__(self, pynvml: Any, handle: Any) -> None:
        self.nv, self.handle = pynvml, handle

    @classmethod
    def open(cls, index: int, uuid: str | None = None) -> Nvml | None:
        try:
            import pynvml
        except ImportError:
            log.info("pynvml is not installed: no clocks or energy from NVML (%s)", GPU_EXTRA)
            return None
        try:
            pynvml.nvmlInit()
            handle = None
            if uuid:  # CUDA and NVML may number GPUs differently; the UUID is the same
                try:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
                except pynvml.NVMLError:
                    handle = None
            if handle is None:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as exc:
            log.info("NVML is not usable here: %s", exc)
            return None
        return cls(pynvml, handle)

    def _get(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.nv, fn)(self.handle, *args)
        except (self.nv.NVMLError, AttributeError):
            return None

    def info(self) -> dict[str, str]:
        nv = self.nv
        out: dict[str, str] = {}
        for label, kind in (("sm", nv.NVML_CLOCK_SM), ("mem", nv.NVML_CLOCK_MEM)):
            cur, top = self._get("nvmlDeviceGetClockInfo", kind), self._get("nvmlDeviceGetMaxClockInfo", kind)
            app = self._get("nvmlDeviceGetApplicationsClock", kind)
            if cur is not None:
                out[f"{label}_clock_mhz"] = str(cur)
            if top is not None:
                out[f"{label}_clock_max_mhz"] = str(top)
            if app is not None:
                out[f"{label}_clock_app_mhz"] = str(app)
        limit = self._get("nvmlDeviceGetEnforcedPowerLimit")
        if limit is not None:
            out["power_limit_w"] = f"{limit / 1000:.0f}"
        persistence = self._get("nvmlDeviceGetPersistenceMode")
        if persistence is not None:
            out["persistence_mode"] = "on" if persistence else "off"
        temp = self._get("nvmlDeviceGetTemperature", nv.NVML_TEMPERATURE_GPU)
        if temp is not None:
            out["temperature_c"] = str(temp)
        return out

    def sm_clock_mhz(self) -> float | None:
        v = self._get("nvmlDeviceGetClockInfo", self.nv.NVML_CLOCK_SM)
        return None if v is None else float(v)

    def energy_mj(self) -> int:
        """Total energy since the driver loaded (mJ); raises RuntimeError where unsupported."""
        try:
            return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except self.nv.NVMLError as exc:
            raise RuntimeError(f"this GPU has no NVML energy counter ({exc}; it needs a Volta or newer GPU)") from exc


# ------------------------------------------------------------------ options
@dataclasses.dataclass(frozen=True)
class GpuOptions(Options):
    """The options every GPU backend shares (device index, NVML energy, warm-up settling)."""

    gpu: int = option(0, minimum=0, hint="a CUDA device index such as 0")
    energy: bool = option(False)
    energy_s: float = option(1.0, minimum=MIN_ENERGY_WINDOW_S)
    settle_s: float = option(0.1, minimum=0.0)


def init_common(backend: Any, spec: DeviceSpec, precisions: Sequence[str]) -> None:
    """Check ``spec``'s precision and set ``index``, ``energy``, ``energy_s``, ``settle_s`` (plus the
    empty per-op extras and NVML handle) on ``backend`` from its parsed ``options`` (a :class:`GpuOptions`)."""
    opts = backend.options
    if spec.precision not in precisions:
        raise ValueError(
            f"Invalid precision {spec.precision!r} for device {spec.backend!r}; valid: {', '.join(precisions)}"
            + (" (int8 needs a quantized model: not supported yet)" if spec.precision == "int8" else "")
        )
    backend.index = opts.gpu
    backend.energy = opts.energy
    backend.energy_s = opts.energy_s
    backend.settle_s = opts.settle_s
    backend._extra = {}
    backend._nvml = None


# ------------------------------------------------------------------- timing
def time_cuda_events(call: Callable[[], Any], n: int, flush: Any = None, device: Any = None) -> np.ndarray:
    """Seconds of each of ``n`` runs of ``call`` measured with CUDA events.

    The end event is synchronised after every run, so each run starts on an
    idle GPU (a latency, not a throughput) and includes its launches. With
    ``flush`` (a CUDA tensor), the buffer is zeroed and the GPU synchronised
    before each run, so the run starts with a cold L2 cache. Events go on
    ``device``'s current stream, the one ``call`` launches its kernels on.
    """
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = np.empty(n)
    stream = torch.cuda.current_stream(device)
    for i in range(n):
        if flush is not None:
            flush.zero_()
            stream.synchronize()
        start.record(stream)
        call()
        end.record(stream)
        end.synchronize()
        out[i] = start.elapsed_time(end)  # milliseconds
    return out * 1e-3


def settle(
    run_block: Callable[[int], np.ndarray],
    *,
    min_s: float = 0.1,
    max_s: float = 3.0,
    window_s: float = 0.025,
    tol: float = 0.02,
) -> tuple[float, bool, float]:
    """Warm up until GPU clocks settle: run windows of about ``window_s`` until
    two successive windows' medians agree within ``tol`` twice in a row and at
    least ``min_s`` of runs have passed (stop at ``max_s`` regardless).

    ``run_block(k)`` runs ``k`` times and returns the per-run seconds.
    Returns ``(seconds run, settled, last window median in seconds)``.
    """
    spent, prev, streak, k = 0.0, None, 0, 1
    while True:
        times = np.asarray(run_block(k), dtype=float)
        spent += float(times.sum())
        med = float(np.median(times))
        streak = streak + 1 if prev is not None and abs(med / prev - 1) <= tol else 0
        prev = med
        if spent >= min_s and streak >= 2:
            return spent, True, med
        if spent >= max_s:
            return spent, False, med
        k = int(min(100_000, max(1, window_s / max(med, 1e-7))))


def energy_window(
    run_once: Callable[[], Any],
    read_mj: Callable[[], float],
    min_s: float = 1.0,
    clock: Callable[[], float] = time.perf_counter,
    stuck_s: float = 2.0,
) -> dict[str, float]:
    """Energy per run from a cumulative energy counter that updates in steps.

    Runs until the counter changes (start of the window), then for at least
    ``min_s``, then until the counter changes again (end of the window): both
    ends fall on counter updates, so the energy read covers exactly the runs
    made in between. ``run_once`` must finish its work before returning.

    Returns ``energy_mj`` (per run), ``energy_power_w`` (mean power),
    ``energy_window_s`` and ``energy_runs``.
    """
    if min_s < MIN_ENERGY_WINDOW_S:
        raise ValueError(f"Invalid energy window {min_s:g} s: NVML's counter needs >= {MIN_ENERGY_WINDOW_S} s")

    def until_update() -> tuple[float, int]:
        first, runs, t0 = read_mj(), 0, clock()
        while True:
            run_once()
            runs += 1
            now = read_mj()
            if now != first:
                return now, runs
            if clock() - t0 > stuck_s:
                raise RuntimeError(f"the energy counter did not change in {stuck_s:g} s of runs")

    e_start, _ = until_update()
    t0, runs = clock(), 0
    while clock() - t0 < min_s:
        run_once()
        runs += 1
    e_end, tail = until_update()
    runs += tail
    window = clock() - t0
    energy = float(e_end - e_start)
    return {
        "energy_mj": energy / runs,
        "energy_power_w": energy / 1000.0 / window,
        "energy_window_s": window,
        "energy_runs": float(runs),
    }


def warm_up_extras(
    run_block: Callable[[int], np.ndarray],
    run_once: Callable[[], Any],
    nvml: Nvml | None,
    *,
    settle_s: float,
    energy: bool,
    energy_s: float,
    label: str = "",
) -> tuple[tuple[str, float], ...]:
    """Settle an op (see :func:`settle`), then read the SM clock and, with
    ``energy``, its energy per run; returns the pairs for Measurement.extra."""
    spent, settled, _ = settle(run_block, min_s=settle_s)
    if not settled:
        log.info("%s: timings still drifting after %.2f s of warm-up", label, spent)
    extra: list[tuple[str, float]] = [("settle_s", round(spent, 4)), ("settled", float(settled))]
    if nvml is not None and (clock := nvml.sm_clock_mhz()) is not None:
        extra.append(("sm_clock_mhz", clock))
    if energy:
        if nvml is None:
            raise RuntimeError(f"energy=1 needs NVML through pynvml: {GPU_EXTRA}")
        extra += sorted(energy_window(run_once, nvml.energy_mj, energy_s).items())
    return tuple(extra)
