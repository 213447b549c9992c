"""Predictor accuracy: learning curves at op and network level, against the noise floor.

For each shipped CPU table (ops of the MBConv space + the backbone grid, and
200 random ProxylessNAS-backbone networks measured end to end):

- a fixed 20 % of the MBConv ops is held out (hash split);
- for 50 / 100 / 300 / all training ops per kind and for each model, fit,
  calibrate the network overhead on 10 networks, then report op-level metrics
  on the held-out ops and network-level metrics on the other 190 networks;
- the noise floor is the same metrics between the table and a repeated
  measurement of the same ops and of 50 networks (``*_repeat.csv``).

    python benchmarks/predictor_accuracy.py

Writes benchmarks/results/predictor_accuracy.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEVICES = ("onnxruntime-cpu", "litert-cpu")
SIZES = (50, 100, 300, None)
MODELS = ("prior", "gbr", "prior+gbr", "prior+rf", "prior+et")
N_CALIBRATE = 10


def load(csv: Path):
    from hwlat.store import LatencyStore

    store = LatencyStore(":memory:")
    store.import_file(csv)
    return store.frame(provenance=False), store.networks()


def run_device(dev: str, data: Path) -> dict:
    from tqdm.auto import tqdm

    from hwlat.evaluate import metrics, split_ops
    from hwlat.predict import LatencyPredictor

    df, nets = load(data / f"{dev}_mbconv.csv")
    rep, _ = load(data / f"{dev}_mbconv_repeat.csv")
    ops = df[df["kind"] != "network"].reset_index(drop=True)
    train_pool, test = split_ops(ops["op_key"], 0.2, seed=0)
    test &= (ops["kind"] == "mbconv").to_numpy()  # stem/head exist once each: always trained on
    train_pool = ~test
    net_rows = df[df["kind"] == "network"].sort_values("op_key").reset_index(drop=True)
    calib, evaluate = net_rows.iloc[:N_CALIBRATE], net_rows.iloc[N_CALIBRATE:]
    rng = np.random.default_rng(0)
    curves = []
    for size in tqdm(SIZES, desc=dev, file=sys.stderr):
        # Same subset for every model: per kind, `size` ops drawn from the training pool.
        chosen = []
        for kind, g in ops[train_pool].groupby("kind"):
            idx = g.index.to_numpy()
            chosen.extend(idx if size is None or len(idx) <= size else rng.choice(idx, size, replace=False))
        tr = ops.loc[sorted(chosen)]
        for model in MODELS:
            t0 = time.perf_counter()
            p = LatencyPredictor(model=model).fit(list(tr["op_key"]), tr["median_ms"].to_numpy(), device_key=dev)
            fit_s = time.perf_counter() - t0
            p.calibrate([nets[k] for k in calib["op_key"]], calib["median_ms"].to_numpy())
            op_m = metrics(p.predict(list(ops["op_key"][test])), ops["median_ms"][test].to_numpy())
            net_pred = p.predict_network([nets[k] for k in evaluate["op_key"]])
            net_m = metrics(net_pred, evaluate["median_ms"].to_numpy())
            curves.append({"train_per_kind": size or "all", "n_train": len(tr), "model": model, "fit_s": fit_s,
                           "overhead_ms": p.overhead_ms_, "ops": op_m.to_dict(), "networks": net_m.to_dict()})  # fmt: skip
    merged = df.merge(rep, on=["device_key", "op_key", "protocol"], suffixes=("", "_rep"))
    floor_ops = merged[merged["op_key"].isin(set(ops["op_key"][test]))]
    floor_nets = merged[merged["kind"] == "network"]
    floor = {
        "ops": metrics(floor_ops["median_ms_rep"].to_numpy(), floor_ops["median_ms"].to_numpy()).to_dict(),
        "networks": metrics(floor_nets["median_ms_rep"].to_numpy(), floor_nets["median_ms"].to_numpy()).to_dict(),
    }
    return {"device": dev, "n_ops": len(ops), "n_test_ops": int(test.sum()), "n_networks": len(net_rows),
            "n_calibration_networks": N_CALIBRATE, "curves": curves, "noise_floor": floor}  # fmt: skip


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.6 * len(results)), squeeze=False)
    for row, res in zip(axes, results):
        for ax, level in zip(row, ("ops", "networks")):
            for model in MODELS:
                pts = [(c["n_train"], 100 * c[level]["acc10"]) for c in res["curves"] if c["model"] == model]
                ax.plot(*zip(*pts), marker="o", label=model)
            ax.axhline(100 * res["noise_floor"][level]["acc10"], color="k", ls="--", label="noise floor")
            ax.set_title(f"{res['device']}: {level}, ±10 % accuracy")
            ax.set_xscale("log")
            ax.set_xlabel("training ops")
            ax.set_ylabel("%")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "datasets_lat")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--devices", default=",".join(DEVICES))
    args = ap.parse_args()
    results = [run_device(dev, args.data) for dev in args.devices.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predictor_accuracy.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n")
    plot(results, args.out / "predictor_accuracy.png")
    lines = ["# Predictor accuracy (held-out MBConv ops; 190 held-out networks, overhead calibrated on 10)", ""]
    for res in results:
        lines += [f"## {res['device']} — {res['n_ops']} ops ({res['n_test_ops']} held out), {res['n_networks']} networks", "",
                  "| model | train ops | ops ±10 % | ops ±5 % | ops MAPE | ops RMSE ms | nets ±10 % | nets ±5 % | nets MAPE | nets RMSE ms |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in res["curves"]:
            o, n = c["ops"], c["networks"]
            lines.append(f"| {c['model']} | {c['n_train']} | {100 * o['acc10']:.1f} % | {100 * o['acc5']:.1f} % | {100 * o['mape']:.2f} % | "
                         f"{o['rmse_ms']:.4f} | {100 * n['acc10']:.1f} % | {100 * n['acc5']:.1f} % | {100 * n['mape']:.2f} % | {n['rmse_ms']:.3f} |")  # fmt: skip
        f_o, f_n = res["noise_floor"]["ops"], res["noise_floor"]["networks"]
        lines.append(f"| **noise floor** (repeat vs first) | – | {100 * f_o['acc10']:.1f} % | {100 * f_o['acc5']:.1f} % | {100 * f_o['mape']:.2f} % | "
                     f"{f_o['rmse_ms']:.4f} | {100 * f_n['acc10']:.1f} % | {100 * f_n['acc5']:.1f} % | {100 * f_n['mape']:.2f} % | {f_n['rmse_ms']:.3f} |")  # fmt: skip
        lines.append("")
    lines.append("Regenerate: `python benchmarks/predictor_accuracy.py` (reads `datasets_lat/*.csv`).")
    (args.out / "predictor_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
