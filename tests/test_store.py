import hashlib
import sqlite3

import pytest

from hwlat.devices import create_backend
from hwlat.measure import Protocol, measure
from hwlat.ops import OpSpec
from hwlat.store import LatencyStore, StoreError

OPS = [OpSpec("pwconv", cin=c, cout=2 * c, h=14, w=14) for c in (8, 16, 24, 32, 40)]


def filled(path, ops=OPS):
    backend = create_backend("fake")
    store = LatencyStore(path)
    info_id = store.add_device(backend.describe())
    results = measure(backend, ops, on_result=lambda m: store.add(m, info_id))
    return store, results


def test_round_trip_and_provenance(tmp_path):
    store, results = filled(tmp_path / "t.db")
    assert len(store) == len(OPS)
    back = {m.op_key: m for m in store.measurements()}
    for m in results:
        assert back[m.op_key] == m
    df = store.frame()
    assert set(df["op_key"]) == {op.key for op in OPS}
    assert (df["hardware"] == "fake roofline device").all()
    assert (df["hwlat_version"] != "").all()
    assert df["stable"].dtype == bool
    # values, not JSON text
    by_key = df.set_index("op_key")
    for m in results:
        assert by_key.loc[m.op_key, "round_medians_ms"] == m.round_medians_ms
        assert by_key.loc[m.op_key, "extra"] == dict(m.extra)
    assert "extra_json" not in df.columns


def test_rerun_adds_no_duplicates(tmp_path):
    store, results = filled(tmp_path / "t.db")
    info_id = store.add_device(create_backend("fake").describe())
    assert not any(store.add(m, info_id) for m in results)
    assert len(store) == len(OPS)
    assert store.done_keys("fake/t1/b1/fp32", results[0].protocol) == {op.key for op in OPS}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_import_round_trip(tmp_path, suffix):
    store, _ = filled(tmp_path / "a.db")
    store.export(tmp_path / f"t{suffix}")
    other = LatencyStore(tmp_path / "b.db")
    assert other.import_file(tmp_path / f"t{suffix}") == len(OPS)
    assert other.import_file(tmp_path / f"t{suffix}") == 0
    assert list(other.measurements()) == list(store.measurements())
    assert other.devices() == store.devices()


def test_export_one_device_and_its_provenance(tmp_path):
    store, _ = filled(tmp_path / "a.db")
    other = create_backend("fake/b8")
    info_id = store.add_device(other.describe())
    (m,) = measure(other, OPS[:1], Protocol(min_rounds=3, budget_s=0.01))
    store.add(m, info_id)
    assert store.count() == len(OPS) + 1 and store.count("fake/t1/b8/fp32") == 1
    assert store.device_info("fake/t1/b8/fp32")["device_key"] == "fake/t1/b8/fp32"
    assert store.device_info("cuda/t1/b1/fp32") is None
    store.export(tmp_path / "b8.csv", "fake/t1/b8/fp32")
    copy = LatencyStore(":memory:")
    assert copy.import_file(tmp_path / "b8.csv") == 1 and copy.device_keys() == ["fake/t1/b8/fp32"]
    with pytest.raises(StoreError, match="no rows for device 'cuda/t1/b1/fp32'; devices there: fake/t1/b1/fp32"):
        store.export(tmp_path / "none.csv", "cuda/t1/b1/fp32")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_foreign_sqlite_refused_untouched(tmp_path):
    path = tmp_path / "foreign.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="not an hwlat latency table"):
        LatencyStore(path)
    assert _digest(path) == before


def test_corrupt_file_refused_untouched(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 20)
    before = _digest(path)
    with pytest.raises(StoreError, match="not an SQLite file"):
        LatencyStore(path)
    assert _digest(path) == before


def test_truncated_table_refused(tmp_path):
    store, _ = filled(tmp_path / "t.db")
    store.close()
    raw = (tmp_path / "t.db").read_bytes()
    (tmp_path / "cut.db").write_bytes(raw[:100] + b"\x00" * 50)
    with pytest.raises(StoreError):
        LatencyStore(tmp_path / "cut.db").frame()


def test_unwritable_path_fails_before_measuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create folder"):
        LatencyStore(blocker / "sub" / "t.db")
    with pytest.raises(StoreError, match="is a folder"):
        LatencyStore(tmp_path)


def test_readonly_missing(tmp_path):
    with pytest.raises(StoreError, match="no such latency table"):
        LatencyStore(tmp_path / "none.db", readonly=True)
