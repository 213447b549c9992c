"""The farm's bad input, without a cluster: one clear line each, nothing written; Ray imported only when used."""

import argparse
import socket
import subprocess
import sys
import threading

import pytest

from hwlat.farm import FarmError, add_farm_argument, advertise, parse_device, run_measure_farm, split_devices
from hwlat.farm._ray import import_ray, parse_address
from hwlat.farm.devices import inventory, resolve_devices
from hwlat.ops import OpSpec

OPS = [OpSpec("pwconv", cin=8, cout=16, h=14, w=14)]


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_importing_the_farm_imports_no_ray():
    code = "import sys, hwlat.farm, hwlat.farm.status, hwlat.farm.testing, hwlat.cli.farm; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_ray_missing_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(FarmError) as exc:
        import_ray()
    assert "pip install 'hwlat[farm]'" in one_line(exc)
    with pytest.raises(FarmError, match=r"pip install 'hwlat\[farm\]'"):
        run_measure_farm("local", ["fake/realtime=1"], OPS, tmp_path / "t.db")
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty device name"),
        ("@lab-1", "give DEVICE@HOST"),
        ("fake@bad host", "invalid host name 'bad host'"),
        ("nosuch@lab-1", "Unknown device 'nosuch'"),
        ("fake/bogus=1@lab-1", "bogus"),
    ],
)
def test_bad_device_names(text, message):
    with pytest.raises(ValueError) as exc:
        parse_device(text)
    assert message in one_line(exc)


def test_device_names_are_canonical():
    a = parse_device("fake/realtime=1/gpu=3/t2@lab-1", batch=4)
    assert (a.name, a.host, a.resource()) == ("fake/gpu=3/realtime=1", "lab-1", "fake/gpu=3/realtime=1@lab-1")
    assert a.spec.key == "fake/t2/b4/fp32/gpu=3/realtime=1"
    phone = parse_device("adb:SER1@lab-2")
    assert phone.resource() == "adb:SER1" and phone.host == "lab-2"


def test_advertise_refuses_twice_and_measuring_options():
    assert advertise(["onnxruntime-cpu", "adb:SER1"], "lab-1") == {
        "hwlat-host:lab-1": 1.0,
        "onnxruntime-cpu@lab-1": 1.0,
        "adb:SER1": 1.0,
    }
    with pytest.raises(FarmError, match="listed twice"):
        advertise(["fake/realtime=1", "fake/realtime=1@lab-1"], "lab-1")
    with pytest.raises(FarmError, match="drop the threads/batch/precision"):
        advertise(["onnxruntime-cpu/t4"], "lab-1")
    with pytest.raises(FarmError, match="names host 'lab-2'"):
        advertise(["fake@lab-2"], "lab-1")


def _nodes():
    def node(ip, res):
        return {"Alive": True, "NodeManagerAddress": ip, "NodeID": ip, "Resources": res}

    return [
        node("10.0.0.1", {"CPU": 4, "hwlat-host:a": 1, "cuda@a": 1, "adb:P1": 1, "phone-x": 1}),
        node("10.0.0.2", {"CPU": 4, "hwlat-host:b": 1, "cuda@b": 1, "onnxruntime-cpu@b": 1}),
        {"Alive": False, "NodeManagerAddress": "10.0.0.3", "Resources": {"hwlat-host:c": 1, "cuda@c": 1}},
    ]


def test_inventory_and_resolution():
    inv = inventory(_nodes())
    assert sorted(inv.hosts) == ["a", "b"]  # the dead node is left out
    assert inv.cpus == {"a": 4.0, "b": 4.0}
    assert sorted((d.name, d.host) for d in inv.devices) == [
        ("adb:P1", "a"),
        ("cuda", "a"),
        ("cuda", "b"),
        ("onnxruntime-cpu", "b"),
    ]
    found = resolve_devices([parse_device("adb:P1"), parse_device("onnxruntime-cpu")], inv)
    assert [(f.resource, f.host) for f in found] == [("adb:P1", "a"), ("onnxruntime-cpu@b", "b")]
    cases = {
        "cuda": "is on several hosts (a, b): name one, e.g. cuda@a",
        "cuda@c": "unknown host 'c'; hosts in the farm: a, b",
        "onnxruntime-cpu@a": "host 'a' does not advertise 'onnxruntime-cpu' (it is on b)",
        "adb:P9": "no host in the farm advertises 'adb:P9'",
        "adb:P1@b": "host 'b' does not advertise 'adb:P1' (it is on a)",
    }
    for text, message in cases.items():
        with pytest.raises(FarmError) as exc:
            resolve_devices([parse_device(text)], inv)
        assert message in one_line(exc)
    with pytest.raises(FarmError, match="listed twice"):
        resolve_devices([parse_device("cuda@a"), parse_device("cuda/t1@a")], inv)
    with pytest.raises(FarmError, match="same device key 'cuda/t1/b1/fp32' into one table"):
        resolve_devices([parse_device("cuda@a"), parse_device("cuda@b")], inv)


@pytest.mark.parametrize("address", ["", "host", "host:0", "host:99999", ":6379"])
def test_bad_addresses(address):
    with pytest.raises(FarmError) as exc:
        parse_address(address)
    assert "HOST:PORT" in one_line(exc)


def test_options_checked_before_connecting(tmp_path):
    with pytest.raises(FarmError, match="no devices given"):
        split_devices(" , ")
    with pytest.raises(FarmError, match="nothing to measure"):
        run_measure_farm("127.0.0.1:1", ["fake"], [], tmp_path / "t.db")
    with pytest.raises(FarmError, match="retries"):
        run_measure_farm("127.0.0.1:1", ["fake"], OPS, tmp_path / "t.db", retries=-1)
    parser = argparse.ArgumentParser()
    add_farm_argument(parser)
    assert parser.parse_args(["--farm", "local"]).farm == "local" and parser.parse_args([]).farm is None


def test_address_that_does_not_answer(tmp_path):
    pytest.importorskip("ray", reason="the device farm needs Ray: pip install 'hwlat[farm]'")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FarmError) as exc:
        run_measure_farm(f"127.0.0.1:{port}", ["fake"], OPS, tmp_path / "t.db", connect_timeout_s=2)
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in one_line(exc)
    assert not (tmp_path / "t.db").exists()


def test_port_that_answers_but_is_no_ray_head(tmp_path):
    """Ray would wait a minute and then end the process: the driver gives up after the timeout, in one line."""
    pytest.importorskip("ray", reason="the device farm needs Ray: pip install 'hwlat[farm]'")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: [accepted.append(server.accept()) for _ in range(8)], daemon=True).start()
    code = (
        "import sys\nfrom hwlat.farm import FarmError, connect\n"
        f"try:\n    connect('127.0.0.1:{port}', timeout_s=2)\nexcept FarmError as e:\n    print(e)\n    sys.exit(3)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path)}
    )
    server.close()
    assert out.returncode == 3, out.stderr
    assert "did not accept this driver within 2 s" in out.stdout


def test_worker_command():
    from hwlat.farm.worker import ray_start_command

    cmd = ray_start_command(head=True, port=6390, devices=["fake"], host="h", num_cpus=2)
    resources = '{"hwlat-host:h":1.0,"fake@h":1.0}'
    assert cmd[1:] == ["start", "--head", "--port", "6390", "--num-cpus", "2", "--resources", resources]
    with pytest.raises(FarmError, match="either --head"):
        ray_start_command(head=True, address="h:1")
    with pytest.raises(FarmError, match="--port"):
        ray_start_command(head=True, port=0)
