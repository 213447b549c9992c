"""Whole-model calibration from a table: model rows record their kernels, fit_table fits how they compose."""

from __future__ import annotations

import numpy as np
import pytest

from hwlat.devices import create_backend
from hwlat.measure import Protocol
from hwlat.ops import OpSpec
from hwlat.predict import LatencyPredictor, load_predictor, save_predictor
from hwlat.predict.model import predict_model
from hwlat.predict.predictor import MIN_COMPOSITION_MODELS, model_chains
from hwlat.store import LatencyStore
from hwlat.workflows import model_kernels, resolve_models, run_measure

FAKE = create_backend("fake/noise=0")


@pytest.fixture(scope="module")
def composed():
    return resolve_models(f"composed:{MIN_COMPOSITION_MODELS + 4}:20")


@pytest.fixture(scope="module")
def table(tmp_path_factory, composed):
    """The composed networks measured whole on the fake device, then every kernel they record."""
    db = tmp_path_factory.mktemp("composition") / "t.db"
    with LatencyStore(db) as store:
        run_measure(FAKE, composed, store, Protocol(), quiet=True)
        models = store.frame(FAKE.spec.key, provenance=False)
        keys = {k for e in models["extra"] for k in e["kernels"].split(";") if not k.startswith("?")}
        run_measure(FAKE, [OpSpec.from_key(k) for k in sorted(keys)], store, Protocol(), quiet=True)
    return db


@pytest.mark.slow
def test_a_model_row_records_the_kernels_the_device_runs(table, composed):
    with LatencyStore(table, readonly=True) as store:
        df = store.frame(FAKE.spec.key, provenance=False)
    row = df[df["op_key"] == composed[0].key].iloc[0]
    assert row["extra"]["kernels"] == model_kernels(FAKE, composed[0])[0][1]
    from hwlat.graph import detect_kernels

    kernels = detect_kernels(composed[0].graph(), device=FAKE.spec.key).kernels
    assert row["extra"]["kernels"].split(";") == [k.specs[0].key if k.specs else f"?{k.type}" for k in kernels]


@pytest.mark.slow
def test_fit_table_calibrates_whole_models_and_predict_model_applies_it(table, composed, tmp_path):
    with LatencyStore(table, readonly=True) as store:
        p = LatencyPredictor(model="prior").fit_table(store)
        df = store.frame(FAKE.spec.key, provenance=False)
    chains, measured = model_chains(df[df["kind"] == "model"], "median_ms", set(p.kinds_))
    assert MIN_COMPOSITION_MODELS <= len(chains) == p.composition_["n_models"] <= len(composed)
    # alone, every kernel pays the fake device's call overhead; a whole model pays it once
    loo = p.composition_["loo_mape"]
    assert p.composition_["terms"] != "none" and loo[p.composition_["terms"]] < 0.5 * loo["none"]
    calib = p.composition()
    assert calib is not None and calib.terms == p.composition_["terms"]
    measured_ms = dict(zip(df["op_key"], df["median_ms"]))
    plain = LatencyPredictor(model="prior").fit_table(table)
    plain.composition_ = None
    errors, plain_errors = [], []
    for m in composed:
        pred = predict_model(p, m.graph(), device=FAKE.spec.key, allow_missing=True)
        assert pred.scale == 1.0 and pred.overhead_ms == pytest.approx(calib.offset_ms)
        alone = predict_model(plain, m.graph(), device=FAKE.spec.key, allow_missing=True)
        errors.append(abs(pred.total_ms / measured_ms[m.key] - 1))
        plain_errors.append(abs(alone.total_ms / measured_ms[m.key] - 1))
    assert np.mean(errors) < 0.5 * np.mean(plain_errors)
    path, meta = save_predictor(p, tmp_path / "p.skops")
    again = load_predictor(path)
    assert again.composition() == calib
    assert '"composition"' in meta.read_text()


def test_tables_without_model_rows_fit_no_composition(tmp_path):
    ops = [OpSpec("pwconv", cin=c, cout=c, h=14, w=14) for c in range(8, 120, 8)]
    with LatencyStore(tmp_path / "t.db") as store:
        run_measure(FAKE, ops, store, Protocol(), quiet=True)
        p = LatencyPredictor(model="prior").fit_table(store)
    assert p.composition_ is None and p.composition() is None


@pytest.mark.parametrize("runtime", ["onnxruntime-cpu", "litert-cpu"])
def test_the_shipped_model_kernels_tables_calibrate_whole_models(runtime):
    """datasets_lat/*_model-kernels.csv: 96 composed networks whose recorded kernels all parse into op kinds
    the table has rows for, so `hwlat fit` on them fits composition_ (and no zoo model is among them)."""
    import json
    from pathlib import Path

    import pandas as pd

    csv = Path(__file__).resolve().parents[1] / "datasets_lat" / f"{runtime}_model-kernels.csv"
    df = pd.read_csv(csv, keep_default_na=False)
    models = df[df["kind"] == "model"]
    assert len(models) == 96 and models["op_key"].str.startswith("model:composed-").all()
    df["extra"] = [json.loads(e or "{}") for e in df["extra_json"]]
    df["median_ms"] = df["median_ms"].astype(float)
    kinds = set(df.loc[df["kind"] != "model", "kind"])
    chains, measured = model_chains(df[df["kind"] == "model"], "median_ms", kinds)
    assert len(chains) >= 90 and np.all(measured > 0)
    assert {op.kind for c in chains for op in c.ops} <= kinds
