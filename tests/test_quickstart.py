"""The quickstart's headline: the found network measured interleaved with the calibration networks.

On a shared machine the speed changes by 1.3x or more between the calibration and the final measurement.
The fake backend's ``drift`` option plays that machine: ``drift=1000:1.35`` runs at its normal speed for
the first 1000 s of device time (the whole calibration), ``drift_phase=1`` starts in the 1.35x slower spell
(the whole final measurement). The raw error then carries the machine's 35 %; the error reported against
the interleaved, speed-corrected measurement is the predictor's own, which on the fake is near 0.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hwlat.devices import create_backend
from hwlat.predict import LatencyPredictor
from hwlat.quickstart import headline
from hwlat.search import proxyless as px
from hwlat.search._latency import measure_interleaved, measure_networks
from hwlat.spaces import Backbone

FAKE = create_backend("fake")
TINY = Backbone(resolution=16, stem=8, first=8, stages=((8, 2, 2), (16, 2, 1)), mix=16, classes=10)
QUIET = "fake/drift=1000:1.35"  # fast for the first 1000 s of device time: all of this test's calibration
BUSY = "fake/drift=1000:1.35/drift_phase=1"  # the same machine in a 1.35x slower spell


@pytest.fixture(scope="module")
def predictor():
    ops = px.candidate_ops(TINY)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake")


class _Loaders:
    def __init__(self, n: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 3, 16, 16, generator=g)
        y = torch.arange(n) % 10
        x[torch.arange(n), 0, y, y] += 3.0
        ds = TensorDataset(x, y)
        self.train = DataLoader(ds, batch_size=16, shuffle=True, generator=g)
        self.valid = DataLoader(ds, batch_size=16, shuffle=True, generator=g)
        self.test = DataLoader(ds, batch_size=16)


def test_the_fake_machine_really_drifts():
    net = px.calibration_networks(TINY, 1)[0]
    quiet, busy = measure_networks(QUIET, [net])[net.key], measure_networks(BUSY, [net])[net.key]
    assert busy / quiet == pytest.approx(1.35, rel=0.05)


def test_interleaved_measurement_divides_the_machine_speed_out():
    nets = px.calibration_networks(TINY, 4)
    then = measure_networks(QUIET, nets)
    found, reference = nets[-1], [(n, then[n.key]) for n in nets[:-1]]
    got = measure_interleaved(BUSY, found, reference)
    assert got.measured_ms / then[found.key] == pytest.approx(1.35, rel=0.05)  # the raw number: the machine's
    assert got.speed_ratio == pytest.approx(1.35, rel=0.03) and len(got.pass_ratios) == 3
    assert got.corrected_ms == pytest.approx(then[found.key], rel=0.03)  # back on calibration-time speed
    plain = measure_interleaved(BUSY, found, [])
    assert plain.corrected_ms is None and plain.speed_ratio is None and plain.measured_ms == got.measured_ms


def test_headline_reports_the_predictors_error_not_the_machines(predictor):
    calibrated = px.calibrate(predictor, QUIET, px.calibration_networks(TINY, 3))
    lut = px.build_lut(calibrated, TINY)
    lo, hi = lut.latency_range()
    cfg = px.ProxylessConfig(
        loss="add#abs", target_ms=(lo * hi) ** 0.5, epochs=1, warmup_epochs=0, arch_every=1, final_epochs=0
    )
    result = px.run_proxyless(calibrated, _Loaders(), config=cfg, backbone=TINY, device=BUSY)
    # The old headline (measured / predicted) would report the machine's 1.35x as the predictor's error.
    assert result.raw_error == pytest.approx(0.35, abs=0.07)
    assert result.machine_drift == pytest.approx(1.35, rel=0.03)
    assert abs(result.predictor_error) < 0.04
    lines = headline(result, "fake/t1/b1/fp32")
    assert len(lines) == 2
    assert f"measured {result.measured_ms:.4f} ms" in lines[0] and f"{100 * result.raw_error:+.1f} %" in lines[0]
    assert "measured interleaved with the calibration networks" in lines[1]
    assert f"predictor error {100 * result.predictor_error:+.1f} %" in lines[1]
    assert f"machine speed during the run: {result.machine_drift:.2f}x" in lines[1]
    assert f"about {result.corrected_ms:.4f} ms" in result.drift_note
    assert result.to_dict()["corrected_ms"] == result.corrected_ms


def test_headline_without_a_calibration_shows_the_raw_number_only(predictor):
    cfg = px.ProxylessConfig(loss="none", epochs=1, warmup_epochs=0, final_epochs=0)
    result = px.run_proxyless(predictor, _Loaders(), config=cfg, backbone=TINY, device="fake")
    assert result.corrected_ms is None and result.predictor_error is None
    (line,) = headline(result, "fake/t1/b1/fp32")
    assert f"measured {result.measured_ms:.4f} ms" in line


@pytest.mark.parametrize("n", [0, 9, 2.5, True])
def test_quickstart_needs_at_least_ten_ops(tmp_path, n):
    from hwlat.quickstart import run_quickstart

    with pytest.raises(ValueError, match="at least 10 ops"):
        run_quickstart(tmp_path / "qs", n_ops=n, device="fake")
    assert not (tmp_path / "qs").exists()
