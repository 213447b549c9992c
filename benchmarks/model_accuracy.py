"""How well hwlat predicts real models it never measured: the zoo's families and the part-1 fixtures.

    python benchmarks/model_accuracy.py [--runtimes onnxruntime-cpu,litert-cpu] [--per-kind 100]
        [--models 'PATTERN'] [--own-models 19] [--work DIR]

For each CPU runtime:

1. **sampled tables**: ``--per-kind`` configs of every kind of the ``model-kernels`` space
   (:mod:`hwlat.spaces.models`: the ranges of real CNNs and small ViTs, drawn at random, not the
   test models' kernels), measured with the default adaptive protocol; a predictor is fitted on them;
2. **the test models**: every variant of hwlat's model zoo (:mod:`hwlat.models`, plain-PyTorch
   families) and the part-1 fixtures (MediaPipe's .tflite on LiteRT, RapidOCR's .onnx on ONNX
   Runtime), each measured whole twice in the same run: pass A over all of them, then pass B (the
   noise floor: how well one measurement predicts the other);
3. each model predicted kernel by kernel (``predict_model``) from the graph the runtime executes
   (the exported .onnx, the converted .tflite, the fixture file), against the mean of A and B;
4. the same with ``--kernels`` tables: the distinct kernels of ``--own-models`` models (one variant
   per family, then the fixtures) measured themselves, and those models predicted from them.

Reported per family and overall: MAPE, ±5 %/±10 % accuracy, Spearman ρ, next to the same for pass A
as a prediction of pass B; and the number of kernel samples per kind. Measurements are kept in
``--work`` (LatencyStore tables, resumable): a second run measures only what is missing.
Writes benchmarks/results/model_accuracy.json and .md, and the sampled tables as
datasets_lat/<runtime>_model-kernels.csv (``--ship``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNTIMES = ("onnxruntime-cpu", "litert-cpu")
RAPIDOCR_SHAPES = {
    "ch_PP-OCRv4_det_infer": "1x3x640x640",
    "ch_PP-OCRv4_rec_infer": "1x3x48x320",
    "ch_ppocr_mobile_v2.0_cls_infer": "1x3x48x192",
}
CUSTOM_OP = "face_landmark_with_attention"  # custom ops LiteRT cannot resolve


# ------------------------------------------------------------------ the test models
def zoo_models(pattern: str) -> list[dict]:
    """The zoo's variants matching ``pattern``: name, family, and the torch Model (exported per runtime)."""
    from hwlat.graph import load_model
    from hwlat.models import get_model, list_models

    out = []
    for name in list_models(pattern.split(",")):
        spec = get_model(name)
        out.append(
            {
                "name": name,
                "family": spec.family,
                "item": load_model(spec.build(), input_shape=spec.input_shape, name=name),
            }
        )
    return out


def fixture_models(runtime: str) -> list[dict]:
    """The part-1 fixtures a runtime runs as they are: MediaPipe .tflite (LiteRT), RapidOCR .onnx (ORT)."""
    from hwlat.graph import load_model
    from hwlat.graph.wheels import fixture_models as files

    if runtime == "litert-cpu":
        return [
            {"name": p.stem, "family": "mediapipe", "item": load_model(p, name=p.stem)}
            for p in files("mediapipe")
            if p.stem != CUSTOM_OP
        ]
    return [
        {"name": p.stem, "family": "rapidocr", "item": load_model(p, input_shape=RAPIDOCR_SHAPES[p.stem], name=p.stem)}
        for p in files("rapidocr")
    ]


def runtime_item(backend, m: dict):
    """What ``backend`` runs for a test model, as a file Model: the converted .tflite or exported .onnx."""
    from hwlat.graph import load_model

    item = m["item"]
    if getattr(item, "format", None) in ("onnx", "tflite"):
        return item
    return load_model(backend.convert(item), name=m["name"])


# ------------------------------------------------------------------ measuring
def measure_into(backend, items, db: Path, protocol, jobs: int = 2) -> dict[str, float]:
    """Measure what ``db`` lacks; {item key: median ms} of every item."""
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    db.parent.mkdir(parents=True, exist_ok=True)
    with LatencyStore(db) as store:
        run_measure(backend, items, store, protocol, quiet=not sys.stderr.isatty(), jobs=jobs)
        frame = store.frame(backend.spec.key, provenance=False)
    frame = frame[frame["protocol"] == protocol.key]
    return dict(zip(frame["op_key"], frame["median_ms"].astype(float)))


def fit(db: Path, device_key: str):
    from hwlat.predict import LatencyPredictor
    from hwlat.store import LatencyStore

    with LatencyStore(db, readonly=True) as store:
        return LatencyPredictor().fit_table(store, device=device_key)


def kernel_chain(predictor, item, device: str) -> SimpleNamespace:
    """The OpSpecs standing for a model's kernels, as the ``ops`` a network calibration sums."""
    from hwlat.predict.model import predict_model

    pred = predict_model(predictor, item.graph(), device=device, allow_missing=True)
    return SimpleNamespace(ops=tuple(u.spec for u in pred.known))


def calibrations(predictor, items: list, measured: list[float], device: str) -> tuple[dict, dict]:
    """One NetworkCalibration per term set (None: the plain sum), fitted on the calibration models' kernel
    chains, and each one's leave-one-out MAPE on those models (what chooses the term set)."""
    from hwlat.predict.calibration import CALIBRATION_TERMS, CalibratedPredictor, NetworkCalibration

    chains = [kernel_chain(predictor, it, device) for it in items]
    y = np.asarray(measured, dtype=float)
    fits: dict = {"none": None}
    loo: dict[str, float] = {
        "none": float(np.mean([abs(predictor.predict(c.ops).sum() / m - 1) for c, m in zip(chains, y)]))
    }
    for t in CALIBRATION_TERMS:
        fits[t] = NetworkCalibration.fit(predictor, chains, y, terms=t)
        errs = []
        for j in range(len(chains)):
            rest = [i for i in range(len(chains)) if i != j]
            c = NetworkCalibration.fit(predictor, [chains[i] for i in rest], y[rest], terms=t)
            pred = CalibratedPredictor(predictor, c).predict(chains[j].ops).sum() + c.offset_ms
            errs.append(abs(pred / y[j] - 1))
        loo[t] = float(np.mean(errs))
    return fits, loo


def predict_all(predictor, items: list, device: str) -> list[dict]:
    from hwlat.predict.model import predict_model

    out = []
    for item in items:
        pred = predict_model(predictor, item.graph(), device=device, allow_missing=True)
        covered = sum(u.macs for u in pred.known) / max(1, pred.macs)
        out.append(
            {"pred_ms": pred.total_ms, "units": len(pred.units), "missing": len(pred.missing), "macs_covered": covered}
        )
    return out


# ------------------------------------------------------------------ scores
def scores(pred: np.ndarray, meas: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    err = pred / meas - 1.0
    rho = float(spearmanr(pred, meas).statistic) if len(pred) > 2 else float("nan")
    return {
        "n": int(len(pred)),
        "mape": float(np.mean(np.abs(err))),
        "within_5": float(np.mean(np.abs(err) <= 0.05)),
        "within_10": float(np.mean(np.abs(err) <= 0.10)),
        "bias": float(np.median(err)),
        "spearman": rho,
    }


def by_family(rows: list[dict], pred_key: str) -> dict[str, dict]:
    fams = sorted({r["family"] for r in rows})
    out = {}
    for fam in [*fams, "all"]:
        sel = [r for r in rows if fam == "all" or r["family"] == fam]
        sel = [r for r in sel if np.isfinite(r.get(pred_key, np.nan))]
        if not sel:
            continue
        meas = np.array([r["measured_ms"] for r in sel])
        out[fam] = {
            "predicted": scores(np.array([r[pred_key] for r in sel]), meas),
            "noise": scores(np.array([r["a_ms"] for r in sel]), np.array([r["b_ms"] for r in sel])),
        }
    return out


# ------------------------------------------------------------------ one runtime
def run_runtime(runtime: str, args, work: Path) -> dict:
    from hwlat.devices import create_backend
    from hwlat.graph import detect_kernels
    from hwlat.measure import Protocol
    from hwlat.predict.model import kernel_specs
    from hwlat.spaces.models import sample_per_kind

    backend = create_backend(runtime)
    key = backend.spec.key
    protocol = Protocol()
    t0 = time.perf_counter()

    # 1. sampled tables
    specs = sample_per_kind(args.per_kind[runtime], seed=args.seed)
    table_db = work / runtime / "kernels.db"
    measure_into(backend, specs, table_db, protocol)
    t_tables = time.perf_counter() - t0
    predictor = fit(table_db, key)
    samples = {k: sum(s.kind == k for s in specs) for k in dict.fromkeys(s.kind for s in specs)}

    # calibration: random ProxylessNAS-space networks (hwlat's own sampled space, not test models), measured whole
    from hwlat.predict.calibration import CalibratedPredictor
    from hwlat.workflows import resolve_networks

    calib_items = [
        runtime_item(backend, {"item": n, "name": n.name})
        for n in resolve_networks(f"random:{args.calib}", seed=args.seed + 1)
    ]
    cm = measure_into(backend, calib_items, work / runtime / "calibration.db", protocol)
    calib, loo = calibrations(predictor, calib_items, [cm[it.key] for it in calib_items], key)
    terms = min(loo, key=loo.get) if args.terms == "auto" else args.terms

    # 2. the test models, measured twice
    zoo = zoo_models(args.models)
    if args.per_family.get(runtime):  # the first K variants of each family (LiteRT converts each in ~10 s)
        k = args.per_family[runtime]
        zoo = [m for i, m in enumerate(zoo) if sum(z["family"] == m["family"] for z in zoo[:i]) < k]
    tests = zoo + (fixture_models(runtime) if args.fixtures else [])
    items = [runtime_item(backend, m) for m in tests]
    t1 = time.perf_counter()
    a = measure_into(backend, items, work / runtime / "models_A.db", protocol)
    b = measure_into(backend, items, work / runtime / "models_B.db", protocol)
    t_models = time.perf_counter() - t1

    # 3. predicted from the sampled tables, plain sums and calibrated
    preds = predict_all(predictor, items, key)
    calibrated = {t: predict_all(CalibratedPredictor(predictor, c), items, key) for t, c in calib.items()}
    rows = []
    for i, (m, item, p) in enumerate(zip(tests, items, preds)):
        ma, mb = a[item.key], b[item.key]
        rows.append(
            {
                "model": m["name"],
                "family": m["family"],
                "format": item.format,
                "mmacs": item.graph().macs / 1e6,
                "a_ms": ma,
                "b_ms": mb,
                "measured_ms": float(np.sqrt(ma * mb)),
                "sampled_ms": p["pred_ms"],
                "kernels": p["units"],
                "missing": p["missing"],
                "macs_covered": p["macs_covered"],
                **{f"sampled_{t}_ms": calibrated[t][i]["pred_ms"] for t in calib},
            }
        )

    # 4. --kernels tables: the models' own kernels
    own_names: list[str] = []
    seen_fam: set[str] = set()
    for m in tests:
        if m["family"] not in seen_fam and len(own_names) < args.own_models.get(runtime, 0):
            seen_fam.add(m["family"])
            own_names.append(m["name"])
    own_items = [it for m, it in zip(tests, items) if m["name"] in own_names]
    own_specs: dict[str, object] = {}
    for it in own_items:
        for s in kernel_specs(detect_kernels(it.graph(), device=key)):
            own_specs.setdefault(s.key, s)
    own_db = work / runtime / "own_kernels.db"
    t2 = time.perf_counter()
    measure_into(backend, list(own_specs.values()), own_db, protocol)
    t_own = time.perf_counter() - t2
    own_predictor = fit(own_db, key)
    own_pred = predict_all(CalibratedPredictor(own_predictor, calib[terms]), own_items, key)
    own_by_name = dict(zip(own_names, own_pred))
    for r in rows:
        if r["model"] in own_by_name:
            r["own_ms"] = own_by_name[r["model"]]["pred_ms"]
            r["own_missing"] = own_by_name[r["model"]]["missing"]
    return {
        "runtime": runtime,
        "device_key": key,
        "protocol": protocol.key,
        "samples_per_kind": samples,
        "samples_total": len(specs),
        "own_kernel_configs": len(own_specs),
        "own_models": own_names,
        "seconds": {"tables": t_tables, "models": t_models, "own_tables": t_own, "total": time.perf_counter() - t0},
        "calibration": {t: dataclasses.asdict(c) if c else None for t, c in calib.items()},
        "calibration_models": len(calib_items),
        "terms": terms,
        "calibration_loo_mape": loo,
        "sampled": by_family(rows, f"sampled_{terms}_ms"),
        "sampled_by_terms": {t: by_family(rows, f"sampled_{t}_ms")["all"]["predicted"] for t in calib},
        "own": by_family([r for r in rows if "own_ms" in r], "own_ms"),
        "rows": rows,
    }


# ------------------------------------------------------------------ report
def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(res: dict) -> list[str]:
    md = [
        "# Predicting real models from sampled kernel tables",
        "",
        f"{res['date']}, {res['machine']}, {res['cpus']} CPUs (shared, noisy). Regenerate: "
        "`python benchmarks/model_accuracy.py`.",
        "",
    ]
    for rt in res["runtimes"]:
        s = rt["sampled"]["all"]
        kinds = ", ".join(f"{k} {n}" for k, n in rt["samples_per_kind"].items())
        md += [
            f"## {rt['device_key']}",
            "",
            f"- sampled tables: {rt['samples_total']} kernel configs ({kinds}), protocol `{rt['protocol']}`",
            f"- {s['predicted']['n']} models: **{_pct(s['predicted']['within_10'])} within ±10 %**, "
            f"{_pct(s['predicted']['within_5'])} within ±5 %, MAPE {_pct(s['predicted']['mape'])}, "
            f"Spearman ρ {s['predicted']['spearman']:.3f}; noise floor (pass A as a prediction of pass B): "
            f"{_pct(s['noise']['within_10'])} within ±10 %, MAPE {_pct(s['noise']['mape'])}; "
            f"error / noise floor = {s['predicted']['mape'] / max(s['noise']['mape'], 1e-9):.2f}",
            f"- calibration: `{rt['terms']}`, the term set with the lowest leave-one-out error on "
            f"{rt['calibration_models']} random ProxylessNAS-space networks measured whole ("
            + ", ".join(f"{t} {_pct(v)}" for t, v in rt["calibration_loo_mape"].items())
            + "); on the test models: "
            + "; ".join(
                f"{t} MAPE {_pct(v['mape'])}, ±10 % {_pct(v['within_10'])}" for t, v in rt["sampled_by_terms"].items()
            ),
            f"- time: tables {rt['seconds']['tables']:.0f} s, models A+B {rt['seconds']['models']:.0f} s, "
            f"own kernel tables {rt['seconds']['own_tables']:.0f} s",
            "",
            "| family | models | MAPE | ±5 % | ±10 % | ρ | median error | noise MAPE | noise ±10 % | "
            "own-kernel MAPE | own ±10 % |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for fam, v in rt["sampled"].items():
            p, n = v["predicted"], v["noise"]
            own = rt["own"].get(fam, {}).get("predicted")
            md.append(
                f"| {fam} | {p['n']} | {_pct(p['mape'])} | {_pct(p['within_5'])} | {_pct(p['within_10'])} | "
                f"{p['spearman']:.2f} | {100 * p['bias']:+.1f} % | {_pct(n['mape'])} | {_pct(n['within_10'])} | "
                + (f"{_pct(own['mape'])} | {_pct(own['within_10'])} |" if own else "– | – |")
            )
        md.append("")
    return md


def ship_tables(work: Path, runtimes: list[str], res: dict) -> None:
    """The sampled kernel tables as datasets_lat/<runtime>_model-kernels.csv, each with its card."""
    import subprocess

    from hwlat.store import LatencyStore

    for rt in runtimes:
        out = ROOT / "datasets_lat" / f"{rt}_model-kernels.csv"
        with LatencyStore(work / rt / "kernels.db", readonly=True) as store:
            store.export(out)
        per = next(r for r in res["runtimes"] if r["runtime"] == rt)["samples_per_kind"]
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "datasets_lat" / "make_card.py"),
                str(out),
                "--networks",
                "none (kernel configs only)",
                "--regenerate",
                "`python benchmarks/model_accuracy.py --ship` (the `model-kernels` space, "
                f"{', '.join(f'{k} {n}' for k, n in per.items())} configs, seed 0)",
            ],
            check=True,
        )


def per_runtime(text: str) -> dict[str, int]:
    """``"N"`` (every runtime) or ``"RUNTIME=N,..."``."""
    if "=" not in text:
        return dict.fromkeys(RUNTIMES, int(text))
    return {k: int(v) for k, v in (p.split("=") for p in text.split(",") if p)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument(
        "--per-kind",
        default="onnxruntime-cpu=100,litert-cpu=60",
        type=per_runtime,
        help="sampled kernel configs per kind: N, or RUNTIME=N,... (LiteRT converts each config in ~1 s)",
    )
    ap.add_argument("--models", default="*", help="zoo variants (shell pattern)")
    ap.add_argument("--no-fixtures", dest="fixtures", action="store_false", help="leave out the part-1 fixtures")
    ap.add_argument(
        "--own-models",
        default="onnxruntime-cpu=19,litert-cpu=6",
        type=per_runtime,
        help="models (one per family) whose own kernels are measured (as `hwlat measure --kernels`): N or RUNTIME=N",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib", type=int, default=16, help="random ProxylessNAS-space networks to calibrate on")
    ap.add_argument(
        "--terms",
        default="auto",
        help="calibration terms of the headline: none, count, input-mb, scale-input-mb, or auto (the lowest "
        "leave-one-out error on the calibration networks)",
    )
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "hwlat-model-accuracy")
    ap.add_argument(
        "--per-family",
        default="litert-cpu=1",
        type=per_runtime,
        help="RUNTIME=K,...: only the first K variants of each family on that runtime",
    )
    ap.add_argument("--ship", action="store_true", help="export the sampled tables to datasets_lat/")
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "per_kind": args.per_kind,
        "own_models": args.own_models,
        "models_pattern": args.models,
        "runtimes": [run_runtime(rt, args, args.work) for rt in args.runtimes.split(",")],
    }
    res["total_s"] = time.perf_counter() - t0
    if args.ship:
        ship_tables(args.work, [rt["runtime"] for rt in res["runtimes"]], res)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "model_accuracy.json").write_text(json.dumps(res, indent=1) + "\n")
    md = markdown(res)
    (out / "model_accuracy.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
