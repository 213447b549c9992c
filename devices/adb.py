"""Android phones over adb: TFLite ``benchmark_model`` on the big cores (the *runner*).

Device ``adb:SERIAL``. Per op: convert to ``.tflite`` (:func:`hwlat.devices.litert.convert_tflite`,
NHWC I/O), push it, run ``benchmark_model`` under ``taskset`` on the big cores,
read its output with :mod:`hwlat.devices._bench_output` (the *parser*), and
remove the file. ``adbutils`` is imported lazily; hwlat never starts an adb
server (it fails with a clear message instead) and every call has a timeout.

How it maps onto the timing protocol
------------------------------------
``benchmark_model`` reports statistics, not per-run times, and starting it
(process, model load, delegate) costs far more than one run. So this backend
has no ``prepare``/``run`` pair; it implements :meth:`AdbBackend.measure_items`,
which :func:`hwlat.measure.timing.measure` calls for backends that have one:

- one *round* (block) is one invocation: its own warm-up (``--warmup_runs``,
  ``--warmup_min_secs`` from the protocol) then timed runs for ``round_s``
  (``--num_runs=1 --min_secs=round_s``); its stat line gives the round's median;
- adaptive protocol: ops are staged in groups of ``interleave``; rounds visit
  the group's unfinished ops in shuffled order; an op is final once it has
  ``min_rounds`` rounds and its CI and round spread are within the protocol's
  limits, or its timed-run time reaches ``budget_s``, or after ``max_rounds``;
- fixed protocol: one invocation with ``benchmark_model``'s own defaults
  (1 warm-up run for at least 0.5 s, then 50 runs for at least 1 s).

Each final op is handed to ``on_result`` at once (the store commits it), so a
run that fails or is killed loses at most the group in flight and the same
command resumes.

Before each invocation the phone is gated: wait (bounded) until the hottest CPU
thermal zone is below ``max_temp`` and the big cores are back near full speed,
then idle ``cooldown`` seconds. With the ``performance``/``userspace`` governor
"full speed" means ``scaling_cur_freq``; with load-following governors
(schedutil, ...) an idle core sits at a low current frequency, so the throttle
cap ``scaling_max_freq`` is compared with ``cpuinfo_max_freq`` instead. The
temperature and frequency ratio seen are stored in ``Measurement.extra``.

Device options (``adb:SERIAL/name=value``; ``--bench-binary`` sets ``bench_binary``):
``cores`` (e.g. ``6,7`` or ``4-7``; default: the fastest cluster(s) covering
``threads``), ``use_gpu=1``, ``use_xnnpack=0|1`` change what is measured and are
part of the device key. Run settings, not in the key: ``bench_binary``,
``adb_host``/``adb_port`` (default ``$ANDROID_ADB_SERVER_HOST``/``PORT``,
127.0.0.1:5037), ``timeout`` (s of silence before a call counts as hung, 120),
``retries`` (3), ``backoff`` (s, 1.0, doubling), ``keep=1`` (leave pushed files),
``max_temp`` (°C, 50), ``freq_ratio`` (0.9), ``thermal_wait`` (s, 60),
``cooldown`` (s, 0), ``profile=1`` (``--enable_op_profiling``), ``remote_dir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import logging
import math
import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hwlat.devices._base import Backend, DeviceInfo, DeviceSpec, Item, Runnable
from hwlat.devices._bench_output import BenchOutput, BenchOutputError, parse, to_measurement
from hwlat.devices._registry import register_backend

if TYPE_CHECKING:
    from hwlat.measure import Measurement, Protocol

__all__ = ["AdbBackend", "AdbDeviceError", "AdbSettings", "big_cores", "list_phones"]

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5037
BINARY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
)
_BINARY_NAME = {"arm64-v8a": "android_aarch64_benchmark_model", "armeabi-v7a": "android_arm_benchmark_model"}
_EXIT_MARK = "HWLAT_EXIT:"
_IDENTITY = ("serial", "cores", "use_gpu", "use_xnnpack")
_CPU = "/sys/devices/system/cpu"
_SYSFS_GLOBS = (
    f"{_CPU}/cpu[0-9]*/cpufreq/cpuinfo_max_freq",
    f"{_CPU}/cpu[0-9]*/cpufreq/scaling_cur_freq",
    f"{_CPU}/cpu[0-9]*/cpufreq/scaling_max_freq",
    f"{_CPU}/cpu[0-9]*/cpufreq/scaling_governor",
    "/sys/class/thermal/thermal_zone*/type",
    "/sys/class/thermal/thermal_zone*/temp",
    "/proc/loadavg",
)
# Thermal zone types of CPU sensors across vendors
# (Qualcomm cpu-*-usr/cpuss, Exynos/Tensor BIG/MID/LITTLE, MediaTek mtktscpu).
_CPU_ZONE = re.compile(r"cpu|big|mid|little|gold|silver|prime|cluster", re.IGNORECASE)


class AdbDeviceError(RuntimeError):
    """A phone-side failure, with its cause and the fix in one line."""


class _TransportError(Exception):
    """The adb connection failed (``kind``: timeout, disconnect, offline)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class AdbSettings:
    """How to reach and treat the phone; none of these change the measured numbers' identity."""

    bench_binary: str | None = None
    adb_host: str = DEFAULT_HOST
    adb_port: int = DEFAULT_PORT
    timeout: float = 120.0
    retries: int = 3
    backoff: float = 1.0
    keep: bool = False
    max_temp: float = 50.0
    freq_ratio: float = 0.9
    thermal_wait: float = 60.0
    cooldown: float = 0.0
    profile: bool = False
    remote_dir: str = "/data/local/tmp/hwlat"

    @classmethod
    def from_options(cls, options: dict[str, str]) -> AdbSettings:
        values: dict[str, Any] = {
            "adb_host": os.environ.get("ANDROID_ADB_SERVER_HOST") or DEFAULT_HOST,
            "adb_port": os.environ.get("ANDROID_ADB_SERVER_PORT") or DEFAULT_PORT,
        }
        values.update(options)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            raw = values[f.name]
            try:
                if f.name in ("keep", "profile"):
                    text = str(raw).lower()
                    if text not in ("0", "1", "true", "false", "yes", "no"):
                        raise ValueError
                    kwargs[f.name] = text in ("1", "true", "yes")
                elif f.name in ("adb_port", "retries"):
                    kwargs[f.name] = int(raw)
                elif f.name in ("bench_binary", "adb_host", "remote_dir"):
                    kwargs[f.name] = str(raw)
                else:
                    kwargs[f.name] = float(raw)
            except ValueError:
                raise ValueError(f"Invalid device option {f.name}={raw!r} for adb (expected {f.type})") from None
        s = cls(**kwargs)
        if s.timeout <= 0 or s.retries < 0 or s.backoff < 0 or s.thermal_wait < 0 or s.cooldown < 0:
            raise ValueError("Invalid adb option: timeout must be > 0; retries, backoff, thermal_wait, cooldown >= 0")
        if not 0 < s.freq_ratio <= 1:
            raise ValueError(f"Invalid adb option freq_ratio={s.freq_ratio}: must be in (0, 1]")
        return s


def _split_options(spec: DeviceSpec) -> tuple[dict[str, str], AdbSettings]:
    opts = dict(spec.options)
    setting_names = {f.name for f in dataclasses.fields(AdbSettings)}
    unknown = sorted(set(opts) - setting_names - set(_IDENTITY))
    if unknown:
        valid = ", ".join(sorted(set(_IDENTITY) | setting_names))
        raise ValueError(f"Invalid option(s) {', '.join(unknown)} for device adb; valid options: {valid}")
    identity = {k: v for k, v in opts.items() if k in _IDENTITY}
    return identity, AdbSettings.from_options({k: v for k, v in opts.items() if k in setting_names})


# ------------------------------------------------------------------ helpers
def big_cores(max_freqs_khz: dict[int, int], threads: int) -> list[int]:
    """The fastest cores: whole clusters (cores sharing a max frequency), fastest first,
    until they cover ``threads``. Pixel 2 (4 × 2.35 GHz + 4 × 1.9 GHz), 1 thread: 4-7 (mask f0)."""
    chosen: list[int] = []
    for freq in sorted(set(max_freqs_khz.values()), reverse=True):
        chosen += [c for c, f in max_freqs_khz.items() if f == freq]
        if len(chosen) >= threads:
            break
    return sorted(chosen)


def _parse_cores(text: str, present: Iterable[int]) -> list[int]:
    cores: set[int] = set()
    try:
        for part in text.replace(" ", "").split(","):
            lo, _, hi = part.partition("-")
            cores.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"Invalid cores={text!r}: expected a list such as 6,7 or 4-7") from None
    missing = sorted(cores - set(present))
    if missing or not cores:
        raise ValueError(f"Invalid cores={text!r}: the phone has CPUs {sorted(present)}")
    return sorted(cores)


# ELF class (1: 32-bit, 2: 64-bit) and e_machine of each Android ABI.
ELF_MACHINE = {"arm64-v8a": (2, 183), "armeabi-v7a": (1, 40), "x86_64": (2, 62), "x86": (1, 3), "riscv64": (2, 243)}


def elf_abi(data: bytes) -> str | None:
    """The Android ABI an ELF header is built for (None: not an ELF file)."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    cls, machine = data[4], int.from_bytes(data[18:20], "little")
    for abi, (c, m) in ELF_MACHINE.items():
        if (c, m) == (cls, machine):
            return abi
    return f"ELF class {cls} machine {machine}"


def _elf_abi(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return elf_abi(fh.read(64))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _client(host: str, port: int, timeout: float):
    """An ``adbutils.AdbClient`` that never starts an adb server and always has a timeout.

    (adbutils runs ``adb start-server`` when it cannot connect; hwlat must not
    spawn servers, so a refused connection is an error here.)
    """
    import adbutils
    from adbutils._adb import AdbConnection

    class _Connection(AdbConnection):
        def _safe_connect(self):
            return self._create_socket()

    class _Client(adbutils.AdbClient):
        _version: int | None = None

        def make_connection(self, timeout: float | None = None) -> AdbConnection:
            conn = _Connection(self.host, self.port)
            conn.conn.settimeout(timeout or default_timeout)
            return conn

        def server_version(self) -> int:
            # adbutils asks before every transport; one server keeps one version.
            if self._version is None:
                self._version = super().server_version()
            return self._version

    default_timeout = timeout
    return _Client(host=host, port=port, socket_timeout=timeout)


def _server_up(host: str, port: int, timeout: float = 0.5) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _abi_fix(abi: str) -> str:
    name = _BINARY_NAME.get(abi)
    return f"download {BINARY_URL}{name} " if name else f"build benchmark_model for {abi} "


class _Phone:
    """One phone behind one adb server: shell with exit code, push, stat. Raises _TransportError."""

    def __init__(self, serial: str, settings: AdbSettings) -> None:
        import adbutils

        self.serial, self.settings = serial, settings
        self.client = _client(settings.adb_host, settings.adb_port, settings.timeout)
        self.device = adbutils.AdbDevice(self.client, serial=serial)
        self.shell_v2: bool | None = None

    @property
    def where(self) -> str:
        return f"{self.settings.adb_host}:{self.settings.adb_port}"

    def _guard(self, fn: Callable[[], Any]) -> Any:
        import adbutils

        try:
            return fn()
        except adbutils.AdbTimeout as exc:
            raise _TransportError("timeout", f"no answer within {self.settings.timeout:g} s") from exc
        except TimeoutError as exc:
            raise _TransportError("timeout", f"no answer within {self.settings.timeout:g} s") from exc
        except adbutils.AdbError as exc:
            text = str(exc)
            kind = "offline" if ("not found" in text or "offline" in text) else "disconnect"
            raise _TransportError(kind, text or type(exc).__name__) from exc
        except (EOFError, OSError) as exc:
            raise _TransportError("disconnect", f"connection lost ({type(exc).__name__}: {exc})") from exc

    def state(self) -> str | None:
        """The phone's state on the server ('device', 'offline', 'unauthorized'), None if absent."""
        for info in self._guard(lambda: self.client.list()):
            if info.serial == self.serial:
                return info.state
        return None

    def serials(self) -> list[str]:
        return [f"{i.serial} ({i.state})" for i in self._guard(lambda: self.client.list())]

    def shell(self, command: str, timeout: float | None = None) -> tuple[str, int]:
        """Run ``command``; return (stdout+stderr, exit status)."""
        timeout = timeout or self.settings.timeout
        if self.shell_v2 is None:
            features = self._guard(lambda: self.device.get_features())
            self.shell_v2 = "shell_v2" in features.split(",")
        if self.shell_v2:
            r = self._guard(lambda: self.device.shell2(command, timeout=timeout, v2=True))
            return r.output, r.returncode
        # v1 loses the exit status: append a marker that echoes it.
        raw = self._guard(lambda: self.device.shell(f"{command}; echo {_EXIT_MARK}$?", timeout=timeout, encoding=None))
        text = raw.decode("utf-8", errors="replace")
        m = re.search(re.escape(_EXIT_MARK) + r"(\d+)\s*$", text)
        if m is None:
            raise _TransportError("disconnect", "the shell ended without its exit marker (connection dropped)")
        return text[: m.start()], int(m.group(1))

    def push(self, local: Path, remote: str) -> None:
        self._guard(lambda: self.device.sync.push(str(local), remote, mode=0o755, check=True))

    def size(self, remote: str) -> int | None:
        st = self._guard(lambda: self.device.sync.stat(remote))
        return st.size if st.mode else None


# ------------------------------------------------------------------ discovery
def _props(phone: _Phone) -> dict[str, str]:
    text, _ = phone.shell("getprop")
    return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", text, flags=re.MULTILINE))


def _soc(props: dict[str, str]) -> str:
    soc = " ".join(v for v in (props.get("ro.soc.manufacturer"), props.get("ro.soc.model")) if v)
    return soc or props.get("ro.board.platform") or props.get("ro.hardware") or "?"


def list_phones(host: str | None = None, port: int | None = None, timeout: float = 1.0) -> list[dict[str, str]]:
    """Phones attached to the adb server: serial, state, model, soc, abi, android.

    Returns [] at once when adbutils is missing or no server listens (it never
    starts one). Defaults: ``$ANDROID_ADB_SERVER_HOST``/``PORT``, 127.0.0.1:5037.
    """
    if importlib.util.find_spec("adbutils") is None:
        return []
    settings = AdbSettings.from_options(
        {**({"adb_host": host} if host else {}), **({"adb_port": str(port)} if port else {}), "timeout": str(timeout)}
    )
    if not _server_up(settings.adb_host, settings.adb_port, timeout=min(timeout, 0.5)):
        return []
    rows = []
    try:
        infos = _Phone("?", settings)._guard(lambda: _client(settings.adb_host, settings.adb_port, timeout).list())
    except _TransportError:
        return []
    for info in infos:
        row = {"serial": info.serial, "state": info.state, "model": "", "soc": "", "abi": "", "android": ""}
        if info.state == "device":
            try:
                props = _props(_Phone(info.serial, settings))
                row.update(
                    model=props.get("ro.product.model", "?"),
                    soc=_soc(props),
                    abi=props.get("ro.product.cpu.abi", "?"),
                    android=props.get("ro.build.version.release", "?"),
                )
            except _TransportError as exc:
                row["state"] = f"device (no answer: {exc})"
        rows.append(row)
    return rows


# ------------------------------------------------------------------ snapshot
@dataclass
class _Snapshot:
    """CPU frequencies, governors and thermal zones read in one shell call."""

    max_khz: dict[int, int] = field(default_factory=dict)
    cur_khz: dict[int, int] = field(default_factory=dict)
    cap_khz: dict[int, int] = field(default_factory=dict)
    governor: dict[int, str] = field(default_factory=dict)
    zones: dict[str, float] = field(default_factory=dict)  # "thermal_zoneN:type" -> °C
    loadavg: float = float("nan")

    @classmethod
    def read(cls, phone: _Phone) -> _Snapshot:
        text, _ = phone.shell("grep -sH . " + " ".join(_SYSFS_GLOBS))
        snap, types, temps = cls(), {}, {}
        for line in text.splitlines():
            path, sep, value = line.partition(":")
            if not sep:
                continue
            value = value.strip()
            m = re.match(rf"{_CPU}/cpu(\d+)/cpufreq/(\w+)$", path)
            if m and m.group(2) == "scaling_governor":
                snap.governor[int(m.group(1))] = value
            elif m and value.isdigit():
                target = {
                    "cpuinfo_max_freq": snap.max_khz,
                    "scaling_cur_freq": snap.cur_khz,
                    "scaling_max_freq": snap.cap_khz,
                }.get(m.group(2))
                if target is not None:
                    target[int(m.group(1))] = int(value)
            z = re.match(r"/sys/class/thermal/(thermal_zone\d+)/(type|temp)$", path)
            if z:
                (types if z.group(2) == "type" else temps)[z.group(1)] = value
            if path == "/proc/loadavg":
                with contextlib.suppress(ValueError, IndexError):
                    snap.loadavg = float(value.split()[0])
        for zone, raw in temps.items():
            try:
                t = float(raw)
            except ValueError:
                continue
            t = t / 1000 if abs(t) >= 1000 else t  # millidegrees on almost every kernel
            if -30 < t < 150:  # disabled sensors report 0 or nonsense
                snap.zones[f"{zone}:{types.get(zone, '?')}"] = t
        return snap

    def cpu_temp(self) -> float | None:
        cpu = [t for k, t in self.zones.items() if _CPU_ZONE.search(k.split(":", 1)[1])]
        pool = cpu or list(self.zones.values())
        return max(pool) if pool else None

    def speed_ratio(self, cores: Sequence[int]) -> float | None:
        """Min over ``cores`` of current (performance governor) or capped (others) / max frequency."""
        ratios = []
        for c in cores:
            mx = self.max_khz.get(c)
            if not mx:
                continue
            pinned = self.governor.get(c) in ("performance", "userspace")
            now = self.cur_khz.get(c) if pinned else self.cap_khz.get(c)
            if now:
                ratios.append(now / mx)
        return min(ratios) if ratios else None


# ------------------------------------------------------------------ backend
@dataclass
class _OpRun:
    item: Item
    local: Path
    remote: str
    outputs: list[BenchOutput] = field(default_factory=list)
    wall_s: float = 0.0
    spent_s: float = 0.0
    temps: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    wait_s: float = 0.0
    waits_timed_out: int = 0
    retries: int = 0
    done: bool = False


@register_backend
class AdbBackend(Backend):
    """An Android phone over adb, running TFLite's ``benchmark_model`` (see the module doc)."""

    name: ClassVar[str] = "adb"
    description: ClassVar[str] = "Android phone over adb: TFLite benchmark_model on the big cores (adb:SERIAL)"
    install_hint: ClassVar[str] = "pip install 'hwlat[adb,tflite]' (adbutils; litert-torch converts the ops)"

    def __init__(self, spec: DeviceSpec) -> None:
        identity, settings = _split_options(spec)
        if not identity.get("serial"):
            attached = ", ".join(p["serial"] for p in list_phones(timeout=0.5)) or "none found"
            raise ValueError(
                f"Invalid device {spec.backend!r}: give the phone's serial as adb:SERIAL "
                f"(attached: {attached}; see `hwlat devices` or `adb devices`)"
            )
        if spec.precision not in ("fp32", "fp16"):
            raise ValueError(f"Invalid precision {spec.precision!r} for device adb; valid: fp32, fp16")
        for flag in ("use_gpu", "use_xnnpack"):
            if flag in identity and identity[flag] not in ("0", "1"):
                raise ValueError(f"Invalid {flag}={identity[flag]!r} for device adb: use 0 or 1")
        super().__init__(spec.replace(options=tuple(identity.items())))
        self.serial = identity["serial"]
        self.settings = settings
        self._phone: _Phone | None = None
        self._props: dict[str, str] | None = None
        self._snap: _Snapshot | None = None
        self._binary: str | None = None  # path on the phone
        self._binary_local: Path | None = None  # the file it was pushed from
        self._binary_sha: str | None = None
        self._binary_pushed = False
        self._info: DeviceInfo | None = None
        self._loadavg = float("nan")

    # --------------------------------------------------------- protocol
    @classmethod
    def check(cls) -> str | None:
        for mod, dist in (("adbutils", "adbutils"), ("litert_torch", "litert-torch")):
            if importlib.util.find_spec(mod) is None:
                return f"{dist} is not installed: {cls.install_hint}"
        return None

    def convert(self, item: Item) -> Path:
        from hwlat.devices.litert import convert_tflite

        return convert_tflite(item, self.spec.batch)

    def prepare(self, item: Item) -> Runnable:
        raise TypeError(
            "the adb backend times whole benchmark_model invocations, not single calls: "
            "use hwlat.measure.timing.measure(backend, items, protocol), which calls backend.measure_items"
        )

    def run(self, runnable: Runnable, n: int) -> np.ndarray:
        return self.prepare(runnable.item)  # type: ignore[return-value]

    @property
    def cores(self) -> list[int]:
        snap = self._snapshot()
        if not snap.max_khz:
            raise AdbDeviceError(
                f"adb:{self.serial}: cannot read {_CPU}/cpu*/cpufreq/cpuinfo_max_freq; "
                "give the big cores with the device option cores=4-7"
            )
        text = self.spec.option("cores")
        return _parse_cores(text, snap.max_khz) if text else big_cores(snap.max_khz, self.spec.threads)

    @property
    def mask(self) -> str:
        return format(sum(1 << c for c in self.cores), "x")

    # ------------------------------------------------------- connection
    def _connect(self) -> _Phone:
        if self._phone is not None:
            return self._phone
        importlib.import_module("adbutils")  # ImportError here names the missing package
        s = self.settings
        if not _server_up(s.adb_host, s.adb_port, timeout=min(s.timeout, 2.0)):
            raise AdbDeviceError(
                f"no adb server at {s.adb_host}:{s.adb_port}; start one with `adb start-server` "
                "(hwlat never starts it) or point ANDROID_ADB_SERVER_PORT / the adb_port option at yours"
            )
        phone = _Phone(self.serial, s)
        try:
            state = phone.state()
            deadline = time.monotonic() + min(s.timeout, 5.0)
            while state != "device" and time.monotonic() < deadline:  # e.g. still re-enumerating after a drop
                time.sleep(0.1)
                state = phone.state()
            if state is None:
                raise AdbDeviceError(
                    f"no phone {self.serial} on the adb server {phone.where} (attached: "
                    f"{', '.join(phone.serials()) or 'none'}); check the cable and `adb devices`"
                )
            if state != "device":
                fix = "accept the USB debugging prompt on the phone" if state == "unauthorized" else "reconnect it"
                raise AdbDeviceError(f"phone {self.serial} is {state}: {fix}, then run the command again")
        except _TransportError as exc:
            raise AdbDeviceError(
                f"adb server {phone.where} did not answer ({exc}); restart it with `adb kill-server`"
            ) from exc
        self._phone = phone
        return phone

    def _call(self, what: str, fn: Callable[[], Any], staged: Sequence[_OpRun] = ()) -> Any:
        """Run ``fn`` with retries (backoff, waiting for the phone) on connection failures."""
        attempt = 0
        while True:
            try:
                return fn()
            except _TransportError as exc:
                self._recover(exc, attempt, what, staged)
                attempt += 1
                for st in staged:
                    st.retries += 1

    def _recover(self, exc: _TransportError, attempt: int, what: str, staged: Sequence[_OpRun]) -> None:
        s = self.settings
        if attempt >= s.retries:
            raise AdbDeviceError(
                f"adb:{self.serial}: {exc.kind} while {what} ({exc}); {s.retries} retries failed. "
                "Check the cable and `adb devices`, then run the same command again: finished ops are saved"
            ) from exc
        wait = min(s.backoff * 2**attempt, 30.0)
        log.warning(
            "adb:%s: %s while %s (%s); retry %d/%d in %.1f s",
            self.serial,
            exc.kind,
            what,
            exc,
            attempt + 1,
            s.retries,
            wait,
        )
        time.sleep(wait)
        phone = self._phone
        deadline = time.monotonic() + s.timeout
        while time.monotonic() < deadline:  # wait for the phone to come back
            try:
                if phone.state() == "device":
                    break
            except _TransportError:
                pass
            time.sleep(min(0.2 + s.backoff, 2.0))
        try:
            if exc.kind == "timeout":  # a hung benchmark_model keeps the phone busy (and hot): end it
                text, code = phone.shell(f"cat {self._pidfile}", timeout=min(s.timeout, 10))
                if code == 0 and text.strip().isdigit():
                    phone.shell(f"kill -9 {text.strip()}", timeout=min(s.timeout, 10))
            files = [(st.local, st.remote) for st in staged]
            if self._binary_local is not None:
                files.append((self._binary_local, self._binary))
            for local, remote in files:  # a reboot or cleaner may have removed them
                if phone.size(remote) != local.stat().st_size:
                    phone.push(local, remote)
                    if remote == self._binary:
                        phone.shell(f"chmod 755 {shlex.quote(remote)}")
        except _TransportError as again:
            log.warning("adb:%s: still unreachable after the wait (%s)", self.serial, again)

    @property
    def _pidfile(self) -> str:
        return f"{self.settings.remote_dir}/run.pid"

    def _snapshot(self) -> _Snapshot:
        if self._snap is None:
            phone = self._connect()
            self._snap = self._call("reading sysfs", lambda: _Snapshot.read(phone))
        return self._snap

    def _properties(self) -> dict[str, str]:
        if self._props is None:
            phone = self._connect()
            self._props = self._call("reading getprop", lambda: _props(phone))
        return self._props

    # ----------------------------------------------------------- binary
    def _resolve_binary(self) -> tuple[Path | None, str]:
        """(local file to push or None, path on the phone); checks existence and ABI."""
        phone, s = self._connect(), self.settings
        props = self._properties()
        abi = props.get("ro.product.cpu.abi", "?")
        abilist = (props.get("ro.product.cpu.abilist") or abi).split(",")
        given = s.bench_binary
        if given and Path(given).is_file():
            local = Path(given)
            found = _elf_abi(local)
            if found is None:
                raise AdbDeviceError(
                    f"--bench-binary {given} is not an ELF executable; {_abi_fix(abi)}and pass its path"
                )
            if found not in abilist:
                raise AdbDeviceError(
                    f"--bench-binary {given} is built for {found}, but {self.serial} runs "
                    f"{', '.join(abilist)}; {_abi_fix(abi)}and pass that instead"
                )
            return local, f"{s.remote_dir}/benchmark_model"
        candidates = [given] if given else [f"{s.remote_dir}/benchmark_model", "/data/local/tmp/benchmark_model"]
        for remote in candidates:
            if remote.startswith("/") and self._call("looking for benchmark_model", lambda r=remote: phone.size(r)):
                return None, remote
        where = (
            f"{given!r} is neither a file here nor on {self.serial}"
            if given
            else (f"no benchmark_model on {self.serial} (looked in {', '.join(candidates)})")
        )
        raise AdbDeviceError(f"{where}; {_abi_fix(abi)}and pass it with --bench-binary FILE")

    def _binary_digest(self, local: Path | None, remote: str) -> str:
        if local is not None:
            return _sha256(local)
        phone = self._connect()
        text, code = self._call("hashing benchmark_model", lambda: phone.shell(f"sha256sum {shlex.quote(remote)}"))
        return text.split()[0] if code == 0 and text.strip() else "unknown"

    # ---------------------------------------------------------- describe
    def describe(self) -> DeviceInfo:
        if self._info is not None:
            return self._info
        props, snap = self._properties(), self._snapshot()
        local, remote = self._resolve_binary()
        if self._binary_sha is None:
            self._binary_sha = self._binary_digest(local, remote)
        cores = self.cores
        zones = ", ".join(f"{k.split(':', 1)[1]}={v:.1f}C" for k, v in sorted(snap.zones.items()))
        model = " ".join(v for v in (props.get("ro.product.manufacturer"), props.get("ro.product.model")) if v)
        abi = props.get("ro.product.cpu.abi", "?")
        delegate = (
            "GPU"
            if self.spec.option("use_gpu") == "1"
            else ("none (use_xnnpack=false)" if self.spec.option("use_xnnpack") == "0" else "XNNPACK (default)")
        )
        from hwlat.devices.litert import _version

        self._info = DeviceInfo(
            backend=self.name,
            device_key=self.spec.key,
            hardware=f"{model or '?'} ({_soc(props)}, {abi})",
            runtime="TFLite benchmark_model",
            runtime_version=f"sha256:{self._binary_sha[:16]}",
            threads=self.spec.threads,
            os=f"Android {props.get('ro.build.version.release', '?')} (SDK {props.get('ro.build.version.sdk', '?')})",
            extra=(
                ("serial", self.serial),
                ("fingerprint", props.get("ro.build.fingerprint", "?")),
                ("board", props.get("ro.product.board", "?")),
                ("platform", props.get("ro.board.platform", "?")),
                ("soc", _soc(props)),
                ("abi", abi),
                ("abilist", props.get("ro.product.cpu.abilist", abi)),
                ("cpu_max_khz", ",".join(f"{c}:{f}" for c, f in sorted(snap.max_khz.items()))),
                ("big_cores", ",".join(map(str, cores))),
                ("taskset_mask", self.mask),
                ("governor", ",".join(sorted(set(snap.governor.values()))) or "?"),
                ("thermal_zones", zones),
                ("benchmark_model", remote),
                ("benchmark_model_sha256", self._binary_sha),
                ("converter", f"litert-torch {_version('litert-torch')}"),
                ("delegate", delegate),
                ("adb_server", f"{self.settings.adb_host}:{self.settings.adb_port}"),
            ),
        )
        return self._info

    # ----------------------------------------------------------- session
    @contextlib.contextmanager
    def session(self) -> Iterator[AdbBackend]:
        """Connect, check and stage benchmark_model; clean the phone afterwards (unless keep=1)."""
        phone, s = self._connect(), self.settings
        local, remote = self._resolve_binary()
        self._call("creating the work folder", lambda: phone.shell(f"mkdir -p {shlex.quote(s.remote_dir)}"))
        if local is not None:
            if self._call("checking benchmark_model", lambda: phone.size(remote)) != local.stat().st_size or (
                self._binary_digest(None, remote) != _sha256(local)
            ):
                self._call("pushing benchmark_model", lambda: phone.push(local, remote))
                self._binary_pushed = True
            self._call("making benchmark_model executable", lambda: phone.shell(f"chmod 755 {shlex.quote(remote)}"))
        self._binary, self._binary_local = remote, local
        self.cores  # noqa: B018  (fails early when the topology cannot be read)
        try:
            yield self
        finally:
            if not s.keep:
                targets = [self._pidfile] + ([remote] if self._binary_pushed else [])
                with contextlib.suppress(_TransportError):
                    phone.shell("rm -f " + " ".join(shlex.quote(t) for t in targets), timeout=min(s.timeout, 10))
                    phone.shell(f"rmdir {shlex.quote(s.remote_dir)} 2>/dev/null", timeout=min(s.timeout, 10))
                self._binary_pushed = False

    # ---------------------------------------------------------- measuring
    def _command(self, remote_model: str, protocol: Protocol) -> str:
        p, s = protocol, self.settings
        if p.name == "fixed":
            timing = [
                f"--warmup_runs={p.warmup_runs}",
                f"--warmup_min_secs={p.warmup_s:g}",
                f"--num_runs={p.runs}",
                f"--min_secs={p.min_s:g}",
            ]
        else:
            timing = [
                f"--warmup_runs={p.warmup_runs}",
                f"--warmup_min_secs={p.warmup_s:g}",
                "--num_runs=1",
                f"--min_secs={p.round_s:g}",
            ]
        flags = [
            f"--graph={remote_model}",
            f"--num_threads={self.spec.threads}",
            *timing,
            # benchmark_model must finish well before a silent phone counts as hung
            f"--max_secs={max(1.0, s.timeout / 2):g}",
        ]
        if self.spec.option("use_gpu") == "1":
            flags.append("--use_gpu=true")
            if self.spec.precision == "fp32":
                flags.append("--gpu_precision_loss_allowed=false")
        elif self.spec.precision == "fp16":
            flags.append("--xnnpack_force_fp16=true")
        if self.spec.option("use_xnnpack") is not None:
            flags.append(f"--use_xnnpack={'true' if self.spec.option('use_xnnpack') == '1' else 'false'}")
        if s.profile:
            flags.append("--enable_op_profiling=true")
        run = " ".join(shlex.quote(a) for a in ["taskset", self.mask, self._binary, *flags])
        # `exec` keeps the pid written to the pid file, so a hung run can be killed by pid, not by name.
        pid = shlex.quote(self._pidfile)
        return f"rm -f {pid}; sh -c {shlex.quote(f'echo $$ > {self._pidfile}; exec {run}')}"

    def _gate(self, st: _OpRun) -> None:
        """Wait (bounded) until the phone is cool and its big cores are back near full speed."""
        s, phone = self.settings, self._connect()
        cores = self.cores
        t0 = time.monotonic()
        poll = min(max(s.thermal_wait / 20, 0.1), 1.0)
        first = True
        while True:
            snap = self._call("reading temperatures", lambda: _Snapshot.read(phone), [st])
            temp, ratio = snap.cpu_temp(), snap.speed_ratio(cores)
            cool = (temp is None or temp <= s.max_temp) and (ratio is None or ratio >= s.freq_ratio)
            waited = time.monotonic() - t0 if not first else 0.0
            first = False
            if cool or waited >= s.thermal_wait:
                break
            time.sleep(min(poll, s.thermal_wait - waited))
        if not cool:
            st.waits_timed_out += 1
            log.warning(
                "adb:%s: still hot after %.1f s (CPU %.1f C, big cores at %.0f %% of max); measuring anyway",
                self.serial,
                waited,
                temp or float("nan"),
                100 * (ratio or float("nan")),
            )
        st.wait_s += waited
        if temp is not None:
            st.temps.append(temp)
        if ratio is not None:
            st.ratios.append(ratio)
        self._loadavg = snap.loadavg
        if s.cooldown > 0:
            time.sleep(s.cooldown)

    def _exit_error(self, code: int, text: str, st: _OpRun) -> AdbDeviceError:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else "(no output)"
        abi = (self._props or {}).get("ro.product.cpu.abi", "?")
        if code == 127 or "inaccessible or not found" in text:
            return AdbDeviceError(
                f"benchmark_model is missing on {self.serial} ({last}); "
                f"pass it with --bench-binary FILE ({_abi_fix(abi)})"
            )
        if code == 126 or "not executable" in text or "Exec format error" in text:
            return AdbDeviceError(
                f"{self._binary} cannot run on {self.serial} ({abi}): {last}; "
                f"{_abi_fix(abi)}and pass it with --bench-binary FILE"
            )
        errors = [ln for ln in lines if "ERROR" in ln or "FATAL" in ln] or [last]
        return AdbDeviceError(
            f"benchmark_model failed on {st.item.key} (exit {code}): {' | '.join(errors[-3:])}; "
            f"rerun it by hand with `adb -s {self.serial} shell` to see all of its output"
        )

    def _invoke(self, st: _OpRun, protocol: Protocol) -> BenchOutput:
        phone, s = self._connect(), self.settings
        command = self._command(st.remote, protocol)
        bad = 0
        while True:
            text, code = self._call(f"running benchmark_model on {st.item.key}", lambda: phone.shell(command), [st])
            if code != 0:
                raise self._exit_error(code, text, st)
            try:
                out = parse(text)
                if out.timed is None or out.timed.count == 0:
                    raise BenchOutputError("no statistics of the timed runs in its output")
                return out
            except BenchOutputError as exc:
                bad += 1
                if bad > s.retries:
                    raise AdbDeviceError(
                        f"could not read benchmark_model's output for {st.item.key} {bad} times ({exc}); "
                        f"is {self._binary} TFLite's benchmark_model? Run it by hand with `adb -s {self.serial} shell`"
                    ) from exc
                st.retries += 1
                log.warning("adb:%s: unreadable benchmark_model output (%s); running it again", self.serial, exc)

    def _round(self, st: _OpRun, protocol: Protocol) -> None:
        self._gate(st)
        t0 = time.perf_counter()
        out = self._invoke(st, protocol)
        st.wall_s += time.perf_counter() - t0
        st.outputs.append(out)
        t = out.timed
        st.spent_s += t.count * float(t.avg if t.avg is not None else t.center_us) * 1e-6

    def _stage(self, item: Item) -> _OpRun:
        local = self.convert(item)
        st = _OpRun(item, local, f"{self.settings.remote_dir}/{local.name}")
        t0 = time.perf_counter()
        phone = self._connect()
        self._call(f"pushing the model of {item.key}", lambda: phone.push(local, st.remote), [st])
        st.wall_s += time.perf_counter() - t0
        return st

    def _summary(self, st: _OpRun, protocol: Protocol, extra: Iterable[tuple[str, float]] = ()) -> Measurement:
        def med(values: Iterable[float | None]) -> float | None:
            xs = [v for v in values if v is not None]
            return float(np.median(xs)) if xs else None

        values = {
            "temp_c": max(st.temps) if st.temps else None,
            "freq_ratio": min(st.ratios) if st.ratios else None,
            "thermal_wait_s": st.wait_s,
            "thermal_timeouts": float(st.waits_timed_out),
            "retries": float(st.retries),
            "init_ms": med(o.init_us for o in st.outputs),
            "first_ms": med(o.first_us for o in st.outputs),
        }
        for k in ("init_ms", "first_ms"):
            if values[k] is not None:
                values[k] *= 1e-3
        pairs = [(k, float(v)) for k, v in values.items() if v is not None and math.isfinite(v)] + list(extra)
        return to_measurement(
            st.outputs,
            item=st.item,
            device_key=self.spec.key,
            protocol=protocol,
            wall_s=st.wall_s,
            extra=pairs,
            loadavg=self._loadavg,
        )

    def measure_items(
        self,
        items: Sequence[Item],
        protocol: Protocol | None = None,
        *,
        on_result: Callable[[Measurement], None] | None = None,
        progress: Callable[[int], None] | None = None,
        extra: Callable[[Item], Iterable[tuple[str, float]]] | None = None,
    ) -> list[Measurement]:
        """Measure ``items`` on the phone (see the module doc for the protocol mapping)."""
        from hwlat.measure import Protocol, deliver

        protocol = protocol or Protocol()
        rng = np.random.default_rng(protocol.seed)
        group_size = protocol.interleave if protocol.name == "adaptive" else 1
        results: list[Measurement] = []

        def finish(st: _OpRun) -> None:
            st.done = True
            deliver(self._summary(st, protocol, extra(st.item) if extra else ()), results, on_result, progress)

        with self.session():
            for start in range(0, len(items), group_size):
                states: list[_OpRun] = []
                try:
                    for item in items[start : start + group_size]:
                        states.append(self._stage(item))
                    if protocol.name == "fixed":
                        for st in states:
                            self._round(st, protocol)
                            finish(st)
                        continue
                    for _ in range(protocol.max_rounds):
                        active = [st for st in states if not st.done]
                        if not active:
                            break
                        for i in rng.permutation(len(active)):
                            st = active[i]
                            self._round(st, protocol)
                            if len(st.outputs) >= protocol.min_rounds:
                                if self._summary(st, protocol).stable or st.spent_s >= protocol.budget_s:
                                    finish(st)
                    for st in states:
                        if not st.done:
                            finish(st)
                finally:
                    if states and not self.settings.keep:
                        phone = self._phone
                        with contextlib.suppress(_TransportError):
                            phone.shell(
                                "rm -f " + " ".join(shlex.quote(st.remote) for st in states),
                                timeout=min(self.settings.timeout, 10),
                            )
        return results
