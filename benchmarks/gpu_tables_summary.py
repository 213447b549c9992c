"""Summarise the GPU latency tables written by benchmarks/gpu_tables.sh.

    python benchmarks/gpu_tables_summary.py datasets_lat/cuda-*_mbconv.csv --out benchmarks/results/gpu_tables

For each table (a device key such as ``cuda/t1/b8/fp32/gpu=0/mode=graph``):
rows, settled fraction, median op and network latency. Across tables: the
speed-up of CUDA graphs over eager per op kind (same ops, same batch), and
the per-image throughput gain of batch 8 over batch 1 (same ops, same mode).
Writes OUT.json and OUT.md; prints the markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from hwlat.devices import DeviceSpec


def _config(device_key: str) -> tuple[str, int]:
    spec = DeviceSpec.parse(device_key)
    return spec.option("mode", "eager"), spec.batch


def _ratio_stats(r: pd.Series) -> dict[str, float]:
    return {"n": len(r), "median": float(r.median()), "p10": float(r.quantile(0.1)), "p90": float(r.quantile(0.9))}


def summarise(csvs: list[Path]) -> dict:
    frames = []
    for csv in csvs:
        df = pd.read_csv(csv, keep_default_na=False)
        df["median_ms"] = df["median_ms"].astype(float)
        df["stable"] = df["stable"].astype(str).isin(["True", "1", "1.0"])
        df["mode"], df["batch"] = zip(*df["device_key"].map(_config))
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    info = json.loads(df["device_info_json"].iloc[0])
    out: dict = {
        "gpu": info["hardware"],
        "runtime": f"{info['runtime']} {info['runtime_version']}",
        "extra": info.get("extra", {}),
        "tables": [],
        "graph_speedup": {},
        "batch8_gain": {},
    }
    for key, g in df.groupby("device_key"):
        ops, nets = g[g["kind"] != "network"], g[g["kind"] == "network"]
        out["tables"].append(
            {
                "device_key": key,
                "rows": len(g),
                "settled": float(g["stable"].mean()),
                "op_median_ms": float(ops["median_ms"].median()) if len(ops) else None,
                "network_median_ms": float(nets["median_ms"].median()) if len(nets) else None,
            }
        )
    for batch, g in df.groupby("batch"):
        wide = g.pivot_table(index=["op_key", "kind"], columns="mode", values="median_ms").dropna()
        if {"eager", "graph"} <= set(wide.columns):
            ratio = (wide["eager"] / wide["graph"]).reset_index(name="r")
            out["graph_speedup"][f"b{batch}"] = {k: _ratio_stats(s["r"]) for k, s in ratio.groupby("kind")}
    for mode, g in df.groupby("mode"):
        wide = g.pivot_table(index=["op_key", "kind"], columns="batch", values="median_ms").dropna()
        if {1, 8} <= set(wide.columns):
            gain = (8 * wide[1] / wide[8]).reset_index(name="r")  # images per second, b8 over b1
            out["batch8_gain"][mode] = {k: _ratio_stats(s["r"]) for k, s in gain.groupby("kind")}
    return out


def markdown(s: dict) -> str:
    lines = [
        f"# GPU latency tables: {s['gpu']} ({s['runtime']})",
        "",
        "| table | rows | settled | op median | network median |",
        "|---|--:|--:|--:|--:|",
    ]
    for t in s["tables"]:
        op = "–" if t["op_median_ms"] is None else f"{t['op_median_ms']:.4f} ms"
        net = "–" if t["network_median_ms"] is None else f"{t['network_median_ms']:.3f} ms"
        lines.append(f"| `{t['device_key']}` | {t['rows']} | {100 * t['settled']:.1f} % | {op} | {net} |")
    for title, data, what in (
        ("CUDA graphs over eager (eager / graph latency, same ops)", s["graph_speedup"], "batch"),
        ("Batch 8 over batch 1 (per-image throughput gain, 8 x t(b1) / t(b8))", s["batch8_gain"], "mode"),
    ):
        lines += ["", f"## {title}", "", f"| {what} | kind | ops | median | p10 | p90 |", "|---|---|--:|--:|--:|--:|"]
        for group, kinds in data.items():
            for kind, st in kinds.items():
                lines.append(
                    f"| {group} | {kind} | {st['n']} | {st['median']:.2f}x | {st['p10']:.2f}x | {st['p90']:.2f}x |"
                )
    lines += ["", "Provenance: " + ", ".join(f"{k} {v}" for k, v in s["extra"].items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csvs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_tables"))
    args = ap.parse_args()
    s = summarise(args.csvs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(s, indent=1) + "\n")
    md = markdown(s)
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
