"""``hwlat devices`` and ``hwlat measure`` against an emulated phone (a fake adb server on a free loopback port)."""

import _adb_helpers
import pytest
from _adb_helpers import OPS

from hwlat.cli import main
from hwlat.store import LatencyStore

# The emulated phone's fixtures, shared with test_adb.py (no_adb_spawn applies to every test here).
no_adb_spawn = _adb_helpers.no_adb_spawn
phone = _adb_helpers.phone
server = _adb_helpers.server
binary = _adb_helpers.binary


@pytest.fixture(autouse=True)
def no_log_handlers(monkeypatch):
    """cli.main() calls logging.basicConfig; in-process, that would leave a handler on a closed stream."""
    import logging

    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)


def test_devices_command_shows_phones(server, monkeypatch, capsys):
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    assert main(["devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("adb ") and " yes " in line for line in lines)
    row = next(line for line in lines if line.startswith("emulator-5554"))
    assert row.split()[:4] == ["emulator-5554", "device", "Pixel", "7"] and "arm64-v8a" in row and row.endswith("14")


def test_retries_exhausted_then_resume_from_the_cli(server, binary, phone, tmp_path, monkeypatch, capsys):
    """A failing run ends in one line naming cause and fix; re-running resumes: no lost, no duplicate rows."""
    from hwlat.devices.litert import convert_tflite
    from hwlat.spaces import get_space

    assert [op.key for op in get_space("pwconv").sample(2, seed=0)] == [op.key for op in OPS]
    for op in OPS:  # cached by the tests above (the converter's own log lines would mix into stderr)
        convert_tflite(op, 1)
    capsys.readouterr()
    db = tmp_path / "phone.db"
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
    args = [
        "measure",
        "--device",
        "adb:emulator-5554/retries=1/backoff=0.05/timeout=3",
        "--bench-binary",
        str(binary),
        "--space",
        "pwconv",
        "--n",
        "2",
        "--db",
        str(db),
        "--protocol",
        "fixed",
        "-q",
    ]
    phone.faults.after_runs, phone.faults.disconnect_runs, phone.faults.offline_s = 1, 99, 0.05
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hwlat measure: error: adb:emulator-5554: disconnect while running benchmark_model")
    assert "run the same command again" in err[-1] and "Traceback" not in "".join(err)
    assert all("; retry 1/1 in" in line for line in err[:-1])  # retry notes (logging), when shown
    with LatencyStore(db, readonly=True) as store:
        assert len(store) == 1
    phone.faults.disconnect_runs = 0
    assert main(args) == 0
    assert "adb/t1/b1/fp32/serial=emulator-5554: 1 measured, 1 already in" in capsys.readouterr().out
    with LatencyStore(db, readonly=True) as store:
        rows = list(store.measurements())
        info = next(iter(store.devices().values()))
    assert sorted(m.op_key for m in rows) == sorted(op.key for op in OPS)
    assert info["runtime"] == "TFLite benchmark_model" and info["extra"]["serial"] == "emulator-5554"
    assert (
        main(["measure", "--device", "fake", "--bench-binary", str(binary), "--space", "pwconv", "--db", str(db)]) == 2
    )
    assert "--bench-binary is for phones" in capsys.readouterr().err
