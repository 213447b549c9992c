"""The ``ray start`` command that makes a host part of the farm, advertising its devices.

``hwlat farm worker --address HEAD:PORT --devices onnxruntime-cpu,adb:SERIAL`` runs
``ray start --address HEAD:PORT --resources '{"hwlat-host:HOST": 1, "onnxruntime-cpu@HOST": 1,
"adb:SERIAL": 1}'``; ``--head --port P`` starts the head instead (it may have devices too).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from hwlat.farm._ray import INSTALL_HINT, FarmError, parse_address, this_host
from hwlat.farm.devices import advertise, check_host_name

__all__ = ["check_devices_here", "ray_executable", "ray_start_command"]


def ray_executable() -> str:
    """The ``ray`` command of this Python (its environment's ``bin``), else the one on PATH."""
    here = Path(sys.executable).with_name("ray")
    if here.is_file():
        return str(here)
    found = shutil.which("ray")
    if found is None:
        raise FarmError(f"the `ray` command is not installed: {INSTALL_HINT}")
    return found


def ray_start_command(
    *,
    address: str | None = None,
    head: bool = False,
    port: int = 6379,
    devices: Sequence[str] = (),
    host: str | None = None,
    num_cpus: int | None = None,
    block: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``ray start`` command line for a head (``head=True``) or a worker joining ``address``."""
    if head == (address is not None):
        raise FarmError("give either --head (start the farm's head here) or --address HEAD:PORT (join it)")
    host = check_host_name(host or this_host())
    resources = advertise(devices, host)
    cmd = [ray_executable(), "start"]
    if head:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise FarmError(f"--port {port!r}: give a TCP port, e.g. 6379")
        cmd += ["--head", "--port", str(port)]
    else:
        if parse_address(address) is None:
            raise FarmError(f"--address {address!r}: give the head's HOST:PORT, e.g. 10.0.0.5:6379")
        cmd += ["--address", address]
    if num_cpus is not None:
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 0:
            raise FarmError(f"--num-cpus {num_cpus!r}: give a whole number >= 0 (CPUs for conversion tasks)")
        cmd += ["--num-cpus", str(num_cpus)]
    cmd += ["--resources", json.dumps(resources, separators=(",", ":"))]
    if block:
        cmd.append("--block")
    return cmd + list(extra)


def check_devices_here(devices: Sequence[str]) -> list[str]:
    """Why each device cannot run on this host (empty: all usable): a backend's library or hardware missing."""
    from hwlat.devices import get_backend
    from hwlat.farm.devices import parse_device

    problems = []
    for text in devices:
        dev = parse_device(text)
        reason = get_backend(dev.spec.backend).check()
        if reason is not None:
            problems.append(f"{dev.name}: {reason}")
    return problems
