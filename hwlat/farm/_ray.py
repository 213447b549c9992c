"""Ray, imported only here and only when a farm is used; connecting to a cluster with a timeout.

Nothing outside :mod:`hwlat.farm` and ``hwlat/cli/farm.py`` imports Ray, and those only inside
functions: ``import hwlat.farm`` and ``hwlat --help`` stay light.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
from typing import Any

__all__ = ["NAMESPACE", "FarmError", "connect", "import_ray", "parse_address"]

#: The Ray namespace of hwlat's named device actors (``hwlat farm status`` finds them there).
NAMESPACE = "hwlat"
INSTALL_HINT = "pip install 'hwlat[farm]'"
DEFAULT_CONNECT_TIMEOUT_S = 30.0


class FarmError(ValueError):
    """A user-facing farm error: one line naming the fix."""


def import_ray():
    """The ``ray`` module, or FarmError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise FarmError(f"the device farm needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` address; None for ``local``/``auto``/``ray://``. FarmError if malformed."""
    if not isinstance(address, str) or not address.strip():
        raise FarmError(f"--farm {address!r}: give the head's HOST:PORT (e.g. 10.0.0.5:6379) or 'local'")
    address = address.strip()
    if address in ("local", "auto") or address.startswith("ray://"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FarmError(f"--farm {address!r}: give the head's HOST:PORT (e.g. 10.0.0.5:6379) or 'local'")
    return host.strip("[]"), int(port)


def _probe(host: str, port: int, timeout_s: float) -> None:
    """Fail fast when nothing listens at the address (Ray itself would retry for minutes)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise FarmError(
            f"no Ray cluster answers at {host}:{port} ({reason} within {timeout_s:g} s): start the head with "
            f"`hwlat farm worker --head --port {port}` there, or check the address"
        ) from None


def connect(
    address: str,
    *,
    timeout_s: float | None = None,
    resources: dict[str, float] | None = None,
    num_cpus: int | None = None,
) -> bool:
    """Connect this process to the farm; True if it started Ray here (the caller then shuts it down).

    ``address``: ``HOST:PORT`` of a running head, ``auto`` (``RAY_ADDRESS`` or the cluster
    started on this machine), or ``local``: a one-machine cluster started in this process that
    advertises ``resources`` (the devices named on the command line). An address that does not
    answer within ``timeout_s`` (default ``HWLAT_FARM_TIMEOUT_S`` or 30 s) is a FarmError.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if timeout_s is None:
        timeout_s = float(os.environ.get("HWLAT_FARM_TIMEOUT_S", DEFAULT_CONNECT_TIMEOUT_S))
    hostport = parse_address(address)
    kwargs: dict[str, Any] = {
        "namespace": NAMESPACE,
        "log_to_driver": False,
        "configure_logging": False,
        "include_dashboard": False,
    }
    if address.strip() == "local":
        # address="local": always a new cluster here, never one a stale /tmp/ray/ray_current_cluster names
        kwargs.update(address="local", resources=resources or {}, num_cpus=num_cpus, object_store_memory=256 * 2**20)
    else:
        if hostport is not None:
            _probe(*hostport, timeout_s)
        kwargs["address"] = address.strip()
        del kwargs["include_dashboard"]
    error: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    if address.strip() == "local":  # starting Ray needs the main thread (its signal handlers)
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise FarmError(f"cannot start a local Ray: {_first_line(exc)}") from None
        return True
    # In a thread, so that a port that answers but is no Ray head cannot hang the driver for minutes.
    thread = threading.Thread(target=init, name="hwlat-farm-connect", daemon=True)
    quiet = _NoSigtermNote()
    logging.getLogger("ray._private.worker").addFilter(quiet)
    try:
        thread.start()
        thread.join(timeout_s)
    finally:
        logging.getLogger("ray._private.worker").removeFilter(quiet)
    if thread.is_alive():
        raise FarmError(
            f"the Ray cluster at {address} did not accept this driver within {timeout_s:g} s: "
            "is it a Ray head of the same Ray version? (HWLAT_FARM_TIMEOUT_S sets the wait)"
        )
    if error:
        raise FarmError(f"cannot connect to the Ray cluster at {address}: {_first_line(error[0])}") from None
    return True


class _NoSigtermNote(logging.Filter):
    """Ray notes that a driver connected from a thread sets no SIGTERM handler: true, and not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def this_host() -> str:
    """The name this machine advertises by default (``platform.node()``)."""
    return platform.node() or "localhost"
