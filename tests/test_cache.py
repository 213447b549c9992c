"""The converted-model cache: atomic writes, size + SHA-256 records checked on use, rebuilds of bad
entries with a warning, a size limit with least-recently-used eviction, ``hwlat cache info|clear``."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os

import pytest

from hwlat import cache
from hwlat.ops import OpSpec

OP = OpSpec("conv", cin=8, cout=8, h=8, w=8, kernel=3)


@pytest.fixture
def root(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("HWLAT_CACHE", str(folder))
    monkeypatch.delenv("HWLAT_CACHE_MAX_GB", raising=False)
    cache._verified.clear()  # each test is a fresh process as far as the cache is concerned
    cache._tally.clear()
    return folder


def _builder(data: bytes, calls: list):
    def build(tmp):
        calls.append(tmp)
        tmp.write_bytes(data)

    return build


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".locks" not in p.parts)


# ------------------------------------------------------------------ the cache layer, plain bytes
def test_an_entry_is_built_once_and_recorded(root):
    calls = []
    path = cache.cache_dir("onnx") / "a.onnx"
    assert cache.cached_file(path, _builder(b"model-a" * 100, calls)) == path
    assert cache.cached_file(path, _builder(b"other", calls)) == path
    assert len(calls) == 1 and path.read_bytes() == b"model-a" * 100
    record = json.loads((root / "onnx" / "a.onnx.meta.json").read_text())
    assert record["size"] == 700 and record["sha256"] == hashlib.sha256(b"model-a" * 100).hexdigest()
    assert cache.verify(path) is None
    assert _files(root) == ["onnx/a.onnx", "onnx/a.onnx.meta.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:300]), ["300 bytes", "record says 700"]),  # truncated
        (lambda p: p.write_bytes(b"X" + p.read_bytes()[1:]), ["SHA-256 differs"]),  # a flipped byte, same size
        (lambda p: (p.parent / (p.name + ".meta.json")).write_text("{not json"), ["record", "unreadable"]),
    ],
    ids=["truncated", "flipped", "bad-record"],
)
def test_a_damaged_entry_is_rebuilt_with_a_warning(root, caplog, damage, words):
    calls = []
    path = cache.cache_dir("onnx") / "a.onnx"
    cache.cached_file(path, _builder(b"model-a" * 100, calls))
    damage(path)
    cache._verified.clear()  # a later run
    with caplog.at_level(logging.WARNING, logger="hwlat.cache"):
        assert cache.cached_file(path, _builder(b"model-a" * 100, calls)) == path
    assert len(calls) == 2 and path.read_bytes() == b"model-a" * 100 and cache.verify(path) is None
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "\n" not in message and str(path) in message and "rebuilding" in message
    for word in words:
        assert word in message


def test_an_entry_without_a_record_is_rebuilt_quietly(root, caplog):
    """Files of an older hwlat (or of a writer killed between rename and record) cannot be checked: rebuilt."""
    calls = []
    path = cache.cache_dir("onnx") / "old.onnx"
    path.write_bytes(b"half a fi")
    with caplog.at_level(logging.INFO, logger="hwlat.cache"):
        cache.cached_file(path, _builder(b"whole file", calls))
    assert len(calls) == 1 and path.read_bytes() == b"whole file" and cache.verify(path) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("no size/SHA-256 record" in r.getMessage() for r in caplog.records)


def test_a_failed_conversion_leaves_the_old_entry_and_nothing_else(root):
    path = cache.cache_dir("onnx") / "a.onnx"
    path.write_bytes(b"old")  # no record: will be rebuilt

    def crash(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("converter died")

    with pytest.raises(RuntimeError, match="converter died"):
        cache.cached_file(path, crash)
    assert _files(root) == ["onnx/a.onnx"] and path.read_bytes() == b"old"
    with pytest.raises(RuntimeError, match="wrote no file"):
        cache.cached_file(path, lambda tmp: None)
    assert _files(root) == ["onnx/a.onnx"]


def test_the_size_limit_removes_the_least_recently_used(root, monkeypatch):
    monkeypatch.setenv("HWLAT_CACHE_MAX_GB", str(2500 / 1e9))  # room for two 1000-byte entries and records
    folder = cache.cache_dir("onnx")
    paths = [folder / f"{n}.onnx" for n in "abc"]
    for i, p in enumerate(paths[:2]):
        cache.cached_file(p, _builder(bytes(1000), []))
        os.utime(p.parent / (p.name + ".meta.json"), (1000 + i, 1000 + i))  # a used before b
    cache._verified.clear()
    cache.cached_file(paths[0], _builder(b"", []))  # a used again: now b is the least recently used
    cache.cached_file(paths[2], _builder(bytes(1000), []))
    assert [p.exists() for p in paths] == [True, False, True]
    assert not (folder / "b.onnx.meta.json").exists()
    assert cache.info().total_bytes <= 2500


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan"])
def test_a_bad_size_limit_is_one_line_and_converts_nothing(root, monkeypatch, value):
    monkeypatch.setenv("HWLAT_CACHE_MAX_GB", value)
    calls = []
    with pytest.raises(ValueError, match=rf"Invalid HWLAT_CACHE_MAX_GB='{value}': must be a number of GB > 0"):
        cache.cached_file(cache.cache_dir("onnx") / "a.onnx", _builder(b"x", calls))
    assert calls == [] and _files(root) == []


def test_info_and_clear_touch_only_hwlats_folders(root):
    cache.cached_file(cache.cache_dir("onnx") / "a.onnx", _builder(bytes(1500), []))
    cache.cached_file(cache.cache_dir("tflite") / "b.tflite", _builder(bytes(500), []))
    engine = cache.cache_dir("ort-trt") / "0123abcd"
    engine.mkdir()
    (engine / "model.engine").write_bytes(bytes(100))
    (root / "notes.txt").write_text("mine")  # HWLAT_CACHE may point at a folder holding other things
    (root / "other").mkdir()
    (root / "other" / "keep.onnx").write_bytes(b"mine too")
    got = cache.info()
    assert (got.path, got.entries, got.verified) == (root, 3, 2)
    assert 2100 < got.total_bytes < 2100 + 1000 and got.limit_bytes == 5e9
    assert cache.clear() == (3, got.total_bytes)
    assert _files(root) == ["notes.txt", "other/keep.onnx"]
    assert cache.info().entries == 0


def test_cli_cache_info_and_clear(root, capsys):
    from hwlat.cli import cache as cli_cache

    parser = argparse.ArgumentParser(prog="hwlat")
    cli_cache.register(parser.add_subparsers(dest="command", required=True))
    cache.cached_file(cache.cache_dir("onnx") / "a.onnx", _builder(bytes(2000), []))

    size = cache.format_size(cache.info().total_bytes)  # 2000 bytes and the record's
    assert size.startswith("2.") and size.endswith(" KB")

    args = parser.parse_args(["cache", "info"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"path:     {root}" in out and "entries:  1 (1 with a size/SHA-256 record)" in out
    assert f"size:     {size}" in out and "limit:    5.0 GB" in out

    args = parser.parse_args(["cache", "clear"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == f"removed 1 entries ({size}) from {root}"
    assert _files(root) == []


# ------------------------------------------------------------------ real files: an ONNX export
def test_a_truncated_onnx_export_is_rebuilt_and_measures(root, caplog):
    """The issue's reproduction: a truncated cached .onnx made every later measure fail (InvalidProtobuf)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    from hwlat.devices import create_backend

    backend = create_backend("onnxruntime-cpu")
    path = backend.convert(OP)
    good = path.read_bytes()
    assert path.parent == root / "onnx" and cache.verify(path) is None
    path.write_bytes(good[: len(good) // 2])
    cache._verified.clear()  # a later run
    with caplog.at_level(logging.WARNING, logger="hwlat.cache"):
        runnable = backend.prepare(OP)
    runnable.call()
    assert len(path.read_bytes()) == len(good) and cache.verify(path) is None  # exported again (new random weights)
    (record,) = caplog.records
    assert str(path) in record.getMessage() and OP.key in record.getMessage() and "rebuilding" in record.getMessage()
    assert _files(root) == [f"onnx/{path.name}", f"onnx/{path.name}.meta.json"]
