"""What runs on the farm's hosts: the measuring actor of one device, and conversion tasks.

:class:`DeviceWorker` is made a Ray actor holding the device's resource (quantity 1), so a
device has one actor and measures one thing at a time. It runs the one measurement loop,
:func:`hwlat.measure.measure`, once per run, in a thread of its own: inside the backend's
``session()`` (which pins that thread to ``threads`` CPUs, as on one machine), with every
finished op handed back to the driver through :meth:`DeviceWorker.poll`. It never writes a
table: the driver is the table's only writer.

:func:`convert_item` is the conversion task (ONNX export, LiteRT conversion): it fills the
cache (:mod:`hwlat.cache`) of the host it runs on and returns the file, which the measuring
host puts in its own cache under the same key before measuring.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["DeviceWorker", "convert_item", "converts", "one_line"]


def one_line(exc: BaseException) -> str:
    """An exception as one line (Ray's wrapped errors keep only their cause's last line)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        exc = cause
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text and not text.startswith(name) else (text or name)


def converts(spec) -> bool:
    """Whether ``spec``'s backend converts models before measuring (its ``convert`` is its own)."""
    from hwlat.devices import Backend, get_backend

    return get_backend(spec.backend).convert is not Backend.convert


def convert_item(spec, item) -> tuple[str, bytes] | None:
    """Convert ``item`` for ``spec`` into this host's cache; ``(path under the cache root, bytes)``."""
    from hwlat.cache import cache_root
    from hwlat.devices import create_backend

    path = create_backend(spec, check=False).convert(item)
    if path is None:
        return None
    path = Path(path)
    try:
        rel = path.resolve().relative_to(cache_root().resolve())
    except ValueError:
        return None  # not a cache file: the measuring host converts it itself
    return str(rel), path.read_bytes()


def _install(conversions: list[Any]) -> None:
    """Put converted files into this host's cache (a file already there and intact is kept)."""
    import ray

    from hwlat.cache import cache_root, cached_file

    for got in ray.get(list(conversions)) if conversions else []:
        if got is None:
            continue
        rel, data = got
        cached_file(cache_root() / rel, lambda tmp, data=data: Path(tmp).write_bytes(data), what=f"farm {rel}")


class DeviceWorker:
    """One device's measuring actor (see the module docstring)."""

    def __init__(self, spec, host: str) -> None:
        self.spec, self.host = spec, host
        self.backend = None
        self._lock = threading.Condition()
        self._results: list[Any] = []
        self._state = "starting"  # starting | converting | measuring | done | error
        self._error = ""
        self._remaining = 0
        self._thread: threading.Thread | None = None

    def setup(self) -> tuple[Any, int] | str:
        """Create and check the backend here: ``(DeviceInfo naming this host, pid)``, or why it cannot run."""
        from hwlat.devices import create_backend

        try:
            self.backend = create_backend(self.spec)
            info = self.backend.describe()
        except Exception as exc:  # the reason goes to the driver as one line
            return one_line(exc)
        import ray

        node_ip = ray.util.get_node_ip_address()
        extra = (*info.extra, ("farm_host", self.host), ("farm_node", node_ip), ("os_hostname", platform.node()))
        return dataclasses.replace(info, hostname=self.host, extra=extra), os.getpid()

    def start(self, items: list[Any], protocol, conversions: list[Any] = ()) -> bool:
        """Measure ``items`` in the background; False if a run is in progress (one at a time)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            if self.backend is None:
                raise RuntimeError("setup() first")
            self._results, self._error, self._remaining = [], "", len(items)
            self._state = "converting" if conversions else "measuring"
            self._thread = threading.Thread(
                target=self._run, args=(list(items), protocol, list(conversions)), name="hwlat-measure", daemon=True
            )
            self._thread.start()
        return True

    def _run(self, items, protocol, conversions) -> None:
        from hwlat.measure import measure

        def deliver(m) -> None:
            with self._lock:
                self._results.append(m)
                self._remaining -= 1
                self._lock.notify_all()

        try:
            _install(conversions)
            with self._lock:
                self._state = "measuring"
                self._lock.notify_all()
            measure(self.backend, items, protocol, on_result=deliver)
            state, error = "done", ""
        except Exception as exc:
            state, error = "error", one_line(exc)
        with self._lock:
            self._state, self._error = state, error
            self._lock.notify_all()

    def poll(self, wait_s: float = 1.0) -> dict[str, Any]:
        """Finished measurements since the last poll (waits up to ``wait_s`` for one), state and error."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            seen = self._state
            while not self._results and self._state == seen and self._state in ("converting", "measuring"):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            results, self._results = self._results, []
            return {"results": results, "state": self._state, "error": self._error, "remaining": self._remaining}

    def pid(self) -> int:
        """This actor's process id (tests kill or stop it to rehearse a fault)."""
        return os.getpid()

    def progress(self) -> dict[str, Any]:
        """State and items left, for ``hwlat farm status`` (does not take results)."""
        with self._lock:
            return {
                "state": self._state,
                "remaining": self._remaining,
                "host": self.host,
                "device": self.backend.spec.key if self.backend else "",
            }
