"""Farm devices: what a host advertises to Ray, and finding a named device in the cluster.

A host advertises each of its devices as a Ray custom resource of quantity 1, so that one
actor at a time can hold it:

- a phone by its serial alone, ``adb:SERIAL`` (serials are unique, and a phone may move
  from one USB hub to another);
- any other device with its host, ``NAME@HOST``: ``onnxruntime-cpu@lab-1``, ``cuda@gpu-box``,
  ``cuda/gpu=1@gpu-box``, ``fake/realtime=1/gpu=3@lab-1``.

``NAME`` is the device string without threads, batch or precision (those are how it is
measured, not which device it is). Every host also carries ``hwlat-host:HOST``, so a host
with no device yet is still known by name. On the command line a device is named the same
way, ``DEVICE[@HOST]``; ``@HOST`` may be left out when only one host has the device.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwlat.devices import DeviceSpec
from hwlat.farm._ray import FarmError

__all__ = [
    "HOST_PREFIX",
    "Advertised",
    "FarmDevice",
    "advertise",
    "check_host_name",
    "device_name",
    "inventory",
    "parse_device",
    "resolve_devices",
]

HOST_PREFIX = "hwlat-host:"
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MEASURE_PARTS = ("threads", "batch", "precision")


def check_host_name(host: str) -> str:
    """``host`` if it is a usable host name (letters, digits, ``.``, ``_``, ``-``); FarmError otherwise."""
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise FarmError(f"invalid host name {host!r}: use letters, digits, '.', '_' and '-' (e.g. lab-1)")
    return host


def device_name(spec: DeviceSpec) -> str:
    """Which device ``spec`` is: ``adb:SERIAL``, or the backend and its sorted ``/k=v`` options
    (never threads, batch or precision)."""
    serial = spec.option("serial")
    if serial:  # a phone is its serial; its other options (retries, timeout, ...) are how it is driven
        return f"{spec.backend}:{serial}"
    return spec.backend + "".join(f"/{k}={v}" for k, v in spec.options)


def _resource(name: str, host: str | None) -> str:
    return name if name.startswith("adb:") else f"{name}@{host}"


@dataclass(frozen=True)
class FarmDevice:
    """A device named on the command line: ``text`` as given, the spec to measure with, the host if given.

    ``key`` is the device key its rows get (the backend's: a phone's retries or timeout are not part of it).
    """

    text: str
    spec: DeviceSpec
    name: str
    host: str | None = None
    key: str = ""

    def resource(self, host: str | None = None) -> str:
        """The Ray resource that stands for this device on ``host`` (default: the one named)."""
        return _resource(self.name, host or self.host)


def _split_host(text: str) -> tuple[str, str | None]:
    base, sep, host = text.rpartition("@")
    if not sep:
        return text, None
    if not base:
        raise FarmError(f"device {text!r}: give DEVICE@HOST, e.g. onnxruntime-cpu@lab-1")
    return base, check_host_name(host)


def parse_device(
    text: str,
    *,
    threads: int | None = None,
    batch: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> FarmDevice:
    """``DEVICE[@HOST]`` checked here, without the cluster: a known backend, valid options.

    The ``@HOST`` suffix is taken off first; the rest is parsed by :class:`DeviceSpec` only.
    """
    from hwlat.devices import create_backend, get_backend

    if not isinstance(text, str) or not text.strip():
        raise FarmError(f"empty device name {text!r}: give e.g. onnxruntime-cpu@lab-1 or adb:SERIAL")
    text = text.strip()
    base, host = _split_host(text)
    get_backend(DeviceSpec.backend_of(base))  # an unknown backend: ValueError listing the valid ones
    bare = DeviceSpec.parse(base)
    spec = DeviceSpec.parse(base, threads=threads, batch=batch, options=dict(options or {}))
    backend = create_backend(spec, check=False)  # typed options: an unknown or bad one is refused here
    return FarmDevice(text, spec, device_name(bare), host, backend.spec.key)


def advertise(devices: Iterable[str], host: str) -> dict[str, float]:
    """The Ray ``--resources`` a host with ``devices`` starts with (its name marker included)."""
    check_host_name(host)
    resources: dict[str, float] = {HOST_PREFIX + host: 1.0}
    for text in devices:
        dev = parse_device(text)
        if dev.host not in (None, host):
            raise FarmError(f"device {text!r} names host {dev.host!r}, but this host advertises as {host!r}")
        if any(getattr(dev.spec, p) != getattr(DeviceSpec(dev.spec.backend), p) for p in _MEASURE_PARTS):
            raise FarmError(
                f"device {text!r}: a host advertises which device it has, not how to measure it; "
                f"drop the threads/batch/precision ({dev.name}) and give them to `hwlat measure`"
            )
        res = dev.resource(host)
        if res in resources:
            raise FarmError(f"device {dev.name!r} is listed twice; give each device once")
        resources[res] = 1.0
    return resources


@dataclass(frozen=True)
class Advertised:
    """A device some live node of the cluster advertises."""

    name: str
    resource: str
    host: str
    node_id: str
    node_ip: str


@dataclass
class Inventory:
    """What the live nodes advertise: devices, and hosts with their node addresses."""

    devices: list[Advertised] = field(default_factory=list)
    hosts: dict[str, list[str]] = field(default_factory=dict)  # host -> node IPs
    cpus: dict[str, float] = field(default_factory=dict)  # host -> CPUs for tasks (conversions)

    def by_resource(self, resource: str) -> Advertised | None:
        return next((a for a in self.devices if a.resource == resource), None)


def _is_device_resource(name: str) -> bool:
    from hwlat.devices import list_backends

    if name.startswith("adb:"):
        return True
    base, sep, host = name.rpartition("@")
    return bool(sep) and DeviceSpec.backend_of(base) in list_backends() and bool(_HOST.fullmatch(host))


def inventory(nodes: Sequence[Mapping[str, Any]]) -> Inventory:
    """The devices and hosts of ``ray.nodes()`` (dead nodes left out)."""
    inv = Inventory()
    for node in nodes:
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {}) or {}
        ip = str(node.get("NodeManagerAddress", "?"))
        markers = sorted(r[len(HOST_PREFIX) :] for r in resources if r.startswith(HOST_PREFIX))
        host = markers[0] if markers else str(node.get("NodeName") or ip)
        inv.hosts.setdefault(host, []).append(ip)
        inv.cpus[host] = inv.cpus.get(host, 0.0) + float(resources.get("CPU", 0.0))
        for res in sorted(resources):
            if _is_device_resource(res):
                name = res if res.startswith("adb:") else res.rpartition("@")[0]
                inv.devices.append(Advertised(name, res, host, str(node.get("NodeID", "")), ip))
    return inv


def _listing(names: Iterable[str]) -> str:
    names = sorted(set(names))
    return ", ".join(names) if names else "none"


def resolve_devices(devices: Sequence[FarmDevice], inv: Inventory) -> list[Advertised]:
    """The advertised device each of ``devices`` names; FarmError (one line) for unknown, ambiguous or twice."""
    found: list[Advertised] = []
    everything = _listing(f"{a.name}@{a.host}" for a in inv.devices)
    for dev in devices:
        if dev.host is not None and dev.host not in inv.hosts:
            raise FarmError(
                f"device {dev.text!r}: unknown host {dev.host!r}; hosts in the farm: {_listing(inv.hosts)} "
                "(start one with `hwlat farm worker`)"
            )
        same = [a for a in inv.devices if a.name == dev.name]
        if dev.host is not None:
            here = [a for a in same if a.host == dev.host]
            if not here:
                where = f" (it is on {_listing(a.host for a in same)})" if same else ""
                raise FarmError(
                    f"device {dev.text!r}: host {dev.host!r} does not advertise {dev.name!r}{where}; "
                    f"it advertises: {_listing(a.name for a in inv.devices if a.host == dev.host)}"
                )
            same = here
        if not same:
            raise FarmError(
                f"device {dev.text!r}: no host in the farm advertises {dev.name!r}; advertised: {everything} "
                f"(a host adds it with `hwlat farm worker --devices {dev.name}`)"
            )
        if len(same) > 1:
            raise FarmError(
                f"device {dev.text!r} is on several hosts ({_listing(a.host for a in same)}): "
                f"name one, e.g. {dev.name}@{same[0].host}"
            )
        if same[0] in found:
            raise FarmError(f"device {dev.name}@{same[0].host} is listed twice; give each device once")
        found.append(same[0])
    keys = [d.key for d in devices]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            j = keys.index(key)
            raise FarmError(
                f"devices {devices[j].text!r} and {devices[i].text!r} would write the same device key {key!r} "
                "into one table: measure them into separate --db files"
            )
    return found
