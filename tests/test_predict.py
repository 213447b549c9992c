import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from hwlat.devices import create_backend
from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.predict import (
    MODELS,
    LatencyPredictor,
    PredictorFileError,
    UnknownKindError,
    load_predictor,
    save_predictor,
)


def random_ops(n, seed=0):
    rng = np.random.default_rng(seed)
    ops = set()
    while len(ops) < n:
        h = int(rng.choice([7, 14, 28, 56]))
        ops.add(
            OpSpec(
                "mbconv",
                cin=8 * int(rng.integers(1, 30)),
                cout=8 * int(rng.integers(1, 30)),
                h=h,
                w=h,
                kernel=int(rng.choice([3, 5, 7])),
                stride=int(rng.choice([1, 2])),
                expand=int(rng.choice([3, 6])),
            )
        )
    return sorted(ops, key=lambda o: o.key)


FAKE = create_backend("fake")


def truth_ms(ops):
    return np.array([FAKE.true_latency_s(op) * 1e3 for op in ops])


def test_estimator_conventions():
    p = LatencyPredictor(model="prior+rf", random_state=3)
    assert p.get_params() == {"model": "prior+rf", "random_state": 3}
    assert clone(p).get_params() == p.get_params()
    with pytest.raises(NotFittedError):
        p.predict([OpSpec("pwconv", cin=8, cout=8, h=7, w=7)])
    with pytest.raises(ValueError, match="Invalid parameter model='xgb'.*valid: prior"):
        LatencyPredictor(model="xgb").fit(random_ops(10), np.ones(10))
    with pytest.raises(ValueError, match="finite and > 0"):
        LatencyPredictor().fit(random_ops(3), [1.0, 0.0, 2.0])


@pytest.mark.parametrize("model", MODELS)
def test_learns_the_fake_roofline(model):
    train, test = random_ops(300, 0), random_ops(120, 1)
    p = LatencyPredictor(model=model).fit(train, truth_ms(train))
    rel = np.abs(p.predict(test) / truth_ms(test) - 1)
    assert p.n_train_ == {"mbconv": 300}
    if model.startswith("prior+") or model == "gbr":
        assert np.mean(rel <= 0.10) >= 0.95, np.mean(rel <= 0.1)
    else:
        assert np.median(rel) < 0.15


def test_unknown_kind_names_kind_and_command():
    p = LatencyPredictor().fit(random_ops(20), truth_ms(random_ops(20)), device_key="onnxruntime-cpu/t1/b1/fp32")
    with pytest.raises(UnknownKindError, match=r"'dsconv'.*hwlat measure --device onnxruntime-cpu --space dsconv"):
        p.predict([OpSpec("dsconv", cin=8, cout=8, h=7, w=7, kernel=3)])


def test_network_prediction_and_calibration():
    stem = OpSpec("stem", cin=3, cout=16, h=32, w=32, kernel=3, stride=2)
    head = OpSpec("head", cin=16, mid=64, cout=10, h=16, w=16)
    nets = [
        Network(f"n{i}", (stem, OpSpec("mbconv", cin=16, cout=16, h=16, w=16, kernel=k, stride=1, expand=e), head))
        for i, (k, e) in enumerate([(3, 3), (5, 3), (7, 6), (3, 6)])
    ]
    ops = sorted({op for n in nets for op in n.ops}, key=lambda o: o.key)
    p = LatencyPredictor(model="prior").fit(ops, truth_ms(ops))
    sums = p.predict_network(nets)
    assert np.allclose(sums, [p.predict(list(n.ops)).sum() for n in nets])
    measured = sums + 0.25  # a constant per-network overhead
    p.calibrate(nets, measured)
    assert p.overhead_ms_ == pytest.approx(0.25)
    assert np.allclose(p.predict_network(nets), measured)
    p.calibrate(nets, 1.5 * sums + 0.1, scale=True)
    assert p.scale_ == pytest.approx(1.5) and p.overhead_ms_ == pytest.approx(0.1, abs=1e-9)


def test_fit_table_from_store(tmp_path):
    from hwlat.measure import measure
    from hwlat.store import LatencyStore

    ops = random_ops(40)
    store = LatencyStore(tmp_path / "t.db")
    info = store.add_device(FAKE.describe())
    for m in measure(FAKE, ops):
        store.add(m, info)
    p = LatencyPredictor().fit_table(store)
    assert p.device_key_ == "fake/t1/b1/fp32" and len(p.table_sha256_) == 64
    assert np.median(np.abs(p.predict(ops) / truth_ms(ops) - 1)) < 0.05


def test_save_load_round_trip_and_tamper(tmp_path):
    ops = random_ops(60)
    p = LatencyPredictor().fit(ops, truth_ms(ops), device_key="fake/t1/b1/fp32")
    path, meta_path = save_predictor(p, tmp_path / "p.skops", table="t.db")
    q = load_predictor(path)
    assert np.array_equal(q.predict(ops), p.predict(ops))
    meta = json.loads(meta_path.read_text())
    assert meta["device_key"] == "fake/t1/b1/fp32" and meta["kinds"] == {"mbconv": 60}
    assert set(meta["versions"]) >= {"hwlat", "scikit-learn", "numpy"}
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(PredictorFileError, match="modified"):
        load_predictor(path)


def test_foreign_files_refused(tmp_path):
    import skops.io as sio
    from sklearn.svm import SVR

    path = tmp_path / "svr.skops"
    sio.dump(SVR(), path)
    with pytest.raises(PredictorFileError, match="metadata"):
        load_predictor(path)
    # A forged metadata file cannot make hwlat trust other types.
    import hashlib

    meta = {"format": "hwlat.predictor/1", "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (tmp_path / "svr.skops.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="does not trust|holds a SVR"):
        load_predictor(path)
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    (tmp_path / "junk.skops.json").write_text(
        json.dumps({**meta, "file_sha256": hashlib.sha256(b"not a zip").hexdigest()})
    )
    with pytest.raises(PredictorFileError, match="not a readable skops file.*hwlat fit"):
        load_predictor(tmp_path / "junk.skops")


def test_fit_sets_the_training_provenance_and_fit_table_fills_it(tmp_path):
    from hwlat.measure import measure
    from hwlat.store import LatencyStore

    ops = random_ops(30)
    p = LatencyPredictor(model="prior").fit(ops, truth_ms(ops))
    assert (p.target_, p.table_sha256_, p.drift_corrected_) == ("median_ms", None, False)
    store = LatencyStore(tmp_path / "t.db")
    info = store.add_device(FAKE.describe())
    for m in measure(FAKE, ops):
        store.add(m, info)
    q = LatencyPredictor(model="prior").fit_table(store, target="p5_ms", correct_drift=True)
    assert q.target_ == "p5_ms" and len(q.table_sha256_) == 64 and q.drift_corrected_ is True
    # Re-fitting on raw arrays forgets the table's provenance.
    q.fit(ops, truth_ms(ops))
    assert (q.target_, q.table_sha256_, q.drift_corrected_) == ("median_ms", None, False)


def test_predictor_saved_before_fit_set_its_provenance_still_loads_with_it():
    import skops.io as sio

    ops = random_ops(20)
    p = LatencyPredictor(model="prior").fit(ops, truth_ms(ops))
    for name in ("target_", "table_sha256_", "drift_corrected_"):
        delattr(p, name)  # as a file written by an older hwlat holds it
    data = sio.dumps(p)
    q = sio.loads(data, trusted=sorted(sio.get_untrusted_types(data=data)))
    assert (q.target_, q.table_sha256_, q.drift_corrected_) == ("median_ms", None, False)
    assert np.array_equal(q.predict(ops), LatencyPredictor(model="prior").fit(ops, truth_ms(ops)).predict(ops))


def test_fitted_predictor_is_a_latency_model():
    from hwlat.predict.protocol import LatencyModel

    ops = random_ops(10)
    assert not isinstance(LatencyPredictor(), LatencyModel)
    assert isinstance(LatencyPredictor(model="prior").fit(ops, truth_ms(ops)), LatencyModel)


def test_metadata_edits_are_refused_and_messages_show_plain_strings(tmp_path):
    ops = random_ops(20)
    p = LatencyPredictor(model="prior").fit(ops, truth_ms(ops))
    path, meta_path = save_predictor(p, tmp_path / "p.skops")
    assert load_predictor(path).scale_ == 1.0
    meta = json.loads(meta_path.read_text())
    for field, value in (("scale", 2.0), ("overhead_ms", 1.0), ("target", "p95_ms")):
        meta_path.write_text(json.dumps({**meta, field: value}))
        with pytest.raises(PredictorFileError, match="metadata was modified"):
            load_predictor(path)
    with pytest.raises(UnknownKindError) as info:
        p.predict([OpSpec("pwconv", cin=8, cout=8, h=7, w=7)])
    assert "op kind 'pwconv'" in str(info.value) and "np.str_" not in str(info.value)


def test_save_predictor_never_replaces_a_table_or_a_foreign_file(tmp_path):
    from hwlat.outfile import OutputFileError

    ops = random_ops(20)
    p = LatencyPredictor(model="prior").fit(ops, truth_ms(ops))
    table = tmp_path / "t.db"
    table.write_bytes(b"SQLite format 3\x00" + bytes(84))
    other = tmp_path / "other.bin"
    other.write_bytes(b"data")
    for force in (False, True):
        with pytest.raises(OutputFileError, match="is a latency table"):
            save_predictor(p, table, force=force)
    with pytest.raises(OutputFileError, match="not a predictor written by hwlat"):
        save_predictor(p, other)
    assert table.read_bytes()[:16] == b"SQLite format 3\x00" and other.read_bytes() == b"data"
    save_predictor(p, other, force=True)
    save_predictor(p, other)  # now ours: replaced without force
    assert load_predictor(other).kinds_ == ["mbconv"]


def test_features_of_the_largest_allowed_op_are_finite():
    """MAC counts past int64 (65536 channels, 8192x8192, k=31) must not reach log1p as Python ints."""
    from hwlat.predict.predictor import op_features

    op = OpSpec("conv", cin=65536, cout=65536, h=8192, w=8192, kernel=31)
    assert op.flops > 2**63
    assert np.isfinite(op_features([op])).all()
