"""A deterministic backend for tests: roofline latency plus seeded noise, no sleeping.

Latency of an op = ``overhead + max(flops / peak, bytes / bandwidth)`` times
log-normal noise drawn from a generator seeded by the op key and the device
key, so the same op gives the same samples in every run and every process.
Options (``DeviceSpec.options``): ``noise`` (relative σ, default 0.03),
``peak_gmacs`` (default 20), ``bandwidth_gbs`` (default 10), ``overhead_us``
(default 20), ``unstable`` (a substring of op keys whose noise is 10x),
``realtime`` (1: really sleep for the drawn times, for kill/resume tests),
``drift`` ("PERIOD:FACTOR": every PERIOD seconds of device time the whole
device turns FACTOR times slower, then back, like a shared machine's busy
spells; ``drift_phase=1`` starts in the slow spell). A GPU session is rehearsed
on the fake device, so it also takes the GPU backends' ``mode``, ``gpu`` and
``energy`` (they only change the device key). Any other option is a typo and
raises ``ValueError`` naming the valid ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from hwlat.devices._base import Backend, DeviceInfo, Item, Runnable
from hwlat.devices._options import Options, option
from hwlat.devices._registry import register_backend


def roofline_s(item: Item, peak_gmacs: float = 20.0, bandwidth_gbs: float = 10.0, overhead_us: float = 20.0) -> float:
    """The fake device's true latency in seconds (networks: sum over ops)."""
    ops = getattr(item, "ops", (item,))
    return sum(overhead_us * 1e-6 + max(op.flops / (peak_gmacs * 1e9), op.bytes / (bandwidth_gbs * 1e9)) for op in ops)


def parse_drift(text: str) -> tuple[float, float]:
    """``"PERIOD:FACTOR"`` -> ``(period_s, factor)``, both positive."""
    try:
        period, factor = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError("give PERIOD:FACTOR, e.g. drift=0.5:1.8") from None
    if period <= 0 or factor <= 0:
        raise ValueError("PERIOD and FACTOR must be positive")
    return period, factor


@dataclasses.dataclass(frozen=True)
class FakeOptions(Options):
    """The fake device's options (see the module docstring)."""

    noise: float = option(0.03, minimum=0.0)
    peak_gmacs: float = option(20.0, above=0.0)
    bandwidth_gbs: float = option(10.0, above=0.0)
    overhead_us: float = option(20.0, minimum=0.0)
    unstable: str | None = option(None)
    realtime: bool = option(False)
    drift: tuple[float, float] | None = option(None, parse=parse_drift)
    drift_phase: int = option(0, minimum=0)
    # Accepted so that benchmarks/gpu_session.py rehearses a GPU session here; they only change the key.
    mode: str | None = option(None)
    gpu: int = option(0, minimum=0)
    energy: bool = option(False)


@register_backend
class FakeBackend(Backend):
    name: ClassVar[str] = "fake"
    MODEL_FORMATS: ClassVar[tuple[str, ...]] = ("onnx", "tflite", "torch", "exported")
    description: ClassVar[str] = "deterministic roofline model with seeded noise (for tests)"
    OPTIONS: ClassVar[type[FakeOptions]] = FakeOptions

    @classmethod
    def check(cls) -> str | None:
        return None

    @contextlib.contextmanager
    def session(self) -> Iterator[Backend]:
        yield self  # nothing to pin: the fake device does not use the CPU

    def true_latency_s(self, item: Item) -> float:
        o = self.options
        return roofline_s(item, o.peak_gmacs, o.bandwidth_gbs, o.overhead_us) * self.spec.batch

    def describe(self) -> DeviceInfo:
        return DeviceInfo("fake", self.spec.key, "fake roofline device", "hwlat-fake", "1", self.spec.threads)

    def prepare(self, item: Item) -> Runnable:
        base = self.true_latency_s(item)
        noise = self.options.noise
        unstable = self.options.unstable
        if unstable and unstable in item.key:
            noise *= 10
        seed = int.from_bytes(hashlib.sha1(f"{self.spec.key}|{item.key}".encode()).digest()[:8], "little")
        return _FakeRunnable(item, base, noise, np.random.default_rng(seed))

    def run(self, runnable: Runnable, n: int) -> np.ndarray:
        if not isinstance(runnable, _FakeRunnable):
            raise TypeError(f"the fake backend runs what its own prepare() made, not {type(runnable).__name__}")
        times = runnable.draw(n)
        drift = self.options.drift
        if drift is not None:
            period, factor = drift
            clock = getattr(self, "_clock_s", 0.0)
            if (int(clock / period) + self.options.drift_phase) % 2:
                times = times * factor
            self._clock_s = clock + float(times.sum())
        if self.options.realtime:
            time.sleep(float(times.sum()))
        return times


class _FakeRunnable(Runnable):
    def __init__(self, item: Item, base_s: float, noise: float, rng: np.random.Generator) -> None:
        super().__init__(item, call=lambda: None)
        self.base_s, self.noise, self.rng = base_s, noise, rng

    def draw(self, n: int) -> np.ndarray:
        return self.base_s * np.exp(self.rng.normal(0.0, self.noise, n))
