"""The farm's driver: measure on many devices at once, writing one table.

The driver (the process that calls :func:`run_measure_farm`) is the table's only writer.
Per device it asks the table what is missing (``store.done_keys``), fans the conversions
out as Ray tasks (one per distinct converted file), starts the device's actor
(:class:`~hwlat.farm.actor.DeviceWorker`) and commits each op the moment it comes back,
one transaction per op. So a killed driver, host, actor or phone loses at most the ops in
flight; an op is stored once (a repeat from a restarted actor is dropped, and the table's
key refuses a second row); running the same command again measures only what is missing.

Faults: an actor that dies (its host killed, its process killed) or hangs (no result for
``item_timeout_s``) is killed and started again on its device, up to ``retries`` times;
a device whose host has left the cluster, or that still fails, is reported with the reason,
while the other devices finish.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hwlat.farm._ray import NAMESPACE, FarmError, connect, import_ray, this_host
from hwlat.farm.devices import HOST_PREFIX, Advertised, FarmDevice, inventory, parse_device, resolve_devices

__all__ = ["FarmIncomplete", "run_measure_farm", "split_devices"]

DEFAULT_ITEM_TIMEOUT_S = 600.0
DEFAULT_SETUP_TIMEOUT_S = 120.0


class FarmIncomplete(FarmError):
    """Some devices did not finish; ``results`` holds what the others did, ``failures`` one line per device."""

    def __init__(self, message: str, results: dict[str, tuple[int, int]], failures: dict[str, str]) -> None:
        super().__init__(message)
        self.results, self.failures = results, failures


def split_devices(devices: str | Sequence[str]) -> list[str]:
    """A ``--device`` value (comma list) or a list of names, as a list of names."""
    if isinstance(devices, str):
        devices = devices.split(",")
    names = [d.strip() for d in devices if d and d.strip()]
    if not names:
        raise FarmError("no devices given: name them, e.g. --device onnxruntime-cpu@lab-1,adb:SERIAL")
    return names


def _env_s(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise FarmError(f"{name}={text!r}: give a time in seconds > 0")
    return value


@dataclasses.dataclass(eq=False)
class _Run:
    """One device's part of the run."""

    dev: FarmDevice
    ad: Advertised
    todo: dict[str, Any]
    total: int
    skipped: int
    conversions: list[Any] = dataclasses.field(default_factory=list)
    new: int = 0
    actor: Any = None
    gen: int = 0  # bumped when an actor is dropped: its late answers are ignored
    attempts: int = 0
    phase: str = "waiting"  # waiting | setup | converting | measuring | done | failed
    since: float = 0.0  # when the phase began, or the last op arrived
    info_id: str | None = None
    reasons: list[str] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.dev.name}@{self.ad.host}" if not self.dev.name.startswith("adb:") else self.dev.name

    @property
    def active(self) -> bool:
        return self.phase not in ("done", "failed")


def _cpus(spec) -> int:
    """CPUs an actor holds on its node: a host-CPU device keeps ``threads`` cores free of conversion tasks."""
    return spec.threads if spec.backend.endswith("-cpu") else 0


def _conversion_key(spec, item) -> tuple:
    return (spec.backend, spec.batch, spec.precision, tuple(kv for kv in spec.options if kv[0] != "serial"), item.key)


def _lost_reason(exc: BaseException) -> str:
    """Why an actor call failed, short: Ray's own messages run to paragraphs."""
    from hwlat.farm.actor import one_line

    name = type(exc).__name__
    if name == "ActorUnavailableError":
        return "its actor became unreachable (host or process down?)"
    if name in ("ActorDiedError", "RayActorError"):
        return "its actor died"
    if name == "OutOfMemoryError":
        return "its actor was killed for memory"
    return f"its actor failed ({one_line(exc)[:200]})"


class _Driver:
    def __init__(self, ray, store, protocol, *, quiet: bool, item_timeout_s: float, setup_timeout_s: float, retries):
        self.ray, self.store, self.protocol = ray, store, protocol
        self.quiet, self.item_timeout_s, self.setup_timeout_s, self.retries = (
            quiet,
            item_timeout_s,
            setup_timeout_s,
            retries,
        )
        self.pending: dict[Any, tuple[_Run, int, str]] = {}
        self.bar = None
        from hwlat.farm.actor import DeviceWorker, convert_item

        self.Worker = ray.remote(DeviceWorker)
        self.convert = ray.remote(convert_item)

    # ------------------------------------------------------------ the loop
    def run(self, runs: list[_Run]) -> None:
        from tqdm.auto import tqdm

        from hwlat.farm.actor import converts

        shared: dict[tuple, Any] = {}
        for r in runs:
            if r.todo and converts(r.dev.spec):
                r.conversions = [
                    shared.setdefault(
                        _conversion_key(r.dev.spec, it), self.convert.options(num_cpus=1).remote(r.dev.spec, it)
                    )
                    for it in r.todo.values()
                ]
        with tqdm(
            total=sum(r.total for r in runs),
            initial=sum(r.skipped for r in runs),
            desc="farm",
            unit="op",
            disable=self.quiet,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as self.bar:
            try:
                for r in runs:
                    if r.todo:
                        self._launch(r)
                    else:
                        r.phase = "done"
                while any(r.active for r in runs):
                    self._step(runs)
            finally:
                for r in runs:
                    self._drop(r)

    def _step(self, runs: list[_Run]) -> None:
        ray = self.ray
        if self.pending:
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
            if ready:  # take everything that is ready, not one per wait
                ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        else:
            ready = []
            time.sleep(0.2)
        for ref in ready:
            r, gen, kind = self.pending.pop(ref)
            if gen != r.gen or not r.active:
                continue
            try:
                value = ray.get(ref)
            except Exception as exc:
                self._lost(r, _lost_reason(exc))
                continue
            self._answer(r, kind, value)
        now = time.monotonic()
        for r in runs:
            if r.phase == "setup" and now - r.since > self.setup_timeout_s:
                self._lost(r, f"the device did not come up within {self.setup_timeout_s:g} s")
            elif r.phase == "measuring" and now - r.since > self.item_timeout_s:
                self._lost(r, f"no result for {self.item_timeout_s:g} s (hung)")

    def _call(self, r: _Run, kind: str, ref) -> None:
        self.pending[ref] = (r, r.gen, kind)

    def _answer(self, r: _Run, kind: str, value) -> None:
        if kind == "setup":
            if isinstance(value, str):  # the backend cannot run there: retrying will not help
                self._fail(r, f"not usable on {r.ad.host}: {value}")
                return
            info, _pid = value
            r.info_id = self.store.add_device(info)
            r.phase, r.since = "converting" if r.conversions else "measuring", time.monotonic()
            self._call(r, "start", r.actor.start.remote(list(r.todo.values()), self.protocol, r.conversions))
            return
        if kind == "start":
            if not value:
                self._lost(r, "its actor was already measuring")
                return
            self._call(r, "poll", r.actor.poll.remote(1.0))
            return
        self._save(r, value["results"])
        state = value["state"]
        if state in ("converting", "measuring"):
            if state != r.phase:
                r.phase, r.since = state, time.monotonic()
            self._call(r, "poll", r.actor.poll.remote(1.0))
        elif state == "done":
            if r.todo:
                self._lost(r, f"its run ended with {len(r.todo)} ops not measured")
            else:
                r.phase = "done"
                self._drop(r)
        else:
            self._lost(r, value["error"] or state)

    def _save(self, r: _Run, results) -> None:
        """Commit each op alone (network definition and row together); repeats are dropped."""
        from hwlat.workflows import save_row

        for m in results:
            if m.device_key != r.dev.key or m.protocol != self.protocol.key or m.op_key not in r.todo:
                continue
            r.new += save_row(self.store, m, r.todo.pop(m.op_key), r.info_id)
            r.since = time.monotonic()
            self.bar.update(1)

    # ------------------------------------------------------------ actors
    def _launch(self, r: _Run) -> None:
        r.attempts += 1
        res = r.ad.resource
        options = dict(
            resources={res: 1},
            num_cpus=_cpus(r.dev.spec),
            max_concurrency=4,
            max_restarts=0,
            name=f"hwlat-device:{res}",
            namespace=NAMESPACE,
        )
        deadline = time.monotonic() + 15.0
        while True:
            try:
                r.actor = self.Worker.options(**options).remote(r.dev.spec, r.ad.host)
                break
            except ValueError as exc:  # the name is held: another driver's run, or our killed actor not yet gone
                if r.attempts == 1 and "already" in str(exc) or time.monotonic() > deadline:
                    self._fail(r, "busy: another farm run is measuring on it (see `hwlat farm status`)")
                    return
                time.sleep(0.25)
        r.phase, r.since = "setup", time.monotonic()
        self._call(r, "setup", r.actor.setup.remote())

    def _drop(self, r: _Run) -> None:
        r.gen += 1
        if r.actor is not None:
            try:
                self.ray.kill(r.actor)
            except Exception:  # already dead
                pass
            r.actor = None

    def _lost(self, r: _Run, reason: str) -> None:
        self._drop(r)
        r.reasons.append(reason)
        if not r.todo:
            r.phase = "done"
            return
        alive = inventory(self.ray.nodes()).by_resource(r.ad.resource)
        if alive is None:
            self._fail(r, "; then ".join(r.reasons) + f"; host {r.ad.host} is no longer in the farm")
        elif r.attempts > self.retries:
            self._fail(r, "; then ".join(r.reasons))
        else:
            r.ad = alive
            self._launch(r)

    def _fail(self, r: _Run, reason: str) -> None:
        self._drop(r)
        r.phase = "failed"
        r.reasons = [f"{reason}; {len(r.todo)} of {r.total} ops not measured"]


def _check_items(devices: Sequence[FarmDevice], items: Sequence[Any]) -> None:
    """What :func:`hwlat.workflows.run_measure` checks before measuring, per device, before connecting."""
    from hwlat.devices import get_backend
    from hwlat.workflows import check_items

    for dev in devices:
        try:
            check_items(get_backend(dev.spec.backend), items, dev.spec.batch)
        except ValueError as exc:
            raise FarmError(f"{dev.text}: {exc}") from None


def run_measure_farm(
    address: str,
    devices: str | Sequence[str],
    items: Sequence[Any],
    db: str | Path,
    protocol=None,
    *,
    quiet: bool = False,
    threads: int | None = None,
    batch: int | None = None,
    options: Mapping[str, Any] | None = None,
    item_timeout_s: float | None = None,
    setup_timeout_s: float | None = None,
    retries: int = 2,
    connect_timeout_s: float | None = None,
) -> dict[str, tuple[int, int]]:
    """Measure ``items`` on every device of ``devices`` at once, into the table ``db``.

    Parameters
    ----------
    address : str
        The farm: a head's ``HOST:PORT``, ``auto``, or ``local`` (a Ray started here that
        advertises the named devices on this host).
    devices : list of str, or a comma list
        ``DEVICE[@HOST]`` each (see :mod:`hwlat.farm.devices`), e.g. ``onnxruntime-cpu@lab-1``, ``adb:SERIAL``.
    items : sequence of OpSpec or Network
    db : path
        The latency table; only this process writes it.
    protocol : Protocol, optional
        Default: the standard adaptive protocol.
    threads, batch, options
        As ``hwlat measure --threads/--batch`` and a backend's options, for every device.
    item_timeout_s : float, optional
        A device with no finished op for this long is taken as hung (default
        ``HWLAT_FARM_ITEM_TIMEOUT_S`` or 600 s); ``setup_timeout_s``: how long a device may take
        to come up (default ``HWLAT_FARM_SETUP_TIMEOUT_S`` or 120 s).
    retries : int
        Restarts of a device's actor after it died or hung, before the device is reported failed.

    Returns
    -------
    dict
        Device key -> (new rows, already in the table). When a device did not finish,
        :class:`FarmIncomplete` is raised after the others finished, one line per device
        (its ``results`` holds this dict).
    """
    from hwlat.measure import Protocol
    from hwlat.store import LatencyStore

    protocol = protocol or Protocol()
    items = list(items)
    if not items:
        raise FarmError("nothing to measure: no ops or networks given")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise FarmError(f"retries={retries!r}: give a whole number >= 0")
    item_timeout_s = item_timeout_s or _env_s("HWLAT_FARM_ITEM_TIMEOUT_S", DEFAULT_ITEM_TIMEOUT_S)
    setup_timeout_s = setup_timeout_s or _env_s("HWLAT_FARM_SETUP_TIMEOUT_S", DEFAULT_SETUP_TIMEOUT_S)
    parsed = [parse_device(d, threads=threads, batch=batch, options=options) for d in split_devices(devices)]
    ray = import_ray()
    resources = None
    if isinstance(address, str) and address.strip() == "local":
        host = this_host()
        resources = {HOST_PREFIX + host: 1.0}
        for d in parsed:
            if d.host not in (None, host):
                raise FarmError(f"--farm local measures on this host ({host}) only; {d.text!r} names host {d.host!r}")
            resources[d.resource(host)] = 1.0
    _check_items(parsed, items)
    started = connect(address, timeout_s=connect_timeout_s, resources=resources)
    try:
        found = resolve_devices(parsed, inventory(ray.nodes()))
        with LatencyStore(db) as store:  # opened (and checked writable) before any measuring
            runs = []
            for dev, ad in zip(parsed, found):
                done = store.done_keys(dev.key, protocol.key)
                todo = {it.key: it for it in items if it.key not in done}
                runs.append(_Run(dev, ad, todo, total=len(items), skipped=len(items) - len(todo)))
            driver = _Driver(
                ray,
                store,
                protocol,
                quiet=quiet,
                item_timeout_s=item_timeout_s,
                setup_timeout_s=setup_timeout_s,
                retries=retries,
            )
            driver.run(runs)
    finally:
        if started:
            ray.shutdown()
    results = {r.dev.key: (r.new, r.skipped) for r in runs}
    failures = {r.label: r.reasons[-1] for r in runs if r.phase == "failed"}
    if failures:
        lines = [f"{label}: {why}" for label, why in failures.items()]
        raise FarmIncomplete(
            f"{len(runs) - len(failures)} of {len(runs)} devices finished; "
            + "; ".join(lines)
            + f" — committed rows are in {db}; run the same command again to finish",
            results,
            failures,
        )
    return results
