"""Splitting and width-transfer acceptance numbers on digits with a measured CPU predictor.

Phases (all by default; each merges its part into the JSON, so phases can be re-run alone):

- ``table``: measure the digits-widths op space and random-width mobilenet-digits networks
  on the device, fit a predictor (network overhead calibrated on half the networks,
  network error reported on the other half), save it;
- ``eigen``: fast (Rayleigh-quotient) vs exact splitting index on a trained seed network,
  on the neurons the energy-aware and vanilla choices split;
- ``knapsack``: LP-relaxed knapsack (β > 0.9) vs exact dynamic programming, random instances;
- ``split``: energy-aware vs vanilla splitting, accuracy against measured latency, several seeds;
- ``width``: width transfer vs direct optimisation vs uniform widths at latency budgets;
- ``measure``: measure the split and width networks again (``--passes`` passes, fastest kept) on a
  quiet machine and recompute the comparisons: the other phases measure once, right after training.

    taskset -c 0 .venv/bin/python benchmarks/splitting_width.py [--phases table,eigen,...] [--quick]

Writes benchmarks/results/splitting_width.{json,md}, splitting_tradeoff.png and width_tradeoff.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PHASES = ("table", "eigen", "knapsack", "split", "width", "measure")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- table
def calibration_networks(n: int, seed: int = 0):
    """Random-width mobilenet-digits networks at resolution 32 (per-slot multipliers 1/8-4, log-uniform)."""
    from hwlat.spaces import DIGITS_CHANNEL_MULTIPLE as q
    from hwlat.spaces import DIGITS_WIDTH_RANGE
    from hwlat.zoo import MOBILENET_DIGITS_STAGES, MOBILENET_DIGITS_STEM, get_network

    base = [MOBILENET_DIGITS_STEM] + [c for c, n, _ in MOBILENET_DIGITS_STAGES for _ in range(n)]
    rng = random.Random(seed)
    nets = []
    for i in range(n):
        widths = [max(q, round(b * 2 ** rng.uniform(*DIGITS_WIDTH_RANGE) / q) * q) for b in base]
        nets.append(get_network("mobilenet-digits", widths=widths, network_name=f"digits-random-{i}"))
    return nets


def phase_table(args) -> dict:
    from hwlat.devices import create_backend
    from hwlat.measure import Protocol
    from hwlat.predict import LatencyPredictor, save_predictor
    from hwlat.predict.calibration import CalibratedPredictor, NetworkCalibration
    from hwlat.predict.evaluate import metrics
    from hwlat.search._latency import calibrate_from_table
    from hwlat.spaces import get_space
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    backend = create_backend(args.device)
    ops = get_space("digits-widths").sample(args.n_ops, seed=0)
    nets = calibration_networks(args.n_nets)
    with LatencyStore(args.db) as store:
        log(f"measuring {len(ops)} ops and {len(nets)} networks on {backend.spec.key} into {args.db}")
        run_measure(backend, ops, store, Protocol(), quiet=True)
        run_measure(backend, nets, store, Protocol(), quiet=True)
        df = store.frame(backend.spec.key, provenance=False)
        store.export(args.csv)
    measured = dict(zip(df["op_key"], df["median_ms"]))
    op_rows = df[df["kind"] != "network"]
    half = len(nets) // 2
    p = LatencyPredictor(model="prior+gbr").fit(
        list(op_rows["op_key"]), op_rows["median_ms"].to_numpy(), device_key=backend.spec.key
    )
    # Scale and overhead: ORT fuses and keeps layouts inside a network, so a network costs
    # about 0.83 x the sum of its isolated ops (offset-only calibration leaves 10 % MAPE here).
    p.calibrate(nets[:half], [measured[n.key] for n in nets[:half]], scale=True)
    held = nets[half:]
    y = np.array([measured[n.key] for n in held])
    yhat = np.asarray(p.predict_network(held))
    held_metrics = dataclasses.asdict(metrics(yhat, y))
    ctx = CalibratedPredictor(
        p, NetworkCalibration.fit(p, nets[:half], [measured[n.key] for n in nets[:half]], terms="input-mb")
    )
    ctx_metrics = dataclasses.asdict(metrics(np.asarray(ctx.predict_network(held)), y))
    final = LatencyPredictor(model="prior+gbr").fit_table(args.db, device=backend.spec.key)
    final.calibrate(nets, [measured[n.key] for n in nets], scale=True)
    save_predictor(final, args.predictor, table=str(args.db))
    log(f"predictor saved to {args.predictor}; held-out networks: {held_metrics}")
    return {
        "device_key": backend.spec.key,
        "ops": {k: int(v) for k, v in op_rows["kind"].value_counts().items()},
        "networks": len(nets),
        "network_ms_range": [float(y.min()), float(y.max())],
        "held_out_network_metrics": {k: float(v) for k, v in held_metrics.items()},
        "held_out_network_metrics_context": {k: float(v) for k, v in ctx_metrics.items()},
        "context_calibration": calibrate_from_table(final, str(args.db)).to_dict(),
        "overhead_ms": final.overhead_ms_,
        "scale": final.scale_,
        "predictor": str(args.predictor),
        "table_csv": str(args.csv),
    }


def load_predictor(args, remeasure: bool = False):
    """The saved predictor, input-MB calibrated on the table's networks (see search/_latency.py); with
    ``remeasure`` on those networks measured again now (scale-input-mb: today's machine speed)."""
    from hwlat.predict import load_predictor as load
    from hwlat.search._latency import calibrate_from_table

    if not Path(args.predictor).exists():
        raise SystemExit(f"{args.predictor} missing: run the table phase first (--phases table)")
    predictor = calibrate_from_table(load(args.predictor), str(args.db), remeasure=args.device if remeasure else None)
    log(f"network latency {predictor.describe()}")
    return predictor


# --------------------------------------------------------------------- eigen
def phase_eigen(args) -> dict:
    import torch

    from hwlat.search._trainloop import TrainConfig, train
    from hwlat.search.data import digits_loaders
    from hwlat.search.splitting import EigenConfig, SplitNet, neuron_widths, splitting_index
    from hwlat.zoo import get_network

    predictor = load_predictor(args)
    loaders = digits_loaders(32, 64)
    seed = get_network("mobilenet-digits", width_mult=0.25)
    torch.manual_seed(0)
    model = SplitNet(seed)
    train(model, loaders.train, TrainConfig(epochs=args.epochs))
    t0 = time.perf_counter()
    exact = splitting_index(model, loaders.train, EigenConfig(method="exact"))
    t_exact = time.perf_counter() - t0
    chosen = _chooser(predictor, seed)
    exact_choice = {mode: chosen(exact, mode) for mode in ("energy", "vanilla")}
    out = {}
    for name, refine in (("fast_gd", 0), ("fast", EigenConfig().refine)):
        t0 = time.perf_counter()
        fast = splitting_index(model, loaders.train, EigenConfig(method="fast", sweeps=args.sweeps, refine=refine))
        out[name] = _eigen_agreement(exact, fast, exact_choice, chosen, time.perf_counter() - t0)
        out[name]["refine"] = refine
    out.update({"exact_seconds": t_exact, "sweeps": args.sweeps, "neurons": int(sum(neuron_widths(seed)))})
    log(f"eigen: {out}")
    return out


def _chooser(predictor, seed):
    """``chosen(index, mode)``: global indices of the neurons stage 1 of ``mode`` splits on ``seed`` (α = 0.5)."""
    from hwlat.cost import WidthLatency
    from hwlat.search.splitting import _cost_floor, choose_neurons, neuron_widths, resize_network

    widths = neuron_widths(seed)
    latency = WidthLatency(predictor, lambda w: resize_network(seed, w), widths, max_width=8 * max(widths))
    costs = _cost_floor(latency.marginal_ms(widths))
    budget = 0.5 * latency.latency_ms(widths)
    caps = [8 * w for w in widths]
    offsets = np.cumsum([0] + widths)

    def chosen(index, mode):
        choice = choose_neurons(
            index, mode, 0.5, widths=widths, max_widths=caps, costs_ms=costs, budget_ms=budget, granularity=4
        )
        return np.concatenate([offsets[k] + v for k, v in choice.items()])

    return chosen


def _eigen_agreement(exact, fast, exact_choice, chosen, seconds: float) -> dict:
    """Fast vs exact index on the neurons each choice splits, and whether the choices are the same."""
    out = {"seconds": seconds}
    lam = np.concatenate([s.eigenvalues for s in exact])
    lam_f = np.concatenate([s.eigenvalues for s in fast])
    cos = np.concatenate([(a.eigenvectors * b.eigenvectors).sum(1).abs().numpy() for a, b in zip(exact, fast)])
    for mode, idx in exact_choice.items():
        out[mode] = _agreement(lam[idx], lam_f[idx], cos[idx], np.abs(lam).max())
        # What matters to the search: does the fast index choose the same neurons?
        idx_f = chosen(fast, mode)
        out[mode]["same_choice"] = len(np.intersect1d(idx, idx_f)) / max(len(np.union1d(idx, idx_f)), 1)
    # The neurons worth splitting: the most negative half (what vanilla splits at α = 0.5).
    half = np.argsort(lam)[: len(lam) // 2]
    out["most_negative_half"] = _agreement(lam[half], lam_f[half], cos[half], np.abs(lam).max())
    out["all"] = _agreement(lam, lam_f, cos, np.abs(lam).max())
    neg = lam < 0
    out["all_negative"] = {
        "neurons": int(neg.sum()),
        "rel_err_median": float(np.median(np.abs(lam_f[neg] - lam[neg]) / np.abs(lam[neg]))),
        "cos_median": float(np.median(cos[neg])),
    }
    return out


def _agreement(lam, lam_f, cos, scale) -> dict:
    rel = np.abs(lam_f - lam) / np.abs(lam)
    off = rel > 0.05
    return {
        "outliers_abs_lambda_over_max": [float(x) for x in np.sort(np.abs(lam[off]) / scale)],
        "outliers_lambda_sign": [int(x) for x in np.sign(lam[off])],
        "split_neurons": int(len(lam)),
        "rel_err_median": float(np.median(rel)),
        "rel_err_max": float(rel.max()),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "abs_err_max_over_max_abs_lambda": float(np.max(np.abs(lam_f - lam)) / scale),
        "cos_min": float(cos.min()),
        "cos_median": float(np.median(cos)),
        "cos_above_095": float(np.mean(cos > 0.95)),
    }


# ------------------------------------------------------------------ knapsack
def phase_knapsack(args) -> dict:
    from hwlat.search.splitting import knapsack_dp, knapsack_lp

    rng = np.random.default_rng(0)
    gaps, feasible, bound_ok, optimal = [], 0, 0, 0
    t_lp = t_dp = 0.0
    for _ in range(args.instances):
        n = int(rng.integers(5, 31))
        gains, costs = rng.uniform(0.1, 10, n), rng.integers(1, 101, n)
        budget = max(int(rng.uniform(0.1, 0.7) * costs.sum()), int(costs.max()))
        t0 = time.perf_counter()
        lp = knapsack_lp(gains, costs, budget)
        t1 = time.perf_counter()
        _, best = knapsack_dp(gains, costs, budget)
        t2 = time.perf_counter()
        t_lp, t_dp = t_lp + t1 - t0, t_dp + t2 - t1
        feasible += lp.cost <= budget
        bound_ok += lp.value <= best + 1e-9 <= lp.lp_value + 1e-6
        optimal += abs(lp.value - best) < 1e-9
        gaps.append((best - lp.value) / best)
    gaps = np.array(gaps)
    out = {
        "instances": args.instances,
        "n_range": [5, 30],
        "feasible": feasible / args.instances,
        "within_lp_bound": bound_ok / args.instances,
        "optimal": optimal / args.instances,
        "gap_mean": float(gaps.mean()),
        "gap_median": float(np.median(gaps)),
        "gap_max": float(gaps.max()),
        "lp_ms_mean": 1e3 * t_lp / args.instances,
        "dp_ms_mean": 1e3 * t_dp / args.instances,
    }
    log(f"knapsack: {out}")
    return out


# --------------------------------------------------------------------- split
def _interp(x: float, xs, ys) -> float | None:
    order = np.argsort(xs)
    xs, ys = np.asarray(xs)[order], np.asarray(ys)[order]
    if x < xs[0] or x > xs[-1]:
        return None
    return float(np.interp(np.log(x), np.log(xs), ys))


# (label, mode, growth α, stages). α means latency growth per stage for energy-aware splitting and
# the fraction of neurons split per stage for vanilla; both pairs end in a similar latency range.
SPLIT_VARIANTS = (
    ("energy α=0.5", "energy", 0.5, 4),
    ("vanilla α=0.5", "vanilla", 0.5, 4),
    ("energy α=0.1", "energy", 0.1, 7),
    ("vanilla α=0.25", "vanilla", 0.25, 7),
)
SPLIT_PAIRS = (
    ("energy α=0.5", "vanilla α=0.5"),
    ("energy α=0.1", "vanilla α=0.25"),
    ("energy α=0.1", "vanilla α=0.5"),
)


def _equal_latency(rows, a: str, b: str, seeds: int, x: str = "measured_ms") -> dict:
    """Each stage of one curve against the other curve of the same seed (accuracy interpolated in log
    latency ``x``, where the other curve covers that latency); diff = a − b."""
    diffs = []
    for s in range(seeds):
        curve = {v: [r for r in rows if r["seed"] == s and r["variant"] == v] for v in (a, b)}
        for mine, other, sign in ((a, b, 1), (b, a, -1)):
            for r in curve[mine]:
                if r["stage"] == 0:
                    continue
                v = _interp(r[x], [o[x] for o in curve[other]], [o["test_acc"] for o in curve[other]])
                if v is not None:
                    diffs.append(
                        {
                            "seed": s,
                            "variant": mine,
                            "stage": r["stage"],
                            x: r[x],
                            "acc": r["test_acc"],
                            "other_acc_interp": v,
                            "diff": sign * (r["test_acc"] - v),
                        }
                    )
    d = np.array([e["diff"] for e in diffs]) if diffs else np.zeros(0)
    return {
        "a": a,
        "b": b,
        "latency": x,
        "pairs": len(d),
        "mean_acc_diff": float(d.mean()) if len(d) else None,
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
        "detail": diffs,
    }


def phase_split(args) -> dict:
    from hwlat.search._report import measure_networks
    from hwlat.search._trainloop import TrainConfig
    from hwlat.search.data import digits_loaders
    from hwlat.search.splitting import EigenConfig, SplitConfig, run_splitting
    from hwlat.zoo import get_network

    predictor = load_predictor(args)
    seed_net = get_network(
        "mobilenet-digits", widths=[args.seed_channels] * 10, network_name=f"mobilenet-digits-seed{args.seed_channels}"
    )
    runs = []
    for s in range(args.seeds):
        for label, mode, growth, stages in SPLIT_VARIANTS:
            loaders = digits_loaders(32, 64, seed=s)  # fresh: every variant sees the same shuffles, same Splitting-0
            config = SplitConfig(
                growth=growth,
                stages=stages,
                mode=mode,
                eigen=EigenConfig(method=args.eigen),
                seed_train=TrainConfig(epochs=args.epochs, seed=s),
                stage_train=TrainConfig(epochs=args.stage_epochs, lr=0.02, seed=s),
            )
            t0 = time.perf_counter()
            result = run_splitting(seed_net, loaders, predictor, config)
            log(
                f"split seed {s} {label}: {time.perf_counter() - t0:.0f} s, "
                f"acc {[round(r.test_acc, 3) for r in result]}"
            )
            runs.append({"seed": s, "variant": label, "mode": mode, "stages": result})
    measured = measure_networks(args.device, [r.network for run in runs for r in run["stages"]])
    rows = []
    for run in runs:
        for r in run["stages"]:
            rows.append(
                {
                    "seed": run["seed"],
                    "variant": run["variant"],
                    "mode": run["mode"],
                    "stage": r.stage,
                    "widths": list(r.widths),
                    "predicted_ms": r.predicted_ms,
                    "measured_ms": measured[r.network.key],
                    "test_acc": r.test_acc,
                    "valid_acc": r.valid_acc,
                    "n_split": r.n_split,
                    "index_seconds": r.index_seconds,
                    "train_seconds": r.train_seconds,
                }
            )
    out = {
        "config": {
            "variants": SPLIT_VARIANTS,
            "seeds": args.seeds,
            "eigen": args.eigen,
            "epochs": args.epochs,
            "stage_epochs": args.stage_epochs,
            "seed_channels": args.seed_channels,
            "max_growth": 8,
            "granularity": 4,
        },
        "rows": rows,
    }
    return split_summary(out, args.device)


def split_summary(split: dict, device: str) -> dict:
    """Comparisons at equal measured and equal predicted latency, mean curves, final widths, the plot."""
    from hwlat.search._report import tradeoff_png

    rows, seeds = split["rows"], split["config"]["seeds"]
    split["comparisons"] = [
        _equal_latency(rows, a, b, seeds, x) for x in ("measured_ms", "predicted_ms") for a, b in SPLIT_PAIRS
    ]
    curves, finals = {}, {}
    for label, *_ in SPLIT_VARIANTS:
        for k in sorted({r["stage"] for r in rows if r["variant"] == label}):
            sel = [r for r in rows if r["variant"] == label and r["stage"] == k]
            curves.setdefault(label, []).append(
                (float(np.mean([r["measured_ms"] for r in sel])), float(np.mean([r["test_acc"] for r in sel])))
            )
        last_stage = max(x["stage"] for x in rows if x["variant"] == label)
        last = [r for r in rows if r["variant"] == label and r["stage"] == last_stage]
        finals[label] = {"widths": [r["widths"] for r in last]}
    tradeoff_png(
        curves,
        RESULTS / "splitting_tradeoff.png",
        f"Splitting on digits from {split['config']['seed_channels']} channels per layer, mean of {seeds} seeds",
        f"measured latency on {device} (ms)",
    )
    keys = ("a", "b", "latency", "pairs", "mean_acc_diff", "wins", "losses")
    log(f"split: {[{k: c[k] for k in keys} for c in split['comparisons']]}")
    split.update(curves=curves, finals=finals)
    return split


# --------------------------------------------------------------------- width
def phase_width(args) -> dict:
    from hwlat.search._report import measure_networks
    from hwlat.search._trainloop import TrainConfig
    from hwlat.search.data import digits_loaders
    from hwlat.search.width import (
        DigitsArch,
        MorphNetConfig,
        Projection,
        cost_saved,
        fit_ratios,
        optimize_widths,
        train_and_test,
        transfer_ratios,
    )

    # Budgets in today's milliseconds: the table's networks are measured again before the search
    # (`hwlat search width --calibrate TABLE --remeasure`).
    predictor = load_predictor(args, remeasure=True)
    arch = DigitsArch()
    projection = Projection.parse(args.projection)
    config = MorphNetConfig(strength=args.strength, steps=args.opt_steps)
    loaders = digits_loaders(32, 64)
    budgets = [float(predictor.predict_network(DigitsArch(width_mult=m).network())) for m in args.budget_widths]
    ratio_sets = {"uniform": ([1.0] * arch.n_slots, None)}
    ratio_sets["direct"] = ((opt := optimize_widths("morphnet", arch, loaders, predictor, config)).ratios, opt)
    log(f"direct: ratios {np.round(opt.ratios, 2).tolist()}, {opt.seconds:.0f} s")
    ratio_sets["transfer"] = transfer_ratios(
        arch,
        projection,
        predictor,
        loaders_for=lambda r, f: digits_loaders(r, 64, data_fraction=f),
        optimizer="morphnet",
        config=config,
        rule=args.rule,
    )
    ratios, opt = ratio_sets["transfer"]
    log(f"transfer: ratios {np.round(ratios, 2).tolist()}, {opt.seconds:.0f} s")
    results = [fit_ratios(arch, r, predictor, b, method=m, opt=o) for b in budgets for m, (r, o) in ratio_sets.items()]
    measured = measure_networks(args.device, [r.network for r in results])
    rows = []
    for r in results:
        acc, accs = train_and_test(r.network, loaders, TrainConfig(epochs=args.epochs), range(args.seeds))
        meas = measured[r.network.key]
        rows.append(
            {
                "method": r.method,
                "budget_ms": r.budget,
                "widths": list(r.widths),
                "ratios": list(r.ratios),
                "multiplier": r.multiplier,
                "predicted_ms": r.predicted_ms,
                "predicted_err": r.budget_error,
                "measured_ms": meas,
                "measured_err": meas / r.budget - 1,
                "mmacs": r.flops / 1e6,
                "test_acc": acc,
                "test_accs": accs,
            }
        )
        log(f"width {r.method} @ {r.budget:.4f} ms: pred {r.predicted_ms:.4f}, meas {meas:.4f}, acc {acc:.4f}")
    direct = next(r for r in results if r.method == "direct")
    transfer = next(r for r in results if r.method == "transfer")
    saved = cost_saved(direct, transfer)
    saved.update(
        {
            "direct_macs": direct.optimizer_macs,
            "transfer_macs": transfer.optimizer_macs,
            "direct_seconds": direct.optimizer_seconds,
            "transfer_seconds": transfer.optimizer_seconds,
        }
    )
    acc_gap = [
        next(x for x in rows if x["method"] == "transfer" and x["budget_ms"] == b)["test_acc"]
        - next(x for x in rows if x["method"] == "direct" and x["budget_ms"] == b)["test_acc"]
        for b in budgets
    ]
    log(f"width: cost saved {saved}, transfer - direct accuracy {acc_gap}")
    out = {
        "config": {
            "projection": args.projection,
            "rule": args.rule,
            "strength": args.strength,
            "opt_steps": args.opt_steps,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "budget_widths": args.budget_widths,
            "projected": transfer.detail.get("projected"),
            "calibration": predictor.to_dict(),
        },
        "budgets_ms": budgets,
        "rows": rows,
        "cost_saved": saved,
        "transfer_minus_direct_acc": acc_gap,
    }
    return width_summary(out, args.device)


def width_summary(width: dict, device: str) -> dict:
    """Measured errors against the budgets and the trade-off plot, from the rows' measured latencies."""
    from hwlat.search._report import tradeoff_png

    curves = {}
    for row in width["rows"]:
        row["measured_err"] = row["measured_ms"] / row["budget_ms"] - 1
        # Against the budget scaled by the machine's drift since the table was measured (measure phase),
        # when the budgets are in the table's milliseconds (no re-measured calibration).
        if "drift" in width:
            row["measured_err_drift"] = row["measured_ms"] / (row["budget_ms"] * width["drift"]) - 1
        curves.setdefault(row["method"], []).append((row["measured_ms"], row["test_acc"]))
    tradeoff_png(
        curves,
        RESULTS / "width_tradeoff.png",
        f"Widths on digits: transfer ({width['config']['projection']}) vs direct vs uniform",
        f"measured latency on {device} (ms)",
    )
    return width


# ------------------------------------------------------------------ measure
def phase_measure(args) -> dict:
    """Measure every network of the split and width phases again, ``--passes`` times over the whole set
    (a fresh shuffled, interleaved session each), and keep the fastest pass's median: run it on a quiet
    machine. Replaces ``measured_ms`` in those phases' rows and recomputes their summaries."""
    from hwlat.search._latency import measure_network_passes, speed_ratios
    from hwlat.store import LatencyStore
    from hwlat.zoo import get_network

    res = args.results
    phases = [p for p in ("split", "width") if p in res]
    if not phases:
        raise SystemExit("nothing to measure: run the split and/or width phases first")
    nets = {}
    for p in phases:
        for row in res[p]["rows"]:
            net = get_network("mobilenet-digits", widths=row["widths"])
            row["_key"] = net.key
            nets[net.key] = net
    # The table's own calibration networks, in the same sessions: how much slower or faster the machine is
    # today than when the table (and so the predictor) was measured.
    reference = calibration_networks(args.n_nets)
    nets.update((n.key, n) for n in reference)
    t0 = time.perf_counter()
    passes = measure_network_passes(args.device, list(nets.values()), passes=args.passes)
    log(f"{args.passes} measure passes over {len(nets)} networks in {time.perf_counter() - t0:.0f} s")
    fastest = {key: min(m[key] for m in passes) for key in nets}
    spread = []
    for p in phases:
        for row in res[p]["rows"]:
            key = row.pop("_key")
            values = [m[key] for m in passes]
            row["measured_passes_ms"] = values
            # The least-disturbed pass: on a shared VM the whole machine slows by up to 2x for seconds at a
            # time (another tenant), which only ever adds time.
            row["measured_ms"] = fastest[key]
            spread.append((max(values) - min(values)) / row["measured_ms"])
    with LatencyStore(args.db, readonly=True) as store:
        then = dict(zip(*store.frame(None, provenance=False)[["op_key", "median_ms"]].to_numpy().T))
    ratios = speed_ratios(fastest, [(n, float(then[n.key])) for n in reference if n.key in then])
    drift = float(np.median(ratios)) if len(ratios) else 1.0
    log(f"machine drift since the table: {drift:.3f}x (median over {len(ratios)} reference networks)")
    if "split" in res:
        split_summary(res["split"], args.device)
    if "width" in res:
        if not res["width"]["config"].get("calibration"):
            res["width"]["drift"] = drift
        width_summary(res["width"], args.device)
    return {
        "networks": len(nets) - len(reference),
        "reference_networks": len(ratios),
        "passes": args.passes,
        "phases": phases,
        "drift": drift,
        "drift_p10": float(np.percentile(ratios, 10)) if len(ratios) else None,
        "drift_p90": float(np.percentile(ratios, 90)) if len(ratios) else None,
        "pass_spread_median": float(np.median(spread)),
        "pass_spread_max": float(np.max(spread)),
    }


# ------------------------------------------------------------------ summary
def markdown(res: dict) -> str:
    lines = [
        "# Splitting and width transfer on digits",
        "",
        "Produced by `taskset -c 0 .venv/bin/python benchmarks/splitting_width.py`; "
        "numbers from `splitting_width.json`.",
        "",
    ]
    if t := res.get("table"):
        m, mc, cc = t["held_out_network_metrics"], t["held_out_network_metrics_context"], t["context_calibration"]
        # Older runs stored a, b of Σ (op − b · input MB) − a; to_dict() stores offset_ms = −a, per_mb_ms = −b.
        a_ms = cc["a_ms"] if "a_ms" in cc else -cc["offset_ms"]
        b_ms_per_mb = cc["b_ms_per_mb"] if "b_ms_per_mb" in cc else -cc["per_mb_ms"]
        lines += [
            "## Predictor (digits-widths space)",
            "",
            f"Device `{t['device_key']}`; ops per kind {t['ops']}; {t['networks']} random-width networks "
            f"({t['network_ms_range'][0]:.3f}-{t['network_ms_range'][1]:.3f} ms). Held-out networks, "
            "calibration fitted on the other half:",
            "",
            "| network calibration | MAPE | ±10 % accuracy | Spearman |",
            "|---|---|---|---|",
            "| scale · Σ ops + overhead (`LatencyPredictor.calibrate(scale=True)`) | "
            f"{100 * m['mape']:.1f} % | {100 * m['acc10']:.0f} % | {m['spearman']:.3f} |",
            '| Σ (op − b · input MB) − a (`search._latency`, `terms="input-mb"`) | '
            f"{100 * mc['mape']:.1f} % | {100 * mc['acc10']:.0f} % | {mc['spearman']:.3f} |",
            "",
            f"All phases below use the second (fitted on all networks: a = {a_ms:.4f} ms, "
            f"b = {b_ms_per_mb:.4f} ms/MB).",
            "",
        ]
    if e := res.get("eigen"):
        lines += [
            "## Fast vs exact splitting index",
            "",
            f"Trained seed (width 0.25, {e['neurons']} neurons). Fast = {e['sweeps']} sweeps of RMSprop on v "
            f"(the paper's method, `refine=0`), then (the default, `refine={e['fast']['refine']}`) Rayleigh–Ritz on "
            f"the Krylov space span{{v, Sv, …}} of each neuron from {e['fast']['refine']} more passes of S·v "
            f"products. Time: exact {e['exact_seconds']:.1f} s, fast {e['fast_gd']['seconds']:.1f} s, "
            f"fast + refinement {e['fast']['seconds']:.1f} s.",
            "",
            "| fast method | neurons | n | λ rel. err median | max | within 5 % | max abs err / max abs λ "
            "| min abs cos | cos > 0.95 | same choice |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for method, mlabel in (("fast_gd", "gradient descent"), ("fast", "+ Krylov refinement")):
            for mode, label in (
                ("energy", "split by energy-aware (stage 1)"),
                ("vanilla", "split by vanilla (stage 1)"),
                ("most_negative_half", "most negative half"),
                ("all", "all"),
            ):
                x = e[method][mode]
                same = f"{100 * x['same_choice']:.0f} %" if "same_choice" in x else "–"
                lines.append(
                    f"| {mlabel} | {label} | {x['split_neurons']} | {100 * x['rel_err_median']:.2f} % | "
                    f"{100 * x['rel_err_max']:.2f} % | {100 * x['within_5pct']:.0f} % | "
                    f"{100 * x['abs_err_max_over_max_abs_lambda']:.2f} % | {x['cos_min']:.3f} | "
                    f"{100 * x['cos_above_095']:.0f} % | {same} |"
                )
        out = e["fast_gd"]["energy"]["outliers_abs_lambda_over_max"]
        if out:
            lines += [
                "",
                f"Gradient descent alone misses {len(out)} of the energy-aware choice's neurons by more than "
                f"5 % (|λ| ≤ {100 * max(out):.2f} % of the largest |λ|): their two smallest eigenvalues are close "
                "(it converges to the second pair) or their S is small next to the other neurons' (v has not "
                "converged when the learning rate has decayed). Same choice = intersection / union of the "
                "neurons chosen from the fast and from the exact index.",
            ]
        lines.append("")
    if k := res.get("knapsack"):
        lines += [
            "## LP-relaxed knapsack vs exact DP",
            "",
            f"{k['instances']} random instances, n = 5-30: feasible {100 * k['feasible']:.0f} %, within the LP "
            f"bound {100 * k['within_lp_bound']:.0f} %, optimal {100 * k['optimal']:.0f} %; gap to the optimum "
            f"mean {100 * k['gap_mean']:.2f} %, max {100 * k['gap_max']:.2f} % "
            f"(LP {k['lp_ms_mean']:.1f} ms, DP {k['dp_ms_mean']:.1f} ms per instance).",
            "",
        ]
    if s := res.get("split"):
        c = s["config"]
        lines += [
            "## Energy-aware vs vanilla splitting",
            "",
            f"Seed: {c['seed_channels']} channels in every layer (each layer may grow 8x, in blocks of "
            f"{c.get('granularity', 1)}); seed trained {c['epochs']} epochs, {c['stage_epochs']} after each "
            f"split; {c['seeds']} seeds; splitting index {c['eigen']}. Equal-latency comparison: each stage "
            "of one curve against the other curve of the same seed (accuracy interpolated in log latency, "
            "where it covers that latency).",
            "",
            "| at equal | a | b | pairs | mean acc a − b | a better | a worse |",
            "|---|---|---|---|---|---|---|",
        ]
        for cmp in s.get("comparisons", []):
            mean = cmp["mean_acc_diff"]
            at = cmp.get("latency", "measured_ms").replace("_ms", " latency")
            lines.append(
                f"| {at} | {cmp['a']} | {cmp['b']} | {cmp['pairs']} | "
                f"{'n/a' if mean is None else f'{100 * mean:+.2f} points'} | {cmp['wins']} | "
                f"{cmp['losses']} |"
            )
        lines += [
            "",
            "| variant | stage | predicted ms (mean) | measured ms (mean) | test acc (mean) |",
            "|---|---|---|---|---|",
        ]
        for label, pts in s["curves"].items():
            for k2, (ms, acc) in enumerate(pts):
                pred = [r["predicted_ms"] for r in s["rows"] if r.get("variant") == label and r["stage"] == k2]
                lines.append(
                    f"| {label} | {k2} | {np.mean(pred) if pred else float('nan'):.4f} | {ms:.4f} | {100 * acc:.2f} % |"
                )
        lines += ["", "Final widths (one list per seed):", ""]
        for label, fin in s.get("finals", {}).items():
            lines.append(f"- {label}: {fin['widths']}")
        lines += ["", "![splitting](splitting_tradeoff.png)", ""]
    if m := res.get("measure"):
        lines += [
            "## Re-measurement",
            "",
            f"The {m['networks']} networks of the {' and '.join(m['phases'])} phases were measured again in "
            f"{m['passes']} passes, each a fresh interleaved session over all of them, and each network's "
            "fastest pass kept (the host slows the whole VM by up to 2x for seconds at a time, which only "
            f"adds time): spread between passes median {100 * m['pass_spread_median']:.1f} %, max "
            f"{100 * m['pass_spread_max']:.1f} % of the kept value. The measured latencies in the "
            "sections above are these.",
            "",
        ]
        if m.get("drift"):
            lines += [
                f"The table's {m['reference_networks']} calibration networks, measured in the same passes, "
                f"took {m['drift']:.2f}x (p10 {m['drift_p10']:.2f}x, p90 {m['drift_p90']:.2f}x) their latency "
                "in the table: the machine's speed today against the day the table and the predictor were "
                "made. "
                + (
                    "The width phase's budgets already include it (its calibration was measured "
                    "again before the search)."
                    if res.get("width", {}).get("config", {}).get("calibration")
                    else "Measured errors against a budget are given raw and against the budget times this factor."
                ),
                "",
            ]
    if w := res.get("width"):
        c, cs = w["config"], w["cost_saved"]
        lines += [
            "## Width transfer vs direct optimisation vs uniform",
            "",
            f"MorphNet-style optimiser (strength {c['strength']}, {c.get('opt_steps')} SGD steps); projection "
            f"`{c['projection']}`, stacking `{c['rule']}`; each network trained {c['epochs']} epochs × "
            f"{c['seeds']} seeds. Optimisation cost saved by transfer: {cs['macs_ratio']:.1f}× in MACs, "
            f"{cs['seconds_ratio']:.1f}× in wall time.",
            "",
        ]
        if cal := c.get("calibration"):
            lines += [
                f"Network latency calibrated ({cal['terms']}) on the table's {cal['n_networks']} networks "
                f"measured again before the search: scale {cal['scale']:.3f}, {cal['per_mb_ms']:+.4f} ms/MB, "
                f"{cal['offset_ms']:+.4f} ms (max fit error {100 * (cal['max_rel_error'] or 0):.1f} %); "
                "budgets are in that day's milliseconds.",
                "",
            ]
        with_drift = any("measured_err_drift" in r for r in w["rows"])
        lines += [
            "| method | budget ms | predicted ms (err) | measured ms (err) | "
            + ("err vs budget x drift | " if with_drift else "")
            + "test acc | widths |",
            "|---|---|---|---|---|---|" + ("---|" if with_drift else ""),
        ]
        for r in w["rows"]:
            drift = f" {100 * r['measured_err_drift']:+.1f} % |" if with_drift else ""
            lines.append(
                f"| {r['method']} | {r['budget_ms']:.4f} | {r['predicted_ms']:.4f} "
                f"({100 * r['predicted_err']:+.1f} %) | {r['measured_ms']:.4f} "
                f"({100 * r['measured_err']:+.1f} %) |{drift}"
                f" {100 * r['test_acc']:.2f} % | {r['widths']} |"
            )
        lines += ["", "![width](width_tradeoff.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--device", default="onnxruntime-cpu/cores=0", help="measuring device (default: pinned to CPU 0)")
    p.add_argument("--db", type=Path, default=ROOT / "out" / "digits" / "digits-widths.db")
    p.add_argument("--csv", type=Path, default=ROOT / "datasets_lat" / "onnxruntime-cpu_digits-widths.csv")
    p.add_argument("--predictor", type=Path, default=ROOT / "out" / "digits" / "digits-widths.skops")
    p.add_argument("--n-ops", type=int, default=1000)
    p.add_argument("--n-nets", type=int, default=48)
    p.add_argument("--epochs", type=int, default=30, help="seed / final training epochs")
    p.add_argument("--stage-epochs", type=int, default=15)
    p.add_argument("--seed-channels", type=int, default=4, help="splitting seed: this many channels in every layer")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--eigen", default="exact", help="splitting index in the trade-off runs (exact is faster here)")
    p.add_argument("--sweeps", type=int, default=40, help="fast splitting index: sweeps in the eigen phase")
    p.add_argument("--instances", type=int, default=500)
    p.add_argument("--projection", default="width=0.5,depth=0.5,res=16,data=0.2")
    p.add_argument("--rule", default="average")
    p.add_argument("--strength", type=float, default=0.2)
    p.add_argument("--opt-steps", type=int, default=340, help="width optimiser SGD steps (20 epochs of digits)")
    p.add_argument("--passes", type=int, default=7, help="measure phase: passes over all networks (fastest kept)")
    p.add_argument(
        "--budget-widths",
        type=float,
        nargs="+",
        default=[0.5, 1.0],
        help="budgets = predicted latency of the uniform network at these width multipliers",
    )
    args = p.parse_args(argv)
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    bad = sorted(set(phases) - set(PHASES))
    if bad:
        p.error(f"unknown phases {bad}; valid: {', '.join(PHASES)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / "splitting_width.json"
    res = json.loads(out_json.read_text()) if out_json.exists() else {}
    args.results = res
    for phase in phases:
        t0 = time.perf_counter()
        res[phase] = globals()[f"phase_{phase}"](args)
        res[phase]["seconds"] = time.perf_counter() - t0
        out_json.write_text(json.dumps(res, indent=1, default=float) + "\n")
        (RESULTS / "splitting_width.md").write_text(markdown(res) + "\n")
        log(f"phase {phase} done in {time.perf_counter() - t0:.0f} s")
    print((RESULTS / "splitting_width.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
