"""The phone's CPUs and heat: big-core choice, and one sysfs snapshot of frequencies, governors and temperatures."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hwlat.devices.adb.settings import AdbSettings
from hwlat.devices.adb.transport import Phone

__all__ = ["CPU", "Gate", "Snapshot", "big_cores", "parse_cores", "wait_until_cool"]

CPU = "/sys/devices/system/cpu"
_SYSFS_GLOBS = (
    f"{CPU}/cpu[0-9]*/cpufreq/cpuinfo_max_freq",
    f"{CPU}/cpu[0-9]*/cpufreq/scaling_cur_freq",
    f"{CPU}/cpu[0-9]*/cpufreq/scaling_max_freq",
    f"{CPU}/cpu[0-9]*/cpufreq/scaling_governor",
    "/sys/class/thermal/thermal_zone*/type",
    "/sys/class/thermal/thermal_zone*/temp",
    "/proc/loadavg",
)
# Thermal zone types of CPU sensors across vendors
# (Qualcomm cpu-*-usr/cpuss, Exynos/Tensor BIG/MID/LITTLE, MediaTek mtktscpu).
_CPU_ZONE = re.compile(r"cpu|big|mid|little|gold|silver|prime|cluster", re.IGNORECASE)


def big_cores(max_freqs_khz: dict[int, int], threads: int) -> list[int]:
    """The fastest cores: whole clusters (cores sharing a max frequency), fastest first,
    until they cover ``threads``. Pixel 2 (4 × 2.35 GHz + 4 × 1.9 GHz), 1 thread: 4-7 (mask f0)."""
    chosen: list[int] = []
    for freq in sorted(set(max_freqs_khz.values()), reverse=True):
        chosen += [c for c, f in max_freqs_khz.items() if f == freq]
        if len(chosen) >= threads:
            break
    return sorted(chosen)


def parse_cores(text: str, present: Iterable[int]) -> list[int]:
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


@dataclass
class Snapshot:
    """CPU frequencies, governors and thermal zones read in one shell call."""

    max_khz: dict[int, int] = field(default_factory=dict)
    cur_khz: dict[int, int] = field(default_factory=dict)
    cap_khz: dict[int, int] = field(default_factory=dict)
    governor: dict[int, str] = field(default_factory=dict)
    zones: dict[str, float] = field(default_factory=dict)  # "thermal_zoneN:type" -> °C
    loadavg: float = float("nan")

    @classmethod
    def read(cls, phone: Phone) -> Snapshot:
        text, _ = phone.shell("grep -sH . " + " ".join(_SYSFS_GLOBS))
        snap, types, temps = cls(), {}, {}
        for line in text.splitlines():
            path, sep, value = line.partition(":")
            if not sep:
                continue
            value = value.strip()
            m = re.match(rf"{CPU}/cpu(\d+)/cpufreq/(\w+)$", path)
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


@dataclass(frozen=True)
class Gate:
    """What the thermal gate saw last: hottest CPU zone (°C), big cores' speed ratio, the wait."""

    snapshot: Snapshot
    temp: float | None
    ratio: float | None
    waited_s: float
    cool: bool


def wait_until_cool(read: Callable[[], Snapshot], cores: Sequence[int], settings: AdbSettings) -> Gate:
    """Poll ``read()`` until the CPU is at most ``max_temp`` and ``cores`` run at ``freq_ratio`` of their
    maximum, or ``thermal_wait`` seconds have passed (then ``cool`` is False: measure anyway, and say so)."""
    s = settings
    t0 = time.monotonic()
    poll = min(max(s.thermal_wait / 20, 0.1), 1.0)
    first = True
    while True:
        snap = read()
        temp, ratio = snap.cpu_temp(), snap.speed_ratio(cores)
        cool = (temp is None or temp <= s.max_temp) and (ratio is None or ratio >= s.freq_ratio)
        waited = time.monotonic() - t0 if not first else 0.0
        first = False
        if cool or waited >= s.thermal_wait:
            return Gate(snap, temp, ratio, waited, cool)
        time.sleep(min(poll, s.thermal_wait - waited))
