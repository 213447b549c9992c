"""Backend protocol, device specs and device info shared by every backend."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwlat.cache import cache_dir
from hwlat.devices._options import Options
from hwlat.measure.loop import Block, warm_up
from hwlat.measure.stop import BlockPlan
from hwlat.measure.timing import Measurement, Protocol, summarize
from hwlat.network import Network
from hwlat.ops import OpSpec

Item = OpSpec | Network

__all__ = [
    "Backend",
    "DeviceSpec",
    "DeviceInfo",
    "Runnable",
    "Item",
    "cache_dir",
    "cpu_model",
    "pinned_cpus",
    "torch_threads",
]

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class DeviceSpec:
    """Where and how to run: backend name plus options.

    ``key`` is stable and is what latency tables are keyed by, e.g.
    ``onnxruntime-cpu/t1/b1/fp32``. Backend-specific options (``mode`` for CUDA,
    ``serial`` for phones, ...) are a sorted tuple of ``(name, value)`` pairs.
    """

    backend: str
    threads: int = 1
    batch: int = 1
    precision: str = "fp32"
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("threads", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid {name}={value!r} for device {self.backend!r}: must be an int >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Invalid precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        object.__setattr__(self, "options", tuple(sorted((str(k), str(v)) for k, v in dict(self.options).items())))

    @property
    def key(self) -> str:
        extra = "".join(f"/{k}={v}" for k, v in self.options)
        return f"{self.backend}/t{self.threads}/b{self.batch}/{self.precision}{extra}"

    def option(self, name: str, default: str | None = None) -> str | None:
        return dict(self.options).get(name, default)

    def replace(self, **changes: Any) -> DeviceSpec:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def backend_of(text: str) -> str:
        """The backend name of a device string or key (``adb:SERIAL/t1`` -> ``adb``), without validating the rest."""
        return text.partition("/")[0].partition(":")[0]

    @classmethod
    def same_backend(cls, a: str, b: str) -> bool:
        """Whether two device strings or keys name the same backend (empty strings never match)."""
        return bool(a) and bool(b) and cls.backend_of(a) == cls.backend_of(b)

    @classmethod
    def parse(cls, text: str, **overrides: Any) -> DeviceSpec:
        """Parse ``backend[:serial]`` or a full key ``backend/t1/b1/fp32[/k=v...]``."""
        head, *rest = text.split("/")
        kwargs: dict[str, Any] = {}
        options: dict[str, str] = {}
        if ":" in head:  # adb:SERIAL
            head, serial = head.split(":", 1)
            options["serial"] = serial
        for part in rest:
            if "=" in part:
                k, v = part.split("=", 1)
                options[k] = v
            elif part[:1] == "t" and part[1:].isdigit():
                kwargs["threads"] = int(part[1:])
            elif part[:1] == "b" and part[1:].isdigit():
                kwargs["batch"] = int(part[1:])
            elif part in PRECISIONS:
                kwargs["precision"] = part
            else:
                raise ValueError(f"Invalid device part {part!r} in {text!r}: expected tN, bN, a precision or k=v")
        options.update(overrides.pop("options", {}) or {})
        unknown = sorted(set(overrides) - {"threads", "batch", "precision"})
        if unknown:
            raise ValueError(
                f"Invalid argument {unknown[0]}={overrides[unknown[0]]!r} for device {text!r}: valid: threads, "
                f"batch, precision, options; a backend's own options go in the device string "
                f"({text.partition('/')[0]}/{unknown[0]}=...) or in options={{...}}"
            )
        for k, v in overrides.items():
            if v is None:
                continue
            if k in kwargs and kwargs[k] != v:  # e.g. --device cuda/b8 with --batch 4
                raise ValueError(
                    f"Conflicting {k} for device {text!r}: the device string says {kwargs[k]}, "
                    f"the option says {v}; give it once"
                )
            kwargs[k] = v
        return cls(head, options=tuple(options.items()), **kwargs)


@dataclass(frozen=True)
class DeviceInfo:
    """What was found on the machine: the provenance stored with every row."""

    backend: str
    device_key: str
    hardware: str
    runtime: str
    runtime_version: str
    threads: int
    hostname: str = field(default_factory=platform.node)
    os: str = field(default_factory=lambda: f"{platform.system()} {platform.release()}")
    python: str = field(default_factory=platform.python_version)
    extra: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["extra"] = dict(self.extra)
        return data


class Runnable:
    """A prepared op: ``call()`` runs one inference; ``close()`` frees it."""

    def __init__(self, item: Item, call: Callable[[], Any], close: Callable[[], None] | None = None) -> None:
        self.item = item
        self.call = call
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


class Backend(abc.ABC):
    """One way of running ops on one device.

    Subclasses set ``name``, ``install_hint`` and implement :meth:`check`,
    :meth:`describe` and :meth:`prepare`; :meth:`run` times ``n`` calls with
    the host's monotonic clock (backends with their own clock override it).
    The measurement loop (:func:`hwlat.measure.measure`) calls the hooks
    :meth:`prepare`, :meth:`warm_up`, :meth:`time_block` and :meth:`summarize`;
    a device that times its runs itself (adb) overrides the last three.
    Heavy libraries are imported inside the methods, never at module import.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    install_hint: ClassVar[str] = ""

    # The formats of user models (hwlat.graph.Model) this backend runs: torch modules by default;
    # ONNX Runtime also runs .onnx files, LiteRT and phones .tflite files.
    MODEL_FORMATS: ClassVar[tuple[str, ...]] = ("torch", "exported")

    # The typed k=v options this backend accepts (``cores`` only, unless a backend declares more);
    # an unknown option or a bad value raises ValueError naming the valid ones.
    OPTIONS: ClassVar[type[Options]] = Options

    def __init__(self, spec: DeviceSpec, options: Options | None = None) -> None:
        self.spec = spec
        self.options = options if options is not None else type(self).OPTIONS.from_spec(spec)

    @classmethod
    @abc.abstractmethod
    def check(cls) -> str | None:
        """``None`` when usable here, else the reason and how to fix it."""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        reason = cls.check()
        return (reason is None, reason or "available")

    @abc.abstractmethod
    def describe(self) -> DeviceInfo: ...

    @abc.abstractmethod
    def prepare(self, item: Item) -> Runnable: ...

    def convert(self, item: Item) -> Path | None:
        """Convert ``item`` into the backend's cached format (None: nothing to convert).

        Pure and cacheable, so ``hwlat measure --jobs N`` can run it in
        parallel processes before measuring.
        """
        return None

    def run(self, runnable: Runnable, n: int) -> np.ndarray:
        """Run ``n`` times; return each run's duration in seconds."""
        times = np.empty(n)
        call, clock = runnable.call, time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            call()
            times[i] = clock() - t0
        return times * 1e-9

    # ------------------------------------------------ hooks of the measurement loop
    #: Whether :meth:`run` gives per-run times (a drift reference needs them).
    per_run_times: ClassVar[bool] = True

    def warm_up(self, runnable: Runnable, protocol: Protocol) -> float | None:
        """Warm ``runnable`` up per ``protocol``; return one run's time in seconds
        (None: the device warms up itself in every block)."""
        return warm_up(self, runnable, protocol)

    def time_block(self, runnable: Runnable, plan: BlockPlan) -> Block:
        """Time one block (the loop's "time one block" hook): ``plan.runs`` runs of ``runnable``."""
        t0 = time.perf_counter()
        times = self.run(runnable, plan.runs)
        return Block(times, float(times.sum()), time.perf_counter() - t0)

    def summarize(
        self,
        runnable: Runnable,
        samples: Sequence[Any],
        *,
        protocol: Protocol,
        wall_s: float,
        extra: Iterable[tuple[str, float]] = (),
    ) -> Measurement:
        """The Measurement of ``runnable``'s blocks so far (``samples``: the blocks' ``sample``)."""
        return summarize(
            np.concatenate(samples),
            [float(np.median(b)) for b in samples],
            item=runnable.item,
            device_key=self.spec.key,
            protocol=protocol,
            wall_s=wall_s,
            extra=extra,
        )

    def measurement_extra(self, item: Item) -> tuple[tuple[str, float], ...]:
        """Extra values stored in ``item``'s Measurement.extra once it is final
        (GPU backends: warm-up, clock, energy per inference). Nothing by default."""
        return ()

    @contextlib.contextmanager
    def session(self) -> Iterator[Backend]:
        """Context in which measurements run: the process is pinned to
        ``threads`` CPUs (device option ``cores`` overrides which)."""
        with pinned_cpus(self.spec.threads, self.spec.option("cores")):
            yield self

    def input_shape(self, item: Item) -> tuple[int, ...]:
        return (self.spec.batch, *item.input_shape[1:])

    @classmethod
    def supports(cls, item: Item) -> str | None:
        """None when this backend can run ``item``, else why not and where it runs."""
        fmt = getattr(item, "format", None) if getattr(item, "kind", "") == "model" else None
        if fmt is None or fmt in cls.MODEL_FORMATS:
            return None
        where = {"onnx": "onnxruntime-cpu", "tflite": "litert-cpu or a phone (adb:SERIAL)"}.get(fmt, "its runtime")
        return f"{item.name} is a .{fmt} file, which {cls.name} does not run; measure it on {where}"


# ------------------------------------------------------------------ helpers
def cache_path(sub: str, item: Item, suffix: str, *salt: str) -> Path:
    """Cache file for ``item`` converted with the given tool versions/options, in
    :func:`hwlat.cache.cache_dir` (write it with :func:`hwlat.cache.cached_file`: atomic, recorded, verified)."""
    text = "|".join([item.key, *(op.key for op in getattr(item, "ops", ()))] + list(salt))
    return cache_dir(sub) / f"{hashlib.sha1(text.encode()).hexdigest()[:20]}{suffix}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Pin torch's intra-op threads to ``n`` and restore the old value after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def model_file(item: Item, fmt: str) -> Path | None:
    """The user's own file when ``item`` is a model in format ``fmt`` (run as it is, not converted)."""
    if getattr(item, "kind", "") == "model" and getattr(item, "format", None) == fmt:
        return item.path
    return None


def example_input(backend: Backend, item: Item, seed: int = 0):
    """A fixed random input tensor for ``item`` at the device's batch size."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.rand(backend.input_shape(item), generator=gen) - 0.5


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Silence C++ and Python output on fds 1 and 2 (converters print progress there)."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


@contextlib.contextmanager
def pinned_cpus(threads: int, cores: str | None = None) -> Iterator[tuple[int, ...]]:
    """Pin this process to ``threads`` CPUs (the last ones, away from core 0's
    interrupts, unless ``cores`` lists them, e.g. "2,3") and restore after.

    Migrations between cores are a main source of run-to-run spread on a
    shared machine; benchmark_model on phones is run under ``taskset`` for the
    same reason. Where affinity is not supported this does nothing.
    """
    if not hasattr(os, "sched_getaffinity"):
        yield ()
        return
    old = os.sched_getaffinity(0)
    if cores:
        chosen = {int(c) for c in cores.split(",")}
        if not chosen <= old:
            raise ValueError(f"Invalid cores {cores!r}: this process may use CPUs {sorted(old)}")
    else:
        chosen = set(sorted(old)[-threads:])
    os.sched_setaffinity(0, chosen)
    try:
        yield tuple(sorted(chosen))
    finally:
        os.sched_setaffinity(0, old)
