import sqlite3

from conftest import measured_elsewhere, run_cli

from hwlat.cli import main
from hwlat.measure import Protocol
from hwlat.store import LatencyStore
from hwlat.zoo import get_network


def one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_devices_lists_backends():
    proc = run_cli("devices")
    assert proc.returncode == 0, proc.stderr
    for name in ("fake", "torch-cpu", "onnxruntime-cpu", "litert-cpu"):
        assert name in proc.stdout


def test_measure_show_export_import_resume(tmp_path):
    db = tmp_path / "t.db"
    proc = run_cli("measure", "--device", "fake", "--space", "pwconv", "--n", "12", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "12 measured, 0 already in" in proc.stdout
    again = run_cli("measure", "--device", "fake", "--space", "pwconv", "--n", "12", "--db", str(db))
    assert "0 measured, 12 already in" in again.stdout
    more = run_cli("measure", "--device", "fake", "--space", "pwconv", "--n", "15", "--db", str(db), "-q")
    assert "3 measured, 12 already in" in more.stdout
    show = run_cli("table", "show", "--db", str(db), "--rows", "3")
    assert show.returncode == 0 and "pwconv" in show.stdout and "fake/t1/b1/fp32" in show.stdout
    out = tmp_path / "t.csv"
    assert run_cli("table", "export", "--db", str(db), "--out", str(out)).returncode == 0
    imp = run_cli("table", "import", "--db", str(tmp_path / "copy.db"), str(out))
    assert imp.returncode == 0 and "15 rows imported" in imp.stdout
    with LatencyStore(tmp_path / "copy.db", readonly=True) as a, LatencyStore(db, readonly=True) as b:
        assert list(a.measurements()) == list(b.measurements())
    # a second device in the same table: --device picks its rows, by device string or key
    assert (
        run_cli("measure", "--device", "fake/b8", "--space", "pwconv", "--n", "4", "--db", str(db), "-q").returncode
        == 0
    )
    one = run_cli("table", "export", "--db", str(db), "--device", "fake/b8", "--out", str(tmp_path / "b8.csv"))
    assert one.returncode == 0 and "4 rows written" in one.stdout and "(device fake/t1/b8/fp32)" in one.stdout
    one_line_error(
        run_cli("table", "export", "--db", str(db), "--device", "fake", "--out", str(tmp_path / "x.csv")),
        "matches 2 devices",
        "fake/t1/b1/fp32, fake/t1/b8/fp32",
    )


def test_unknown_device_and_space(tmp_path):
    one_line_error(
        run_cli("measure", "--device", "tpu", "--space", "mbconv", "--db", str(tmp_path / "x.db")),
        "Unknown device 'tpu'",
        "onnxruntime-cpu",
    )
    one_line_error(
        run_cli("measure", "--device", "fake", "--space", "nope", "--db", str(tmp_path / "x.db")), "nope", "mbconv"
    )
    one_line_error(run_cli("measure", "--device", "fake", "--db", str(tmp_path / "x.db")), "--space")


def test_foreign_db_and_unwritable_path(tmp_path):
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    one_line_error(
        run_cli("measure", "--device", "fake", "--space", "pwconv", "--db", str(foreign)), "not an hwlat latency table"
    )
    assert foreign.read_bytes() == before
    (tmp_path / "f").write_text("")
    one_line_error(
        run_cli("measure", "--device", "fake", "--space", "pwconv", "--db", str(tmp_path / "f" / "x.db")),
        "cannot create folder",
    )
    one_line_error(run_cli("table", "show", "--db", str(tmp_path / "missing.db")), "no such latency table")


def test_lut_import_fit_predict_export(tmp_path):
    from pathlib import Path

    pixel1 = Path(__file__).resolve().parents[1] / "datasets_lat" / "published" / "proxylessnas_mobile_trim.yaml"
    db, pred = tmp_path / "p.db", tmp_path / "p.skops"
    proc = run_cli("lut", "import", str(pixel1), "--db", str(db), "--device", "pixel1")
    assert proc.returncode == 0 and "73 rows imported" in proc.stdout, proc.stderr
    proc = run_cli("fit", "--table", str(db), "--out", str(pred))
    assert proc.returncode == 0 and "mbconv (69)" in proc.stdout, proc.stderr
    proc = run_cli("predict", "--predictor", str(pred), "--network", "proxyless-mobile", "--ops")
    assert proc.returncode == 0, proc.stderr
    total = float(proc.stdout.split(":")[1].split("ms")[0])
    per_op = [float(line.split("ms")[0]) for line in proc.stdout.splitlines()[1:]]
    assert len(per_op) == 22 and abs(sum(per_op) - total) < 1e-2
    assert 60 < total < 120  # the paper measured 78 ms on the Pixel 1
    proc = run_cli("lut", "export", "--predictor", str(pred), "--out", str(tmp_path / "lut.yaml"))
    assert proc.returncode == 0 and "71 ops" in proc.stdout, proc.stderr
    one_line_error(
        run_cli("predict", "--predictor", str(tmp_path / "none.skops"), "--network", "resnet18"),
        "no such predictor file",
    )
    one_line_error(
        run_cli("predict", "--predictor", str(pred), "--network", "resnet18"), "no training data for op kind"
    )


def test_ctrl_c_saves_rows_and_says_how_to_resume(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "int.db"
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
        "200",
        "--db",
        str(db),
        "--quiet",
    ]
    # 200 ops take ~25 s uninterrupted: on a loaded machine the poll below may see the first rows late.
    # A job started in the background by a shell without job control (CI runners, nohup ... &) inherits
    # SIGINT ignored, and Python then never raises KeyboardInterrupt: give the child the default handling.
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            with LatencyStore(db, readonly=True) as s:
                if len(s) >= 5:
                    break
        except Exception:
            continue
    assert proc.poll() is None, "the measurement finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rows are saved" in err and "run the same command again to resume" in err
    assert "Traceback" not in err
    with LatencyStore(db, readonly=True) as s:
        assert 5 <= len(s) < 200


def test_cli_compare_end_to_end_and_resume(tmp_path, capsys, never):
    nets = [get_network(n, resolution=32) for n in ("mobilenetv2", "proxyless-gpu")]
    files = []
    for net in nets:
        files.append(str(net.save(tmp_path / f"{net.name}.json")))
    out = tmp_path / "cmp"
    args = ["compare", "--models", ",".join(files), "--devices", "fake,fake/noise=0.1", "--out", str(out), "-q"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "| mobilenetv2-r32 |" in first and "`fake/noise=0.1`" in first and "4 measured, 0 already in" in first
    assert {p.name for p in out.iterdir()} >= {"compare.md", "compare.csv", "compare.png", "compare.db"}
    assert main(args) == 0
    assert "0 measured, 4 already in" in capsys.readouterr().out

    assert main([*args[:4], "fake,never-gpu", *args[5:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device 'never-gpu' is unavailable here: no CUDA device found" in err[0]
    assert main([*args[:4], "fake,never-gpu", *args[5:], "--skip-unavailable"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipping never-gpu: no CUDA device found" in captured.err
    assert "0 measured, 2 already in" in captured.out

    # rows of never-gpu measured on another machine and imported: it gets its column
    with LatencyStore(out / "compare.db") as store:
        measured_elsewhere(store, "never-gpu", nets, Protocol())
    assert main([*args[:4], "fake,never-gpu", *args[5:]]) == 0
    captured = capsys.readouterr()
    assert (
        "note: never-gpu is unavailable here (no CUDA device found (test backend)); using its rows in" in captured.err
    )
    assert "`never-gpu`" in captured.out and "0 measured, 4 already in" in captured.out
