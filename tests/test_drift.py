"""Drift reference and correction (hwlat.measure.drift, measure(..., reference=)) on the fake device's busy spells."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from hwlat.devices import create_backend
from hwlat.measure import Protocol, measure
from hwlat.measure.drift import REFERENCE_OP, correct_frame, correct_frames, drift_summary, reference_id, reference_op
from hwlat.ops import OpSpec
from hwlat.predict import LatencyPredictor, save_predictor
from hwlat.predict.evaluate import evaluate_table
from hwlat.spaces import get_space
from hwlat.store import LatencyStore

OPS = get_space("mbconv").sample(24, seed=1)
REF = reference_op("auto")
SPELL = {"drift": "2:1.8", "noise": "0.01"}  # 2 s of device time at speed 1, 2 s at 1/1.8, ...


def frame_of(results) -> pd.DataFrame:
    """What LatencyStore.frame gives for these measurements (the columns drift correction reads)."""
    return pd.DataFrame(
        [
            {
                "device_key": "fake",
                "protocol": m.protocol,
                "op_key": m.op_key,
                "kind": m.kind,
                "median_ms": m.median_ms,
                "p5_ms": m.p5_ms,
                "round_medians_ms": m.round_medians_ms,
                "extra": dict(m.extra),
            }
            for m in sorted(results, key=lambda m: m.op_key)
        ]
    ).set_index("op_key", drop=False)


def agree(a: pd.DataFrame, b: pd.DataFrame, tol: float = 0.05) -> float:
    x, y = a["median_ms"].to_numpy(), b.loc[a.index, "median_ms"].to_numpy()
    return float(np.mean(np.abs(x / y - 1) <= tol))


# ------------------------------------------------------------ the fake device's spells
def test_fake_spells_slow_the_whole_device():
    be = create_backend("fake", options={"drift": "0.05:2", "noise": "0"})
    r = be.prepare(OPS[0])
    base = be.true_latency_s(OPS[0])
    n = int(np.ceil(0.05 / base)) + 5  # past the first spell
    first = be.run(r, n)
    second = be.run(r, n)
    assert first[0] == pytest.approx(base) and second[-1] == pytest.approx(2 * base)
    start_slow = create_backend("fake", options={"drift": "0.05:2", "drift_phase": "1", "noise": "0"})
    assert start_slow.run(start_slow.prepare(OPS[0]), 1)[0] == pytest.approx(2 * base)
    with pytest.raises(ValueError, match="PERIOD:FACTOR"):
        create_backend("fake", options={"drift": "fast"}).run(r, 1)


# ------------------------------------------------------------ recording the reference
def test_reference_is_recorded_and_leaves_medians_alone():
    plain = {m.op_key: m for m in measure(create_backend("fake"), OPS)}
    with_ref = measure(create_backend("fake"), OPS, reference=REF)
    assert {m.op_key for m in with_ref} == set(plain)  # the reference itself is not a row
    for m in with_ref:
        extra = dict(m.extra)
        assert extra["ref_id"] == reference_id(REFERENCE_OP)
        truth_ms = create_backend("fake").true_latency_s(REF) * 1e3
        assert extra["ref_ms"] == pytest.approx(truth_ms, rel=0.05)
        assert m.median_ms == plain[m.op_key].median_ms  # the op's own draws do not change


def test_reference_needs_per_run_times_and_the_adaptive_protocol():
    with pytest.raises(ValueError, match="adaptive protocol"):
        measure(create_backend("fake"), OPS[:2], Protocol.fixed(), reference=REF)

    class OwnTiming:  # a backend whose device times its runs itself, like adb's benchmark_model
        name = "adb"
        per_run_times = False

        def time_block(self, *args, **kwargs):
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="per-run times"):
        measure(OwnTiming(), OPS[:2], reference=REF)  # type: ignore[arg-type]


def test_reference_op_names():
    assert reference_op("auto").key == REFERENCE_OP
    key = "conv:cin=16,cout=16,h=28,w=28,kernel=3,stride=1,act=relu"
    assert reference_op(key).key == OpSpec.from_key(key).key
    with pytest.raises(ValueError, match="Invalid reference 'fastest'"):
        reference_op("fastest")


# ------------------------------------------------------------ correcting
def test_two_sessions_in_opposite_spells_agree_once_corrected():
    a = frame_of(measure(create_backend("fake", options=SPELL), OPS, reference=REF))
    b = frame_of(measure(create_backend("fake", options={**SPELL, "drift_phase": "1"}), OPS, reference=REF))
    assert agree(a, b) < 0.2  # raw: one session's fast spell is the other's slow one
    ca, cb = correct_frames(a, b)
    assert agree(ca, cb) == 1.0
    be = create_backend("fake")
    truth = np.array([be.true_latency_s(OpSpec.from_key(k)) * 1e3 for k in ca.index])
    scale = ca["median_ms"].to_numpy() / truth
    assert np.ptp(scale) / np.median(scale) < 0.05  # one common speed for every row
    assert set(np.round(ca["drift"], 1)) <= {0.7, 1.3, 1.4} and ca["ref_ms"].notna().all()


def test_correct_frame_scales_every_statistic_and_leaves_rows_without_a_reference():
    rows = pd.DataFrame(
        {
            "device_key": ["d"] * 3,
            "protocol": ["p"] * 3,
            "op_key": ["x", "y", "z"],
            "median_ms": [2.0, 4.0, 5.0],
            "p5_ms": [1.0, 3.0, 4.0],
            "round_medians_ms": [(2.0, 2.2), (4.0,), (5.0,)],
            "extra": [{"ref_ms": 1.0, "ref_id": 7.0}, {"ref_ms": 2.0, "ref_id": 7.0}, {}],
        }
    )
    out = correct_frame(rows)  # baseline: median of 1.0 and 2.0 = 1.5
    assert list(out["median_ms"]) == pytest.approx([3.0, 3.0, 5.0]) and list(out["p5_ms"]) == pytest.approx(
        [1.5, 2.25, 4.0]
    )
    assert out["round_medians_ms"][0] == pytest.approx((3.0, 3.3)) and out["round_medians_ms"][2] == (5.0,)
    assert list(out["drift"][:2]) == pytest.approx([1 / 1.5, 2 / 1.5]) and np.isnan(out["drift"][2])
    assert list(correct_frame(rows, baseline_ms=1.0)["median_ms"]) == pytest.approx([2.0, 2.0, 5.0])
    assert list(rows["median_ms"]) == [2.0, 4.0, 5.0]  # a copy: the input is unchanged
    assert "1-2 ms over 2 rows (x2.00)" in drift_summary(
        rows
    ) and "rows without a reference, left raw: 1" in drift_summary(rows)
    assert "without a reference" not in drift_summary(rows.iloc[:2])
    assert drift_summary(rows.iloc[2:]) is None


def test_store_fit_and_evaluate_correct_on_request(tmp_path):
    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    for db, phase in ((db_a, "0"), (db_b, "1")):  # two sessions of one device; the second starts in a slow spell
        be = create_backend("fake", options={**SPELL, "drift_phase": phase})
        key = create_backend("fake", options=SPELL).spec.key
        with LatencyStore(db) as store:
            info = store.add_device(dataclasses.replace(be.describe(), device_key=key))
            for m in measure(be, OPS, reference=REF):
                store.add(dataclasses.replace(m, device_key=key), info)
    with LatencyStore(db_a, readonly=True) as store:
        raw, fixed = store.frame(), store.frame(correct_drift=True)
    assert (raw["median_ms"] != fixed["median_ms"]).any() and fixed["drift"].notna().all()
    p = LatencyPredictor().fit_table(db_a, correct_drift=True)
    assert p.drift_corrected_ and not LatencyPredictor().fit_table(db_a).drift_corrected_
    _, meta = save_predictor(p, tmp_path / "p.skops", table=str(db_a))
    assert json.loads(meta.read_text())["drift_corrected"] is True
    floor_raw = evaluate_table(p, db_a, repeat_table=db_b)["noise_floor"]["ops"]
    floor_fixed = evaluate_table(p, db_a, repeat_table=db_b, correct_drift=True)["noise_floor"]["ops"]
    assert floor_fixed.acc5 == 1.0 and floor_raw.acc5 < 0.5
