"""The adb backend against an emulated phone (a fake adb server on a free loopback port).

The fake speaks the real adb host protocol and runs pushed .tflite files in the
LiteRT interpreter on this host, so these are real measurements through the
whole phone path. With HWLAT_ADB_SERIAL (and HWLAT_BENCH_BINARY) set, the tests
parametrised over ``target`` also run against that real phone (marker ``phone``).
"""

import hashlib
import os
import shutil
import subprocess
import time

import _adb_helpers
import numpy as np
import pytest
from _adb_helpers import OPS

from hwlat.devices import create_backend
from hwlat.devices.adb import AdbDeviceError, big_cores, list_phones
from hwlat.devices.testing.fake_adb import fake_benchmark_binary
from hwlat.measure import Protocol, measure

QUICK = Protocol(min_rounds=2, max_rounds=3, round_s=0.002, warmup_runs=1, warmup_s=0.002, budget_s=0.004, rel_ci=0.5)
FAST = {"timeout": "3", "backoff": "0.05", "thermal_wait": "3"}


# The emulated phone's fixtures, shared with test_cli_adb.py (no_adb_spawn applies to every test here).
no_adb_spawn = _adb_helpers.no_adb_spawn
phone = _adb_helpers.phone
server = _adb_helpers.server
binary = _adb_helpers.binary


def backend_for(server, binary=None, **options):
    opts = {"adb_port": str(server.port), **FAST, **options}
    if binary is not None:
        opts["bench_binary"] = str(binary)
    return create_backend("adb:emulator-5554", options=opts)


@pytest.fixture(params=["emulated", pytest.param("phone", marks=pytest.mark.phone)])
def target(request, server, binary):
    """(backend, phone or None): the emulated phone, or a real one when HWLAT_ADB_SERIAL is set."""
    if request.param == "emulated":
        return backend_for(server, binary), server.phones["emulator-5554"]
    serial = os.environ.get("HWLAT_ADB_SERIAL")
    if not serial:
        pytest.skip("no phone: set HWLAT_ADB_SERIAL (and HWLAT_BENCH_BINARY) to run against a real one")
    opts = {"bench_binary": os.environ["HWLAT_BENCH_BINARY"]} if os.environ.get("HWLAT_BENCH_BINARY") else {}
    return create_backend(f"adb:{serial}", options=opts), None


# ------------------------------------------------------------------ discovery
def test_list_phones(server):
    (row,) = list_phones(port=server.port)
    assert row == {
        "serial": "emulator-5554",
        "state": "device",
        "model": "Pixel 7",
        "soc": "Google GS201",
        "abi": "arm64-v8a",
        "android": "14",
    }


def test_no_server_is_quiet_fast_and_spawns_nothing(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    assert list_phones(port=port) == []
    assert time.perf_counter() - t0 < 1.0
    backend = create_backend("adb:emulator-5554", options={"adb_port": str(port)})
    with pytest.raises(AdbDeviceError, match=f"no adb server at 127.0.0.1:{port}.*never starts it"):
        backend.describe()


def test_describe_records_provenance(server, binary):
    info = backend_for(server, binary).describe()
    extra = dict(info.extra)
    assert info.device_key == "adb/t1/b1/fp32/serial=emulator-5554"  # run settings stay out of the key
    assert info.hardware == "Google Pixel 7 (Google GS201, arm64-v8a)" and info.os == "Android 14 (SDK 34)"
    assert info.runtime_version == "sha256:" + hashlib.sha256(binary.read_bytes()).hexdigest()[:16]
    assert extra["big_cores"] == "6,7" and extra["taskset_mask"] == "c0" and extra["governor"] == "schedutil"
    assert "BIG=33.0C" in extra["thermal_zones"] and extra["delegate"] == "XNNPACK (default)"
    two = backend_for(server, binary, cores="4-7")
    assert two.spec.key == "adb/t1/b1/fp32/cores=4-7/serial=emulator-5554" and two.mask == "f0"


def test_big_core_selection():
    pixel2 = {c: 1900800 for c in range(4)} | {c: 2457600 for c in range(4, 8)}
    assert big_cores(pixel2, 1) == [4, 5, 6, 7]  # the README's `taskset f0`
    sd888 = {c: 1804800 for c in range(4)} | {4: 2419200, 5: 2419200, 6: 2419200, 7: 2841600}
    assert big_cores(sd888, 1) == [7] and big_cores(sd888, 2) == [4, 5, 6, 7] and big_cores(sd888, 9) == list(range(8))


# ------------------------------------------------------------------ measuring
def test_measure_through_the_phone(target):
    backend, phone = target
    results = measure(backend, OPS, QUICK)
    assert [m.op_key for m in sorted(results, key=lambda m: m.op_key)] == sorted(op.key for op in OPS)
    for m in results:
        assert m.device_key == backend.spec.key and m.protocol == QUICK.key
        assert 2 <= m.rounds <= 3 and len(m.round_medians_ms) == m.rounds and m.n >= m.rounds
        assert 0 < m.p5_ms <= m.median_ms <= m.p95_ms and m.ci_low_ms <= m.median_ms <= m.ci_high_ms
        extra = dict(m.extra)
        assert extra["thermal_timeouts"] == 0 and extra["retries"] == 0 and extra["init_ms"] > 0
    if phone is None:
        return
    for m in results:
        assert dict(m.extra)["temp_c"] == 33.0 and dict(m.extra)["freq_ratio"] == 1.0
        assert m.loadavg == 0.42  # the phone's, not this host's
    assert len(phone.runs) == sum(m.rounds for m in results)
    run = phone.runs[0]
    assert run["mask"] == 0xC0 and run["threads"] == 1
    assert {"--num_threads=1", "--warmup_runs=1", "--warmup_min_secs=0.002", "--num_runs=1", "--min_secs=0.002"} <= set(
        run["argv"]
    )
    assert phone.files == {}  # model, binary and pid file removed afterwards


def test_emulated_phone_runs_the_host_model_and_reports_its_own_times(server, binary, phone):
    """The emulator runs litert-cpu's own .tflite, and hwlat reads back exactly the times it measured.

    No latency is compared here (the host is noisy): the model bytes and the run times are.
    """
    op = OPS[1]
    proto = Protocol(min_rounds=3, max_rounds=5, round_s=0.01, warmup_s=0.01, budget_s=0.05, rel_ci=0.5)
    (m,) = measure(backend_for(server, binary), [op], proto)
    host_model = create_backend("litert-cpu").convert(op).read_bytes()
    assert [r["model_sha256"] for r in phone.runs] == [hashlib.sha256(host_model).hexdigest()] * m.rounds
    # each round's figure is benchmark_model's nearest-rank median of its own per-run µs, read back in ms
    rounds_us = [sorted(r["timed_us"]) for r in phone.runs]
    assert all(rounds_us)
    assert m.round_medians_ms == pytest.approx([t[len(t) // 2] * 1e-3 for t in rounds_us])
    assert m.n == sum(len(t) for t in rounds_us)
    assert m.median_ms == pytest.approx(float(np.median([t[len(t) // 2] for t in rounds_us])) * 1e-3)


def test_keep_threads_gpu_and_fixed_protocol(server, binary, phone):
    backend = backend_for(server, binary, keep="1", cores="4-7", use_xnnpack="0")
    (m,) = measure(backend, OPS[:1], Protocol.fixed(warmup_s=0.005, runs=5, min_s=0.005))
    assert m.rounds == 1 and m.n >= 5 and m.protocol == Protocol.fixed(warmup_s=0.005, runs=5, min_s=0.005).key
    assert phone.runs[0]["mask"] == 0xF0 and "--use_xnnpack=false" in phone.runs[0]["argv"]
    assert "/data/local/tmp/hwlat/benchmark_model" in phone.files and len(phone.files) == 3  # kept: binary, model, pid
    with pytest.raises(AdbDeviceError, match="GPU delegate is not available"):
        measure(backend_for(server, binary, use_gpu="1"), OPS[:1], QUICK)


def test_shell_v1_exit_codes_by_marker(server, binary, phone):
    phone.shell_v2 = False
    (m,) = measure(backend_for(server, binary), OPS[:1], QUICK)
    assert m.median_ms > 0
    assert not any(r.startswith("shell,v2") for r in server.requests)
    assert any(r.startswith("shell:") and "HWLAT_EXIT:$?" in r for r in server.requests)
    os.remove(binary)  # the phone's copy was removed afterwards: now nothing can be found
    with pytest.raises(AdbDeviceError, match="neither a file here nor on emulator-5554"):
        backend_for(server, binary).describe()


# ------------------------------------------------------------------ failures
def test_disconnect_midrun_is_retried(server, binary, phone):
    phone.faults.disconnect_runs, phone.faults.offline_s = 1, 0.3
    results = measure(backend_for(server, binary), OPS, QUICK)
    assert sum(dict(m.extra)["retries"] for m in results) == 1
    assert len(phone.runs) == sum(m.rounds for m in results) + 1  # the dropped run, then the retry
    assert phone.files == {}


def test_hung_run_is_killed_and_retried(server, binary, phone):
    phone.faults.hang_runs = 1
    t0 = time.perf_counter()
    (m,) = measure(backend_for(server, binary, timeout="1"), OPS[:1], QUICK)
    assert time.perf_counter() - t0 < 10
    assert phone.runs[0]["killed"] is True  # by pid, from the pid file
    assert dict(m.extra)["retries"] == 1 and m.median_ms > 0


def test_hot_phone_is_waited_for(server, binary, phone):
    phone.heat(75.0, cool_s=1.0)
    (m,) = measure(backend_for(server, binary, max_temp="45"), OPS[:1], QUICK)
    extra = dict(m.extra)
    assert extra["temp_c"] <= 45 and extra["freq_ratio"] >= 0.9 and extra["thermal_timeouts"] == 0
    assert 0.3 < extra["thermal_wait_s"] < 2.0


def test_thermal_wait_is_bounded(server, binary, phone):
    phone.heat(75.0, cool_s=600)
    (m,) = measure(backend_for(server, binary, max_temp="45", thermal_wait="0.3"), OPS[:1], QUICK)
    extra = dict(m.extra)
    assert extra["thermal_timeouts"] == m.rounds and extra["temp_c"] > 70 and extra["freq_ratio"] < 0.6


def test_performance_governor_gates_on_current_frequency(server, binary, phone):
    phone.governor = "performance"
    (m,) = measure(backend_for(server, binary), OPS[:1], QUICK)
    assert dict(m.extra)["freq_ratio"] == 1.0


def test_malformed_output(server, binary, phone):
    phone.faults.malformed_runs = 1
    (m,) = measure(backend_for(server, binary), OPS[:1], QUICK)
    assert m.median_ms > 0 and dict(m.extra)["retries"] == 1
    phone.faults.malformed_runs = 10
    with pytest.raises(AdbDeviceError, match="could not read benchmark_model's output .* 2 times"):
        measure(backend_for(server, binary, retries="1"), OPS[:1], QUICK)


def test_missing_binary_and_wrong_abi(server, tmp_path, phone):
    with pytest.raises(AdbDeviceError, match="no benchmark_model on emulator-5554 .*android_aarch64_benchmark_model"):
        backend_for(server).describe()
    x86 = tmp_path / "bm_x86"
    x86.write_bytes(fake_benchmark_binary("x86_64"))
    with pytest.raises(AdbDeviceError, match="built for x86_64, but emulator-5554 runs arm64-v8a"):
        backend_for(server, x86).describe()
    not_elf = tmp_path / "bm.sh"
    not_elf.write_text("#!/bin/sh\n")
    with pytest.raises(AdbDeviceError, match="is not an ELF executable"):
        backend_for(server, not_elf).describe()
    # A wrong binary already on the phone fails when it runs, as on a real phone.
    phone.write("/data/local/tmp/benchmark_model", fake_benchmark_binary("x86_64"), 0o755)
    with pytest.raises(AdbDeviceError, match="cannot run on emulator-5554 .*not executable: 64-bit ELF file"):
        measure(backend_for(server), OPS[:1], QUICK)


def test_bad_devices_and_options(server, binary):
    t0 = time.perf_counter()
    with pytest.raises(AdbDeviceError, match=r"no phone R58M on the adb server .* emulator-5554 \(device\)"):
        create_backend("adb:R58M", options={"adb_port": str(server.port), "timeout": "0.5"}).describe()
    assert 0.4 < time.perf_counter() - t0 < 3  # it waited (bounded) for the phone to show up
    with pytest.raises(ValueError, match="give the phone's serial as adb:SERIAL"):
        create_backend("adb")
    with pytest.raises(ValueError, match="Invalid option.*colour.*valid options: .*bench_binary"):
        backend_for(server, colour="red")
    with pytest.raises(ValueError, match="Invalid device option timeout='soon'"):
        backend_for(server, timeout="soon")
    with pytest.raises(ValueError, match="precision 'int8'"):
        create_backend("adb:x", precision="int8")
    with pytest.raises(ValueError, match="Invalid cores='9'"):
        backend_for(server, binary, cores="9").describe()


@pytest.mark.skipif(shutil.which("adb") is None, reason="the adb command-line client is not installed")
def test_real_adb_client_talks_to_the_emulator(server, tmp_path):
    """The fake server answers the real `adb` CLI too (shell v2 exit codes, push, pull)."""

    def adb(*args):
        return subprocess.run(
            ["adb", "-P", str(server.port), "-s", "emulator-5554", *args], capture_output=True, text=True, timeout=30
        )

    assert (
        "emulator-5554\tdevice"
        in subprocess.run(["adb", "-P", str(server.port), "devices"], capture_output=True, text=True, timeout=30).stdout
    )
    proc = adb("shell", "getprop ro.product.cpu.abi; exit 3")
    assert proc.stdout.strip() == "arm64-v8a" and proc.returncode == 3
    src = tmp_path / "x.bin"
    src.write_bytes(os.urandom(200_000))
    assert adb("push", str(src), "/data/local/tmp/x.bin").returncode == 0
    assert adb("pull", "/data/local/tmp/x.bin", str(tmp_path / "y.bin")).returncode == 0
    assert (tmp_path / "y.bin").read_bytes() == src.read_bytes()


def test_the_adb_backend_is_a_backend_with_hooks(server, binary, phone):
    """prepare pushes the model; time_block runs one invocation of the planned block; close removes the model."""
    from hwlat.devices.adb import AdbBackend
    from hwlat.measure import BlockPlan

    backend = backend_for(server, binary)
    assert isinstance(backend, AdbBackend) and not hasattr(backend, "measure_items") and not backend.per_run_times
    protocol = Protocol.fixed(warmup_runs=2, warmup_s=0.001, runs=4, min_s=0.003)
    with backend.session():
        runnable = backend.prepare(OPS[0])
        assert backend.warm_up(runnable, protocol) is None  # each invocation warms up itself
        remote = [k for k in phone.files if k.endswith(".tflite")]
        assert len(remote) == 1
        block = backend.time_block(runnable, protocol.stop.plan(protocol, None))
        assert block.sample.timed.count >= 4 and block.spent_s >= 0.003 and block.wall_s > 0
        argv = set(phone.runs[-1]["argv"])
        assert {"--warmup_runs=2", "--warmup_min_secs=0.001", "--num_runs=4", "--min_secs=0.003"} <= argv
        m = backend.summarize(runnable, [block.sample], protocol=protocol, wall_s=block.wall_s)
        assert m.rounds == 1 and m.protocol == protocol.key and m.stable == (not m.warnings)
        backend.time_block(runnable, BlockPlan(1, 0.002))
        assert {"--num_runs=1", "--min_secs=0.002"} <= set(phone.runs[-1]["argv"])
        runnable.close()
        assert not [k for k in phone.files if k.endswith(".tflite")]
        with pytest.raises(TypeError, match="time_block"):
            backend.run(runnable, 1)
