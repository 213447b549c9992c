import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from hwlat.measure import Protocol

ROOT = Path(__file__).resolve().parents[1]
# a short adaptive protocol: enough rounds for statistics, no time to speak of
QUICK = Protocol(min_rounds=3, budget_s=0.05, warmup_s=0.005, round_s=0.005)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Converted models go to a per-session cache, never the user's home."""
    monkeypatch.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m hwlat.cli ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hwlat.cli", *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )


@pytest.fixture
def never(monkeypatch):
    """A registered backend ``never-gpu`` that is never available here (like CUDA on a laptop)."""
    from hwlat.devices import Backend, _registry

    class NeverBackend(Backend):
        name: ClassVar[str] = "never-gpu"

        @classmethod
        def check(cls):
            return "no CUDA device found (test backend)"

        def describe(self):  # pragma: no cover - never created
            raise AssertionError

        def prepare(self, item):  # pragma: no cover
            raise AssertionError

    monkeypatch.setitem(_registry.BACKENDS._items, "never-gpu", NeverBackend)
    return NeverBackend


def measured_elsewhere(store, device, nets, protocol=QUICK):
    """Rows for ``device`` as another machine would have measured them (the fake backend under its key)."""
    from hwlat.devices import DeviceSpec
    from hwlat.devices.fake import FakeBackend
    from hwlat.workflows import run_measure

    stand_in = FakeBackend(DeviceSpec.parse(device))
    run_measure(stand_in, nets, store, protocol, quiet=True)
    return stand_in
