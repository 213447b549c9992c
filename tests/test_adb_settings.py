"""The adb device's options go through the one options parser (hwlat.devices._options)."""

from __future__ import annotations

import dataclasses

import pytest

from hwlat.devices._base import DeviceSpec
from hwlat.devices._options import Options
from hwlat.devices.adb.settings import DEFAULT_HOST, DEFAULT_PORT, IDENTITY, AdbSettings, split_options


@pytest.fixture(autouse=True)
def _no_adb_env(monkeypatch):
    monkeypatch.delenv("ANDROID_ADB_SERVER_HOST", raising=False)
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)


def test_adb_settings_are_options_with_the_old_names_and_defaults():
    assert issubclass(AdbSettings, Options)
    s = AdbSettings.from_options({})
    assert s == AdbSettings()
    assert (s.adb_host, s.adb_port, s.timeout, s.retries, s.backoff) == (DEFAULT_HOST, DEFAULT_PORT, 120.0, 3, 1.0)
    assert (s.keep, s.profile, s.max_temp, s.freq_ratio, s.thermal_wait, s.cooldown) == (
        False,
        False,
        50.0,
        0.9,
        60.0,
        0.0,
    )
    assert (s.bench_binary, s.remote_dir, s.serial, s.cores, s.use_gpu, s.use_xnnpack) == (
        None,
        "/data/local/tmp/hwlat",
        None,
        None,
        None,
        None,
    )
    assert set(IDENTITY) <= set(AdbSettings.names())
    assert AdbSettings.names() == sorted(f.name for f in dataclasses.fields(AdbSettings))


def test_split_options_keeps_identity_as_given_and_types_the_rest():
    spec = DeviceSpec.parse("adb:emulator-5554/cores=4-7/use_gpu=1/use_xnnpack=0/timeout=3/retries=1/keep=yes")
    identity, s = split_options(spec)
    assert identity == {"serial": "emulator-5554", "cores": "4-7", "use_gpu": "1", "use_xnnpack": "0"}
    assert (s.serial, s.cores, s.use_gpu, s.use_xnnpack) == ("emulator-5554", "4-7", True, False)
    assert (s.timeout, s.retries, s.keep) == (3.0, 1, True)
    assert split_options(DeviceSpec.parse("adb"))[0] == {}  # no serial: the backend says how to give one


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("YES", True), ("0", False), ("False", False), ("no", False)],
)
def test_keep_and_profile_take_the_old_spellings(text, value):
    s = AdbSettings.from_options({"keep": text, "profile": text})
    assert s.keep is value and s.profile is value


def test_adb_server_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ANDROID_ADB_SERVER_HOST", "10.0.0.2")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "5038")
    s = AdbSettings.from_options({})
    assert (s.adb_host, s.adb_port) == ("10.0.0.2", 5038)
    assert AdbSettings.from_options({"adb_port": "6000"}).adb_port == 6000  # an option beats the environment
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "")
    assert AdbSettings.from_options({}).adb_port == DEFAULT_PORT  # empty means unset
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "fivethousand")
    with pytest.raises(ValueError, match="Invalid device option adb_port='fivethousand' for device 'adb'"):
        AdbSettings.from_options({})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour=red", r"Invalid option colour='red' for device 'adb'; valid options: adb_host, .*bench_binary"),
        ("timeout=soon", "Invalid device option timeout='soon' for device 'adb': must be a number"),
        ("timeout=0", r"Invalid device option timeout='0' for device 'adb': must be > 0"),
        ("retries=-1", "Invalid device option retries='-1' for device 'adb': must be >= 0"),
        ("retries=1.5", "Invalid device option retries='1.5' for device 'adb': must be an integer"),
        ("backoff=-1", "Invalid device option backoff='-1' for device 'adb': must be >= 0"),
        ("thermal_wait=-1", "Invalid device option thermal_wait='-1' for device 'adb': must be >= 0"),
        ("cooldown=-0.5", "Invalid device option cooldown='-0.5' for device 'adb': must be >= 0"),
        ("freq_ratio=0", r"Invalid device option freq_ratio='0' for device 'adb': must be in \(0, 1\]"),
        ("freq_ratio=1.5", r"Invalid device option freq_ratio='1.5' for device 'adb': must be in \(0, 1\]"),
        ("adb_port=x", "Invalid device option adb_port='x' for device 'adb': must be a port number"),
        ("keep=maybe", "Invalid device option keep='maybe' for device 'adb': use 0 or 1"),
        ("use_gpu=true", "Invalid device option use_gpu='true' for device 'adb'; valid: 0, 1"),
        ("use_xnnpack=2", "Invalid device option use_xnnpack='2' for device 'adb'; valid: 0, 1"),
    ],
)
def test_bad_adb_options_name_the_option_and_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        split_options(DeviceSpec.parse(f"adb:emulator-5554/{text}"))


def test_freq_ratio_of_one_is_valid():
    assert AdbSettings.from_options({"freq_ratio": "1"}).freq_ratio == 1.0
