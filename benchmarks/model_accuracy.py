"""How well hwlat predicts real models it never measured: the zoo's families and the part-1 fixtures.

    python benchmarks/model_accuracy.py [--runtimes onnxruntime-cpu,litert-cpu] [--per-kind 100,conv=400]
        [--composed 96] [--models 'PATTERN'] [--own-models 19] [--work DIR] [--ship]

For each CPU runtime, in one measuring session:

1. **sampled tables**: ``--per-kind`` configs of each kind of the ``model-kernels`` space
   (:mod:`hwlat.spaces.models`: the ranges of real CNNs and small ViTs, drawn at random, not the
   test models' kernels);
2. **calibration networks**: ``--composed`` random networks of :mod:`hwlat.models.composed` (the
   block types real networks are made of, random widths, depths and sizes; no zoo model), measured whole;
3. **the test models**: every variant of hwlat's model zoo (:mod:`hwlat.models`) and the part-1
   fixtures (MediaPipe's .tflite on LiteRT, RapidOCR's .onnx on ONNX Runtime), measured whole.

Pass A measures 1-3 as one shuffled list, so a slow spell of the shared machine falls on kernels
and models alike; pass B measures 2-3 again in another order (the noise floor: pass A as a
prediction of pass B). Every row carries a drift reference (``--reference auto``) and all rows
are put on one common speed before anything is fitted. A predictor is fitted on the sampled
tables; each model is predicted kernel by kernel (:func:`hwlat.predict.model.predict_model`) from
the graph the runtime executes, with each calibration term set
(:data:`hwlat.predict.calibration.CALIBRATION_TERMS`) fitted on the calibration networks; the set
with the lowest leave-one-out error on those networks gives the headline.
``--own-models``: the distinct kernels of one variant per family measured themselves (as
``hwlat measure --kernels``), and those models predicted from them with the same calibration.

Reported per family and overall: MAPE, ±5 %/±10 % accuracy, Spearman ρ, next to the noise floor,
and the number of kernel samples per kind. Measurements are kept in ``--work`` (LatencyStore
tables, resumable: a second run measures only what is missing). Writes
benchmarks/results/model_accuracy.json and .md, and with ``--ship`` the sampled tables as
datasets_lat/<runtime>_model-kernels.csv with their cards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
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


# ------------------------------------------------------------------ the models
def zoo_models(pattern: str) -> list[dict]:
    """The zoo's variants matching ``pattern``: name, family, and the torch Model (converted per runtime)."""
    from hwlat.models import get_model, list_models

    return [torch_model(get_model(name)) for name in list_models(pattern.split(","))]


def torch_model(spec) -> dict:
    from hwlat.graph import load_model

    return {
        "name": spec.name,
        "family": spec.family,
        "item": load_model(spec.build(), input_shape=spec.input_shape, name=spec.name),
    }


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


def _convert_named(args: tuple) -> None:
    """Worker: build a zoo or composed model by name and convert it into the cache (picklable by name)."""
    spec_key, name = args
    from hwlat.devices import create_backend
    from hwlat.models import get_model
    from hwlat.models.composed import network_spec

    spec = network_spec(int(name.split("-")[1])) if name.startswith("composed-") else get_model(name)
    create_backend(spec_key, check=False).convert(torch_model(spec)["item"])


def convert_models(backend, names: list[str], jobs: int) -> None:
    """Fill the conversion cache with the named models in ``jobs`` processes (LiteRT takes ~10 s a model)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if jobs <= 1 or not names:
        return
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_convert_named, [(backend.spec.key, n) for n in names]))


def runtime_item(backend, m: dict, keep: Path):
    """What ``backend`` runs for a model, as a file Model: the converted .tflite or exported .onnx, linked
    into ``keep`` (the conversion cache evicts by size while thousands of kernels are converted)."""
    import shutil

    from hwlat.graph import load_model

    item = m["item"]
    if getattr(item, "format", None) in ("onnx", "tflite"):
        return item
    path = Path(backend.convert(item))
    kept = keep / f"{m['name']}{path.suffix}"
    if not kept.exists():
        keep.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, kept)
        except OSError:
            shutil.copy2(path, kept)
    return load_model(kept, name=m["name"])


# ------------------------------------------------------------------ measuring
def measure_into(backend, items, db: Path, protocol, jobs: int, seed: int) -> None:
    """Measure what ``db`` lacks, in a shuffled order, each row with the drift reference."""
    from hwlat.measure.drift import reference_op
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    items = list(items)
    random.Random(seed).shuffle(items)
    db.parent.mkdir(parents=True, exist_ok=True)
    with LatencyStore(db) as store:
        while True:  # an item the runtime cannot run (a conversion it refuses) is left out, with a line on stderr
            try:
                run_measure(
                    backend,
                    items,
                    store,
                    protocol,
                    quiet=not sys.stderr.isatty(),
                    jobs=jobs,
                    reference=reference_op("auto"),
                )
                return
            except RuntimeError as exc:
                bad = [it for it in items if str(exc).startswith(f"{it.key}:")]
                if not bad:
                    raise
                print(f"left out: {exc}", file=sys.stderr)
                SKIPPED.setdefault(backend.spec.key, []).append(str(exc))
                items = [it for it in items if it.key != bad[0].key]


#: device key -> the items measure_into left out (the runtime's error for each)
SKIPPED: dict[str, list[str]] = {}


def corrected(dbs: dict[str, Path], key: str, protocol) -> tuple[dict[str, dict[str, float]], dict]:
    """{db name: {item key: median ms}}, every row put on one common speed (the median reference of all
    rows of all ``dbs``), and a summary of how far the reference moved."""
    import pandas as pd

    from hwlat.measure.drift import correct_frame
    from hwlat.store import LatencyStore

    frames = []
    for name, db in dbs.items():
        with LatencyStore(db, readonly=True) as store:
            f = store.frame(key, provenance=False)
        frames.append(f[f["protocol"] == protocol.key].assign(_db=name))
    both = correct_frame(pd.concat(frames, ignore_index=True))
    ref = both["ref_ms"].to_numpy(dtype=float)
    out = {name: dict(zip(g["op_key"], g["median_ms"].astype(float))) for name, g in both.groupby("_db")}
    drift = both["drift"].to_numpy(dtype=float)
    summary = {
        "reference_ms_median": float(np.nanmedian(ref)),
        "drift_p5": float(np.nanpercentile(drift, 5)),
        "drift_p95": float(np.nanpercentile(drift, 95)),
        "rows_without_reference": int(np.sum(~np.isfinite(ref))),
    }
    return out, summary


# ------------------------------------------------------------------ predicting
def kernel_chains(predictor, items: list, device: str) -> list[SimpleNamespace]:
    """Per model: the OpSpecs standing for its kernels (``ops``) and what cannot be predicted."""
    from hwlat.predict.model import predict_model

    out = []
    for item in items:
        pred = predict_model(predictor, item.graph(), device=device, allow_missing=True)
        out.append(
            SimpleNamespace(
                ops=tuple(u.spec for u in pred.known),
                missing=len(pred.missing),
                missing_types=sorted({u.type for u in pred.missing}),
                macs_covered=sum(u.macs for u in pred.known) / max(1, pred.macs),
            )
        )
    return out


def predicted_totals(predictor, calib, chains: list) -> list[float]:
    from hwlat.predict.calibration import CalibratedPredictor

    cp = CalibratedPredictor(predictor, calib)
    return [float(cp.predict(c.ops).sum() + cp.overhead_ms_) if c.ops else float("nan") for c in chains]


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
    from hwlat.models.composed import sample_networks
    from hwlat.ops import OpSpec
    from hwlat.predict import LatencyPredictor
    from hwlat.predict.model import kernel_specs
    from hwlat.spaces.models import MODEL_KINDS, sample_per_kind

    backend = create_backend(runtime)
    key = backend.spec.key
    protocol = Protocol()
    t0 = time.perf_counter()
    specs = [
        op
        for kind in MODEL_KINDS
        for op in sample_per_kind(args.per_kind.get(kind, args.per_kind["*"]), seed=args.seed, kinds=(kind,))
    ]
    samples = {k: sum(s.kind == k for s in specs) for k in dict.fromkeys(s.kind for s in specs)}
    calib_models = [torch_model(s) for s in sample_networks(args.composed, seed=args.seed)]
    zoo = zoo_models(args.models)
    if args.per_family.get(runtime):  # the first K variants of each family
        k = args.per_family[runtime]
        zoo = [m for i, m in enumerate(zoo) if sum(z["family"] == m["family"] for z in zoo[:i]) < k]
    tests = zoo + (fixture_models(runtime) if args.fixtures else [])
    convert_models(backend, [m["name"] for m in calib_models + zoo], args.jobs)
    files = work / runtime / "files"
    calib_items = [runtime_item(backend, m, files) for m in calib_models]
    test_items = [runtime_item(backend, m, files) for m in tests]
    t_convert = time.perf_counter() - t0

    # pass A: kernels, calibration networks and test models shuffled together; pass B: the models again
    t1 = time.perf_counter()
    dbs = {"A": work / runtime / "pass_A.db", "B": work / runtime / "pass_B.db"}
    measure_into(backend, [*specs, *calib_items, *test_items], dbs["A"], protocol, args.jobs, args.seed)
    measure_into(backend, [*calib_items, *test_items], dbs["B"], protocol, args.jobs, args.seed + 1)

    # the fusion rules learned on this device (hwlat fusion-rules), stored with the table
    rules = learned_rules(backend, protocol, dbs["A"]) if args.fusion_rules else None

    # own kernels (as `hwlat measure --kernels`) of one variant per family, with either rule set
    first_of: dict[str, str] = {}
    for m in tests:
        first_of.setdefault(m["family"], m["name"])
    own_names = list(first_of.values())[: args.own_models.get(runtime, 0)]
    own_items = [it for m, it in zip(tests, test_items) if m["name"] in own_names]
    own_specs: dict[str, OpSpec] = {}
    for it in own_items:
        for rule_set in (None, rules.rule_set() if rules else None):
            for s in kernel_specs(detect_kernels(it.graph(), rule_set, device=key)):
                own_specs.setdefault(s.key, s)
    if own_specs:
        dbs["own"] = work / runtime / "own_kernels.db"
        measure_into(backend, list(own_specs.values()), dbs["own"], protocol, args.jobs, args.seed + 2)
    t_measure = time.perf_counter() - t1

    ms, drift = corrected(dbs, key, protocol)
    a, b = ms["A"], ms["B"]
    specs = [s for s in specs if s.key in a]  # less what the runtime could not run (left_out)
    samples = {k: sum(s.kind == k for s in specs) for k in samples}
    predictor = LatencyPredictor().fit([s.key for s in specs], [a[s.key] for s in specs], device_key=key)
    own_predictor = (
        LatencyPredictor().fit(list(ms["own"]), list(ms["own"].values()), device_key=key) if own_specs else None
    )
    results = {}
    for name, rules_json in (("default", None), ("learned", rules.to_json() if rules else None)):
        if name == "learned" and rules_json is None:
            continue
        predictor.fusion_rules_ = rules_json
        if own_predictor is not None:
            own_predictor.fusion_rules_ = rules_json
        results[name] = analyse(predictor, own_predictor, key, calib_items, tests, test_items, own_names, a, b, args)
    # the rule set whose calibration fits the composed networks best (leave-one-out), as the term set is chosen:
    # the test models do not decide it
    headline = min(results, key=lambda n: results[n]["calibration_loo_mape"][results[n]["terms"]])
    return {
        "runtime": runtime,
        "device_key": key,
        "protocol": protocol.key,
        "samples_per_kind": samples,
        "samples_total": len(specs),
        "calibration_networks": len(calib_items),
        "own_kernel_configs": len(own_specs),
        "own_models": own_names,
        "seconds": {"convert": t_convert, "measure": t_measure, "total": time.perf_counter() - t0},
        "drift": drift,
        "fusion_rules": json.loads(rules.to_json()) if rules else None,
        "fusion_rules_differ": sorted(p.name for p in rules.pairs if p.differs) if rules else [],
        "headline_rules": headline,
        "left_out": SKIPPED.get(key, []),
        **results[headline],
        "by_rules": {
            n: {"terms": r["terms"], "loo": r["calibration_loo_mape"][r["terms"]], "sampled": r["sampled"]["all"]}
            for n, r in results.items()
        },
    }


def learned_rules(backend, protocol, db: Path):
    """The fusion rules stored in ``db`` for the backend's device, or learned now (hwlat fusion-rules) and stored."""
    from hwlat.graph.fusion import FusionRules, run_pair_tests
    from hwlat.store import LatencyStore

    with LatencyStore(db) as store:
        stored = store.fusion_rules(backend.spec.key)
        if stored:
            return FusionRules.from_json(stored)
        rules = run_pair_tests(backend, protocol, quiet=not sys.stderr.isatty())
        store.set_fusion_rules(backend.spec.key, rules.to_json())
    return rules


def analyse(predictor, own_predictor, key, calib_items, tests, test_items, own_names, a, b, args) -> dict:
    """Calibrate on the composed networks (the term set by leave-one-out) and predict the test models
    (``a``, ``b``: {item key: ms} of the two passes; a model's latency is their geometric mean)."""
    from hwlat.predict.calibration import choose_calibration

    def whole(item) -> float:
        return float(np.sqrt(a[item.key] * b[item.key]))

    calib_chains = kernel_chains(predictor, calib_items, key)
    usable = [i for i, c in enumerate(calib_chains) if c.missing == 0]  # a missing kernel would bias the fit
    calib_measured = np.array([whole(calib_items[i]) for i in usable])
    _, loo, fits = choose_calibration(predictor, [calib_chains[i] for i in usable], calib_measured)
    terms = min(loo, key=loo.get) if args.terms == "auto" else args.terms
    test_chains = kernel_chains(predictor, test_items, key)
    totals = {t: predicted_totals(predictor, c, test_chains) for t, c in fits.items()}
    rows = []
    for i, (m, item, chain) in enumerate(zip(tests, test_items, test_chains)):
        rows.append(
            {
                "model": m["name"],
                "family": m["family"],
                "format": item.format,
                "mmacs": item.graph().macs / 1e6,
                "a_ms": a[item.key],
                "b_ms": b[item.key],
                "measured_ms": whole(item),
                "kernels": len(chain.ops) + chain.missing,
                "missing": chain.missing,
                "missing_types": chain.missing_types,
                "macs_covered": chain.macs_covered,
                **{f"sampled_{t}_ms": totals[t][i] for t in fits},
            }
        )
    if own_predictor is not None:
        own_items = [it for m, it in zip(tests, test_items) if m["name"] in own_names]
        own_chains = kernel_chains(own_predictor, own_items, key)
        # the composition terms fitted with the sampled predictor (kind scales are the runtime's, not the table's)
        own_totals = predicted_totals(own_predictor, fits[terms], own_chains)
        plain = predicted_totals(own_predictor, None, own_chains)
        by_name = {n: (t, p) for n, t, p in zip(own_names, own_totals, plain)}
        for r in rows:
            if r["model"] in by_name:
                r["own_ms"], r["own_sum_ms"] = by_name[r["model"]]
    return {
        "calibration_networks_used": len(usable),
        "calibration": {t: dataclasses.asdict(c) if c else None for t, c in fits.items()},
        "terms": terms,
        "calibration_loo_mape": loo,
        "sampled": by_family(rows, f"sampled_{terms}_ms"),
        "sampled_by_terms": {t: by_family(rows, f"sampled_{t}_ms")["all"]["predicted"] for t in fits},
        "own": by_family([r for r in rows if "own_ms" in r], "own_ms"),
        "own_plain_sum": by_family([r for r in rows if "own_sum_ms" in r], "own_sum_ms"),
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
        f"`{' '.join(['python benchmarks/model_accuracy.py', res['argv']]).strip()}`.",
        "",
    ]
    for rt in res["runtimes"]:
        s = rt["sampled"]["all"]
        kinds = ", ".join(f"{k} {n}" for k, n in rt["samples_per_kind"].items())
        own = rt["own"].get("all", {}).get("predicted")
        plain = rt["own_plain_sum"].get("all", {}).get("predicted")
        md += [
            f"## {rt['device_key']}",
            "",
            f"- sampled tables: {rt['samples_total']} kernel configs ({kinds}), protocol `{rt['protocol']}`, "
            f"every row with the drift reference; all rows put on one speed (reference moved "
            f"{rt['drift']['drift_p5']:.2f}x-{rt['drift']['drift_p95']:.2f}x, 5th-95th percentile)",
            f"- {s['predicted']['n']} models: **{_pct(s['predicted']['within_10'])} within ±10 %**, "
            f"{_pct(s['predicted']['within_5'])} within ±5 %, MAPE {_pct(s['predicted']['mape'])}, "
            f"Spearman ρ {s['predicted']['spearman']:.3f}; noise floor (pass A as a prediction of pass B): "
            f"{_pct(s['noise']['within_10'])} within ±10 %, MAPE {_pct(s['noise']['mape'])}; "
            f"error / noise floor = {s['predicted']['mape'] / max(s['noise']['mape'], 1e-9):.2f}",
            "- kernels detected with "
            + (
                "the fusion rules learned on the device (`hwlat fusion-rules`)"
                if rt["headline_rules"] == "learned"
                else "the runtime's default rules"
            )
            + ", the rule set with the lower leave-one-out error on the composed networks (learned rules differ "
            f"from the defaults on {', '.join(rt['fusion_rules_differ']) or 'no pair'}); "
            + "; ".join(
                f"{n} rules: composed LOO {_pct(v['loo'])}, models MAPE {_pct(v['sampled']['predicted']['mape'])}, "
                f"±10 % {_pct(v['sampled']['predicted']['within_10'])}"
                for n, v in rt["by_rules"].items()
            ),
            f"- calibration: `{rt['terms']}`, the term set with the lowest leave-one-out error on "
            f"{rt['calibration_networks_used']} composed networks measured whole ("
            + ", ".join(f"{t} {_pct(v)}" for t, v in rt["calibration_loo_mape"].items())
            + "); on the test models: "
            + "; ".join(
                f"{t} MAPE {_pct(v['mape'])}, ±10 % {_pct(v['within_10'])}" for t, v in rt["sampled_by_terms"].items()
            ),
            (
                f"- own kernels measured (`--kernels`, {rt['own_kernel_configs']} configs of {len(rt['own_models'])} "
                f"models): calibrated MAPE {_pct(own['mape'])}, ±10 % {_pct(own['within_10'])}; their plain sum "
                f"MAPE {_pct(plain['mape'])}, ±10 % {_pct(plain['within_10'])}"
                if own and plain
                else "- own kernels: not measured"
            ),
            f"- time: conversion {rt['seconds']['convert']:.0f} s, measuring {rt['seconds']['measure']:.0f} s "
            "(a resumed run measures only what is missing)",
            "",
            "| family | models | MAPE | ±5 % | ±10 % | ρ | median error | noise MAPE | noise ±10 % | "
            "own-kernel MAPE | own ±10 % |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for fam, v in rt["sampled"].items():
            p, n = v["predicted"], v["noise"]
            own = rt["own"].get(fam, {}).get("predicted")
            rho = f"{p['spearman']:.2f}" if np.isfinite(p["spearman"]) else "–"
            md.append(
                f"| {fam} | {p['n']} | {_pct(p['mape'])} | {_pct(p['within_5'])} | {_pct(p['within_10'])} | "
                f"{rho} | {100 * p['bias']:+.1f} % | {_pct(n['mape'])} | {_pct(n['within_10'])} | "
                + (f"{_pct(own['mape'])} | {_pct(own['within_10'])} |" if own else "– | – |")
            )
        if rt.get("left_out"):
            md += [
                "",
                f"{len(rt['left_out'])} sampled configs the runtime could not run, left out: "
                + "; ".join(rt["left_out"]),
            ]
        missing = [r for r in rt["rows"] if r["missing"]]
        if missing:
            md += [
                "",
                f"{len(missing)} models have kernels no op kind stands for (predicted without them): "
                + ", ".join(f"{r['model']} ({r['missing']}: {', '.join(r['missing_types'])})" for r in missing[:10])
                + (" ..." if len(missing) > 10 else ""),
            ]
        md.append("")
    return md


def ship_tables(work: Path, runtimes: list[str], res: dict) -> None:
    """The sampled kernel tables as datasets_lat/<runtime>_model-kernels.csv, each with its card."""
    import subprocess

    import pandas as pd

    from hwlat.store import LatencyStore

    for rt in runtimes:
        out = ROOT / "datasets_lat" / f"{rt}_model-kernels.csv"
        result = next(r for r in res["runtimes"] if r["runtime"] == rt)
        with LatencyStore(work / rt / "pass_A.db", readonly=True) as store:
            store.export(out, device_key=result["device_key"])
        # Whole-model rows: the composed networks only (with the kernels the runtime ran, under its default
        # rules), so a predictor fitted on the table has never seen a zoo model or a fixture whole.
        table = pd.read_csv(out, keep_default_na=False, dtype=str)
        keep = (table["kind"] != "model") | table["op_key"].str.startswith("model:composed-")
        table[keep].to_csv(out, index=False)
        per = result["samples_per_kind"]
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "datasets_lat" / "make_card.py"),
                str(out),
                "--networks",
                "composed networks (hwlat.models.composed, seeds 0-"
                f"{result['calibration_networks'] - 1}) measured whole (kind `model`, with the kernels the runtime "
                "ran in `extra_json`)",
                "--regenerate",
                "`python benchmarks/model_accuracy.py --ship` (the `model-kernels` space, "
                f"{', '.join(f'{k} {n}' for k, n in per.items())} configs, seed 0)",
            ],
            check=True,
        )


def per_kind(text: str) -> dict[str, int]:
    """``"N"`` (every kind) or ``"N,KIND=M,..."`` (N for the kinds not named)."""
    out: dict[str, int] = {}
    for part in (p for p in text.split(",") if p):
        kind, _, n = part.rpartition("=")
        out[kind or "*"] = int(n)
    if "*" not in out:
        raise argparse.ArgumentTypeError(f"--per-kind {text!r}: start with the count of every kind, e.g. 100,conv=400")
    return out


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
        default="100,conv=400,pwconv=400,dwconv=400",
        type=per_kind,
        help="sampled configs per kind: N (every kind) and KIND=M overrides",
    )
    ap.add_argument("--composed", type=int, default=96, help="composed networks to calibrate on")
    ap.add_argument("--models", default="*", help="zoo variants (shell pattern)")
    ap.add_argument("--no-fixtures", dest="fixtures", action="store_false", help="leave out the part-1 fixtures")
    ap.add_argument(
        "--own-models",
        default="19",
        type=per_runtime,
        help="models (one per family) whose own kernels are measured (as `hwlat measure --kernels`): N or RUNTIME=N",
    )
    ap.add_argument("--per-family", default="0", type=per_runtime, help="only the first K variants of each family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="processes converting models before timing")
    ap.add_argument(
        "--terms",
        default="auto",
        help="calibration terms of the headline: none, count, input-mb, scale-input-mb, kinds, or auto (the lowest "
        "leave-one-out error on the composed networks)",
    )
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "hwlat-model-accuracy")
    ap.add_argument("--ship", action="store_true", help="export the sampled tables to datasets_lat/")
    ap.add_argument(
        "--no-fusion-rules",
        dest="fusion_rules",
        action="store_false",
        help="detect kernels with the runtime's default rules only (default: also learn them, as hwlat fusion-rules)",
    )
    args = ap.parse_args()
    # The models are measured from files in the conversion cache; thousands of kernel conversions must not
    # evict them by its default 5 GB cap before they are timed.
    os.environ.setdefault("HWLAT_CACHE_MAX_GB", "40")
    t0 = time.perf_counter()
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "argv": " ".join(sys.argv[1:]),
        "per_kind": args.per_kind,
        "composed": args.composed,
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
