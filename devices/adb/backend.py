"""The adb backend: :class:`AdbBackend` runs TFLite ``benchmark_model`` on the phone (the *runner*).

It is a :class:`~hwlat.devices.Backend` whose hooks of the one measurement loop
(:func:`hwlat.measure.measure`) are: ``prepare`` converts the op and pushes the
model, ``warm_up`` leaves the warm-up to each invocation, ``time_block`` gates
on temperature and runs one invocation, ``summarize`` combines the parsed
outputs (:mod:`hwlat.devices.adb.output`, the *parser*). See the package doc
for how a block maps onto ``benchmark_model``'s flags and for the options.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import math
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hwlat.devices._base import Backend, DeviceInfo, DeviceSpec, Item, Runnable
from hwlat.devices._registry import register_backend
from hwlat.devices.adb.binary import abi_fix, resolve_binary, sha256
from hwlat.devices.adb.errors import AdbDeviceError, TransportError
from hwlat.devices.adb.flags import benchmark_command
from hwlat.devices.adb.output import BenchOutput, BenchOutputError, parse, to_measurement
from hwlat.devices.adb.settings import AdbSettings, split_options
from hwlat.devices.adb.thermal import CPU, Snapshot, big_cores, parse_cores, wait_until_cool
from hwlat.devices.adb.transport import Phone, list_phones, props, server_up, soc
from hwlat.measure import Block, BlockPlan, Measurement, Protocol

__all__ = ["AdbBackend"]

log = logging.getLogger(__name__)


def _model(runnable: Runnable) -> _PhoneModel:
    if not isinstance(runnable, _PhoneModel):
        raise TypeError(f"the adb backend times what its own prepare() pushed, not {type(runnable).__name__}")
    return runnable


class _PhoneModel(Runnable):
    """One op's model pushed to the phone, and what its blocks saw (temperatures, waits, retries)."""

    def __init__(self, item: Item, local: Path, remote: str, close: Callable[[], None]) -> None:
        super().__init__(item, call=self._not_callable, close=close)
        self.local, self.remote = local, remote
        self.warmup: tuple[int, float] = (1, 0.0)  # benchmark_model's own warm-up: runs, seconds
        self.temps: list[float] = []
        self.ratios: list[float] = []
        self.wait_s = 0.0
        self.waits_timed_out = 0
        self.retries = 0

    def _not_callable(self) -> None:
        raise TypeError("a model on the phone runs inside benchmark_model, one block at a time (AdbBackend.time_block)")


@register_backend
class AdbBackend(Backend):
    """An Android phone over adb, running TFLite's ``benchmark_model`` (see the module doc)."""

    name: ClassVar[str] = "adb"
    MODEL_FORMATS: ClassVar[tuple[str, ...]] = ("tflite", "torch", "exported")
    description: ClassVar[str] = "Android phone over adb: TFLite benchmark_model on the big cores (adb:SERIAL)"
    OPTIONS: ClassVar[type[AdbSettings]] = AdbSettings  # parsed by split_options (key options kept as given)
    install_hint: ClassVar[str] = "pip install 'hwlat[adb,tflite]' (adbutils; litert-torch converts the ops)"
    per_run_times: ClassVar[bool] = False  # benchmark_model prints statistics, not each run

    def __init__(self, spec: DeviceSpec) -> None:
        identity, settings = split_options(spec)  # bad or unknown options raise here
        if not settings.serial:
            attached = ", ".join(p["serial"] for p in list_phones(timeout=0.5)) or "none found"
            raise ValueError(
                f"Invalid device {spec.backend!r}: give the phone's serial as adb:SERIAL "
                f"(attached: {attached}; see `hwlat devices` or `adb devices`)"
            )
        if spec.precision not in ("fp32", "fp16"):
            raise ValueError(f"Invalid precision {spec.precision!r} for device adb; valid: fp32, fp16")
        super().__init__(spec.replace(options=tuple(identity.items())), options=settings)
        self.serial = settings.serial
        self.settings = settings
        self._phone: Phone | None = None
        self._props: dict[str, str] | None = None
        self._snap: Snapshot | None = None
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
        from hwlat.devices._base import model_file
        from hwlat.devices.litert import convert_tflite

        return model_file(item, "tflite") or convert_tflite(item, self.spec.batch)

    def prepare(self, item: Item) -> Runnable:
        """Convert ``item`` to ``.tflite`` and push it; closing the result removes it from the phone."""
        local = self.convert(item)
        remote = f"{self.settings.remote_dir}/{local.name}"
        st = _PhoneModel(item, local, remote, close=lambda: self._remove(remote))
        phone = self._connect()
        self._call(f"pushing the model of {item.key}", lambda: phone.push(local, remote), [st])
        return st

    def run(self, runnable: Runnable, n: int) -> np.ndarray:
        raise TypeError(
            "the adb backend times whole benchmark_model invocations, not single calls: "
            "use hwlat.measure.measure(backend, items, protocol), which calls backend.time_block"
        )

    @property
    def cores(self) -> list[int]:
        snap = self._snapshot()
        if not snap.max_khz:
            raise AdbDeviceError(
                f"adb:{self.serial}: cannot read {CPU}/cpu*/cpufreq/cpuinfo_max_freq; "
                "give the big cores with the device option cores=4-7"
            )
        text = self.spec.option("cores")
        return parse_cores(text, snap.max_khz) if text else big_cores(snap.max_khz, self.spec.threads)

    @property
    def mask(self) -> str:
        return format(sum(1 << c for c in self.cores), "x")

    # ------------------------------------------------------- connection
    def _connect(self) -> Phone:
        if self._phone is not None:
            return self._phone
        importlib.import_module("adbutils")  # ImportError here names the missing package
        s = self.settings
        if not server_up(s.adb_host, s.adb_port, timeout=min(s.timeout, 2.0)):
            raise AdbDeviceError(
                f"no adb server at {s.adb_host}:{s.adb_port}; start one with `adb start-server` "
                "(hwlat never starts it) or point ANDROID_ADB_SERVER_PORT / the adb_port option at yours"
            )
        phone = Phone(self.serial, s)
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
        except TransportError as exc:
            raise AdbDeviceError(
                f"adb server {phone.where} did not answer ({exc}); restart it with `adb kill-server`"
            ) from exc
        self._phone = phone
        return phone

    def _call(self, what: str, fn: Callable[[], Any], staged: Sequence[_PhoneModel] = ()) -> Any:
        """Run ``fn`` with retries (backoff, waiting for the phone) on connection failures."""
        attempt = 0
        while True:
            try:
                return fn()
            except TransportError as exc:
                self._recover(exc, attempt, what, staged)
                attempt += 1
                for st in staged:
                    st.retries += 1

    def _recover(self, exc: TransportError, attempt: int, what: str, staged: Sequence[_PhoneModel]) -> None:
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
            except TransportError:
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
        except TransportError as again:
            log.warning("adb:%s: still unreachable after the wait (%s)", self.serial, again)

    @property
    def _pidfile(self) -> str:
        return f"{self.settings.remote_dir}/run.pid"

    def _snapshot(self) -> Snapshot:
        if self._snap is None:
            phone = self._connect()
            self._snap = self._call("reading sysfs", lambda: Snapshot.read(phone))
        return self._snap

    def _properties(self) -> dict[str, str]:
        if self._props is None:
            phone = self._connect()
            self._props = self._call("reading getprop", lambda: props(phone))
        return self._props

    # ----------------------------------------------------------- binary
    def _resolve_binary(self) -> tuple[Path | None, str]:
        """(local file to push or None, path on the phone); checks existence and ABI."""
        phone = self._connect()
        return resolve_binary(
            self.settings.bench_binary,
            remote_dir=self.settings.remote_dir,
            serial=self.serial,
            props=self._properties(),
            on_phone=lambda r: bool(self._call("looking for benchmark_model", lambda: phone.size(r))),
        )

    def _binary_digest(self, local: Path | None, remote: str) -> str:
        if local is not None:
            return sha256(local)
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
            hardware=f"{model or '?'} ({soc(props)}, {abi})",
            runtime="TFLite benchmark_model",
            runtime_version=f"sha256:{self._binary_sha[:16]}",
            threads=self.spec.threads,
            os=f"Android {props.get('ro.build.version.release', '?')} (SDK {props.get('ro.build.version.sdk', '?')})",
            extra=(
                ("serial", self.serial),
                ("fingerprint", props.get("ro.build.fingerprint", "?")),
                ("board", props.get("ro.product.board", "?")),
                ("platform", props.get("ro.board.platform", "?")),
                ("soc", soc(props)),
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
                self._binary_digest(None, remote) != sha256(local)
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
                with contextlib.suppress(TransportError):
                    phone.shell("rm -f " + " ".join(shlex.quote(t) for t in targets), timeout=min(s.timeout, 10))
                    phone.shell(f"rmdir {shlex.quote(s.remote_dir)} 2>/dev/null", timeout=min(s.timeout, 10))
                self._binary_pushed = False

    # ---------------------------------------------------------- measuring

    # ------------------------------------------- hooks of the measurement loop
    def warm_up(self, runnable: Runnable, protocol: Protocol) -> None:
        """Nothing to run now: every invocation warms up itself, as ``protocol`` says (None: no estimate)."""
        _model(runnable).warmup = (protocol.warmup_runs, protocol.warmup_s)
        return None

    def time_block(self, runnable: Runnable, plan: BlockPlan) -> Block:
        """One block = one ``benchmark_model`` invocation, after the thermal gate.

        Its timed runs count ``count * avg``, at least ``plan.min_s``:
        benchmark_model itself keeps running until ``--min_secs`` has passed.
        """
        st = _model(runnable)
        self._gate(st)
        t0 = time.perf_counter()
        out = self._invoke(st, plan)
        wall = time.perf_counter() - t0
        t = out.timed
        spent = t.count * float(t.avg if t.avg is not None else t.center_us) * 1e-6
        return Block(out, max(spent, plan.min_s), wall)

    def _remove(self, remote: str) -> None:
        if self.settings.keep or self._phone is None:
            return
        with contextlib.suppress(TransportError):
            self._phone.shell(f"rm -f {shlex.quote(remote)}", timeout=min(self.settings.timeout, 10))

    def _gate(self, st: _PhoneModel) -> None:
        """Wait (bounded) until the phone is cool and its big cores are back near full speed; record what was seen."""
        phone = self._connect()
        g = wait_until_cool(
            lambda: self._call("reading temperatures", lambda: Snapshot.read(phone), [st]), self.cores, self.settings
        )
        if not g.cool:
            st.waits_timed_out += 1
            log.warning(
                "adb:%s: still hot after %.1f s (CPU %.1f C, big cores at %.0f %% of max); measuring anyway",
                self.serial,
                g.waited_s,
                g.temp or float("nan"),
                100 * (g.ratio or float("nan")),
            )
        st.wait_s += g.waited_s
        if g.temp is not None:
            st.temps.append(g.temp)
        if g.ratio is not None:
            st.ratios.append(g.ratio)
        self._loadavg = g.snapshot.loadavg
        if self.settings.cooldown > 0:
            time.sleep(self.settings.cooldown)

    def _exit_error(self, code: int, text: str, st: _PhoneModel) -> AdbDeviceError:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else "(no output)"
        abi = (self._props or {}).get("ro.product.cpu.abi", "?")
        if code == 127 or "inaccessible or not found" in text:
            return AdbDeviceError(
                f"benchmark_model is missing on {self.serial} ({last}); "
                f"pass it with --bench-binary FILE ({abi_fix(abi)})"
            )
        if code == 126 or "not executable" in text or "Exec format error" in text:
            return AdbDeviceError(
                f"{self._binary} cannot run on {self.serial} ({abi}): {last}; "
                f"{abi_fix(abi)}and pass it with --bench-binary FILE"
            )
        errors = [ln for ln in lines if "ERROR" in ln or "FATAL" in ln] or [last]
        return AdbDeviceError(
            f"benchmark_model failed on {st.item.key} (exit {code}): {' | '.join(errors[-3:])}; "
            f"rerun it by hand with `adb -s {self.serial} shell` to see all of its output"
        )

    def _invoke(self, st: _PhoneModel, plan: BlockPlan) -> BenchOutput:
        phone, s = self._connect(), self.settings
        command = benchmark_command(
            spec=self.spec,
            settings=s,
            binary=self._binary,
            mask=self.mask,
            pidfile=self._pidfile,
            remote_model=st.remote,
            plan=plan,
            warmup=st.warmup,
        )
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

    def summarize(
        self,
        runnable: Runnable,
        samples: Sequence[Any],
        *,
        protocol: Protocol,
        wall_s: float,
        extra: Iterable[tuple[str, float]] = (),
    ) -> Measurement:
        """The Measurement of one op's invocations (``samples``: their parsed outputs), with the thermal records."""
        st = _model(runnable)

        def med(values: Iterable[float | None]) -> float | None:
            xs = [v for v in values if v is not None]
            return float(np.median(xs)) if xs else None

        values = {
            "temp_c": max(st.temps) if st.temps else None,
            "freq_ratio": min(st.ratios) if st.ratios else None,
            "thermal_wait_s": st.wait_s,
            "thermal_timeouts": float(st.waits_timed_out),
            "retries": float(st.retries),
            "init_ms": med(o.init_us for o in samples),
            "first_ms": med(o.first_us for o in samples),
        }
        for k in ("init_ms", "first_ms"):
            if values[k] is not None:
                values[k] *= 1e-3
        pairs = [(k, float(v)) for k, v in values.items() if v is not None and math.isfinite(v)] + list(extra)
        return to_measurement(
            samples,
            item=st.item,
            device_key=self.spec.key,
            protocol=protocol,
            wall_s=wall_s,
            extra=pairs,
            loadavg=self._loadavg,
        )
