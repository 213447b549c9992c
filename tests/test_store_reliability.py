"""Nothing a user feeds a latency table poisons or destroys it; every failure is one line (issue #12)."""

import csv
import dataclasses
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_cli

from hwlat.devices import create_backend
from hwlat.formats.lut import import_lut, read_lut
from hwlat.measure import measure
from hwlat.ops import OpSpec
from hwlat.store import APPLICATION_ID, LatencyStore, StoreError

ROOT = Path(__file__).resolve().parents[1]
PIXEL1 = ROOT / "datasets_lat" / "published" / "proxylessnas_mobile_trim.yaml"
OPS = [OpSpec("pwconv", cin=c, cout=2 * c, h=14, w=14) for c in (8, 16, 24, 32, 40)]


def one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def filled(path, ops=OPS):
    backend = create_backend("fake")
    store = LatencyStore(path)
    info_id = store.add_device(backend.describe())
    for m in measure(backend, ops):
        store.add(m, info_id)
    return store


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def exported(tmp_path, suffix=".csv"):
    with filled(tmp_path / "src.db") as store:
        return store.export(tmp_path / f"good{suffix}")


def edit_csv(src, dst, row, column, value):
    """Copy ``src`` with data row ``row`` (1-based) 's ``column`` set to ``value``."""
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[row - 1][column] = value
    with open(dst, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst


# ---------------------------------------------------------------- item 2: rows are checked, all or nothing
BAD_CELLS = [
    ("device_info_json", "not json"),
    ("device_info_json", "[1, 2]"),
    ("median_ms", "-1"),
    ("median_ms", "inf"),
    ("median_ms", "nan"),
    ("median_ms", "abc"),
    ("std_ms", "-0.5"),
    ("op_key", "mbconv:cin=abc"),
    ("op_key", "foo:cin=3"),
    ("op_key", "pwconv:cin=1000000,cout=8,h=14,w=14,act=relu6"),
    ("kind", "conv"),
    ("n", "1.5"),
    ("n", "-3"),
    ("rounds", "x"),
    ("stable", "maybe"),
    ("round_medians_ms", "[0.1, "),
    ("round_medians_ms", "[-1.0]"),
    ("extra_json", "{bad"),
    ("device_key", "fake/t1/zz"),
    ("protocol", ""),
    ("loadavg", "-2"),
]


@pytest.mark.parametrize("column, value", BAD_CELLS)
def test_bad_cell_refused_naming_row_and_column_nothing_imported(tmp_path, column, value):
    bad = edit_csv(exported(tmp_path), tmp_path / "bad.csv", 3, column, value)
    with filled(tmp_path / "dst.db", OPS[:2]) as store:
        before = list(store.measurements())
        with pytest.raises(ValueError, match=rf"row 3 \(line 4\), column '{column}'.*nothing was imported"):
            store.import_file(bad)
        assert list(store.measurements()) == before
    fresh = tmp_path / "fresh.db"
    with LatencyStore(fresh) as store, pytest.raises(ValueError, match="row 3"):
        store.import_file(bad)
    assert not fresh.exists()  # a refused import creates no table


def test_shipped_tables_pass_the_checks():
    paths = sorted((ROOT / "datasets_lat").glob("*.csv"))
    assert paths
    for path in paths:
        store = LatencyStore(":memory:")
        assert store.import_file(path) == len(pd.read_csv(path)), path


def test_parquet_nan_median_is_one_error_not_integrity_error(tmp_path):
    df = pd.read_parquet(exported(tmp_path, ".parquet"))
    df.loc[2, "median_ms"] = float("nan")
    df.to_parquet(tmp_path / "bad.parquet", index=False)
    store = LatencyStore(":memory:")
    with pytest.raises(ValueError, match=r"row 3, column 'median_ms'.*must be finite"):
        store.import_file(tmp_path / "bad.parquet")
    assert len(store) == 0 and store.devices() == {}


def test_import_files_all_or_nothing_across_files(tmp_path):
    good = exported(tmp_path)
    bad = edit_csv(good, tmp_path / "bad.csv", 1, "stable", "maybe")
    with filled(tmp_path / "dst.db", OPS[:1]) as store:
        with pytest.raises(ValueError, match="bad.csv: row 1"):
            store.import_files([good, bad])
        assert len(store) == 1


def test_cli_table_import_bad_row_one_line_nothing_created(tmp_path):
    bad = edit_csv(exported(tmp_path), tmp_path / "bad.csv", 2, "device_info_json", "{oops")
    db = tmp_path / "new.db"
    one_line_error(run_cli("table", "import", "--db", str(db), str(bad)), "row 2", "device_info_json", "not JSON")
    assert not db.exists()


def test_add_refuses_a_bad_measurement():
    store = LatencyStore(":memory:")
    info = store.add_device(create_backend("fake").describe())
    (m,) = measure(create_backend("fake"), OPS[:1])
    with pytest.raises(ValueError, match="median_ms=inf"):
        store.add(dataclasses.replace(m, median_ms=float("inf")), info)
    with pytest.raises(ValueError, match="Invalid cin='abc' in op key"):
        store.add(dataclasses.replace(m, op_key="mbconv:cin=abc"), info)
    assert len(store) == 0


# ---------------------------------------------------------------- item 3: LUT imports are atomic
def write_lut(path, entries):
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def pixel_entries(n=5):
    return dict(list(read_lut(PIXEL1).items())[:n])


def test_lut_third_entry_nan_commits_nothing(tmp_path):
    entries = pixel_entries()
    key = list(entries)[2]
    entries[key] = {**entries[key], "mean": float("nan")}
    lut = write_lut(tmp_path / "nan.yaml", entries)
    with filled(tmp_path / "t.db", OPS[:2]) as store:
        devices = store.devices()
        with pytest.raises(ValueError, match=rf"entry '{key}': mean=nan must be a finite number"):
            import_lut(lut, store, "pix")
        assert len(store) == 2 and store.devices() == devices


@pytest.mark.parametrize(
    "change",
    [
        {"Foo-input:7x7x3-output:7x7x3": {"mean": 1.0}},
        {"Conv-input:224x224x3-output:112x112x32": {"mean": "abc"}},
        {"Conv-input:224x224x3-output:112x112x32": {"mean": 1.0, "var": -1.0}},
        {"Conv-input:224x224x3-output:112x112x32": {"mean": 1.0, "count": 2.5}},
        {"Conv_1-input:7x7x100000000-output:7x7x1280": {"mean": 1.0}},
    ],
)
def test_lut_bad_entry_creates_neither_table_nor_device(tmp_path, change):
    lut = write_lut(tmp_path / "bad.yaml", {**pixel_entries(3), **change})
    db = tmp_path / "new.db"
    with LatencyStore(db) as store, pytest.raises(ValueError, match="nothing was imported"):
        import_lut(lut, store, "pix")
    assert not db.exists()
    one_line_error(run_cli("lut", "import", str(lut), "--db", str(db), "--device", "pix"), "bad.yaml")
    assert not db.exists()


# ---------------------------------------------------------------- item 4: one line, no traceback
def test_lut_yaml_syntax_error_one_line_with_line(tmp_path):
    lut = tmp_path / "syntax.yaml"
    lut.write_text("Conv-input:224x224x3-output:112x112x32:\n  mean: [1, 2\n  var: 0\n")
    with pytest.raises(ValueError, match=r"syntax.yaml, line 3: not valid YAML"):
        read_lut(lut)
    one_line_error(run_cli("lut", "import", str(lut), "--db", str(tmp_path / "t.db"), "--device", "x"), "line 3")
    assert not (tmp_path / "t.db").exists()


def test_lut_python_tag_refused_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    lut = tmp_path / "evil.yaml"
    lut.write_text(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    line = one_line_error(
        run_cli("lut", "import", str(lut), "--db", str(tmp_path / "t.db"), "--device", "x"),
        "evil.yaml, line 1",
        "tag not allowed",
        "nothing was run",
    )
    assert "python/object/apply" in line
    assert not marker.exists() and not (tmp_path / "t.db").exists()


def test_locked_table_says_which_file_and_to_retry(tmp_path):
    path = tmp_path / "t.db"
    filled(path, OPS[:1]).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        store = LatencyStore(path, timeout_s=0.05)
        with pytest.raises(StoreError, match=rf"{path}: locked by another process for more than 0.05 s.*retry"):
            store.import_file(exported(tmp_path))
        store.close()
        proc = run_cli(
            "table", "import", "--db", str(path), str(tmp_path / "good.csv"), env={"HWLAT_BUSY_TIMEOUT_S": "0.05"}
        )
        one_line_error(proc, str(path), "locked by another process", "retry")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with LatencyStore(path, readonly=True) as store:
        assert len(store) == 1


def test_disk_full_is_one_line_and_keeps_nothing_of_the_write(tmp_path):
    path = tmp_path / "t.db"
    store = filled(path, OPS[:1])
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full now
    big = [OpSpec("pwconv", cin=c, cout=c, h=7, w=7) for c in range(8, 200)]
    info = store.add_device(create_backend("fake").describe())
    rows = measure(create_backend("fake"), big)
    with pytest.raises(StoreError, match=rf"{path}: disk full while writing.*free some space"):
        store.add_many((m, info) for m in rows)
    assert len(store) == 1
    store.close()


def test_export_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    store = filled(tmp_path / "t.db")
    out = tmp_path / "t.csv"

    def full(self, path, **kw):
        Path(path).write_text("device_key,op_")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(StoreError, match="No space left on device.*nothing was written"):
        store.export(out)
    assert not out.exists()
    out.write_text("old")
    with pytest.raises(StoreError, match="the old file is unchanged"):
        store.export(out)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir() if "t.csv" in p.name) == ["t.csv"]


def test_application_id_but_other_schema_refused_untouched(tmp_path):
    path = tmp_path / "impostor.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreError, match="hwlat's application id but not its schema"):
        LatencyStore(path)
    assert digest(path) == before
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["t"]
    conn.close()


def _flip_index_page(path):
    conn = sqlite3.connect(path)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='sqlite_autoindex_measurements_1'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    raw = bytearray(path.read_bytes())
    raw[(root - 1) * size : (root - 1) * size + 12] = b"\xff" * 12
    path.write_bytes(bytes(raw))


def test_flipped_bytes_refused_on_open(tmp_path):
    path = tmp_path / "flipped.db"
    filled(path).close()
    _flip_index_page(path)
    before = digest(path)
    with pytest.raises(StoreError, match="corrupt"):
        LatencyStore(path, readonly=True)
    with pytest.raises(StoreError, match="corrupt"):
        LatencyStore(path)
    one_line_error(run_cli("table", "show", "--db", str(path)), str(path), "corrupt", "backup")
    assert digest(path) == before


# ---------------------------------------------------------------- item 5: creating a table is atomic
def test_crash_before_rename_leaves_nothing_and_rerun_works(tmp_path, monkeypatch):
    path = tmp_path / "t.db"

    def crash(*a, **kw):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "link", crash)
    store = LatencyStore(path)
    with pytest.raises(StoreError, match="cannot create"):
        store.add_device(create_backend("fake").describe())
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    filled(path).close()
    with LatencyStore(path, readonly=True) as store:
        assert len(store) == len(OPS)


KILL_AT_LINK = """
import os, signal, sys
from hwlat.devices import create_backend
from hwlat.store import LatencyStore
os.link = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
LatencyStore(sys.argv[1]).add_device(create_backend("fake").describe())
"""


def test_sigkill_while_creating_leaves_no_table_and_rerun_cleans_up(tmp_path):
    path = tmp_path / "t.db"
    proc = subprocess.run([sys.executable, "-c", KILL_AT_LINK, str(path)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not path.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers and all(n.startswith(".t.db.hwlat-new-") for n in leftovers)
    proc = run_cli("measure", "--device", "fake", "--space", "pwconv", "--n", "3", "--db", str(path), "-q")
    assert proc.returncode == 0 and "3 measured" in proc.stdout, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["t.db"]


def test_old_partial_file_is_named_as_such(tmp_path):
    path = tmp_path / "half.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")  # what an older hwlat left when killed before application_id
    conn.close()
    with pytest.raises(StoreError, match="holds no tables.*killed while creating it, delete it"):
        LatencyStore(path)


def test_two_stores_creating_one_file_share_it(tmp_path):
    path = tmp_path / "t.db"
    a, b = LatencyStore(path), LatencyStore(path)
    (m1, m2) = measure(create_backend("fake"), OPS[:2])
    a.add(m1, a.add_device(create_backend("fake").describe()))
    b.add(m2, b.add_device(create_backend("fake").describe()))  # b found a's file: nothing replaced
    a.close()
    b.close()
    with LatencyStore(path, readonly=True) as store:
        assert len(store) == 2


def test_empty_placeholder_file_becomes_a_table(tmp_path):
    path = tmp_path / "t.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="empty file"):
        LatencyStore(path, readonly=True)
    filled(path).close()
    with LatencyStore(path, readonly=True) as store:
        assert len(store) == len(OPS)


# ---------------------------------------------------------------- item 8: input size caps
def test_input_files_over_the_cap_refused(tmp_path, monkeypatch):
    store = LatencyStore(":memory:")
    with pytest.raises(ValueError, match=r"over the 0.001 MB limit for a lut file; set HWLAT_MAX_INPUT_MB"):
        import_lut(PIXEL1, store, "pix", max_mb=0.001)
    good = exported(tmp_path)
    monkeypatch.setenv("HWLAT_MAX_INPUT_MB", "0.0001")
    with pytest.raises(ValueError, match=r"over the 0.0001 MB limit for a table file"):
        store.import_file(good)
    monkeypatch.setenv("HWLAT_MAX_INPUT_MB", "abc")
    with pytest.raises(ValueError, match="Invalid HWLAT_MAX_INPUT_MB='abc'"):
        store.import_file(good)
    monkeypatch.setenv("HWLAT_MAX_INPUT_MB", "50")
    assert import_lut(PIXEL1, store, "pix") == 73
    assert len(store) == 73
    proc = run_cli(
        "lut",
        "import",
        str(PIXEL1),
        "--db",
        str(tmp_path / "t.db"),
        "--device",
        "p",
        env={"HWLAT_MAX_INPUT_MB": "0.01"},
    )
    one_line_error(proc, "HWLAT_MAX_INPUT_MB")
    assert not (tmp_path / "t.db").exists()


# ---------------------------------------------------------------- item 9: LUT device names
@pytest.mark.parametrize("name", ["a/b=c", "", "x y", "-lead", "a:b"])
def test_lut_device_name_must_be_plain(tmp_path, name):
    db = tmp_path / "t.db"
    with LatencyStore(db) as store, pytest.raises(ValueError, match="Invalid LUT device name"):
        import_lut(PIXEL1, store, name)
    assert not db.exists()


def test_cli_lut_device_name_one_line(tmp_path):
    db = tmp_path / "t.db"
    one_line_error(
        run_cli("lut", "import", str(PIXEL1), "--db", str(db), "--device", "a/b=c"), "Invalid LUT device name 'a/b=c'"
    )
    assert not db.exists()
