"""An emulated Android phone behind a fake adb server (for tests and demos; no phone needed).

:class:`FakeAdbServer` listens on a loopback port and speaks the adb *host*
protocol as the real adb server does towards its clients (``adbutils`` or the
``adb`` command line): ``host:version``, ``host:devices[-l]``, ``host:features``,
``host-serial:SERIAL:features|get-state``, ``host:tport:serial:SERIAL`` (and the
older ``host:transport:SERIAL``), then one service per connection: ``shell:``
(v1, raw output until close), ``shell,v2,...:`` (packets: 1 stdout, 2 stderr,
3 exit code) and ``sync:`` (STAT, SEND/DATA/DONE, RECV, LIST, QUIT).

Its shell (:class:`FakePhone`) understands what the adb backend sends and what a
person types to look around: ``getprop``, ``cat``/``grep -sH .`` over a
virtual sysfs (CPU frequencies and governor, thermal zones), ``ls``, ``chmod``,
``rm``, ``mkdir``, ``rmdir``, ``sha256sum``, ``echo``, ``kill``, ``sh -c``,
``exec``, ``taskset MASK CMD``, ``;``/``&&``/``||``, ``> FILE``. Running a pushed
ELF file of the phone's ABI runs an emulated ``benchmark_model``: it loads the
pushed ``.tflite`` into the LiteRT interpreter *on this host*, times each
``invoke`` for the requested warm-up and runs, and prints the statistics in
the exact format of the real tool. A measurement through it is therefore a
real measurement of this host's CPU, taken through the whole phone path.

Failure injection (:class:`Faults`): a run that drops the connection midway
(the phone then stays offline for a while), a run that hangs, garbage output,
and a phone that starts hot and cools down (throttled frequencies meanwhile).
A missing binary and a binary of the wrong ABI fail as on a phone.

Run ``python -m hwlat.devices.testing.fake_adb --port 5037`` for a standalone server.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import math
import re
import shlex
import socket
import socketserver
import stat as stat_mod
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hwlat.devices._base import quiet_fds
from hwlat.devices._bench_output import format_stat
from hwlat.devices.adb import ELF_MACHINE, elf_abi

__all__ = ["FakeAdbServer", "FakePhone", "Faults", "fake_benchmark_binary", "ADB_SERVER_VERSION"]

ADB_SERVER_VERSION = 41  # what the real CLI 1.0.41 expects; another value makes it restart the server
_QUIET = threading.Lock()  # quiet_fds swaps process-wide fds: one thread at a time
_PID = "\x00PID\x00"
_STATUS = "\x00STATUS\x00"
SH = "/system/bin/sh"


def fake_benchmark_binary(abi: str = "arm64-v8a") -> bytes:
    """Bytes of an ELF header for ``abi``: what the emulated phone executes as benchmark_model."""
    cls, machine = ELF_MACHINE[abi]
    ident = b"\x7fELF" + bytes([cls, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHI", 3, machine, 1)
    return header.ljust(64, b"\x00") + b"hwlat emulated benchmark_model\n"


@dataclass
class Faults:
    """Failures to inject; counters go down as they fire."""

    after_runs: int = 0  # the faults below fire only once this many benchmark_model runs have started
    disconnect_runs: int = 0  # benchmark_model runs that drop the connection after the warm-up
    offline_s: float = 0.5  # how long the phone then stays offline (not listed by host:devices)
    hang_runs: int = 0  # runs that print nothing and never end (until killed or hang_s passes)
    hang_s: float = 30.0
    malformed_runs: int = 0  # runs that print garbage and exit 0
    hot_c: float = 0.0  # start temperature of a hot phone (0: not hot) ...
    cool_s: float = 0.0  # ... cooling linearly to ambient over this many seconds
    hot_since: float = 0.0


class _Drop(Exception):
    """Raised inside a service to cut the connection abruptly (cable pulled)."""


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
            return _BenchmarkModel(self, args, write, mask, cancel).main()
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


# ------------------------------------------------------------ benchmark_model
class _BenchmarkModel:
    """The emulated ``benchmark_model``: the LiteRT interpreter on this host, real output format."""

    FLAGS = {
        "graph": "",
        "num_threads": "-1",
        "num_runs": "50",
        "min_secs": "1.0",
        "max_secs": "150.0",
        "warmup_runs": "1",
        "warmup_min_secs": "0.5",
        "run_delay": "-1",
        "use_gpu": "false",
        "use_xnnpack": "true",
        "use_nnapi": "false",
        "enable_op_profiling": "false",
        "xnnpack_force_fp16": "false",
        "gpu_precision_loss_allowed": "true",
        "verbose": "false",
    }

    def __init__(self, phone: FakePhone, argv: list[str], write, mask: int | None, cancel: threading.Event) -> None:
        self.phone, self.argv, self._write, self.mask, self.cancel = phone, argv, write, mask, cancel

    def out(self, text: str) -> None:
        self._write(1, (text + "\n").encode())

    def err(self, text: str) -> None:
        self._write(2, (text + "\n").encode())

    def main(self) -> int:
        phone, faults = self.phone, self.phone.faults
        flags, unknown = dict(self.FLAGS), []
        for arg in self.argv:
            m = re.fullmatch(r"--([\w]+)=(.*)", arg)
            if m and m.group(1) in flags:
                flags[m.group(1)] = m.group(2)
            else:
                unknown.append(arg)
        threads = int(flags["num_threads"])
        record = {"mask": self.mask, "argv": list(self.argv), "threads": threads, "killed": False}
        phone.runs.append(record)
        armed = len(phone.runs) > faults.after_runs
        self.out("INFO: STARTING!")
        if unknown:
            self.err(f"ERROR: Unconsumed cmdline flags: {' '.join(unknown)}")
            self.err("ERROR: Benchmarking failed.")
            return 1
        if armed and faults.hang_runs > 0:
            faults.hang_runs -= 1
            deadline = time.monotonic() + faults.hang_s
            while not self.cancel.is_set() and not phone.stopping.is_set() and time.monotonic() < deadline:
                self.cancel.wait(0.05)
            record["killed"] = self.cancel.is_set()
            return 137  # killed
        if armed and faults.malformed_runs > 0:
            faults.malformed_runs -= 1
            self.out("INFO: \x00\x17garbled: count=?? first=ab curr=")
            self.out("Segmentation fault (emulated garbage)")
            return 0
        self.out("INFO: Log parameter values verbosely: [0]")
        self.out(f"INFO: Min num runs: [{flags['num_runs']}]")
        self.out(f"INFO: Num threads: [{threads}]")
        self.out(f"INFO: Min warmup runs: [{flags['warmup_runs']}]")
        graph = flags["graph"]
        self.out(f"INFO: Graph: [{graph}]")
        if not graph:
            self.err("ERROR: Please specify the name of your TF Lite input file with --graph")
            self.err("ERROR: Benchmarking failed.")
            return 1
        model = phone.read(graph)
        if model is None:
            self.err(f"ERROR: Could not open '{graph}'.")
            self.err(f"ERROR: Failed to mmap model {graph}")
            self.err("ERROR: Benchmarking failed.")
            return 1
        if flags["use_gpu"] in ("1", "true"):
            self.out("INFO: Use gpu: [1]")
            self.err("ERROR: GPU delegate is not available on this emulated phone (it runs on the host CPU).")
            self.err("ERROR: Failed to apply GPU delegate.")
            self.err("ERROR: Benchmarking failed.")
            return 1
        self.out(f"INFO: Loaded model {graph}")
        record["model_sha256"] = hashlib.sha256(model).hexdigest()
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        t0 = time.perf_counter()
        use_xnnpack = flags["use_xnnpack"] not in ("0", "false")
        resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with _QUIET, quiet_fds():  # LiteRT logs to fd 2 itself; the emulated tool prints its own lines
                interp = Interpreter(
                    model_content=model,
                    num_threads=threads if threads > 0 else None,
                    experimental_op_resolver_type=resolver,
                )
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            self.err(f"ERROR: {exc}")
            self.err("ERROR: Benchmarking failed.")
            return 1
        self.out("INFO: Initialized TensorFlow Lite runtime.")
        if use_xnnpack:
            self.out("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
        init_us = int((time.perf_counter() - t0) * 1e6)
        self.out(f"INFO: The input model file size (MB): {len(model) / 1e6:g}")
        self.out(f"INFO: Initialized session in {init_us / 1e3:g}ms.")
        rng = np.random.default_rng(0)
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], (rng.random(d["shape"]) - 0.5).astype(d["dtype"]))
        max_secs = float(flags["max_secs"])
        warm = self._phase(
            interp, int(flags["warmup_runs"]), float(flags["warmup_min_secs"]), max_secs, float(flags["run_delay"])
        )
        if armed and faults.disconnect_runs > 0:
            faults.disconnect_runs -= 1
            phone.offline_until = time.monotonic() + faults.offline_s
            raise _Drop("emulated cable pull")
        timed = self._phase(
            interp, int(flags["num_runs"]), float(flags["min_secs"]), max_secs, float(flags["run_delay"])
        )
        record["timed_us"] = list(timed)
        avg = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        self.out(
            f"INFO: Inference timings in us: Init: {init_us}, First inference: {warm[0] if warm else 0}, "
            f"Warmup (avg): {avg(warm):g}, Inference (avg): {avg(timed):g}"
        )
        self.out(
            "INFO: Note: as the benchmark tool itself affects memory footprint, the following is only "
            "APPROXIMATE to the actual memory footprint of the model at runtime. "
            "Take the information at your discretion."
        )
        self.out("INFO: Memory footprint delta from the start of the tool (MB): init=1.5 overall=1.75")
        if flags["enable_op_profiling"] in ("1", "true"):
            self._profile(timed, use_xnnpack)
        return 0

    def _phase(self, interp, runs: int, min_secs: float, max_secs: float, delay: float) -> list[int]:
        self.out(
            f"INFO: Running benchmark for at least {runs} iterations and at least {min_secs:g} seconds "
            f"but terminate if exceeding {max_secs:g} seconds."
        )
        times: list[int] = []
        clock, invoke = time.perf_counter_ns, interp.invoke
        start = clock()
        while True:
            elapsed = (clock() - start) * 1e-9
            if (len(times) >= runs and elapsed >= min_secs) or elapsed >= max_secs or self.cancel.is_set():
                break
            t0 = clock()
            invoke()
            times.append((clock() - t0) // 1000)
            if delay > 0:
                time.sleep(delay)
        self.out("INFO: " + format_stat(times))
        self.out("")
        return times

    def _profile(self, times: list[int], xnnpack: bool) -> None:
        avg_ms = (sum(times) / len(times) / 1e3) if times else 0.0
        first_ms = times[0] / 1e3 if times else 0.0
        kind = "TfLiteXNNPackDelegate" if xnnpack else "DELEGATE"
        self.out("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:")
        self.out("============================== Run Order ==============================")
        self.out(
            "\t             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]"
        )
        self.out(
            f"\t{kind:>24}\t{first_ms:9.3f}\t{avg_ms:9.3f}\t100.000%\t100.000%\t     0.000\t        1\t[hwlat op]:0"
        )
        self.out("")
        self.out(f"Timings (microseconds): {format_stat(times, percentiles=False)}")
        self.out("Memory (bytes): count=0")
        self.out("1 nodes observed")


# ------------------------------------------------------------------ server
class FakeAdbServer:
    """A fake adb server on ``127.0.0.1:port`` (0: a free port) serving ``phones``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, phones: list[FakePhone] | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.phones = {p.serial: p for p in (phones if phones is not None else [FakePhone()])}
        self.host, self._port = host, port
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[str] = []  # every host request seen, for tests

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    def start(self) -> FakeAdbServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                _Session(owner, self.request).run()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-adb", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for p in self.phones.values():
            p.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAdbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Session:
    """One client connection: host requests, then at most one device service."""

    def __init__(self, server: FakeAdbServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.phone: FakePhone | None = None

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def okay(self, payload: bytes | None = None) -> None:
        self.sock.sendall(b"OKAY" + (b"" if payload is None else b"%04x" % len(payload) + payload))

    def fail(self, message: str) -> None:
        data = message.encode()
        self.sock.sendall(b"FAIL" + b"%04x" % len(data) + data)

    def run(self) -> None:
        try:
            while True:
                try:
                    size = int(self.recv_exact(4), 16)
                except EOFError:
                    return
                request = self.recv_exact(size).decode()
                self.server.requests.append(request)
                if not self.dispatch(request):
                    return
        except _Drop:
            self.sock.shutdown(socket.SHUT_RDWR)  # an abrupt end, like a pulled cable
            self.sock.close()
            return
        except (OSError, EOFError, ValueError):
            pass
        # An orderly end: closing with unread client bytes (e.g. the CLI's close-stdin packet)
        # would send a reset that can destroy the exit-status packet still in flight.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(2.0)
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        finally:
            self.sock.close()

    def lookup(self, serial: str | None) -> FakePhone | None:
        phones = [p for p in self.server.phones.values() if p.online]
        if serial is None:
            if len(phones) != 1:
                self.fail("no devices/emulators found" if not phones else "more than one device/emulator")
                return None
            return phones[0]
        phone = self.server.phones.get(serial)
        if phone is None or not phone.online:
            self.fail(f"device '{serial}' not found")
            return None
        return phone

    def dispatch(self, req: str) -> bool:
        """Handle one request; False ends the connection."""
        if self.phone is not None:  # transport chosen: this is the service
            return self.service(req)
        # The real server closes the connection after answering a host request
        # (the CLI waits for that); only a transport switch keeps it open.
        if req == "host:version":
            self.okay(b"%04x" % ADB_SERVER_VERSION)
            return False
        if req in ("host:devices", "host:devices-l"):
            lines = []
            for p in self.server.phones.values():
                if p.online:
                    extra = f" product:{p.props['ro.product.board']} model:{p.model.replace(' ', '_')} "
                    f"device:{p.props['ro.hardware']} transport_id:1"
                    lines.append(f"{p.serial}\tdevice" + (extra if req.endswith("-l") else ""))
            self.okay("".join(line + "\n" for line in lines).encode())
            return False
        if req == "host:features":
            self.okay(b"shell_v2,cmd")
            return False
        if req in ("host:kill", "host:kill-server"):
            self.okay()
            return False
        m = re.fullmatch(r"host-serial:(.+):(features|get-state|get-serialno)", req)
        if m:
            phone = self.lookup(m.group(1))
            if phone is not None:
                answer = {
                    "features": "shell_v2,cmd" if phone.shell_v2 else "cmd",
                    "get-state": "device",
                    "get-serialno": phone.serial,
                }[m.group(2)]
                self.okay(answer.encode())
            return False
        m = re.fullmatch(r"host:(tport:serial:|tport:any|transport:|transport-any)(.*)", req)
        if m:
            serial = m.group(2) if m.group(1) in ("tport:serial:", "transport:") else None
            phone = self.lookup(serial)
            if phone is None:
                return False
            self.phone = phone
            self.okay()
            if m.group(1).startswith("tport"):
                self.sock.sendall(struct.pack("<q", 1))
            return True
        self.fail(f"unknown host service '{req}'")
        return False

    # --------------------------------------------------------- services
    def service(self, req: str) -> bool:
        phone = self.phone
        if req.startswith("shell,v2") or (req.startswith("shell,") and ":" in req):
            if not phone.shell_v2:
                self.fail("unknown service (this phone has no shell_v2)")
                return False
            self.okay()
            command = req.split(":", 1)[1]

            def write(fd: int, data: bytes) -> None:
                self.sock.sendall(struct.pack("<BI", fd, len(data)) + data)

            status = phone.shell(command, write)
            self.sock.sendall(struct.pack("<BI", 3, 1) + bytes([status & 0xFF]))
            return False
        if req.startswith("shell:"):
            self.okay()
            phone.shell(req[len("shell:") :], lambda fd, data: self.sock.sendall(data))
            return False
        if req == "sync:":
            self.okay()
            self.sync()
            return False
        self.fail(f"unknown service '{req.split(':')[0]}'")
        return False

    def sync(self) -> None:
        phone = self.phone
        while True:
            try:
                head = self.recv_exact(8)
            except EOFError:
                return
            cmd, size = head[:4], struct.unpack("<I", head[4:])[0]
            if cmd == b"QUIT":
                return
            arg = self.recv_exact(size).decode()
            if cmd == b"STAT":
                data = phone.read(arg) if phone.mode(arg) and not stat_mod.S_ISDIR(phone.mode(arg)) else b""
                self.sock.sendall(
                    b"STAT"
                    + struct.pack("<III", phone.mode(arg), len(data or b""), int(time.time()) if phone.mode(arg) else 0)
                )
            elif cmd == b"SEND":
                path, _, mode_text = arg.rpartition(",")
                buf = io.BytesIO()
                while True:
                    chead = self.recv_exact(8)
                    ccmd, clen = chead[:4], struct.unpack("<I", chead[4:])[0]
                    if ccmd == b"DATA":
                        if clen > 64 * 1024:
                            self.fail_sync("DATA chunk larger than 64 KiB")
                            return
                        buf.write(self.recv_exact(clen))
                    elif ccmd == b"DONE":
                        break
                    else:
                        self.fail_sync(f"unexpected {ccmd!r} during SEND")
                        return
                mode = int(mode_text) & 0o777 if mode_text.isdigit() else 0o644
                phone.write(path, buf.getvalue(), mode)
                self.sock.sendall(b"OKAY" + struct.pack("<I", 0))
            elif cmd == b"RECV":
                data = phone.read(arg)
                if data is None:
                    self.fail_sync(f"remote object '{arg}' does not exist")
                    return
                for i in range(0, len(data), 64 * 1024):
                    chunk = data[i : i + 64 * 1024]
                    self.sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                self.sock.sendall(b"DONE" + struct.pack("<I", 0))
            elif cmd == b"LIST":
                prefix = arg.rstrip("/") + "/"
                names = sorted({p[len(prefix) :].split("/")[0] for p in phone._all_paths() if p.startswith(prefix)})
                for name in names:
                    full = prefix + name
                    data = phone.read(full) or b""
                    enc = name.encode()
                    self.sock.sendall(
                        b"DENT" + struct.pack("<IIII", phone.mode(full), len(data), int(time.time()), len(enc)) + enc
                    )
                self.sock.sendall(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            else:
                self.fail_sync(f"unknown sync request {cmd!r}")
                return

    def fail_sync(self, message: str) -> None:
        data = message.encode()
        self.sock.sendall(b"FAIL" + struct.pack("<I", len(data)) + data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hwlat.devices.testing.fake_adb", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=5037, help="port to listen on (default 5037; 0 = a free one)")
    p.add_argument("--serial", default="emulator-5554")
    p.add_argument("--abi", default="arm64-v8a", choices=sorted(ELF_MACHINE))
    p.add_argument("--governor", default="schedutil")
    p.add_argument("--hot", type=float, default=0.0, help="start hot: seconds to cool down from 75 °C")
    p.add_argument("--write-binary", metavar="FILE", help="also write an emulated benchmark_model binary to FILE")
    args = p.parse_args(argv)
    phone = FakePhone(serial=args.serial, abi=args.abi, governor=args.governor)
    if args.hot > 0:
        phone.heat(75.0, args.hot)
    if args.write_binary:
        with open(args.write_binary, "wb") as fh:
            fh.write(fake_benchmark_binary(args.abi))
    server = FakeAdbServer([phone], port=args.port).start()
    print(f"fake adb server on 127.0.0.1:{server.port} with {args.serial} ({args.abi}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
