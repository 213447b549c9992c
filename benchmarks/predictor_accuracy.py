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

Writes benchmarks/results/predictor_accuracy.{json,md,png}. Other tables (the GPU
tables of a GPU session, written by benchmarks/gpu_ingest.py) with
``--devices cuda-eager-b1,... --name gpu_predictor_accuracy``: there the sizes stop
at what the table has, the overhead is calibrated on min(10, half) of its
networks, and the noise floor uses the partial repeat (``*_repeat.csv``) when
there is one (over all its ops when fewer than 20 held-out ops were repeated).
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

    from hwlat.predict import LatencyPredictor
    from hwlat.predict.evaluate import metrics, split_ops

    df, nets = load(data / f"{dev}_mbconv.csv")
    repeat = data / f"{dev}_mbconv_repeat.csv"
    rep = load(repeat)[0] if repeat.exists() else None  # GPU sessions may have no repeat of a table
    ops = df[df["kind"] != "network"].reset_index(drop=True)
    train_pool, test = split_ops(ops["op_key"], 0.2, seed=0)
    test &= (ops["kind"] == "mbconv").to_numpy()  # stem/head exist once each: always trained on
    train_pool = ~test
    net_rows = df[df["kind"] == "network"].sort_values("op_key").reset_index(drop=True)
    n_calibrate = min(N_CALIBRATE, len(net_rows) // 2)  # a short GPU session measures fewer networks
    calib, evaluate = net_rows.iloc[:n_calibrate], net_rows.iloc[n_calibrate:]
    rng = np.random.default_rng(0)
    curves = []
    largest = int(ops[train_pool].groupby("kind").size().max())
    sizes = [n for n in SIZES if n is not None and n < largest] + [None]  # sizes a small table reaches
    for size in tqdm(sizes, desc=dev, file=sys.stderr):
        # Same subset for every model: per kind, `size` ops drawn from the training pool.
        chosen = []
        for _kind, g in ops[train_pool].groupby("kind"):
            idx = g.index.to_numpy()
            chosen.extend(idx if size is None or len(idx) <= size else rng.choice(idx, size, replace=False))
        tr = ops.loc[sorted(chosen)]
        for model in MODELS:
            t0 = time.perf_counter()
            p = LatencyPredictor(model=model).fit(list(tr["op_key"]), tr["median_ms"].to_numpy(), device_key=dev)
            fit_s = time.perf_counter() - t0
            if n_calibrate:
                p.calibrate([nets[k] for k in calib["op_key"]], calib["median_ms"].to_numpy())
            op_m = metrics(p.predict(list(ops["op_key"][test])), ops["median_ms"][test].to_numpy())
            net_m = None
            if len(evaluate):
                net_pred = p.predict_network([nets[k] for k in evaluate["op_key"]])
                net_m = metrics(net_pred, evaluate["median_ms"].to_numpy()).to_dict()
            curves.append(
                {
                    "train_per_kind": size or "all",
                    "n_train": len(tr),
                    "model": model,
                    "fit_s": fit_s,
                    "overhead_ms": p.overhead_ms_,
                    "ops": op_m.to_dict(),
                    "networks": net_m,
                }
            )
    floor = None
    if rep is not None:
        merged = df.merge(rep, on=["device_key", "op_key", "protocol"], suffixes=("", "_rep"))
        floor_ops = merged[merged["op_key"].isin(set(ops["op_key"][test]))]
        if len(floor_ops) < 20:  # a partial repeat (GPU session): the floor over every repeated op
            floor_ops = merged[merged["kind"] != "network"]
        floor_nets = merged[merged["kind"] == "network"]
        floor = {
            level: metrics(g["median_ms_rep"].to_numpy(), g["median_ms"].to_numpy()).to_dict() if len(g) else None
            for level, g in (("ops", floor_ops), ("networks", floor_nets))
        }
    return {
        "device": dev,
        "n_ops": len(ops),
        "n_test_ops": int(test.sum()),
        "n_networks": len(net_rows),
        "n_calibration_networks": n_calibrate,
        "curves": curves,
        "noise_floor": floor,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.6 * len(results)), squeeze=False)
    for row, res in zip(axes, results):
        for ax, level in zip(row, ("ops", "networks")):
            for model in MODELS:
                pts = [
                    (c["n_train"], 100 * c[level]["acc10"]) for c in res["curves"] if c["model"] == model and c[level]
                ]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=model)
            floor = (res["noise_floor"] or {}).get(level)
            if floor:
                ax.axhline(100 * floor["acc10"], color="k", ls="--", label="noise floor")
            ax.set_title(f"{res['device']}: {level}, ±10 % accuracy")
            ax.set_xscale("log")
            ax.set_xlabel("training ops")
            ax.set_ylabel("%")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cells(m: dict | None, rmse_digits: int) -> str:
    if not m:
        return "– | – | – | –"
    return (
        f"{100 * m['acc10']:.1f} % | {100 * m['acc5']:.1f} % | {100 * m['mape']:.2f} % | {m['rmse_ms']:.{rmse_digits}f}"
    )


def markdown(results: list[dict], regenerate: str) -> str:
    lines = ["# Predictor accuracy (held-out MBConv ops; held-out networks, overhead calibrated on the others)", ""]
    for res in results:
        n_eval = res["n_networks"] - res["n_calibration_networks"]
        lines += [
            f"## {res['device']} — {res['n_ops']} ops ({res['n_test_ops']} held out), {res['n_networks']} networks "
            f"({n_eval} held out, {res['n_calibration_networks']} calibrate the overhead)",
            "",
            "| model | train ops | ops ±10 % | ops ±5 % | ops MAPE | ops RMSE ms | "
            "nets ±10 % | nets ±5 % | nets MAPE | nets RMSE ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in res["curves"]:
            lines.append(f"| {c['model']} | {c['n_train']} | {_cells(c['ops'], 4)} | {_cells(c['networks'], 3)} |")
        floor = res["noise_floor"]
        if floor:
            lines.append(
                f"| **noise floor** (repeat vs first) | – | "
                f"{_cells(floor['ops'], 4)} | {_cells(floor['networks'], 3)} |"
            )
        else:
            lines.append("| noise floor | – | no repeated measurement of this table | | | | | | | |")
        lines.append("")
    lines.append(f"Regenerate: `{regenerate}` (reads `datasets_lat/*.csv`).")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "datasets_lat")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--devices", default=",".join(DEVICES), help="tables DATA/NAME_mbconv.csv (+ _repeat.csv if any)")
    ap.add_argument("--name", default="predictor_accuracy", help="output file name, without suffix")
    args = ap.parse_args()
    results = [run_device(dev, args.data) for dev in args.devices.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n"
    )
    plot(results, args.out / f"{args.name}.png")
    regenerate = "python benchmarks/predictor_accuracy.py" + (
        "" if args.devices == ",".join(DEVICES) else f" --devices {args.devices} --name {args.name}"
    )
    md = markdown(results, regenerate)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
