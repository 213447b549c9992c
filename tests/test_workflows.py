"""hwlat.workflows: measuring what a table lacks, parallel conversion, --networks values, tables and predictors."""

import numpy as np
import pytest
from conftest import QUICK

from hwlat.devices import create_backend
from hwlat.measure import Protocol
from hwlat.network import Network
from hwlat.spaces import get_space
from hwlat.store import LatencyStore
from hwlat.workflows import (
    backend_status,
    convert_parallel,
    fit_table,
    protocol_from_options,
    resolve_device_key,
    resolve_networks,
    run_measure,
    table_summary,
)
from hwlat.zoo import get_network, list_networks

OPS = get_space("pwconv").sample(12, seed=0)


# ------------------------------------------------------------- run_measure
def test_run_measure_fills_the_table_and_resumes():
    backend = create_backend("fake")
    with LatencyStore(":memory:") as store:
        assert run_measure(backend, OPS, store, QUICK, quiet=True) == (12, 0)
        first = store.frame(backend.spec.key, provenance=False).set_index("op_key")["median_ms"].sort_index()
        assert sorted(first.index) == sorted(op.key for op in OPS) and (first > 0).all()

        assert run_measure(backend, OPS, store, QUICK, quiet=True) == (0, 12)  # nothing new to measure
        assert len(store) == 12

        more = get_space("pwconv").sample(15, seed=0)  # the same 12 first, then 3 more
        assert [op.key for op in more[:12]] == [op.key for op in OPS]
        assert run_measure(backend, more, store, QUICK, quiet=True) == (3, 12)
        again = store.frame(backend.spec.key, provenance=False).set_index("op_key")["median_ms"]
        assert len(again) == 15
        np.testing.assert_array_equal(again[first.index].to_numpy(), first.to_numpy())  # old rows untouched


def test_run_measure_keeps_protocols_apart():
    backend = create_backend("fake")
    with LatencyStore(":memory:") as store:
        assert run_measure(backend, OPS[:4], store, QUICK, quiet=True) == (4, 0)
        other = Protocol(min_rounds=3, rel_ci=0.05, budget_s=0.05, warmup_s=0.005, round_s=0.005)
        assert other.key != QUICK.key
        assert run_measure(backend, OPS[:4], store, other, quiet=True) == (4, 0)  # another protocol: measured again
        assert len(store.done_keys(backend.spec.key, QUICK.key)) == len(store.done_keys(backend.spec.key, other.key))


def test_run_measure_networks_are_stored_with_their_ops():
    backend = create_backend("fake")
    nets = resolve_networks("random:2:5")
    with LatencyStore(":memory:") as store:
        assert run_measure(backend, nets, store, QUICK, quiet=True) == (2, 0)
        rows = store.frame(backend.spec.key, provenance=False)
        assert set(rows["kind"]) == {"network"} and set(rows["op_key"]) == {n.key for n in nets}


# -------------------------------------------------------- convert_parallel
def test_convert_parallel_fills_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HWLAT_CACHE", str(cache))  # the spawned workers inherit it
    backend = create_backend("onnxruntime-cpu")
    ops = OPS[:3]
    convert_parallel(backend, ops, jobs=1, quiet=True)  # one job: conversion is left to the measuring
    assert not cache.exists() or not any(cache.rglob("*.onnx"))

    convert_parallel(backend, ops, jobs=2, quiet=True)
    files = sorted(cache.rglob("*.onnx"))
    assert len(files) == 3
    assert sorted(backend.convert(op) for op in ops) == files  # the cache the measuring reads, nothing new
    assert sorted(cache.rglob("*.onnx")) == files


def test_convert_parallel_skips_backends_without_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("HWLAT_CACHE", str(tmp_path / "cache"))
    assert convert_parallel(create_backend("fake"), OPS, jobs=4, quiet=True) is None  # no pool started
    assert not (tmp_path / "cache").exists()


# -------------------------------------------------------- resolve_networks
def test_resolve_networks_grammar(tmp_path):
    assert [n.name for n in resolve_networks("random:3:7")] == ["random-7-0", "random-7-1", "random-7-2"]
    assert resolve_networks("random:3:7") == resolve_networks("random:3", seed=7)
    assert resolve_networks("random:2:7", seed=1) == resolve_networks("random:3:7")[:2]  # its own seed wins
    assert resolve_networks("random:2:1") != resolve_networks("random:2:2")

    name = list_networks()[0]
    assert resolve_networks(name) == [get_network(name)]
    path = get_network("resnet18", resolution=32).save(tmp_path / "net.json")
    (loaded,) = resolve_networks(str(path))
    assert loaded == Network.load(path) and loaded.name == "resnet18-r32"
    both = resolve_networks(f" {name} ,,{path}, ")
    assert [n.name for n in both] == [name, "resnet18-r32"]


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("resnet-18", ["Unknown network 'resnet-18'", "resnet18", "'random:N' or 'random:N:SEED'", ".json"]),
        ("random:two", ["Unknown network 'random:two'", "random:N"]),
        ("missing.json", ["Network file 'missing.json' not found"]),
        (" , ", ["No networks in", "zoo names, 'random:N', or .json paths"]),
    ],
)
def test_resolve_networks_errors_name_the_fix(spec, needles, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        resolve_networks(spec)
    for needle in needles:
        assert needle in str(info.value)


def test_resolve_networks_wants_a_string():
    with pytest.raises(TypeError, match="networks must be a string, got list"):
        resolve_networks(["resnet18"])


# ----------------------------------------------------- protocol, devices
def test_protocol_from_options():
    assert protocol_from_options() == Protocol()
    assert protocol_from_options("fixed") == Protocol.fixed()
    assert protocol_from_options("fixed", rel_ci=0.5) == Protocol.fixed()  # the fixed protocol takes no options
    p = protocol_from_options("adaptive", rel_ci=0.05, budget_s=1.5)
    assert p == Protocol(rel_ci=0.05, budget_s=1.5) and p != Protocol()
    assert "ci=0.05" in p.key and "budget=1.5s" in p.key
    with pytest.raises(ValueError, match="Unknown protocol 'adaptiv'; choose 'adaptive' or 'fixed'"):
        protocol_from_options("adaptiv")


def test_backend_status_lists_every_backend():
    from hwlat.devices import list_backends

    rows = backend_status()
    assert [r[0] for r in rows] == list_backends()
    fake = dict((name, (ok, note)) for name, ok, note in rows)["fake"]
    assert fake[0] is True and fake[1]


def _two_devices(store):
    for device in ("fake", "fake/b8"):
        run_measure(create_backend(device), OPS[:4], store, QUICK, quiet=True)


def test_resolve_device_key():
    with LatencyStore(":memory:") as store:
        with pytest.raises(ValueError, match="the table is empty"):
            resolve_device_key(store)
        run_measure(create_backend("fake"), OPS[:4], store, QUICK, quiet=True)
        assert resolve_device_key(store) == "fake/t1/b1/fp32" == resolve_device_key(store, "fake")
        run_measure(create_backend("fake/b8"), OPS[:4], store, QUICK, quiet=True)
        with pytest.raises(ValueError, match=r"several devices \(fake/t1/b1/fp32, fake/t1/b8/fp32\); pick one"):
            resolve_device_key(store)
        assert resolve_device_key(store, "fake/b8") == "fake/t1/b8/fp32"  # a device string
        assert resolve_device_key(store, "fake/t1/b1/fp32") == "fake/t1/b1/fp32"  # a full key
        with pytest.raises(ValueError, match="'fake' matches 2 devices in the table; devices there: fake/t1/b1"):
            resolve_device_key(store, "fake")
        with pytest.raises(ValueError, match="'cuda' matches 0 devices"):
            resolve_device_key(store, "cuda")


# ------------------------------------------------------ tables, predictors
def test_table_summary_values():
    with LatencyStore(":memory:") as store:
        _two_devices(store)
        frame = store.frame()
    summary = table_summary(frame)
    assert list(summary.columns) == ["device_key", "kind", "rows", "median_ms", "min_ms", "max_ms", "settled_pct"]
    assert list(summary["device_key"]) == ["fake/t1/b1/fp32", "fake/t1/b8/fp32"]
    assert list(summary["kind"]) == ["pwconv", "pwconv"] and list(summary["rows"]) == [4, 4]
    for key, row in summary.set_index("device_key").iterrows():
        ms = frame.loc[frame["device_key"] == key, "median_ms"]
        assert (row["median_ms"], row["min_ms"], row["max_ms"]) == (ms.median(), ms.min(), ms.max())
        stable = frame.loc[frame["device_key"] == key, "stable"]
        assert row["settled_pct"] == round(100 * stable.mean(), 1)


def test_fit_table_saves_a_predictor(tmp_path):
    from hwlat.predict import load_predictor

    db = tmp_path / "t.db"
    with LatencyStore(db) as store:
        run_measure(create_backend("fake"), get_space("pwconv").sample(40, seed=1), store, QUICK, quiet=True)
    predictor, path, meta = fit_table(db, tmp_path / "p.skops", model="prior+gbr")
    assert (path, meta) == (tmp_path / "p.skops", tmp_path / "p.skops.json") and path.is_file() and meta.is_file()
    assert predictor.device_key_ == "fake/t1/b1/fp32" and predictor.n_train_ == {"pwconv": 40}
    again = load_predictor(path)
    np.testing.assert_allclose(again.predict(OPS), predictor.predict(OPS))
    with pytest.raises(ValueError, match="'cuda' matches 0 devices"):
        fit_table(db, tmp_path / "q.skops", device="cuda")


def test_export_space_lut_writes_every_lut_keyed_op(tmp_path):
    from pathlib import Path

    import yaml

    from hwlat.formats.lut import import_lut, lut_key
    from hwlat.workflows import LUT_KINDS, export_space_lut

    pixel1 = Path(__file__).resolve().parents[1] / "datasets_lat" / "published" / "proxylessnas_mobile_trim.yaml"
    db = tmp_path / "p.db"
    with LatencyStore(db) as store:
        assert import_lut(pixel1, store, "pixel1") == 73
    predictor, _, _ = fit_table(db, tmp_path / "p.skops")
    path, n_ops = export_space_lut(predictor, "mbconv-backbone", tmp_path / "lut.yaml")
    expected = [op for op in get_space("mbconv-backbone").configs() if op.kind in LUT_KINDS]
    assert len(expected) == 71 and (path, n_ops) == (tmp_path / "lut.yaml", 71)
    entries = yaml.safe_load(path.read_text())
    assert {lut_key(op) for op in expected if op.kind != "head"} <= set(entries)
    assert all(v["mean"] >= 0 for v in entries.values())


def test_protocol_and_jobs_options_are_checked():
    import re

    from hwlat.workflows import check_jobs

    for kwargs, words in (
        ({"budget_s": 0}, "--budget 0: give a finite time"),
        ({"budget_s": float("inf")}, "--budget inf"),
        ({"budget_s": -1.0}, "--budget -1.0"),
        ({"rel_ci": 0.0}, "--rel-ci 0.0: give a fraction between 0 and 1"),
        ({"rel_ci": float("nan")}, "--rel-ci nan"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)):
            protocol_from_options(**kwargs)
    assert check_jobs(4) == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r">= 1"):
            check_jobs(bad)
