"""hwlat.compare: the comparison table on the fake and CPU backends, resume, predictors, plot."""

import numpy as np
import pytest
from conftest import QUICK, measured_elsewhere

from hwlat.compare import _pm, compare, parse_predictors, resolve_devices, split_devices, write_outputs
from hwlat.devices import create_backend
from hwlat.measure import Protocol
from hwlat.store import LatencyStore
from hwlat.zoo import get_network

NAMES = ("mobilenetv2", "proxyless-gpu", "resnet18")
NETS = [get_network(n, resolution=32) for n in NAMES]
# a compute-bound device, and a fast one with a large per-layer overhead (like GPU launches)
FAKES = ["fake", "fake/peak_gmacs=100/bandwidth_gbs=100/overhead_us=300"]


def test_compare_on_fake_devices_ranks_and_resume(tmp_path):
    backends = [create_backend(d) for d in FAKES]
    with LatencyStore(tmp_path / "c.db") as store:
        first = compare(NETS, backends, store, labels=FAKES)
        again = compare(NETS, [create_backend(d) for d in FAKES], store, labels=FAKES)
    assert first.shape == (3, 2) and first.models == tuple(n.name for n in NETS)
    assert first.new_rows == (3, 3) and again.new_rows == (0, 0)  # the second run measures nothing
    assert again.cells == first.cells
    for j, backend in enumerate(backends):
        truth = np.array([backend.true_latency_s(n) * 1e3 for n in NETS])
        measured = np.array([row[j].median_ms for row in first.cells])
        np.testing.assert_allclose(measured, truth, rtol=0.05)
        expected_ranks = {NETS[i].name: r + 1 for r, i in enumerate(np.argsort(truth))}
        assert first.ranks(FAKES[j]) == expected_ranks
    # per-layer overhead favours the network with fewest layers: the ranking flips
    assert first.ranks("fake") == {"mobilenetv2-r32": 1, "proxyless-gpu-r32": 2, "resnet18-r32": 3}
    assert first.ranks(FAKES[1]) == {"mobilenetv2-r32": 3, "proxyless-gpu-r32": 2, "resnet18-r32": 1}
    assert first.cell("resnet18-r32", "fake/t1/b1/fp32").rank == first.ranks("fake")["resnet18-r32"]
    with pytest.raises(ValueError, match="devices here: fake"):
        first.cell("resnet18-r32", "tpu")


def test_markdown_table_shape_and_provenance(tmp_path):
    with LatencyStore(":memory:") as store:
        c = compare(NETS, [create_backend(d) for d in FAKES], store, labels=FAKES)
    md = c.markdown("Zoo")
    lines = md.splitlines()
    assert lines[0] == "## Zoo"
    table = [line for line in lines if line.startswith("| ") and "(#" in line]
    assert len(table) == 3
    header = lines[2]
    assert header == "| model | MMACs | `fake` | `fake/peak_gmacs=100/bandwidth_gbs=100/overhead_us=300` |"
    for line, model, row in zip(table, c.models, c.cells):
        cells = [x.strip() for x in line.strip("|").split("|")]
        assert cells[0] == model and len(cells) == 4
        for text, cell in zip(cells[2:], row):
            assert text.startswith(f"{_pm(cell.median_ms, cell.spread_ms)} ms (#{cell.rank})")
    assert "`fake/t1/b1/fp32/bandwidth_gbs=100/overhead_us=300/peak_gmacs=100`" in md and "fake roofline device" in md
    assert f"Protocol: `{Protocol().key}`" in md


def test_outputs_and_plot_files(tmp_path):
    with LatencyStore(":memory:") as store:
        c = compare(NETS[:2], [create_backend("fake")], store)
    md, csv, png = write_outputs(c, tmp_path / "out")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    import pandas as pd

    df = pd.read_csv(csv)
    assert len(df) == 2 and list(df["model"]) == list(c.models) and set(df["rank"]) == {1, 2}
    assert md.read_text() == c.markdown()


def test_predictions_next_to_measurements(tmp_path):
    from hwlat.predict import LatencyPredictor

    ops = sorted({op for n in NETS for op in n.ops}, key=lambda op: op.key)
    backend = create_backend("fake")
    y = [backend.true_latency_s(op) * 1e3 for op in ops]
    p = LatencyPredictor(model="prior").fit(ops, y, device_key="fake/t1/b1/fp32")
    with LatencyStore(":memory:") as store:
        c = compare(NETS, [backend, create_backend(FAKES[1])], store, labels=FAKES, predictors={"fake": p})
    assert c.has_predictions == [True, False]
    for net, row in zip(NETS, c.cells):
        assert row[0].predicted_ms == pytest.approx(p.predict_network(net))
        assert abs(row[0].prediction_error) < 0.5 and row[1].predicted_ms is None
    header = c.markdown().splitlines()[0]
    assert header == "| model | MMACs | `fake` | predicted | `fake/peak_gmacs=100/bandwidth_gbs=100/overhead_us=300` |"
    with pytest.raises(ValueError, match="predictor for unknown device 'tpu'"):
        compare(NETS, [backend], LatencyStore(":memory:"), predictors={"tpu": p})


def test_number_format():
    assert _pm(11.0998, 0.2173) == "11.1 ± 0.2"
    assert _pm(19.7743, 0.00735) == "19.8 ± 0.007"  # not "± 0.0"
    assert _pm(7.5717, 0.188) == "7.57 ± 0.19"
    assert _pm(0.01234, 0.0) == "0.0123 ± 0.0000"


def test_device_and_predictor_parsing():
    assert split_devices("onnxruntime-cpu/cores=0,1,torch-cpu, litert-cpu/t2/cores=2,3") == [
        "onnxruntime-cpu/cores=0,1",
        "torch-cpu",
        "litert-cpu/t2/cores=2,3",
    ]
    with pytest.raises(ValueError, match="No devices"):
        split_devices(" , ")
    labels = ["onnxruntime-cpu/cores=0", "torch-cpu"]
    keys = ["onnxruntime-cpu/t1/b1/fp32/cores=0", "torch-cpu/t1/b1/fp32"]
    assert parse_predictors("onnxruntime-cpu/cores=0=a.skops,torch-cpu=b.skops", labels, keys) == {
        "onnxruntime-cpu/cores=0": "a.skops",
        "torch-cpu": "b.skops",
    }
    assert parse_predictors("onnxruntime-cpu=a.skops", labels, keys) == {"onnxruntime-cpu/cores=0": "a.skops"}
    with pytest.raises(ValueError, match="'litert-cpu' matches no device; devices here: onnxruntime-cpu/cores=0"):
        parse_predictors("litert-cpu=x.skops", labels, keys)
    with pytest.raises(ValueError, match="expected DEVICE=PATH"):
        parse_predictors("x.skops", labels, keys)


def test_unavailable_devices_fail_or_are_skipped(never):
    with pytest.raises(
        RuntimeError, match=r"device 'never-gpu' is unavailable here: no CUDA device found \(test backend\)"
    ):
        resolve_devices(["fake", "never-gpu"])
    _, labels, skipped = resolve_devices(["fake", "never-gpu"], skip_unavailable=True)
    assert labels == ["fake"] and skipped == ["never-gpu: no CUDA device found (test backend)"]
    with pytest.raises(RuntimeError, match="every device given is unavailable"):
        resolve_devices(["never-gpu"], skip_unavailable=True)
    with pytest.raises(ValueError, match="Unknown device 'tpu'; valid devices: .*fake"):
        resolve_devices(["tpu"])


def test_devices_measured_elsewhere_come_from_the_table(never):
    from hwlat.compare import StoredDevice

    with LatencyStore(":memory:") as store:
        stand_in = measured_elsewhere(store, "never-gpu", NETS)
        backends, labels, skipped = resolve_devices(["fake", "never-gpu"], store=store, networks=NETS, protocol=QUICK)
        assert labels == ["fake", "never-gpu"] and not skipped
        stored = backends[1]
        assert isinstance(stored, StoredDevice) and stored.reason == "no CUDA device found (test backend)"
        assert stored.info["hardware"] == "fake roofline device" and stored.info["device_key"] == "never-gpu/t1/b1/fp32"
        c = compare(NETS, backends, store, QUICK, labels=labels)
        assert c.new_rows == (3, 0)  # nothing measured on the stored device
        rows = {m.op_key: m for m in store.measurements("never-gpu/t1/b1/fp32")}
        assert [row[1].median_ms for row in c.cells] == [rows[n.key].median_ms for n in NETS]
        truth = [stand_in.true_latency_s(n) for n in NETS]
        assert c.ranks("never-gpu") == {n.name: int(r) + 1 for n, r in zip(NETS, np.argsort(np.argsort(truth)))}
        assert "| `never-gpu` | `never-gpu/t1/b1/fp32` | fake roofline device |" in c.markdown()
        # another protocol, or a model the table lacks: unavailable, saying what is missing
        with pytest.raises(RuntimeError, match=r"unavailable here: no CUDA device found \(test backend\) \(or pass"):
            resolve_devices(["never-gpu"], store=store, networks=NETS, protocol=Protocol())
        extra = get_network("mobilenetv1", resolution=32)
        with pytest.raises(
            RuntimeError,
            match=r"the table has 3 of the 4 models for never-gpu/t1/b1/fp32 under this "
            r"protocol; missing: mobilenetv1-r32\) \(or pass --skip-unavailable\)",
        ):
            resolve_devices(["never-gpu"], store=store, networks=[*NETS, extra], protocol=QUICK)
        with pytest.raises(RuntimeError, match="lacks mobilenetv1-r32 for it"):
            compare([*NETS, extra], [stored], store, QUICK)


def test_compare_on_cpu_backends():
    nets = [get_network("mobilenetv2", resolution=32), get_network("resnet18", resolution=96)]
    devices = ["onnxruntime-cpu", "torch-cpu"]
    with LatencyStore(":memory:") as store:
        c = compare(nets, [create_backend(d) for d in devices], store, QUICK, labels=devices)
    assert c.shape == (2, 2)
    for d in devices:
        # 45x the MACs (and fewer layers than the eager overhead could hide): slower on every CPU backend
        assert c.ranks(d) == {"mobilenetv2-r32": 1, "resnet18-r96": 2}
        info = c.device_info[c.devices.index(d)]
        assert info["device_key"] == f"{d}/t1/b1/fp32" and info["runtime_version"]
    assert all(cell.median_ms > 0 and cell.n >= QUICK.min_rounds for row in c.cells for cell in row)
