"""Network calibration (hwlat.search._latency): term sets, per-op application, input-MB fit, latency tables."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from hwlat.devices import create_backend
from hwlat.measure import Protocol
from hwlat.ops import OpSpec
from hwlat.predict import LatencyPredictor
from hwlat.predict.calibration import KIND_RIDGES, KIND_SCALE_BOUNDS, MIN_SHARE, choose_calibration, io_mb, op_terms
from hwlat.search import proxyless as px
from hwlat.search._latency import (
    CALIBRATION_TERMS,
    CalibratedPredictor,
    NetworkCalibration,
    calibrate_from_table,
    input_mb,
)
from hwlat.spaces import Backbone
from hwlat.store import LatencyStore
from hwlat.workflows import run_measure

FAKE = create_backend("fake")
TINY = Backbone(resolution=16, stem=8, first=8, stages=((8, 2, 2), (16, 2, 1)), mix=16, classes=10)
A_MS, B_MS_PER_MB = 0.012, 0.35  # network = Σ (p(op) − b · input MB) − a


@pytest.fixture(scope="module")
def predictor():
    ops = px.candidate_ops(TINY)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake")


@pytest.fixture(scope="module")
def networks():
    return px.calibration_networks(TINY, n=6)


def _in_network_ms(predictor, net) -> float:
    return float(predictor.predict(list(net.ops)).sum() - B_MS_PER_MB * input_mb(net.ops).sum() - A_MS)


def test_input_mb_is_fp32_batch1_input_size():
    ops = [OpSpec("pwconv", cin=16, cout=32, h=32, w=32), OpSpec("linear", cin=1000, cout=10)]
    assert input_mb(ops) == pytest.approx([4e-6 * 16 * 32 * 32, 4e-6 * 1000], rel=1e-12)


def test_input_mb_fit_recovers_a_and_b_exactly(predictor, networks):
    truth = [_in_network_ms(predictor, n) for n in networks]
    calib = NetworkCalibration.fit(predictor, networks, truth, terms="input-mb")
    assert calib.terms == "input-mb" and (calib.scale, calib.per_op_ms) == (1.0, 0.0)
    assert calib.offset_ms == pytest.approx(-A_MS, abs=1e-9)
    assert calib.per_mb_ms == pytest.approx(-B_MS_PER_MB, abs=1e-9)
    assert calib.n_networks == len(networks) and calib.max_rel_error < 1e-9
    cp = CalibratedPredictor(predictor, calib)
    assert cp.predict_network(networks) == pytest.approx(truth, abs=1e-9)
    ops = list(networks[2].ops)
    assert cp.predict(ops) == pytest.approx(predictor.predict(ops) - B_MS_PER_MB * input_mb(ops), abs=1e-9)


def test_scale_input_mb_fit_recovers_a_drifted_machine_exactly(predictor, networks):
    """The same networks 1.3x slower (another day on a shared VM): scale 1.3 and the scaled a, b."""
    truth = [1.3 * _in_network_ms(predictor, n) for n in networks]
    calib = NetworkCalibration.fit(predictor, networks, truth, terms="scale-input-mb")
    assert (calib.scale, calib.per_mb_ms, calib.offset_ms) == pytest.approx(
        (1.3, -1.3 * B_MS_PER_MB, -1.3 * A_MS), abs=1e-9
    )
    assert calib.max_rel_error < 1e-9
    with pytest.raises(ValueError, match="at least 3 measured networks, got 2"):
        NetworkCalibration.fit(predictor, networks[:2], truth[:2], terms="scale-input-mb")


@pytest.mark.parametrize("terms", CALIBRATION_TERMS)
def test_predict_network_is_sum_of_op_shares_plus_offset(predictor, networks, terms):
    measured = [FAKE.true_latency_s(n) * 1e3 * (0.8 + 0.05 * i) for i, n in enumerate(networks)]
    cp = CalibratedPredictor(predictor, NetworkCalibration.fit(predictor, networks, measured, terms=terms))
    for net in networks:
        expected = cp.predict(net.ops).sum() + cp.calibration.offset_ms
        assert cp.predict_network(net) == pytest.approx(expected, rel=1e-12)
    assert cp.overhead_ms_ == cp.calibration.offset_ms and cp.scale_ == 1.0
    assert isinstance(cp.predict_network(networks), np.ndarray)


def test_count_terms_keep_the_default_and_no_mb_term(predictor, networks):
    measured = [FAKE.true_latency_s(n) * 1e3 for n in networks]
    calib = NetworkCalibration.fit(predictor, networks, measured)
    assert calib == NetworkCalibration.fit(predictor, networks, measured, terms="count")
    assert calib.terms == "count" and calib.per_mb_ms == 0.0
    assert "us/MB" not in CalibratedPredictor(predictor, calib).describe()


def test_unknown_terms_and_too_few_networks_raise(predictor, networks):
    truth = [_in_network_ms(predictor, n) for n in networks]
    with pytest.raises(ValueError, match="'mb'.*count, input-mb"):
        NetworkCalibration.fit(predictor, networks, truth, terms="mb")
    with pytest.raises(ValueError, match="at least 2 measured networks, got 1"):
        NetworkCalibration.fit(predictor, networks[:1], truth[:1], terms="input-mb")


def test_to_dict_and_describe_report_every_term(predictor, networks):
    truth = [_in_network_ms(predictor, n) for n in networks]
    cp = CalibratedPredictor(predictor, NetworkCalibration.fit(predictor, networks, truth, terms="input-mb"))
    d = json.loads(json.dumps(cp.to_dict()))
    assert d["format"] == "hwlat.network-calibration/1" and d["terms"] == "input-mb"
    assert (d["scale"], d["per_op_ms"], d["n_networks"], d["device_key"]) == (1.0, 0.0, len(networks), "fake")
    assert (d["per_mb_ms"], d["offset_ms"]) == pytest.approx((-B_MS_PER_MB, -A_MS), abs=1e-9)
    assert d["max_rel_error"] < 1e-9
    assert "-350.00 us/MB of op input" in cp.describe()
    plain = CalibratedPredictor(predictor).to_dict()
    assert plain["n_networks"] == 0 and plain["max_rel_error"] is None and plain["per_mb_ms"] == 0.0


def test_calibrate_from_table_fits_input_mb_terms_on_stored_networks(tmp_path, predictor, networks):
    db = str(tmp_path / "t.db")
    with LatencyStore(db) as store:
        run_measure(FAKE, networks[:1], store, Protocol(), quiet=True)
    key = FAKE.spec.key  # the table's device key; the predictor's ("fake") is only its prefix
    with pytest.raises(ValueError, match="1 measured networks .* need >= 2"):
        calibrate_from_table(predictor, db, device_key=key)
    with LatencyStore(db) as store:
        run_measure(FAKE, networks, store, Protocol(), quiet=True)
        df = store.frame(key, provenance=False)
    cp = calibrate_from_table(predictor, db, device_key=key)
    assert isinstance(cp, CalibratedPredictor) and cp.calibration.terms == "input-mb"
    measured = dict(zip(df["op_key"], df["median_ms"]))
    unique = list({n.key: n for n in networks}.values())
    expected = NetworkCalibration.fit(predictor, unique, [measured[n.key] for n in unique], terms="input-mb")
    assert cp.calibration.n_networks == len(unique) > 2
    assert (cp.calibration.per_mb_ms, cp.calibration.offset_ms) == pytest.approx(
        (expected.per_mb_ms, expected.offset_ms), rel=1e-9
    )


def _network_measurement(backend, protocol, key: str, ms: float):
    from hwlat.measure import Measurement

    return Measurement(
        op_key=key,
        device_key=backend.spec.key,
        protocol=protocol.key,
        kind="network",
        n=20,
        median_ms=ms,
        mean_ms=ms,
        std_ms=0.0,
        p5_ms=ms,
        p95_ms=ms,
        iqr_ms=0.0,
        ci_low_ms=ms,
        ci_high_ms=ms,
        rounds=3,
        round_medians_ms=(ms, ms, ms),
        stable=True,
        loadavg=0.0,
        wall_s=0.01,
    )


@pytest.fixture
def passes_measured(monkeypatch):
    """``hwlat.measure.measure`` replaced: pass k times network i at ``[2, 1, 1.5, 2][k] * (i + 1)`` ms."""
    import hwlat.measure

    calls = []

    def fake_measure(backend, items, protocol):
        calls.append(protocol.seed)
        slow = [2.0, 1.0, 1.5, 2.0][len(calls) - 1]  # the second pass is the quiet one
        return [_network_measurement(backend, protocol, n.key, slow * (i + 1)) for i, n in enumerate(items)]

    monkeypatch.setattr(hwlat.measure, "measure", fake_measure)
    return calls


def test_measure_networks_keeps_each_networks_fastest_pass(passes_measured, networks):
    """A pass caught in a slow phase of a shared machine must not decide a network's latency."""
    from hwlat.search._latency import measure_networks

    got = measure_networks("fake", networks[:3] + networks[:1])  # duplicates are measured once
    assert passes_measured == [0, 1, 2]  # three passes, each in a new shuffled order
    assert [got[n.key] for n in networks[:3]] == [1.0, 2.0, 3.0]
    assert measure_networks("fake", networks[:2], passes=1) == {networks[0].key: 2.0, networks[1].key: 4.0}
    with pytest.raises(ValueError, match="passes=0"):
        measure_networks("fake", networks, passes=0)


def test_measure_networks_writes_stored_rows_with_provenance(passes_measured, networks):
    """Each measured network becomes a row of the caller's store, with its definition and device record."""
    from hwlat.devices import DeviceSpec
    from hwlat.search._latency import measure_networks
    from hwlat.store import LatencyStore

    with LatencyStore(":memory:") as store:
        got = measure_networks("fake", networks[:3], store=store)
        rows = {m.op_key: m for m in store.measurements()}
        assert set(rows) == set(got) == {n.key for n in networks[:3]}
        assert {k: m.median_ms for k, m in rows.items()} == got
        assert all(m.kind == "network" and m.device_key == DeviceSpec.parse("fake").key for m in rows.values())
        assert set(store.networks()) == set(got)
        info = store.device_info(DeviceSpec.parse("fake").key)
        assert info is not None and info.get("hardware")
        # Measuring again replaces the rows: the store holds what was returned last.
        again = measure_networks("fake", networks[:1], passes=1, store=store)
        assert rows[networks[0].key].median_ms != again[networks[0].key]
        assert {m.op_key: m.median_ms for m in store.measurements()}[networks[0].key] == again[networks[0].key]


def test_measure_networks_of_no_network_measures_nothing(passes_measured):
    from hwlat.search._latency import measure_network_passes, measure_networks

    assert measure_networks("fake", []) == {}
    assert measure_network_passes("fake", [], passes=2) == [{}, {}]
    assert passes_measured == []


def test_calibrate_from_table_remeasures_on_a_drifted_device(tmp_path, predictor, networks):
    """remeasure=DEVICE: the table's networks measured again (here on a 2x slower fake) set today's scale."""
    table_dev = create_backend("fake/noise=0")
    db = str(tmp_path / "t.db")
    with LatencyStore(db) as store:
        run_measure(table_dev, networks, store, Protocol(), quiet=True)
    then = calibrate_from_table(predictor, db, device_key=table_dev.spec.key)
    slow = "fake/noise=0/peak_gmacs=10/bandwidth_gbs=5/overhead_us=40"  # every latency exactly 2x
    now = calibrate_from_table(predictor, db, device_key=table_dev.spec.key, remeasure=slow)
    assert now.calibration.terms == "scale-input-mb" and now.calibration.n_networks == then.calibration.n_networks
    assert now.calibration.drift == pytest.approx(2.0, rel=1e-6) and then.calibration.drift == 1.0
    assert "networks take 2.000x their table latency today" in now.describe()
    for net in networks:
        truth = create_backend(slow).true_latency_s(net) * 1e3
        assert now.predict_network(net) == pytest.approx(2 * then.predict_network(net), rel=0.05)
        assert now.predict_network(net) == pytest.approx(truth, rel=0.1)


def test_count_fit_never_makes_an_op_free(predictor, networks):
    """A per-op term so negative that the smallest op would cost <= 0 ms is dropped (scale and offset only)."""
    counts = np.array([len(n.ops) for n in networks], dtype=float)
    sums = np.array([predictor.predict(list(n.ops)).sum() for n in networks])
    smallest = min(float(np.min(predictor.predict(list(n.ops)))) for n in networks)
    # Networks that pay -2x the smallest op per op: an exact fit would make small ops negative.
    measured = sums - 2 * smallest * counts + 2 * smallest * counts.max() + 0.01
    calib = NetworkCalibration.fit(predictor, networks, measured)
    assert calib.per_op_ms == 0.0 and calib.scale * smallest + calib.per_op_ms > 0
    cp = CalibratedPredictor(predictor, calib)
    assert all(np.all(cp.predict(n.ops) > 0) for n in networks)


def test_one_calibration_module_serves_predictor_search_and_cost(predictor, networks):
    """The search names are the calibration module's objects; the predictor fits through it too."""
    import hwlat.search._latency as search_latency
    from hwlat.predict import calibration
    from hwlat.predict.protocol import LatencyModel

    for name in ("CALIBRATION_TERMS", "NetworkCalibration", "CalibratedPredictor", "input_mb"):
        assert getattr(search_latency, name) is getattr(calibration, name)
    sums = np.array([predictor.predict(list(n.ops)).sum() for n in networks])
    measured = 1.3 * sums + 0.02
    assert calibration.fit_scale_overhead(sums, measured, scale=True) == pytest.approx((1.3, 0.02), rel=1e-9)
    assert calibration.fit_scale_overhead(sums, sums + 0.05) == pytest.approx((1.0, 0.05), rel=1e-9)
    with pytest.raises(ValueError, match="one measured latency per network"):
        calibration.fit_scale_overhead(sums, measured[:-1])
    cp = CalibratedPredictor(predictor, NetworkCalibration.fit(predictor, networks, measured))
    for model in (predictor, cp):
        assert isinstance(model, LatencyModel)
        assert calibration.network_ms(model, networks) == pytest.approx(model.predict_network(networks), rel=1e-12)


# ------------------------------------------------------------------ per-kind scales (whole models)
KIND_SCALE = {"stem": 1.4, "mbconv": 0.8, "head": 1.1}
PER_OP_MS, PER_IO_MS_PER_MB, OFFSET_MS = -0.004, -0.02, 0.01


@pytest.fixture(scope="module")
def many_networks():
    """12 kernel chains (what a model's kernels look like to a calibration) with 1-3 stems and heads each."""
    rng = np.random.default_rng(0)
    ops = px.candidate_ops(TINY)
    blocks = [o for o in ops if o.kind == "mbconv"]
    stem, head = (next(o for o in ops if o.kind == k) for k in ("stem", "head"))
    nets = []
    for _ in range(12):
        body = [blocks[i] for i in rng.choice(len(blocks), size=int(rng.integers(2, 9)))]
        nets.append(
            SimpleNamespace(ops=(stem,) * int(rng.integers(1, 4)) + tuple(body) + (head,) * int(rng.integers(1, 4)))
        )
    return nets


def _kinds_truth(predictor, net) -> float:
    ops = list(net.ops)
    p = predictor.predict(ops)
    scaled = sum(KIND_SCALE[op.kind] * v for op, v in zip(ops, p))
    return float(scaled + PER_OP_MS * len(ops) + PER_IO_MS_PER_MB * io_mb(ops).sum() + OFFSET_MS)


def test_io_mb_counts_every_input_and_the_output():
    ops = [OpSpec("pwconv", cin=16, cout=32, h=32, w=32), OpSpec("add", cin=8, h=4, w=4, act="none")]
    assert io_mb(ops) == pytest.approx([4e-6 * (16 + 32) * 32 * 32, 4e-6 * 3 * 8 * 4 * 4], rel=1e-12)


def test_kinds_fit_recovers_per_kind_scales_without_a_ridge(predictor, many_networks):
    truth = [_kinds_truth(predictor, n) for n in many_networks]
    calib = NetworkCalibration.fit(predictor, many_networks, truth, terms="kinds", ridge=0.0)
    assert calib.terms == "kinds" and calib.ridge == 0.0 and calib.n_networks == 12
    assert dict(calib.kind_scales) == pytest.approx(KIND_SCALE, abs=1e-6)
    assert (calib.per_op_ms, calib.per_io_mb_ms, calib.offset_ms) == pytest.approx(
        (PER_OP_MS, PER_IO_MS_PER_MB, OFFSET_MS), abs=1e-7
    )
    cp = CalibratedPredictor(predictor, calib)
    for net, t in zip(many_networks, truth):
        assert cp.predict(net.ops).sum() + cp.overhead_ms_ == pytest.approx(t, rel=1e-6)
    op = many_networks[0].ops[0]
    expected = KIND_SCALE[op.kind] * predictor.predict([op])[0] + PER_OP_MS + PER_IO_MS_PER_MB * io_mb([op])[0]
    assert cp.predict([op])[0] == pytest.approx(expected, rel=1e-6)
    assert calib.kind_scale("linear") == calib.scale == 1.0  # a kind the fit never saw keeps the plain scale
    assert "per-kind scales (head 1.10, mbconv 0.80, stem 1.40)" in cp.describe()


def test_kinds_ridge_pulls_scales_towards_one_and_bounds_hold(predictor, many_networks):
    truth = [_kinds_truth(predictor, n) for n in many_networks]
    free = NetworkCalibration.fit(predictor, many_networks, truth, terms="kinds", ridge=0.0)
    pulled = NetworkCalibration.fit(predictor, many_networks, truth, terms="kinds", ridge=100.0)
    for kind, s in free.kind_scales:
        assert abs(dict(pulled.kind_scales)[kind] - 1) < abs(s - 1)
    wild = [
        5 * _kinds_truth(predictor, n) if i % 2 else _kinds_truth(predictor, n) for i, n in enumerate(many_networks)
    ]
    bounded = NetworkCalibration.fit(predictor, many_networks, wild, terms="kinds", ridge=0.0)
    low, high = KIND_SCALE_BOUNDS
    assert all(low <= s <= high for _, s in bounded.kind_scales)
    chosen = NetworkCalibration.fit(predictor, many_networks, truth, terms="kinds")
    assert chosen.ridge in KIND_RIDGES
    with pytest.raises(ValueError, match="at least 5 measured networks, got 4"):
        NetworkCalibration.fit(predictor, many_networks[:4], truth[:4], terms="kinds")


def test_choose_calibration_keeps_the_plain_sum_or_the_set_that_predicts_held_out_networks(predictor, many_networks):
    plain = [float(predictor.predict(list(n.ops)).sum()) for n in many_networks]
    calib, loo, fits = choose_calibration(predictor, many_networks, plain)
    assert calib is None and loo["none"] == pytest.approx(0.0, abs=1e-12) and min(loo, key=loo.get) == "none"
    assert set(fits) == {"none", *CALIBRATION_TERMS}
    truth = [_kinds_truth(predictor, n) for n in many_networks]
    calib, loo, _ = choose_calibration(predictor, many_networks, truth)
    assert (
        calib.terms == "kinds" and loo["kinds"] < 0.01 and loo["kinds"] < min(v for t, v in loo.items() if t != "kinds")
    )
    few, loo_few, fits_few = choose_calibration(predictor, many_networks[:5], truth[:5])
    assert "kinds" not in fits_few and "kinds" not in loo_few  # needs 5 networks and one more left out


def test_count_io_fits_one_scale_a_per_op_and_a_per_mb_term(predictor, many_networks):
    truth = []
    for net in many_networks:
        ops = list(net.ops)
        truth.append(
            float(1.2 * predictor.predict(ops).sum() + PER_OP_MS * len(ops) + PER_IO_MS_PER_MB * io_mb(ops).sum())
            + OFFSET_MS
        )
    calib = NetworkCalibration.fit(predictor, many_networks, truth, terms="count-io")
    assert calib.terms == "count-io" and calib.kind_scales == () and calib.ridge == 0.0
    assert (calib.scale, calib.per_op_ms, calib.per_io_mb_ms, calib.offset_ms) == pytest.approx(
        (1.2, PER_OP_MS, PER_IO_MS_PER_MB, OFFSET_MS), abs=1e-7
    )
    assert "1.200 x sum(ops) -4.00 us/op" in CalibratedPredictor(predictor, calib).describe()
    assert "-20.00 us/MB of image activations" in CalibratedPredictor(predictor, calib).describe()
    assert calib.per_token_mb_ms == 0.0 and calib.per_weight_mb_ms == pytest.approx(0.0, abs=1e-7)


def test_count_io_and_kinds_keep_every_share_above_a_tenth_of_the_op_alone(predictor, many_networks):
    ops = list(many_networks[0].ops)
    raw = predictor.predict(ops)
    free = NetworkCalibration(per_op_ms=-10 * float(raw.max()), terms="count-io", n_networks=5)
    assert CalibratedPredictor(predictor, free).predict(ops) == pytest.approx(MIN_SHARE * raw)
    old = NetworkCalibration(per_op_ms=-10 * float(raw.max()), terms="count", n_networks=5)
    assert np.all(CalibratedPredictor(predictor, old).predict(ops) < 0)  # the older sets are left as they were


def test_op_terms_split_image_and_other_activations_and_count_weights():
    ops = [
        OpSpec("pwconv", cin=16, cout=32, h=8, w=8),
        OpSpec("linear", cin=64, cout=10, tokens=5),
        OpSpec("transpose", cin=64, h=4, w=5),
    ]
    t = op_terms(ops)
    assert t[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[0, 1:3].tolist() == pytest.approx([4e-6 * (16 + 32) * 64, 0.0])
    assert t[1, 1:3].tolist() == pytest.approx([0.0, 4e-6 * 5 * (64 + 10)])
    assert t[2, 1] == 0.0 and t[2, 2] == pytest.approx(4e-6 * 2 * 64 * 20)
    assert t[:, 3].tolist() == pytest.approx([4e-6 * ops[0].params, 4e-6 * (64 * 10 + 10), 0.0])
