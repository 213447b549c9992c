"""A real Ray cluster of several nodes on this machine, for tests, the benchmark and the docs.

Each node is a ``ray start --block`` process started here, as ``hwlat farm worker`` would
start it (:func:`~hwlat.farm.worker.ray_start_command`), in a temporary folder with a
temporary ``HOME`` (Ray writes its auth token under ``~/.ray``). Only the processes started
here are ever stopped, by their ids: never ``ray stop``, which ends every Ray process on the
machine. :meth:`LocalCluster.kill_node` kills one node (its ``ray start``, raylet and
workers) as a host that dies would; :meth:`LocalCluster.close` leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hwlat.farm.worker import ray_start_command

__all__ = ["LocalCluster", "descendants", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc, now)."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


class LocalCluster:
    """Nodes started here: a head, then workers with devices, each advertised as a host name.

    Examples
    --------
    >>> with LocalCluster() as cluster:  # doctest: +SKIP
    ...     cluster.start_head()
    ...     cluster.add_node("host-b", ["fake/realtime=1"])
    ...     run_measure_farm(cluster.address, ["fake/realtime=1@host-b"], ops, "t.db")
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, object_store_mb: int = 80) -> None:
        # A short path: Ray's socket paths under it must stay below the 107-byte limit.
        self.root = Path(tempfile.mkdtemp(prefix="hwfarm-", dir=root or "/tmp"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.port = free_port()
        self.object_store_mb = object_store_mb
        self.nodes: dict[str, subprocess.Popen] = {}
        self.head = ""
        self._seen: dict[str, set[int]] = {}
        # A killed node is declared dead after ~3 s (Ray's default: ~15 s).
        self.env = dict(
            os.environ,
            HOME=str(self.home),
            RAY_USAGE_STATS_ENABLED="0",
            RAY_health_check_period_ms="1000",
            RAY_health_check_failure_threshold="3",
        )
        self.env.pop("RAY_ADDRESS", None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, host: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        if host in self.nodes:
            raise ValueError(f"node {host!r} is already started")
        with open(self.root / f"{host}.log", "ab") as log:
            proc = subprocess.Popen(
                cmd, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.nodes[host] = proc
        self._seen[host] = {proc.pid}
        return proc

    def _common(self) -> list[str]:
        return ["--disable-usage-stats", "--object-store-memory", str(self.object_store_mb * 2**20)]

    def start_head(
        self, devices: Sequence[str] = (), host: str = "head", num_cpus: int = 1, env: dict[str, str] | None = None
    ) -> None:
        """The head node (``ray start --head``), waiting until it answers."""
        extra = [*self._common(), "--include-dashboard=false", "--temp-dir", str(self.root / "ray")]
        cmd = ray_start_command(
            head=True, port=self.port, devices=devices, host=host, num_cpus=num_cpus, block=True, extra=extra
        )
        self.head = host
        self._start(host, cmd, env)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                break
            if self.nodes[host].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start: see {self.root / (host + '.log')}")
            time.sleep(0.2)

    def add_node(
        self, host: str, devices: Sequence[str] = (), num_cpus: int = 1, env: dict[str, str] | None = None
    ) -> None:
        """A worker node joining the head, advertising ``devices`` as host ``host``."""
        cmd = ray_start_command(
            address=self.address, devices=devices, host=host, num_cpus=num_cpus, block=True, extra=self._common()
        )
        self._start(host, cmd, env)
        self._started(host)

    def _started(self, host: str, timeout_s: float = 90.0) -> None:
        """Until the node's ``ray start`` says it runs (nodes started at once on one machine race for ports)."""
        log, proc = self.root / f"{host}.log", self.nodes[host]
        deadline = time.monotonic() + timeout_s
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {host!r} did not start: see {log}")
            time.sleep(0.1)

    def wait_for(self, resources: Sequence[str], timeout_s: float = 60.0) -> None:
        """Until the connected cluster (``ray.init`` done) shows every one of ``resources``."""
        import ray

        deadline = time.monotonic() + timeout_s
        while not set(resources) <= set(ray.cluster_resources()):
            for host, proc in self.nodes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"node {host!r} exited ({proc.returncode}): see {self.root / (host + '.log')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not show {sorted(set(resources) - set(ray.cluster_resources()))}")
            time.sleep(0.2)

    def pids(self, host: str) -> list[int]:
        """The node's processes now (``ray start``, raylet, workers; remembered, so orphans are found too)."""
        proc = self.nodes.get(host)
        if proc is not None and _alive(proc.pid):
            self._seen[host].update(descendants(proc.pid))
        return sorted(p for p in self._seen.get(host, ()) if _alive(p))

    def kill_node(self, host: str, sig: int = signal.SIGKILL) -> None:
        """Kill one node at once, as a host that loses power (its processes found before any dies)."""
        pids = self.pids(host)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self._reap(host, pids)

    def _reap(self, host: str, pids: Sequence[int], timeout_s: float = 10.0) -> None:
        proc = self.nodes.pop(host, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout_s)
        deadline = time.monotonic() + timeout_s
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:  # whatever ignored the first signal
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._seen.pop(host, None)

    def close(self) -> None:
        """Stop every node started here (workers first, the head last) and remove the folder
        (kept, with the nodes' logs, when ``HWLAT_FARM_KEEP`` is set: for looking into a failure)."""
        for host in sorted(self.nodes, key=lambda h: h == self.head):
            pids = self.pids(host)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            self._reap(host, pids, timeout_s=5.0)
        for host in list(self._seen):
            self._reap(host, self.pids(host), timeout_s=1.0)
        if not os.environ.get("HWLAT_FARM_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
