"""One emulated phone: properties, a virtual file system and sysfs, and a shell that runs what adb sends."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import shlex
import stat as stat_mod
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hwlat.devices.adb.binary import ELF_MACHINE, elf_abi
from hwlat.devices.testing.benchmark_model import EmulatedBenchmarkModel
from hwlat.devices.testing.faults import Faults

__all__ = ["FakePhone", "SH", "fake_benchmark_binary"]

_PID = "\x00PID\x00"
_STATUS = "\x00STATUS\x00"
SH = "/system/bin/sh"


def fake_benchmark_binary(abi: str = "arm64-v8a") -> bytes:
    """Bytes of an ELF header for ``abi``: what the emulated phone executes as benchmark_model."""
    cls, machine = ELF_MACHINE[abi]
    ident = b"\x7fELF" + bytes([cls, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHI", 3, machine, 1)
    return header.ljust(64, b"\x00") + b"hwlat emulated benchmark_model\n"


class _Exit(Exception):
    """``exit N`` in a script."""

    def __init__(self, status: int) -> None:
        self.status = status


@dataclass
class FakePhone:
    """One emulated phone: properties, a virtual file system and sysfs, and its shell."""

    serial: str = "emulator-5554"
    model: str = "Pixel 7"
    abi: str = "arm64-v8a"
    max_freqs_khz: tuple[int, ...] = (1803000,) * 4 + (2348000,) * 2 + (2850000,) * 2
    governor: str = "schedutil"
    ambient_c: float = 33.0
    shell_v2: bool = True
    faults: Faults = field(default_factory=Faults)
    props: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # path -> (content, mode)
    runs: list[dict] = field(default_factory=list)  # every benchmark_model run: mask, argv, threads, model, times
    offline_until: float = 0.0

    def __post_init__(self) -> None:
        abilist = {"arm64-v8a": "arm64-v8a,armeabi-v7a,armeabi", "x86_64": "x86_64,x86"}.get(self.abi, self.abi)
        defaults = {
            "ro.product.model": self.model,
            "ro.product.manufacturer": "Google",
            "ro.product.brand": "google",
            "ro.product.board": "panther",
            "ro.board.platform": "gs201",
            "ro.hardware": "panther",
            "ro.soc.manufacturer": "Google",
            "ro.soc.model": "GS201",
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": abilist,
            "ro.build.version.release": "14",
            "ro.build.version.sdk": "34",
            "ro.build.fingerprint": "google/panther/panther:14/UQ1A/hwlat-emulated:user/release-keys",
            "ro.serialno": self.serial,
        }
        self.props = {**defaults, **self.props}
        self._lock = threading.Lock()
        self._next_pid = 1000
        self._cancel: dict[int, threading.Event] = {}
        self.stopping = threading.Event()

    # ------------------------------------------------------------- state
    @property
    def online(self) -> bool:
        return time.monotonic() >= self.offline_until

    def heat(self, hot_c: float = 75.0, cool_s: float = 1.0) -> None:
        """Make the phone hot now; it cools linearly to ambient over ``cool_s``."""
        self.faults.hot_c, self.faults.cool_s, self.faults.hot_since = hot_c, cool_s, time.monotonic()

    def temperature_c(self) -> float:
        f = self.faults
        if f.hot_c <= 0 or f.cool_s <= 0:
            return self.ambient_c
        left = max(0.0, 1.0 - (time.monotonic() - f.hot_since) / f.cool_s)
        return self.ambient_c + (f.hot_c - self.ambient_c) * left

    def freq_cap_ratio(self) -> float:
        """Thermal throttling: full speed up to 45 °C, down to half at 75 °C."""
        t = self.temperature_c()
        return 1.0 if t <= 45 else max(0.5, 1.0 - 0.5 * (t - 45) / 30)

    def _sysfs(self) -> dict[str, str]:
        out = {
            "/sys/devices/system/cpu/online": f"0-{len(self.max_freqs_khz) - 1}",
            "/sys/devices/system/cpu/possible": f"0-{len(self.max_freqs_khz) - 1}",
            "/proc/loadavg": "0.42 0.37 0.30 1/612 4242",
        }
        cap = self.freq_cap_ratio()
        for i, mx in enumerate(self.max_freqs_khz):
            d = f"/sys/devices/system/cpu/cpu{i}/cpufreq"
            capped = int(mx * cap)
            cur = capped if self.governor == "performance" else min(capped, 300000 + i * 1000)
            out.update(
                {
                    f"{d}/cpuinfo_max_freq": str(mx),
                    f"{d}/cpuinfo_min_freq": "300000",
                    f"{d}/scaling_max_freq": str(capped),
                    f"{d}/scaling_cur_freq": str(cur),
                    f"{d}/scaling_governor": self.governor,
                }
            )
        t = self.temperature_c()
        zones = [("battery", 30.0), ("BIG", t), ("MID", t - 2), ("LITTLE", t - 4), ("skin-therm", 36.0)]
        for i, (kind, temp) in enumerate(zones):
            out[f"/sys/class/thermal/thermal_zone{i}/type"] = kind
            out[f"/sys/class/thermal/thermal_zone{i}/temp"] = str(int(temp * 1000))
        return out

    def read(self, path: str) -> bytes | None:
        sysfs = self._sysfs()
        if path in sysfs:
            return (sysfs[path] + "\n").encode()
        with self._lock:
            entry = self.files.get(path)
        return None if entry is None else entry[0]

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        with self._lock:
            self.files[path] = (data, mode)

    def mode(self, path: str) -> int:
        """st_mode of a path (0: missing); folders are implied by the files under them."""
        if path in self._sysfs():
            return stat_mod.S_IFREG | 0o444
        with self._lock:
            if path in self.files:
                return stat_mod.S_IFREG | self.files[path][1]
            prefix = path.rstrip("/") + "/"
            if path in ("/", "/data", "/data/local", "/data/local/tmp") or any(
                p.startswith(prefix) for p in self.files
            ):
                return stat_mod.S_IFDIR | 0o771
        if any(p.startswith(path.rstrip("/") + "/") for p in self._sysfs()):
            return stat_mod.S_IFDIR | 0o755
        return 0

    def _all_paths(self) -> list[str]:
        with self._lock:
            return sorted(set(self._sysfs()) | set(self.files))

    def _glob(self, pattern: str) -> list[str]:
        if not any(c in pattern for c in "*?["):
            return [pattern]
        parts = pattern.split("/")
        hits = [
            p
            for p in self._all_paths()
            if len(p.split("/")) == len(parts) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(p.split("/"), parts))
        ]
        return hits or [pattern]  # mksh passes an unmatched pattern on literally

    # ------------------------------------------------------------- shell
    def new_pid(self) -> int:
        with self._lock:
            self._next_pid += 1
            return self._next_pid

    def shell(self, command: str, write: Callable[[int, bytes], None]) -> int:
        """Run ``command``; ``write(1 or 2, data)`` gets stdout/stderr; returns the exit status."""
        return self._script(command, write, self.new_pid())

    def _script(self, command: str, write: Callable[[int, bytes], None], pid: int) -> int:
        lexer = shlex.shlex(_mark_vars(command), posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as exc:  # unbalanced quotes
            write(2, f"{SH}: syntax error: {exc}\n".encode())
            return 2
        status, op, words = 0, ";", []
        for tok in tokens + [";"]:
            if tok in (";", "&&", "||", "&"):
                if words and (op == ";" or (op == "&&") == (status == 0)):
                    words = [w.replace(_PID, str(pid)).replace(_STATUS, str(status)) for w in words]
                    try:
                        status = self._command(words, write, pid)
                    except _Exit as exc:
                        return exc.status
                words, op = [], tok
            elif tok in ("|", "|||"):
                write(2, f"{SH}: pipes are not emulated\n".encode())
                return 2
            else:
                words.append(tok)
        return status

    def _command(self, words: list[str], write: Callable[[int, bytes], None], pid: int) -> int:
        redirect = None
        if ">" in words:  # echo $$ > FILE
            i = words.index(">")
            redirect, words = words[i + 1] if i + 1 < len(words) else "", words[:i]
            sink = io.BytesIO()
            inner = write

            def write(fd: int, data: bytes, _inner=inner) -> None:
                (sink.write if fd == 1 else lambda d: _inner(fd, d))(data)

        words = [w for w in words if not re.fullmatch(r"\d?>[>&]?\S*", w)]  # 2>/dev/null etc.
        if not words:
            return 0
        name, args = words[0], words[1:]
        handler = getattr(self, f"_cmd_{name.replace('-', '_')}", None) if "/" not in name else None
        if handler is not None:
            status = handler(args, write, pid)
        elif "/" in name:
            status = self._exec(name, args, write, pid, mask=None)
        else:
            write(2, f"{SH}: {name}: inaccessible or not found\n".encode())
            status = 127
        if redirect is not None:
            if redirect != "/dev/null":
                self.write(redirect, sink.getvalue())
        return status

    def _cmd_echo(self, args, write, pid) -> int:
        write(1, (" ".join(args) + "\n").encode())
        return 0

    def _cmd_true(self, args, write, pid) -> int:
        return 0

    def _cmd_exit(self, args, write, pid) -> int:
        raise _Exit(int(args[0]) if args and args[0].isdigit() else 0)

    def _cmd_getprop(self, args, write, pid) -> int:
        if args:
            write(1, (self.props.get(args[0], "") + "\n").encode())
        else:
            write(1, "".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())).encode())
        return 0

    def _cmd_cat(self, args, write, pid) -> int:
        status = 0
        for pattern in args:
            for path in self._glob(pattern):
                data = self.read(path)
                if data is None:
                    write(2, f"cat: {path}: No such file or directory\n".encode())
                    status = 1
                else:
                    write(1, data)
        return status

    def _cmd_grep(self, args, write, pid) -> int:
        flags = "".join(a[1:] for a in args if a.startswith("-"))
        rest = [a for a in args if not a.startswith("-")]
        if not rest:
            write(2, b"grep: no pattern\n")
            return 2
        regex, paths = re.compile(rest[0]), [p for pat in rest[1:] for p in self._glob(pat)]
        found, status = False, 1
        for path in paths:
            data = self.read(path)
            if data is None:
                if "s" not in flags:
                    write(2, f"grep: {path}: No such file or directory\n".encode())
                status = 2
                continue
            for line in data.decode(errors="replace").splitlines():
                if regex.search(line):
                    found = True
                    write(1, (f"{path}:{line}" if ("H" in flags or len(paths) > 1) else line).encode() + b"\n")
        return 0 if found else status

    def _cmd_ls(self, args, write, pid) -> int:
        status = 0
        for path in [a for a in args if not a.startswith("-")] or ["."]:
            mode = self.mode(path)
            if not mode:
                write(2, f"ls: {path}: No such file or directory\n".encode())
                status = 1
            elif stat_mod.S_ISDIR(mode):
                prefix = path.rstrip("/") + "/"
                names = sorted({p[len(prefix) :].split("/")[0] for p in self._all_paths() if p.startswith(prefix)})
                write(1, "".join(n + "\n" for n in names).encode())
            else:
                write(1, (path + "\n").encode())
        return status

    def _cmd_chmod(self, args, write, pid) -> int:
        if len(args) < 2:
            write(2, b"chmod: needs MODE FILE\n")
            return 1
        mode_text, status = args[0], 0
        for path in args[1:]:
            with self._lock:
                entry = self.files.get(path)
                if entry is None:
                    write(2, f"chmod: {path}: No such file or directory\n".encode())
                    status = 1
                    continue
                mode = entry[1] | 0o111 if mode_text == "+x" else int(mode_text, 8)
                self.files[path] = (entry[0], mode)
        return status

    def _cmd_rm(self, args, write, pid) -> int:
        force = any(a.startswith("-") and "f" in a for a in args)
        recursive = any(a.startswith("-") and "r" in a for a in args)
        status = 0
        for path in [a for a in args if not a.startswith("-")]:
            with self._lock:
                if path in self.files:
                    del self.files[path]
                    continue
                under = [p for p in self.files if p.startswith(path.rstrip("/") + "/")]
                if under and recursive:
                    for p in under:
                        del self.files[p]
                    continue
            if under:
                write(2, f"rm: {path}: Is a directory\n".encode())
                status = 1
            elif not force:
                write(2, f"rm: {path}: No such file or directory\n".encode())
                status = 1
        return status

    def _cmd_mkdir(self, args, write, pid) -> int:
        return 0  # folders exist implicitly

    def _cmd_rmdir(self, args, write, pid) -> int:
        for path in [a for a in args if not a.startswith("-")]:
            if any(p.startswith(path.rstrip("/") + "/") for p in self._all_paths()):
                write(2, f"rmdir: {path}: Directory not empty\n".encode())
                return 1
        return 0

    def _cmd_sha256sum(self, args, write, pid) -> int:
        status = 0
        for path in args:
            data = self.read(path)
            if data is None:
                write(2, f"sha256sum: {path}: No such file or directory\n".encode())
                status = 1
            else:
                write(1, f"{hashlib.sha256(data).hexdigest()}  {path}\n".encode())
        return status

    def _cmd_kill(self, args, write, pid) -> int:
        status = 0
        for arg in [a for a in args if not a.startswith("-")]:
            event = self._cancel.get(int(arg)) if arg.isdigit() else None
            if event is None:
                write(2, f"kill: {arg}: No such process\n".encode())
                status = 1
            else:
                event.set()
        return status

    def _cmd_sh(self, args, write, pid) -> int:
        if len(args) >= 2 and args[0] == "-c":
            return self._script(args[1], write, self.new_pid())
        write(2, b"sh: only sh -c SCRIPT is emulated\n")
        return 2

    def _cmd_exec(self, args, write, pid) -> int:
        return self._command(args, write, pid) if args else 0

    def _cmd_taskset(self, args, write, pid) -> int:
        if len(args) < 2 or not re.fullmatch(r"(0x)?[0-9a-fA-F]+", args[0]):
            write(2, b"usage: taskset [-ap] [mask] [PID | cmd [args...]]\n")
            return 1
        mask = int(args[0], 16)
        if mask & ((1 << len(self.max_freqs_khz)) - 1) == 0:
            write(2, b"taskset: sched_setaffinity: Invalid argument\n")
            return 1
        name = args[1]
        if "/" not in name:
            write(2, f"taskset: {name}: No such file or directory\n".encode())
            return 127
        return self._exec(name, args[2:], write, pid, mask=mask)

    def _exec(self, path: str, args: list[str], write, pid: int, mask: int | None) -> int:
        mode = self.mode(path)
        if not mode or stat_mod.S_ISDIR(mode):
            write(2, f"{SH}: {path}: inaccessible or not found\n".encode())
            return 127
        if not mode & 0o111:
            write(2, f"{SH}: {path}: can't execute: Permission denied\n".encode())
            return 126
        abi = elf_abi(self.read(path) or b"")
        if abi is None:
            write(2, f"{SH}: {path}: can't execute: Exec format error\n".encode())
            return 126
        if abi not in self.props["ro.product.cpu.abilist"].split(","):
            bits = "64" if (self.read(path) or b"\0" * 5)[4] == 2 else "32"
            write(2, f"{SH}: {path}: not executable: {bits}-bit ELF file\n".encode())
            return 126
        cancel = threading.Event()
        self._cancel[pid] = cancel
        try:
            return EmulatedBenchmarkModel(self, args, write, mask, cancel).main()
        finally:
            self._cancel.pop(pid, None)


def _mark_vars(command: str) -> str:
    """Replace ``$$`` and ``$?`` outside single quotes by markers expanded at run time."""
    out, quoted, i = [], False, 0
    while i < len(command):
        c = command[i]
        if c == "'":
            quoted = not quoted
        if not quoted and command.startswith("$$", i):
            out.append(_PID)
            i += 2
            continue
        if not quoted and command.startswith("$?", i):
            out.append(_STATUS)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
