"""``hwlat farm status``: the farm's hosts and devices, which are busy, and how many ops each has left."""

from __future__ import annotations

from dataclasses import dataclass

from hwlat.farm._ray import NAMESPACE, import_ray
from hwlat.farm.devices import inventory

__all__ = ["DeviceStatus", "HostStatus", "farm_status", "format_status"]


@dataclass(frozen=True)
class DeviceStatus:
    device: str  # the advertised name (adb:SERIAL, NAME)
    host: str
    busy: bool
    state: str  # idle, or the measuring actor's state (setup, converting, measuring, done, error)
    queued: int  # ops the current run has left on it
    measuring: str = ""  # the device key being measured


@dataclass(frozen=True)
class HostStatus:
    host: str
    nodes: tuple[str, ...]  # node IPs
    cpus: float


def farm_status(timeout_s: float = 5.0) -> tuple[list[HostStatus], list[DeviceStatus]]:
    """Ask the connected cluster (see :func:`hwlat.farm.connect`) for its hosts and devices."""
    ray = import_ray()
    nodes = ray.nodes()
    inv = inventory(nodes)
    available = ray.available_resources()
    hosts = [HostStatus(host, tuple(ips), inv.cpus.get(host, 0.0)) for host, ips in sorted(inv.hosts.items())]
    named = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == NAMESPACE}
    refs = {}
    for ad in inv.devices:
        name = f"hwlat-device:{ad.resource}"
        if name in named:
            try:
                refs[ad.resource] = ray.get_actor(name, namespace=NAMESPACE).progress.remote()
            except ValueError:  # gone meanwhile
                pass
    answers = {}
    if refs:
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        for res, ref in refs.items():
            if ref in ready:
                try:
                    answers[res] = ray.get(ref)
                except Exception:  # died meanwhile
                    pass
    devices = []
    for ad in inv.devices:
        held = available.get(ad.resource, 0.0) < 1.0
        got = answers.get(ad.resource)
        if got is not None:
            devices.append(DeviceStatus(ad.name, ad.host, True, got["state"], int(got["remaining"]), got["device"]))
        else:
            devices.append(DeviceStatus(ad.name, ad.host, held, "busy" if held else "idle", 0))
    return hosts, devices


def format_status(hosts: list[HostStatus], devices: list[DeviceStatus]) -> list[str]:
    """The lines ``hwlat farm status`` prints."""
    lines = [f"{len(hosts)} hosts, {len(devices)} devices ({sum(d.busy for d in devices)} busy)"]
    lines.append(f"{'HOST':<16} {'NODES':<24} {'CPUS':>5}")
    for h in hosts:
        lines.append(f"{h.host:<16} {','.join(h.nodes):<24} {h.cpus:>5g}")
    lines.append(f"{'DEVICE':<36} {'HOST':<16} {'STATE':<11} {'QUEUED':>6}  MEASURING")
    for d in sorted(devices, key=lambda d: (d.host, d.device)):
        lines.append(f"{d.device:<36} {d.host:<16} {d.state:<11} {d.queued:>6}  {d.measuring}")
    return lines
