"""The GPU session kit (benchmarks/gpu_session.sh, gpu_session.py, gpu_ingest.py), rehearsed on the
fake backend: the session a GPU machine runs against its deadline, and the ingest that turns its
files into shipped tables, predictor results and the cross-device comparison."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_session  # noqa: E402


def test_names_and_interleaving():
    assert gpu_session.device_string("cuda", "graph", 8, 0) == "cuda/b8/mode=graph"
    assert gpu_session.device_string("cuda", "eager", 1, 1, "fp16/energy=1") == "cuda/mode=eager/gpu=1/fp16/energy=1"
    assert gpu_session.table_name("cuda/t1/b8/fp32/mode=graph") == "cuda-graph-b8"
    assert gpu_session.table_name("cuda/t1/b1/fp32") == "cuda-eager-b1"
    assert gpu_session.interleave([[1, 2, 3, 4, 5], ["a"], ["x", "y"]], [2, 1, 1]) == [1, 2, "a", "x", 3, 4, "y", 5]
    assert gpu_session.interleave([[], [1]], [3, 1]) == [1]


def test_table_items_are_a_prefix_of_a_longer_session():
    """A short session measures the first items of a long one: tables from several sessions extend each other."""
    import argparse

    short = gpu_session.table_items(argparse.Namespace(n_ops=40, n_nets=5))
    long = gpu_session.table_items(argparse.Namespace(n_ops=500, n_nets=200))
    assert len({it.key for it in long}) == len(long)  # no item twice
    keys = [it.key for it in long]
    assert [it.key for it in short][:30] == keys[:30]
    kinds = [it.kind for it in long[:23]]
    assert "network" in kinds and "mbconv" in kinds  # the first chunk already holds networks


def test_a_failing_stage_is_recorded_and_the_session_goes_on(tmp_path):
    s = gpu_session.Session(tmp_path, deadline_s=30, meta={"backend": "fake"})

    def boom():
        raise RuntimeError("CUDA error: out of memory")

    bad = s.stage("tables", boom)
    good = s.stage("repeat", lambda: {"rows": {}})
    late = s.stage("extras", lambda: {}, min_left_s=1e6)
    assert bad["status"] == "error" and "out of memory" in bad["error"]
    assert good["status"] == "ok" and late["status"] == "skipped"
    report = json.loads((tmp_path / "session.json").read_text())
    assert [st["status"] for st in report["stages"]] == ["error", "ok", "skipped"]
    assert report["errors"][0]["stage"] == "tables" and "Traceback" in report["errors"][0]["traceback"]
    assert "| tables | error |" in (tmp_path / "session.md").read_text()


def test_the_timer_stops_a_measurement_and_keeps_what_finished(tmp_path):
    from hwlat.measure import Protocol
    from hwlat.store import LatencyStore
    from hwlat.workflows import resolve_networks

    s = gpu_session.Session(tmp_path, deadline_s=1.5, meta={})
    nets = resolve_networks("random:40")  # ~0.1 s each on the real-time fake device
    t = time.monotonic()
    with pytest.raises(gpu_session.Deadline):
        gpu_session.measure_into(s, tmp_path / "t.db", "fake/realtime=1", nets, Protocol(budget_s=0.05))
    assert time.monotonic() - t < 3.0
    with LatencyStore(tmp_path / "t.db", readonly=True) as store:
        assert 0 < store.count() < len(nets)


def _as_if_measured_on(db, backend):
    """Rename a rehearsal's fake device keys to ``backend``'s, as if another machine had measured them."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE measurements SET device_key = ? || substr(device_key, 5)", (backend,))
        rows = conn.execute("SELECT info_id, device_key, info_json FROM devices").fetchall()
        for info_id, key, text in rows:
            info = json.loads(text)
            info.update(backend=backend, device_key=backend + key[4:])
            conn.execute(
                "UPDATE devices SET device_key = ?, info_json = ? WHERE info_id = ?",
                (backend + key[4:], json.dumps(info, sort_keys=True), info_id),
            )


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_session_then_ingest_rehearsal(tmp_path):
    out = tmp_path / "session"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "HWLAT_CACHE": str(tmp_path / "cache")}
    proc = _run(
        [
            "bash",
            "benchmarks/gpu_session.sh",
            "--backend",
            "fake",
            "--deadline-s",
            "120",
            "--reserve-s",
            "20",
            "--n-ops",
            "40",
            "--n-nets",
            "12",
        ],
        env=env,
    )
    assert "from /tmp/hwlat-site." in proc.stdout  # the copied package, not the checkout, was imported
    assert sorted(p.name for p in out.iterdir()) == [
        "compare.db",
        "gpu.db",
        "gpu_repeat.db",
        "session.json",
        "session.log",
        "session.md",
    ]  # one file per table: no WAL left
    report = json.loads((out / "session.json").read_text())
    stages = {st["name"]: st for st in report["stages"]}
    assert list(stages) == ["env", "compare", "tests", "tables", "repeat", "extras"]
    assert all(st["status"] == "ok" for st in stages.values()), report
    assert "skipped" in stages["tests"]["detail"]["summary"]  # no CUDA here: the gpu tests skip with the reason
    items = stages["tables"]["detail"]["items_per_device"]
    assert set(report["tables"]) == {f"fake/t1/b{b}/fp32/mode={m}" for m, b in gpu_session.CONFIGS}
    assert all(t["rows"] == items for t in report["tables"].values())
    with sqlite3.connect(out / "compare.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 5 * 6  # 4 configs + fp16 + energy

    # Here the rows pass for a GPU's: the ingest runs where `cuda` is unavailable, as it will for real.
    for name in ("gpu.db", "gpu_repeat.db", "compare.db"):
        _as_if_measured_on(out / name, "cuda")
    (out / "session.json").write_text(json.dumps({**report, "backend": "cuda"}))
    tables, results = tmp_path / "tables", tmp_path / "results"
    _run(
        [
            sys.executable,
            "benchmarks/gpu_ingest.py",
            str(out),
            "--tables",
            str(tables),
            "--results",
            str(results),
            "--cpu-devices",
            "fake/cores=0",
            "--work",
            str(tmp_path / "work"),
        ]
    )
    for m, b in gpu_session.CONFIGS:
        csv = tables / f"cuda-{m}-b{b}_mbconv.csv"
        assert csv.exists() and (tables / f"cuda-{m}-b{b}_mbconv_repeat.csv").exists()
        card = csv.with_suffix(".md").read_text()
        assert f"`cuda/t1/b{b}/fp32/mode={m}`" in card and "network rows | 12" in card and "repeatability" in card
        assert "CPU threads of the process launching the GPU work" in card
    acc = json.loads((results / "gpu_predictor_accuracy.json").read_text())["results"]
    assert [r["device"] for r in acc] == [f"cuda-{m}-b{b}" for m, b in gpu_session.CONFIGS]
    assert all(r["n_networks"] == 12 and r["n_calibration_networks"] == 6 and r["noise_floor"] for r in acc)
    best = [c for c in acc[0]["curves"] if c["model"] == "prior+gbr" and c["train_per_kind"] == "all"][0]
    assert best["ops"]["acc10"] > 0.9  # the fake device is a roofline: the prior fits it
    md = (results / "compare" / "compare.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    assert header.count("`cuda/") == 4 and "`cuda/b8/mode=graph`" in header and "`fake/cores=0`" in header
    assert md.count("(#1)") == 5  # one fastest model per device
    assert "| `cuda/b8/mode=graph` | `cuda/t1/b8/fp32/mode=graph` | fake roofline device |" in md  # from the table
    assert "fp16 speed-up" in (results / "gpu_zoo_extras.md").read_text()
    assert (results / "gpu_tables.md").exists() and (results / "gpu_session.md").exists()


def test_session_stops_at_once_when_the_backend_is_unavailable(tmp_path):
    from hwlat.devices import get_backend

    reason = get_backend("cuda").check()
    if reason is None:
        pytest.skip("CUDA is available here")
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_session.py", "--out", str(tmp_path), "--backend", "cuda"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and f"the cuda backend is unavailable here: {reason}" in proc.stdout
    report = json.loads((tmp_path / "session.json").read_text())
    assert [st["name"] for st in report["stages"]] == ["env"] and reason in report["errors"][0]["error"]


@pytest.mark.slow
def test_session_ends_by_its_deadline(tmp_path):
    """On a slow device the tables stop at the deadline minus the reserve, and the session ends in time."""
    t = time.monotonic()
    _run(
        [
            sys.executable,
            "benchmarks/gpu_session.py",
            "--out",
            str(tmp_path),
            "--backend",
            "fake",
            "--device-options",
            "realtime=1",
            "--deadline-s",
            "25",
            "--reserve-s",
            "8",
            "--tests",
            "none",
            "--extras",
            "no",
            "--n-ops",
            "500",
            "--n-nets",
            "200",
            "--chunk",
            "8",
        ]
    )
    wall = time.monotonic() - t
    report = json.loads((tmp_path / "session.json").read_text())
    stages = {st["name"]: st for st in report["stages"]}
    assert stages["tables"]["status"] == "deadline"
    rows = [t["rows"] for t in report["tables"].values()]
    assert rows and all(0 < r < 500 for r in rows)
    assert report["elapsed_s"] <= 25 + 3 and wall < 25 + 20  # + interpreter start-up and imports
