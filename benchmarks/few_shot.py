"""Few-shot transfer: a predictor for a new device from N measurements (hwlat.adapt).

Two parts, one command:

1. **HELP's protocol on HELP's data** (``datasets_lat/help``, no measuring): meta-test devices
   titan_rtx_256, gold_6226, fpga, pixel2, raspi4, eyeriss (NAS-Bench-201) and raspi4, eyeriss,
   fpga (FBNet); every other device is a source. N in {5, 10, 20, 50, 100} target measurements
   in all, 10 random draws each, plus the chosen-items variant (:func:`hwlat.adapt.choose_rows`)
   and HELP's 10 fixed reference architectures (+ N - 10 random ones for N > 10). Spearman rho,
   MAPE and ±10 % accuracy over the whole space, next to HELP's published rho and to a
   from-scratch model (the same ridge on op counts, no sources) with the same N.
2. **hwlat's own cross-machine and cross-runtime cases**, measured here in this run: the
   shipped ``datasets_lat/onnxruntime-cpu_mbconv.csv`` predictor -> onnxruntime-cpu here,
   onnxruntime-cpu -> litert-cpu here, the Pixel-1 lookup table -> litert-cpu here, both sources
   together; N in {5, 10, 20, 50} measured ops (and, on onnxruntime-cpu, networks); network-level
   ±10 % on evaluation networks measured twice in this run (the second time is the noise floor).
   Offline cases on the shipped litert-cpu table (same machine as the onnxruntime one, 200
   networks) add a larger evaluation set.

    python benchmarks/few_shot.py            # ~10 min on 2 cores (the measuring), then the fits
    python benchmarks/few_shot.py --help-only

Writes benchmarks/results/few_shot.{json,md}; the measurement tables go to out/few_shot/.
Medians over draws are quoted.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

NS_HELP = (5, 10, 20, 50, 100)
NS_OWN = (5, 10, 20, 50)
DRAWS = 10
TESTS = {
    "nasbench201": ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss"),
    "fbnet": ("raspi4", "eyeriss", "fpga"),
}
# HELP (Lee et al., NeurIPS 2021), Table 2/3: Spearman rho with 10 samples of the unseen device.
HELP_RHO = {
    "nasbench201": {
        "titan_rtx_256": 0.987,
        "gold_6226": 0.989,
        "fpga": 0.985,
        "pixel2": 0.802,
        "raspi4": 0.890,
        "eyeriss": 0.940,
    },
    "fbnet": {"raspi4": 0.887, "eyeriss": 0.943, "fpga": 0.892},
}
HELP_MEAN = {"nasbench201": 0.932, "fbnet": 0.910}


# ------------------------------------------------------------------ part 1: HELP
def _scores(pred: np.ndarray, true: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    rel = np.abs(pred / true - 1)
    return {
        "rho": float(spearmanr(pred, true).statistic),
        "mape": float(rel.mean()),
        "acc10": float(np.mean(rel <= 0.10)),
    }


def help_part() -> dict:
    from hwlat.adapt import choose_rows, help_reference_rows, load_help

    out: dict = {}
    for space, tests in TESTS.items():
        table = load_help(space)
        sources = [d for d in table.devices if d not in tests]
        S = table.log_latency(sources)
        ref = help_reference_rows(space)
        out[space] = {"sources": sources, "n_arch": len(table), "devices": {}}
        for dev in tests:
            y = table.latency_ms[:, table.column(dev)]
            res: dict = {}
            for n in NS_HELP:
                cell: dict = {"random": [], "scratch": [], "methods": []}
                for draw in range(DRAWS):
                    rows = np.random.default_rng(1000 * n + draw).choice(len(table), n, replace=False)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ad = table.adapt(rows, y[rows], sources)
                        scratch = table.adapt(rows, y[rows], sources, methods=("kinds",))
                    cell["random"].append(_scores(table.predict(ad, sources), y))
                    cell["scratch"].append(_scores(table.predict(scratch, sources), y))
                    cell["methods"].append(ad.method)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rows = choose_rows(S, n)
                    cell["chosen"] = _scores(table.predict(table.adapt(rows, y[rows], sources), sources), y)
                    rest = np.setdiff1d(np.arange(len(table)), ref)
                    extra = np.random.default_rng(n).choice(rest, max(0, n - len(ref)), replace=False)
                    rows = np.concatenate([ref[:n], extra]).astype(int)
                    cell["reference"] = _scores(table.predict(table.adapt(rows, y[rows], sources), sources), y)
                res[str(n)] = cell
            out[space]["devices"][dev] = res
            r10 = np.median([s["rho"] for s in res["10"]["random"]])
            print(f"{space} {dev}: rho@10 {r10:.3f} (HELP {HELP_RHO[space][dev]})", file=sys.stderr)
    return out


# ------------------------------------------------------------------ part 2: hwlat's own cases
def _source_predictors() -> dict:
    from hwlat.formats.lut import import_lut
    from hwlat.predict import LatencyPredictor
    from hwlat.store import LatencyStore

    srcs = {}
    with LatencyStore(":memory:") as store:
        store.import_file(ROOT / "datasets_lat" / "onnxruntime-cpu_mbconv.csv")
        srcs["onnxruntime-cpu (shipped table)"] = LatencyPredictor().fit_table(store)
    with LatencyStore(":memory:") as store:
        import_lut(ROOT / "datasets_lat" / "published" / "proxylessnas_mobile_trim.yaml", store, "pixel1")
        srcs["Pixel-1 LUT"] = LatencyPredictor().fit_table(store)
    return srcs


def _measure(device: str, items: list, db: Path, budget: float, jobs: int):
    """The rows of ``items`` on ``device``, in order (measured into ``db`` with the drift reference timed beside
    them; items already there are not measured again)."""
    from hwlat.devices import create_backend
    from hwlat.measure.drift import reference_op
    from hwlat.store import LatencyStore
    from hwlat.workflows import protocol_from_options, run_measure

    protocol = protocol_from_options(budget_s=budget)
    backend = create_backend(device)
    db.parent.mkdir(parents=True, exist_ok=True)
    with LatencyStore(db) as store:
        run_measure(backend, items, store, protocol, quiet=True, jobs=jobs, reference=reference_op("auto"))
        df = store.frame(backend.spec.key, provenance=False)
    df = df[df["protocol"] == protocol.key].set_index("op_key")
    return df.loc[[it.key for it in items]].reset_index()


def _net_scores(pred: np.ndarray, true: np.ndarray) -> dict:
    rel = np.abs(pred / true - 1)
    return {"acc10": float(np.mean(rel <= 0.10)), "mape": float(rel.mean()), "max_err": float(rel.max())}


def _scratch(items: list, y: np.ndarray, nets: list) -> np.ndarray | None:
    """A from-scratch predictor from the same N points: per-kind roofline prior on ops, or a·MACs + b on networks."""
    from hwlat.network import Network
    from hwlat.predict import LatencyPredictor

    if all(isinstance(it, Network) for it in items):
        macs = np.array([n.flops for n in items], float)
        A = np.stack([macs, np.ones_like(macs)], 1) / y[:, None]
        (a, b), *_ = np.linalg.lstsq(A, np.ones_like(y), rcond=None)
        return a * np.array([n.flops for n in nets], float) + b
    kinds = {op.kind for n in nets for op in n.ops}
    if not kinds <= {it.kind for it in items}:
        return None  # an op kind of the networks was not among the N ops: nothing to predict it from
    p = LatencyPredictor(model="prior").fit(items, y)
    return p.predict_network(nets)


def _cases(sources: dict, pools: dict, evals: dict, noise: dict) -> list[dict]:
    """Adapt every (sources, target, pool kind) for each N over draws; network-level scores on the eval set."""
    from hwlat.adapt import adapt_predictor, choose_items

    ort, lut = sources["onnxruntime-cpu (shipped table)"], sources["Pixel-1 LUT"]
    combos = [
        ("onnxruntime-cpu (shipped) -> onnxruntime-cpu here", "onnxruntime-cpu", [ort]),
        ("onnxruntime-cpu (shipped) -> litert-cpu here", "litert-cpu", [ort]),
        ("Pixel-1 LUT -> litert-cpu here", "litert-cpu", [lut]),
        ("onnxruntime-cpu + Pixel-1 LUT -> litert-cpu here", "litert-cpu", [ort, lut]),
        ("onnxruntime-cpu (shipped) -> litert-cpu (shipped table, offline)", "litert-shipped", [ort]),
        ("Pixel-1 LUT -> litert-cpu (shipped table, offline)", "litert-shipped", [lut]),
    ]
    names = {id(ort): "onnxruntime-cpu", id(lut): "Pixel-1 LUT"}
    results = []
    for label, target, srcs in combos:
        if target not in evals:  # not measured in this run (--no-measure)
            continue
        nets, truth = evals[target]
        case = {
            "case": label,
            "target": target,
            "sources": [names[id(s)] for s in srcs],
            "n_eval_networks": len(nets),
            "noise_floor": noise[target],
            "unadapted": {names[id(s)]: _net_scores(s.predict_network(nets), truth) for s in srcs},
            "by_pool": {},
        }
        for pool_kind, (pool, y_pool) in pools[target].items():
            rows = {}
            for n in NS_OWN:
                if n > len(pool):
                    continue
                draws = 1 if n == len(pool) else DRAWS
                cell: dict = {"random": [], "scratch": [], "methods": []}
                for draw in range(draws):
                    idx = np.random.default_rng(100 * n + draw).choice(len(pool), n, replace=False)
                    items, y = [pool[i] for i in idx], y_pool[idx]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        p = adapt_predictor(srcs, items, y, source_names=case["sources"])
                    cell["random"].append(_net_scores(p.predict_network(nets), truth))
                    cell["methods"].append(f"{p.adaptation_['method']} ({p.adaptation_['source']})")
                    s = _scratch(items, y, nets)
                    cell["scratch"].append(None if s is None else _net_scores(s, truth))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    chosen = choose_items(pool, srcs, n)
                    at = [next(i for i, it in enumerate(pool) if it.key == c.key) for c in chosen]
                    p = adapt_predictor(srcs, chosen, y_pool[at], source_names=case["sources"])
                cell["chosen"] = _net_scores(p.predict_network(nets), truth)
                cell["chosen_method"] = f"{p.adaptation_['method']} ({p.adaptation_['source']})"
                rows[str(n)] = cell
            case["by_pool"][pool_kind] = rows
        results.append(case)
        print(f"{label}: done", file=sys.stderr)
    return results


def own_part(measure: bool, out: Path) -> dict:
    from hwlat import cache
    from hwlat.spaces import get_space
    from hwlat.store import LatencyStore
    from hwlat.workflows import resolve_networks

    t0 = time.perf_counter()
    cached_before = len(cache.entries())
    sources = _source_predictors()
    evals, pools, noise, timing = {}, {}, {}, {}
    zoo_ort = "proxyless-mobile,proxyless-cpu,proxyless-gpu,mobilenetv2"
    plan = {
        # device: (evaluation networks, op pool size, network pool, budget s per item, converter processes)
        "onnxruntime-cpu": (f"random:20:11,{zoo_ort}", 60, "random:50:21", 0.3, 1),
        "litert-cpu": ("random:8:11,proxyless-mobile,mobilenetv2", 50, "random:10:21", 0.3, 2),
    }
    for device, (eval_spec, n_ops, net_pool, budget, jobs) in plan.items():
        if not measure:
            break
        from hwlat.measure.drift import correct_frames

        t = time.perf_counter()
        nets = resolve_networks(eval_spec)
        ops = get_space("mbconv-backbone").sample(n_ops, seed=3)
        pnets = resolve_networks(net_pool) if net_pool else []
        # the evaluation networks first and last: the noise floor spans the whole session's drift
        frames = {"eval_a": _measure(device, nets, out / f"{device}_eval_a.db", budget, jobs)}
        frames["ops"] = _measure(device, ops, out / f"{device}_few.db", budget, jobs)
        if pnets:
            frames["networks"] = _measure(device, pnets, out / f"{device}_few.db", budget, jobs)
        frames["eval_b"] = _measure(device, nets, out / f"{device}_eval_b.db", budget, jobs)
        fixed = dict(zip(frames, correct_frames(*frames.values())))
        raw_rel = np.abs(frames["eval_b"]["median_ms"].to_numpy() / frames["eval_a"]["median_ms"].to_numpy() - 1)
        ms = {k: f["median_ms"].to_numpy(float) for k, f in fixed.items()}
        rel = np.abs(ms["eval_b"] / ms["eval_a"] - 1)
        drift = fixed["eval_a"]["drift"].to_numpy(float)
        noise[device] = {
            "acc10": float(np.mean(rel <= 0.10)),
            "median_diff": float(np.median(rel)),
            "raw_acc10": float(np.mean(raw_rel <= 0.10)),
            "raw_median_diff": float(np.median(raw_rel)),
            "drift_range": [float(np.nanmin(drift)), float(np.nanmax(drift))],
        }
        evals[device] = (nets, ms["eval_a"])
        pools[device] = {"ops": (ops, ms["ops"])}
        if pnets:
            pools[device]["networks"] = (pnets, ms["networks"])
        timing[device] = round(time.perf_counter() - t, 1)
        print(f"measured {device} in {timing[device]} s; noise floor {noise[device]}", file=sys.stderr)
    measure_s = time.perf_counter() - t0
    converted = len(cache.entries()) - cached_before  # models converted in this run (the rest were cached)
    # offline: the shipped litert-cpu table (200 networks) as the target, its repeat as the noise floor
    with LatencyStore(":memory:") as store:
        store.import_file(ROOT / "datasets_lat" / "litert-cpu_mbconv.csv")
        df, defs = store.frame(provenance=False), store.networks()
    with LatencyStore(":memory:") as store:
        store.import_file(ROOT / "datasets_lat" / "litert-cpu_mbconv_repeat.csv")
        rep = store.frame(provenance=False).set_index("op_key")["median_ms"]
    from hwlat.ops import OpSpec

    net_rows = df[df["kind"] == "network"]
    all_nets = [defs[k] for k in net_rows["op_key"]]
    y_nets = net_rows["median_ms"].to_numpy(float)
    # the first 150 networks are the evaluation set, the other 50 the pool of networks to measure
    evals["litert-shipped"] = (all_nets[:150], y_nets[:150])
    op_rows = df[df["kind"] != "network"].iloc[:60]
    pools["litert-shipped"] = {
        "ops": ([OpSpec.from_key(k) for k in op_rows["op_key"]], op_rows["median_ms"].to_numpy(float)),
        "networks": (all_nets[150:], y_nets[150:]),
    }
    both = [k for k in net_rows["op_key"][:150] if k in rep.index]
    first = net_rows.set_index("op_key").loc[both, "median_ms"].to_numpy(float)
    rel = np.abs(rep.loc[both].to_numpy(float) / first - 1)
    noise["litert-shipped"] = {
        "acc10": float(np.mean(rel <= 0.10)),
        "median_diff": float(np.median(rel)),
        "n": len(both),
    }
    cases = _cases(sources, pools, evals, noise)
    return {
        "measure_s": round(measure_s, 1),
        "measure_s_by_device": timing,
        "models_converted": converted,
        "models_cached_before": cached_before,
        "cases": cases,
    }


# ------------------------------------------------------------------ report
def _med(values: list, key: str) -> float:
    v = [x[key] for x in values if x is not None]
    return float(np.median(v)) if v else float("nan")


def _pct(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{100 * v:.0f} %"


def markdown(res: dict) -> str:
    lines = [
        "# Few-shot transfer: a predictor for a new device from N measurements",
        "",
        f"Regenerate: `python benchmarks/few_shot.py` ({res['date']}, {res['machine']}). "
        "Medians over draws; N counts every measurement on the target device.",
        "",
    ]
    if "help" in res:
        lines += [
            "## HELP's protocol on HELP's data",
            "",
            "Sources: every device of the space that is not a meta-test device. Spearman rho over the whole "
            "space (15,625 NB201 cells, 5,000 FBNet architectures) with N random target measurements "
            f"({DRAWS} draws); *chosen*: N spread over the sources' latency range; *ref*: HELP's 10 reference "
            "architectures (+ N - 10 random); *scratch*: ridge on op counts alone with the same N.",
            "",
        ]
        for space, block in res["help"].items():
            lines += [
                f"### {space} (sources: {len(block['sources'])} devices)",
                "",
                "| device | HELP rho @10 | rho @5 | rho @10 | rho @20 | rho @50 | rho @100 | chosen @10 | ref @10 "
                "| scratch @10 | MAPE @10 | ±10 % @10 | method @10 |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            means: dict = {}
            for dev, r in block["devices"].items():
                rho = {n: _med(r[str(n)]["random"], "rho") for n in NS_HELP}
                row = {
                    "help": HELP_RHO[space][dev],
                    **{f"r{n}": rho[n] for n in NS_HELP},
                    "chosen": r["10"]["chosen"]["rho"],
                    "ref": r["10"]["reference"]["rho"],
                    "scratch": _med(r["10"]["scratch"], "rho"),
                    "mape": _med(r["10"]["random"], "mape"),
                    "acc10": _med(r["10"]["random"], "acc10"),
                }
                for k, v in row.items():
                    means.setdefault(k, []).append(v)
                methods = r["10"]["methods"]
                top = max(set(methods), key=methods.count)
                lines.append(
                    f"| {dev} | {row['help']:.3f} | "
                    + " | ".join(f"{rho[n]:.3f}" for n in NS_HELP)
                    + f" | {row['chosen']:.3f} | {row['ref']:.3f} | {row['scratch']:.3f} | {_pct(row['mape'])} "
                    f"| {_pct(row['acc10'])} | {top} ({methods.count(top)}/{len(methods)}) |"
                )
            m = {k: float(np.mean(v)) for k, v in means.items()}
            m["help"] = HELP_MEAN[space]  # as published (the per-device values above are rounded)
            lines.append(
                f"| **mean** | **{m['help']:.3f}** | "
                + " | ".join(f"**{m[f'r{n}']:.3f}**" for n in NS_HELP)
                + f" | **{m['chosen']:.3f}** | **{m['ref']:.3f}** | **{m['scratch']:.3f}** | {_pct(m['mape'])} "
                f"| {_pct(m['acc10'])} | |"
            )
            lines.append("")
    if "own" in res:
        own = res["own"]
        lines += [
            "## hwlat's own cases: network-level ±10 %",
            "",
            f"Measured in this run ({own['measure_s']:.0f} s of measuring: {own['measure_s_by_device']}"
            + (
                f"; {own['models_converted']} models converted here, the others found in hwlat's cache of "
                "converted models; a cold cache adds their conversion, several seconds per LiteRT network"
                if "models_converted" in own
                else ""
            )
            + "), "
            "on a shared 2-core machine, with the drift reference (`--reference auto`) timed beside every item "
            "and all of a device's rows corrected to one common speed (`hwlat.measure.drift.correct_frames`). "
            "Evaluation networks were measured first and again last; *noise floor* is the share of networks "
            "whose second "
            "measurement is within ±10 % of the first (and the median difference). Cells: share of evaluation "
            "networks predicted within ±10 % (median over draws) / median MAPE; *chosen*: the items "
            "`choose_items` picks from the same pool; *scratch*: a predictor from the same N points alone "
            "(per-kind roofline prior on ops, a·MACs + b on networks; — when the N ops miss a kind of the networks).",
            "",
        ]
        for case in own["cases"]:
            nf = case["noise_floor"]
            un = "; ".join(
                f"{k} unadapted: {_pct(v['acc10'])} within ±10 %, MAPE {_pct(v['mape'])}"
                for k, v in case["unadapted"].items()
            )
            lines += [
                f"### {case['case']}",
                "",
                f"{case['n_eval_networks']} evaluation networks; noise floor {_pct(nf['acc10'])} within ±10 % "
                f"(median difference {100 * nf['median_diff']:.1f} %)"
                + (
                    f" after drift correction (raw: {_pct(nf['raw_acc10'])}, {100 * nf['raw_median_diff']:.1f} %; "
                    f"the machine's speed moved x{nf['drift_range'][0]:.2f}-{nf['drift_range'][1]:.2f})"
                    if "raw_acc10" in nf
                    else ""
                )
                + f"; {un}.",
                "",
                "| measured | N | adapted ±10 % | MAPE | chosen ±10 % / MAPE | scratch ±10 % / MAPE "
                "| methods (random) |",
                "|---|---|---|---|---|---|---|",
            ]
            for pool_kind, rows in case["by_pool"].items():
                for n, cell in rows.items():
                    methods = cell["methods"]
                    top = max(set(methods), key=methods.count)
                    sc = [s for s in cell["scratch"] if s is not None]
                    scratch = f"{_pct(_med(sc, 'acc10'))} / {_pct(_med(sc, 'mape'))}" if sc else "—"
                    lines.append(
                        f"| {pool_kind} | {n} | {_pct(_med(cell['random'], 'acc10'))} | "
                        f"{_pct(_med(cell['random'], 'mape'))} | {_pct(cell['chosen']['acc10'])} / "
                        f"{_pct(cell['chosen']['mape'])} | {scratch} | {top} ({methods.count(top)}/{len(methods)}) |"
                    )
            lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-only", action="store_true", help="only part 1 (HELP's data; nothing measured)")
    ap.add_argument("--no-measure", action="store_true", help="part 2 on the shipped tables only (offline cases)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--tables", type=Path, default=ROOT / "out" / "few_shot", help="where measured tables go")
    args = ap.parse_args()
    import hwlat

    res: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "hwlat": hwlat.__version__,
    }
    t0 = time.perf_counter()
    res["help"] = help_part()
    res["help_published_mean_rho"] = HELP_MEAN
    if not args.help_only:
        res["own"] = own_part(not args.no_measure, args.tables)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "few_shot.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "few_shot.md").write_text(markdown(res))
    print(f"wrote {args.out / 'few_shot.json'} and {args.out / 'few_shot.md'} in {res['total_s']} s")


if __name__ == "__main__":
    main()
