"""What tests/test_adb.py and tests/test_cli_adb.py share: the emulated phone's fixtures and the ops they measure.

A test module takes a fixture by naming it at module level (``phone = _adb_helpers.phone``); ``no_adb_spawn``
is autouse, so it guards every test of a module that names it.
"""

import pytest

from hwlat.devices.testing.fake_adb import FakeAdbServer, FakePhone, fake_benchmark_binary
from hwlat.ops import OpSpec

# What `--space pwconv --n 2` samples (seed 0): every test shares these two conversions (~3 s each).
OPS = [OpSpec("pwconv", cin=432, cout=48, h=28, w=28), OpSpec("pwconv", cin=224, cout=144, h=28, w=28)]


@pytest.fixture(autouse=True)
def no_adb_spawn(tmp_path, monkeypatch):
    """adbutils would run `adb start-server` when it cannot connect: make that leave a trace."""
    marker = tmp_path / "adb-was-started"
    fake_adb = tmp_path / "adb"
    fake_adb.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake_adb.chmod(0o755)
    monkeypatch.setenv("ADBUTILS_ADB_PATH", str(fake_adb))
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    yield
    assert not marker.exists(), "something tried to start an adb server"


@pytest.fixture
def phone():
    return FakePhone(serial="emulator-5554")


@pytest.fixture
def server(phone):
    with FakeAdbServer([phone]) as srv:
        yield srv


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "benchmark_model"
    path.write_bytes(fake_benchmark_binary("arm64-v8a"))
    return path
