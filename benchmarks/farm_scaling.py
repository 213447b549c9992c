"""Farm scaling: 1, 2, 4 and 8 sleeping fake devices on a real two-node Ray cluster on this machine.

    python benchmarks/farm_scaling.py

Starts a head and two worker nodes (``hwlat.farm.testing.LocalCluster``: processes started
here, in a temporary folder and HOME, stopped by their ids), four ``fake/realtime=1`` devices
on each worker. A realtime fake device sleeps for the times it draws, so N devices do not
fight for the machine's CPUs, and the farm's own cost shows. For N = 1, 2, 4, 8 devices it
measures M ops on each (a fresh table per N) and reports:

- throughput (ops/s) and its ratio to one device in the same run, end to end (from the call
  to the last row committed: actor start-up included) and steady (first to last row);
- the per-op scheduling overhead: the farm's time per op (slope between M/8 and M ops on one
  device, so start-up cancels) minus the one-machine path's (``hwlat.workflows.run_measure``
  on the same device, same protocol);
- ``ray.init`` time (connecting; and starting a local Ray) and the RSS of the cluster's
  processes and the driver while 8 devices measure.

Writes benchmarks/results/farm_scaling.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPS_PER_DEVICE = 160
# ~0.12 s of sleeping per op on the fake device: warm-up 0.02 s, 5 rounds of 0.02 s.
PROTOCOL = dict(min_rounds=5, budget_s=0.1, warmup_s=0.02, round_s=0.02, interleave=2)


def rss_mb(pids) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Timeline:
    """Rows per device over time, read from a second connection every 20 ms; the peak RSS meanwhile."""

    def __init__(self, db: Path) -> None:
        self.db, self.t0 = db, time.perf_counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.peak_rss = 0.0
        self.pids_fn = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        import sqlite3

        while not self._stop.is_set():
            if self.db.exists():
                try:
                    con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
                    got = dict(con.execute("SELECT device_key, COUNT(*) FROM measurements GROUP BY device_key"))
                    con.close()
                except sqlite3.Error:
                    got = {}
                now = time.perf_counter() - self.t0
                for key, n in got.items():
                    self.first.setdefault(key, now)
                    if n != self.count.get(key):
                        self.count[key], self.last[key] = n, now
            if self.pids_fn is not None:
                self.peak_rss = max(self.peak_rss, rss_mb(self.pids_fn()))
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def first_row_s(self) -> float:
        return min(self.first.values(), default=0.0)

    @property
    def steady_ops_per_s(self) -> float:
        """Sum over devices of each one's rate from its first row to its last (start-up left out)."""
        return sum(
            (self.count[k] - 1) / (self.last[k] - self.first[k]) for k in self.count if self.last[k] > self.first[k]
        )


def ops(n: int):
    from hwlat.ops import OpSpec

    return [OpSpec("pwconv", cin=8 * (i % 40 + 1), cout=16 * (i // 40 + 1), h=14, w=14) for i in range(n)]


def load() -> str:
    """The machine's load average: the 2 cores are shared with other work, which the numbers feel."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    import ray

    from hwlat.devices import create_backend
    from hwlat.farm import connect, run_measure_farm
    from hwlat.farm.testing import LocalCluster
    from hwlat.measure import Protocol
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    protocol = Protocol(**PROTOCOL)
    devices = [f"fake/gpu={i}/realtime=1" for i in range(8)]
    res: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    res["python"], res["ray"] = platform.python_version(), ray.__version__
    res["protocol"], res["ops_per_device"] = protocol.key, OPS_PER_DEVICE
    res["load_before"] = load()
    with LocalCluster() as cluster:
        os.environ["HOME"] = str(cluster.home)
        t0 = time.perf_counter()
        cluster.start_head(num_cpus=1)
        cluster.add_node("bench-a", devices[0::2], num_cpus=0)
        cluster.add_node("bench-b", devices[1::2], num_cpus=0)
        res["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        connect(cluster.address)
        res["ray_init_connect_s"] = round(time.perf_counter() - t0, 2)
        cluster.wait_for([f"{d}@bench-{'ab'[i % 2]}" for i, d in enumerate(devices)])
        work = Path(cluster.root) / "tables"
        work.mkdir()

        def cluster_pids():
            return [p for host in list(cluster.nodes) for p in cluster.pids(host)] + [os.getpid()]

        def farm(names, n_ops, name):
            db = work / f"{name}.db"
            line = Timeline(db)
            if len(names) == 8:
                line.pids_fn = cluster_pids
            t = time.perf_counter()
            got = run_measure_farm(cluster.address, names, ops(n_ops), db, protocol, quiet=True)
            wall = time.perf_counter() - t
            print("farm", len(names), n_ops, wall, file=sys.stderr)
            line.stop()
            assert all(v == (n_ops, 0) for v in got.values()), got
            with LatencyStore(db, readonly=True) as store:
                assert len(store) == n_ops * len(names)
            return wall, line

        # The one-machine path on one device, and the farm on one device, at two sizes.
        small = OPS_PER_DEVICE // 8
        local = {}
        for n in (small, OPS_PER_DEVICE):
            with LatencyStore(work / f"local-{n}.db") as store:
                t = time.perf_counter()
                run_measure(create_backend(devices[0]), ops(n), store, protocol, quiet=True)
                local[n] = time.perf_counter() - t
            print("local", n, local[n], file=sys.stderr)
        one_small, _ = farm(devices[:1], small, "one-small")
        rows = []
        for n in (1, 2, 4, 8):
            wall, line = farm(devices[:n], OPS_PER_DEVICE, f"n{n}")
            total = n * OPS_PER_DEVICE
            rows.append(
                {
                    "devices": n,
                    "ops": total,
                    "wall_s": round(wall, 2),
                    "first_row_s": round(line.first_row_s, 2),
                    "ops_per_s": round(total / wall, 2),
                    "steady_ops_per_s": round(line.steady_ops_per_s, 2),
                }
            )
            if n == 8:
                res["rss_mb_8_devices"] = round(line.peak_rss, 0)
                res["rss_mb_driver"] = round(rss_mb([os.getpid()]), 0)
        for r in rows:
            r["scaling"] = round(r["ops_per_s"] / rows[0]["ops_per_s"], 3)
            r["scaling_per_device"] = round(r["scaling"] / r["devices"], 3)
            r["steady_scaling"] = round(r["steady_ops_per_s"] / rows[0]["steady_ops_per_s"], 3)
            r["steady_scaling_per_device"] = round(r["steady_scaling"] / r["devices"], 3)
        farm_per_op = (rows[0]["wall_s"] - one_small) / (OPS_PER_DEVICE - small)
        local_per_op = (local[OPS_PER_DEVICE] - local[small]) / (OPS_PER_DEVICE - small)
        res["rows"] = rows
        res["load_after"] = load()
        res["local_s_per_op"] = round(local_per_op, 4)
        res["farm_s_per_op"] = round(farm_per_op, 4)
        res["overhead_ms_per_op"] = round((farm_per_op - local_per_op) * 1e3, 2)
        res["farm_start_s"] = round(one_small - small * farm_per_op, 2)
        ray.shutdown()
    # Starting a local Ray (``--farm local``), in a fresh process (Ray keeps a cluster's auth token per process).
    with LocalCluster() as scratch:
        code = (
            "import time, ray\nt = time.perf_counter()\n"
            "ray.init(include_dashboard=False, num_cpus=1, object_store_memory=256 * 2**20, log_to_driver=False)\n"
            "print(time.perf_counter() - t)\nray.shutdown()\n"
        )
        env = dict(os.environ, HOME=str(scratch.home), RAY_USAGE_STATS_ENABLED="0")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
        res["ray_init_local_s"] = round(float(out.stdout.strip().splitlines()[-1]), 2)
    report(res)


def report(res: dict) -> None:
    """Goals, then the JSON and the markdown (``--report`` re-renders them from the JSON)."""
    res["goal"] = "scaling >= 0.9 x N up to 8 devices; < 10 ms overhead per op"
    res["goal_met"] = bool(all(r["scaling_per_device"] >= 0.9 for r in res["rows"]) and res["overhead_ms_per_op"] < 10)
    res["goal_met_steady"] = bool(
        all(r["steady_scaling_per_device"] >= 0.9 for r in res["rows"]) and res["overhead_ms_per_op"] < 10
    )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "farm_scaling.json").write_text(json.dumps(res, indent=1) + "\n")
    md = [
        "# Farm scaling: sleeping fake devices on a two-node Ray cluster on one machine",
        "",
        f"`python benchmarks/farm_scaling.py` — {res['cpus']} CPUs, Python {res['python']}, Ray {res['ray']}; "
        f"head + 2 worker nodes on this machine (standing in for hosts), {OPS_PER_DEVICE} ops per device, "
        f"protocol `{res['protocol']}`. Load average before/after: {res['load_before']} / {res['load_after']} "
        "(the machine is shared).",
        "",
        "| devices | ops | wall s | first row s | ops/s | x one device | per device "
        "| steady ops/s | steady x | per device |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        md.append(
            f"| {r['devices']} | {r['ops']} | {r['wall_s']} | {r['first_row_s']} | {r['ops_per_s']} | {r['scaling']} "
            f"| {r['scaling_per_device']} | {r['steady_ops_per_s']} | {r['steady_scaling']} "
            f"| {r['steady_scaling_per_device']} |"
        )
    md += [
        "",
        f"- Per-op scheduling overhead: **{res['overhead_ms_per_op']} ms** "
        f"(farm {res['farm_s_per_op'] * 1e3:.1f} ms/op "
        f"vs one machine {res['local_s_per_op'] * 1e3:.1f} ms/op, slopes between {OPS_PER_DEVICE // 8} and "
        f"{OPS_PER_DEVICE} ops on one device); start-up of a run (actor, setup) ≈ {res['farm_start_s']} s.",
        f"- `ray.init` connecting to the cluster: {res['ray_init_connect_s']} s; starting a local Ray "
        f"(`--farm local`): {res['ray_init_local_s']} s; the three nodes started in {res['cluster_start_s']} s.",
        f"- RSS while 8 devices measure: {res['rss_mb_8_devices']:.0f} MB over all Ray processes and the driver "
        f"(driver alone {res['rss_mb_driver']:.0f} MB).",
        f"- Goal ({res['goal']}): end to end {'met' if res['goal_met'] else 'NOT met'}; "
        f"steady (start-up left out) {'met' if res['goal_met_steady'] else 'NOT met'}.",
        "",
        "Reading it: the overhead is the difference of two slopes that each vary by a few ms from run to run, so a "
        "value near or below 0 means the farm's cost per op is below this noise. End to end, N devices also pay "
        "for starting N actor processes (each imports Ray and hwlat, ~1 s of CPU): here they all start on the same 2 "
        "shared cores (see 'first row s'), while on real hosts each host starts its own.",
    ]
    (out / "farm_scaling.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        report(json.loads((HERE / "results" / "farm_scaling.json").read_text()))
    else:
        main()
