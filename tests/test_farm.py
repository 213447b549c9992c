"""The device farm on a real Ray cluster of several nodes on this machine (hwlat.farm.testing.LocalCluster).

A head and a worker node are started as processes by the module fixture, with a temporary
folder and HOME; their devices are sleeping fake devices (``fake/realtime=1``: they do not
fight for the CPUs) and ``onnxruntime-cpu`` (conversions fanned out as tasks). Faults are
real: a worker host's processes killed, a measuring actor killed, an actor stopped
(SIGSTOP: hung). Only the processes started here are stopped, never by ``ray stop``.
"""

import os
import signal
import sqlite3
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="the device farm needs Ray: pip install 'hwlat[farm]'")

from hwlat.farm import FarmError, FarmIncomplete, connect, run_measure_farm  # noqa: E402
from hwlat.farm.status import farm_status, format_status  # noqa: E402
from hwlat.farm.testing import LocalCluster  # noqa: E402
from hwlat.measure import Protocol  # noqa: E402
from hwlat.ops import OpSpec  # noqa: E402
from hwlat.store import LatencyStore  # noqa: E402

pytestmark = pytest.mark.slow

# Short, but progressive: an op is final every 2 ops (interleave=2), so a killed run loses little.
PROTO = Protocol(min_rounds=3, budget_s=0.05, warmup_s=0.005, round_s=0.005, interleave=2)
OPS = [OpSpec("pwconv", cin=8 * (i + 1), cout=16, h=14, w=14) for i in range(12)]
D0, D1, D2 = ("fake/gpu=0/realtime=1", "fake/gpu=1/realtime=1", "fake/gpu=2/realtime=1")


@pytest.fixture(scope="module")
def cluster():
    with pytest.MonkeyPatch.context() as mp, LocalCluster() as c:
        mp.setenv("HOME", str(c.home))  # the driver reads the cluster's auth token there
        mp.delenv("RAY_ADDRESS", raising=False)
        c.start_head([D0, "onnxruntime-cuda"], env={"HWLAT_CACHE": str(c.root / "cache-head")})
        c.add_node("hostb", [D1, D2, "onnxruntime-cpu"], env={"HWLAT_CACHE": str(c.root / "cache-hostb")})
        assert connect(c.address, timeout_s=30)
        try:
            c.wait_for([f"{D0}@head", f"{D1}@hostb", "onnxruntime-cpu@hostb"])
            yield c
        finally:
            ray.shutdown()
    assert not c.nodes


def rows(db, device=None):
    with LatencyStore(db, readonly=True) as store:
        return {(m.device_key, m.op_key): m for m in store.measurements(device)}


def duplicates(db) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM measurements "
            "GROUP BY device_key, op_key, protocol HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    finally:
        con.close()


def actor_pid(device_resource: str, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(ray.get_actor(f"hwlat-device:{device_resource}", namespace="hwlat").pid.remote(), timeout=5)
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_rows(db, device_key, n, thread, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if len(rows(db, device_key)) >= n:
                return
        except Exception:  # the table is not created yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} rows of {device_key} appeared")


def in_thread(fn, *args, **kwargs):
    out = {}

    def run():
        try:
            out["result"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_three_devices_on_two_hosts_match_one_machine(cluster, tmp_path):
    """Every row once, naming the host that measured it; the medians are those measured on one machine."""
    from hwlat.devices import create_backend
    from hwlat.workflows import run_measure

    db = tmp_path / "farm.db"
    got = run_measure_farm(
        cluster.address, ["fake/realtime=1/gpu=0@head", D1, f"{D2}@hostb"], OPS, db, PROTO, quiet=True
    )
    keys = [create_backend(d).spec.key for d in (D0, D1, D2)]
    assert got == {k: (len(OPS), 0) for k in keys}
    table = rows(db)
    assert len(table) == 3 * len(OPS) and duplicates(db) == 0
    with LatencyStore(db, readonly=True) as store:
        hosts = {k: store.device_info(k)["hostname"] for k in keys}
        assert store.device_info(keys[1])["extra"]["farm_host"] == "hostb"
    assert hosts == dict(zip(keys, ["head", "hostb", "hostb"]))
    # The same ops measured here by the one-machine path give the same numbers (the fake device is seeded).
    with LatencyStore(tmp_path / "local.db") as local:
        run_measure(create_backend(D1), OPS, local, PROTO, quiet=True)
        here = {m.op_key: m.median_ms for m in local.measurements()}
    assert {op: m.median_ms for (k, op), m in table.items() if k == keys[1]} == here
    # Run again: nothing is measured twice.
    again = run_measure_farm(cluster.address, [f"{D0}@head", D1, D2], OPS, db, PROTO, quiet=True)
    assert again == {k: (0, len(OPS)) for k in keys}
    assert len(rows(db)) == 3 * len(OPS)


def test_killed_worker_host_loses_nothing_and_rerun_completes(cluster, tmp_path):
    """A host dies mid-run: its device fails in one line, the other finishes, nothing is lost or doubled."""
    dk = "fake/gpu=5/realtime=1"
    cluster.add_node("hostk", [dk], num_cpus=0)
    cluster.wait_for([f"{dk}@hostk"])
    db = tmp_path / "kill.db"
    ops = OPS + [OpSpec("pwconv", cin=8 * (i + 1), cout=24, h=14, w=14) for i in range(18)]
    t, out = in_thread(
        run_measure_farm, cluster.address, [D0, f"{dk}@hostk"], ops, db, PROTO, quiet=True, setup_timeout_s=8
    )
    key = "fake/t1/b1/fp32/gpu=5/realtime=1"
    wait_rows(db, key, 4, t)
    # While it runs, status shows the device measuring with ops queued.
    _, devices = farm_status()
    mine = next(d for d in devices if d.device == dk)
    assert mine.busy and mine.host == "hostk" and mine.queued > 0 and mine.measuring == key
    before = set(rows(db, key))
    cluster.kill_node("hostk")
    t.join(120)
    assert not t.is_alive()
    err = out.get("error")
    assert isinstance(err, FarmIncomplete), out
    assert "\n" not in str(err) and "1 of 2 devices finished" in str(err) and "hostk" in str(err)
    assert list(err.failures) == [f"{dk}@hostk"] and "run the same command again" in str(err)
    after = rows(db, key)
    assert before <= set(after), "committed rows were lost"
    assert 4 <= len(after) < len(ops) and duplicates(db) == 0
    assert err.results[key] == (len(after), 0)
    assert len(rows(db, "fake/t1/b1/fp32/gpu=0/realtime=1")) == len(ops)
    with LatencyStore(db) as store:  # the table opens (integrity checked) and is whole
        assert len(store) == len(ops) + len(after)
    # The host comes back: the same command measures only what is missing.
    cluster.add_node("hostk", [dk], num_cpus=0)
    cluster.wait_for([f"{dk}@hostk"])
    try:
        got = run_measure_farm(cluster.address, [D0, f"{dk}@hostk"], ops, db, PROTO, quiet=True)
    finally:
        cluster.kill_node("hostk")
    assert got[key] == (len(ops) - len(after), len(after))
    assert len(rows(db, key)) == len(ops) and duplicates(db) == 0


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_lost_actor_is_restarted_and_finishes(cluster, tmp_path, fault):
    """The measuring process killed (or stopped: hung past the timeout): a new actor finishes the rest, once each."""
    db = tmp_path / "fault.db"
    t, out = in_thread(
        run_measure_farm, cluster.address, [D1], OPS, db, PROTO, quiet=True, item_timeout_s=3, setup_timeout_s=20
    )
    key = "fake/t1/b1/fp32/gpu=1/realtime=1"
    pid = actor_pid(f"{D1}@hostb")
    wait_rows(db, key, 2, t)
    os.kill(pid, signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
    try:
        t.join(120)
    finally:
        if fault == "hung":  # killed by the driver already; make sure
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    assert "error" not in out, out.get("error")
    assert out["result"] == {key: (len(OPS), 0)}
    assert len(rows(db, key)) == len(OPS) and duplicates(db) == 0


def test_conversions_fan_out_and_reach_the_measuring_host(cluster, tmp_path):
    """onnxruntime-cpu on hostb: the ONNX files are converted by tasks, then put in hostb's own cache."""
    ops = OPS[:2]
    db = tmp_path / "ort.db"
    got = run_measure_farm(cluster.address, ["onnxruntime-cpu@hostb"], ops, db, PROTO, quiet=True)
    assert got == {"onnxruntime-cpu/t1/b1/fp32": (2, 0)}
    onnx = sorted(p.name for p in (cluster.root / "cache-hostb" / "onnx").glob("*.onnx"))
    assert len(onnx) == 2
    for name in onnx:  # each with its size/SHA-256 record, as the cache writes every file
        assert (cluster.root / "cache-hostb" / "onnx" / f"{name}.meta.json").is_file()
    with LatencyStore(db, readonly=True) as store:
        assert store.device_info("onnxruntime-cpu/t1/b1/fp32")["hostname"] == "hostb"


def test_bad_devices_are_one_line_and_write_nothing(cluster, tmp_path):
    db = tmp_path / "bad.db"
    cases = {
        "fake/realtime=1@nohost": "unknown host 'nohost'; hosts in the farm: head, hostb",
        "fake/realtime=1/gpu=9@hostb": "host 'hostb' does not advertise 'fake/gpu=9/realtime=1'",
        "fake/gpu=1/realtime=1@head": "(it is on hostb)",
        "torch-cpu": "no host in the farm advertises 'torch-cpu'",
        "nosuch@hostb": "Unknown device 'nosuch'",
    }
    for device, message in cases.items():
        with pytest.raises(ValueError) as exc:
            run_measure_farm(cluster.address, [D0, device], OPS, db, PROTO, quiet=True)
        assert message in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(FarmError, match="listed twice"):
        run_measure_farm(cluster.address, [D1, f"{D1}@hostb"], OPS, db, PROTO, quiet=True)
    assert not db.exists(), "a refused run must not create the table"


def test_device_that_cannot_run_on_its_host_is_reported(cluster, tmp_path):
    db = tmp_path / "gpu.db"
    with pytest.raises(FarmIncomplete) as exc:
        run_measure_farm(cluster.address, ["onnxruntime-cuda@head", D0], OPS[:2], db, PROTO, quiet=True)
    assert "onnxruntime-cuda@head: not usable on head" in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.results["fake/t1/b1/fp32/gpu=0/realtime=1"] == (2, 0)
    assert len(rows(db)) == 2


def test_status_lists_hosts_and_idle_devices(cluster):
    hosts, devices = farm_status()
    cpus = {h.host: h.cpus for h in hosts}
    assert cpus["head"] == 1 and cpus["hostb"] == 1  # two nodes of one machine, counted apart
    by = {(d.device, d.host): d for d in devices}
    assert by[(D1, "hostb")].state == "idle" and not by[(D1, "hostb")].busy
    assert ("onnxruntime-cpu", "hostb") in by and (D0, "head") in by
    text = "\n".join(format_status(hosts, devices))
    assert "hostb" in text and "onnxruntime-cpu" in text


def test_cli_status_and_worker(cluster, monkeypatch, capsys):
    import importlib

    cli = importlib.import_module("hwlat.cli.main")

    assert cli.main(["farm", "status", "--address", cluster.address]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime-cpu" in out and "hostb" in out and "idle" in out
    assert (
        cli.main(
            ["farm", "worker", "--address", cluster.address, "--devices", "fake,adb:SER1", "--host", "h1", "--dry-run"]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert line.endswith("""--resources '{"hwlat-host:h1":1.0,"fake@h1":1.0,"adb:SER1":1.0}'""")
    assert f"start --address {cluster.address}" in line


def test_emulated_phone_unplugged_then_finished(cluster, tmp_path):
    """The emulated phone (the fake adbd) on its own host: unplugged for good, it is reported in one line
    after its retries, keeping what was committed; plugged back, the same call finishes it."""
    from hwlat.devices.testing.fake_adb import FakeAdbServer, FakePhone, fake_benchmark_binary
    from hwlat.spaces import get_space

    binary = tmp_path / "benchmark_model"
    binary.write_bytes(fake_benchmark_binary("arm64-v8a"))
    never = tmp_path / "adb"  # adbutils must not start a real adb server
    never.write_text("#!/bin/sh\nexit 1\n")
    never.chmod(0o755)
    phone = FakePhone(serial="emulator-5554")
    ops = get_space("pwconv").sample(3, seed=0)
    device = "adb:emulator-5554/retries=1/backoff=0.05/timeout=3"
    db = tmp_path / "phone.db"
    with FakeAdbServer([phone]) as server:
        env = {"ANDROID_ADB_SERVER_PORT": str(server.port), "ADBUTILS_ADB_PATH": str(never)}
        env["HWLAT_CACHE"] = str(cluster.root / "cache-phone")
        cluster.add_node("phonehost", ["adb:emulator-5554"], num_cpus=0, env=env)
        try:
            cluster.wait_for(["adb:emulator-5554"])
            kwargs = dict(quiet=True, options={"bench_binary": str(binary)}, retries=1)
            phone.faults.after_runs, phone.faults.disconnect_runs, phone.faults.offline_s = 1, 99, 0.05
            with pytest.raises(FarmIncomplete) as exc:
                run_measure_farm(cluster.address, [device], ops, db, Protocol.fixed(), **kwargs)
            text = str(exc.value)
            assert "\n" not in text and text.startswith("0 of 1 devices finished; adb:emulator-5554: ")
            assert "disconnect while running benchmark_model" in text and "2 of 3 ops not measured" in text
            key = next(iter(exc.value.results))
            assert exc.value.results[key] == (1, 0) and len(rows(db)) == 1
            phone.faults.disconnect_runs = 0  # plugged back in
            got = run_measure_farm(cluster.address, [device], ops, db, Protocol.fixed(), **kwargs)
        finally:
            cluster.kill_node("phonehost")
    assert got == {key: (2, 1)}
    assert len(rows(db)) == 3 and duplicates(db) == 0
    with LatencyStore(db, readonly=True) as store:
        assert store.device_info(key)["hostname"] == "phonehost"
