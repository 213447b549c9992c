"""The latency table under ``hwlat measure``: a run killed mid-way loses only the ops in flight, and resumes."""

import os
import signal
import subprocess
import sys
import time

from hwlat.store import LatencyStore, StoreError


def test_sigkill_mid_run_loses_only_ops_in_flight(tmp_path):
    db = tmp_path / "kill.db"
    args = [
        sys.executable,
        "-m",
        "hwlat.cli",
        "measure",
        "--device",
        "fake/realtime=1",
        "--space",
        "pwconv",
        "--n",
        "40",
        "--db",
        str(db),
        "--quiet",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    rows_before = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                with LatencyStore(db, readonly=True) as s:
                    rows_before = len(s)
            except StoreError:
                continue
            if rows_before >= 10:
                break
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with LatencyStore(db, readonly=True) as s:
        saved = {m.op_key: m for m in s.measurements()}
    assert len(saved) >= rows_before >= 10
    assert len(saved) < 40
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(saved)} already in" in done.stdout
    with LatencyStore(db, readonly=True) as s:
        after = {m.op_key: m for m in s.measurements()}
        assert len(after) == 40 == len(s)
    for key, m in saved.items():  # completed rows survive unchanged
        assert after[key] == m
