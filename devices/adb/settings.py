"""Device options of ``adb:SERIAL/...``, parsed by the one options parser (:mod:`hwlat.devices._options`).

Those in :data:`IDENTITY` change what is measured and stay in the device key;
the others are run settings (how to reach and treat the phone), left out of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from hwlat.devices._base import DeviceSpec
from hwlat.devices._options import Options, option

__all__ = ["AdbSettings", "DEFAULT_HOST", "DEFAULT_PORT", "IDENTITY", "split_options"]

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5037
IDENTITY = ("serial", "cores", "use_gpu", "use_xnnpack")  # options that change what is measured (in the key)
_ENV = {"adb_host": "ANDROID_ADB_SERVER_HOST", "adb_port": "ANDROID_ADB_SERVER_PORT"}  # defaults read when parsing


def _flag(text: str) -> bool:
    """``keep``/``profile``: 0/1, also true/false and yes/no (any case)."""
    text = text.lower()
    if text not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError("use 0 or 1")
    return text in ("1", "true", "yes")


@dataclass(frozen=True)
class AdbSettings(Options):
    """Every option of an adb device; ``cores`` (inherited), ``serial``, ``use_gpu`` and
    ``use_xnnpack`` are the :data:`IDENTITY` ones, the rest do not change the measured numbers."""

    invalid: ClassVar[str] = "Invalid device option"
    cores_here: ClassVar[bool] = False  # ``cores`` are the phone's CPUs (e.g. 4-7), checked by the backend

    serial: str | None = option(None)  # from adb:SERIAL
    use_gpu: bool | None = option(None)
    use_xnnpack: bool | None = option(None)
    bench_binary: str | None = option(None)
    adb_host: str = option(DEFAULT_HOST)
    adb_port: int = option(DEFAULT_PORT, hint="must be a port number such as 5037")
    timeout: float = option(120.0)
    retries: int = option(3, minimum=0)
    backoff: float = option(1.0, minimum=0.0)
    keep: bool = option(False, parse=_flag)
    max_temp: float = option(50.0)
    freq_ratio: float = option(0.9)
    thermal_wait: float = option(60.0, minimum=0.0)
    cooldown: float = option(0.0, minimum=0.0)
    profile: bool = option(False, parse=_flag)
    remote_dir: str = option("/data/local/tmp/hwlat")

    @classmethod
    def from_options(cls, options: Mapping[str, str], device: str = "adb") -> AdbSettings:
        """As :meth:`Options.from_options`; ``adb_host``/``adb_port`` default to
        ``$ANDROID_ADB_SERVER_HOST``/``$ANDROID_ADB_SERVER_PORT`` when set."""
        env = {name: os.environ.get(var) for name, var in _ENV.items()}
        return super().from_options({**{k: v for k, v in env.items() if v}, **options}, device=device)

    def problems(self) -> Iterable[tuple[str, str]]:
        if self.timeout <= 0:
            yield "timeout", "must be > 0 s"
        if not 0 < self.freq_ratio <= 1:
            yield "freq_ratio", "must be in (0, 1]"


def split_options(spec: DeviceSpec) -> tuple[dict[str, str], AdbSettings]:
    """The :data:`IDENTITY` options of ``spec`` as given (they stay in the key) and all of them parsed."""
    settings = AdbSettings.from_spec(spec)
    return {k: v for k, v in spec.options if k in IDENTITY}, settings
