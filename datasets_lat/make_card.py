"""Write the card (markdown) of a shipped latency table from the table itself.

    python datasets_lat/make_card.py datasets_lat/onnxruntime-cpu_mbconv.csv [--repeat ..._repeat.csv]

The card states the device and software (from the rows' provenance), the
protocol, what was measured, when, summary statistics, and how to regenerate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

NETWORKS = "random ProxylessNAS-backbone networks at 224x224 (`random:200`, seed 0)"
REGENERATE = "`bash datasets_lat/regenerate.sh`"
GPU_BACKENDS = ("cuda", "tensorrt", "onnxruntime-cuda", "onnxruntime-trt")


def card(
    csv: Path, repeat: Path | None, note: str | None = None, networks: str = NETWORKS, regenerate: str = REGENERATE
) -> str:
    df = pd.read_csv(csv, keep_default_na=False)
    df["median_ms"] = df["median_ms"].astype(float)
    info = json.loads(df["device_info_json"].iloc[0])
    extra = info.get("extra", {})
    whole = df["kind"].isin(["network", "model"])  # networks and models measured whole
    ops = df[~whole]
    nets = df[whole]
    dates = sorted(df["created_at"])
    kinds = ", ".join(f"{k} ({n})" for k, n in ops["kind"].value_counts().sort_index().items())
    rel_iqr = (ops["iqr_ms"].astype(float) / ops["median_ms"]).median()
    lines = [
        f"# Latency table `{csv.name}`",
        "",
        "| field | value |",
        "|---|---|",
        f"| device key | `{info['device_key']}` |",
        f"| hardware | {info['hardware']} ({info['os']}, host `{info['hostname']}`) |",
        f"| runtime | {info['runtime']} {info['runtime_version']} |",
        *(f"| {k} | {v} |" for k, v in extra.items()),
        f"| threads | {info['threads']} "
        + (
            "(CPU threads of the process launching the GPU work) |"
            if info["backend"] in GPU_BACKENDS
            else "(process pinned to one CPU during timing) |"
        ),
        f"| Python | {info['python']} |",
        f"| hwlat | {', '.join(sorted(df['hwlat_version'].unique()))} |",
        f"| protocol | `{df['protocol'].iloc[0]}` |",
        f"| measured | {dates[0][:16]} – {dates[-1][:16]} UTC |",
        f"| op rows | {len(ops)}: {kinds} |",
        f"| network rows | {len(nets)} {networks} |",
        f"| op latency (median) | {ops['median_ms'].median():.3f} ms (range "
        f"{ops['median_ms'].min():.3f}–{ops['median_ms'].max():.3f} ms) |",
        f"| network latency (median) | {nets['median_ms'].median():.2f} ms (range "
        f"{nets['median_ms'].min():.2f}–{nets['median_ms'].max():.2f} ms) |"
        if len(nets)
        else "| network latency | – |",
        f"| settled rows (CI ±2 % and rounds agree) | "
        f"{100 * df['stable'].astype(str).isin(['True', '1', '1.0']).mean():.1f} % |",
        f"| median relative IQR of ops | {100 * rel_iqr:.1f} % |",
    ]
    if repeat is not None and repeat.exists():
        rep = pd.read_csv(repeat, keep_default_na=False)
        m = df.merge(rep, on=["device_key", "op_key", "protocol"], suffixes=("", "_rep"))
        rel = np.abs(m["median_ms_rep"].astype(float) / m["median_ms"] - 1)
        lines.append(
            f"| repeatability ({len(m)} rows measured again in a separate run, `{repeat.name}`) | "
            f"{100 * (rel <= 0.05).mean():.1f} % within ±5 %, {100 * (rel <= 0.10).mean():.1f} % within ±10 %, "
            f"median |diff| {100 * rel.median():.2f} % |"
        )
    lines += [
        "",
        *(
            note.splitlines()
            if note
            else [
                "Measured on a shared 2-vCPU cloud VM: absolute numbers carry that machine's noise; compare",
                "within the table, and use `stable` / `ci_low_ms`..`ci_high_ms` to weigh rows.",
            ]
        ),
        "",
        "Columns: one row per (device, op, protocol) with `n`, `median_ms`, `mean_ms`, `std_ms`, `p5_ms`, `p95_ms`,",
        "`iqr_ms`, the median's 95 % CI, `round_medians_ms`, `stable`, `loadavg`, `wall_s`, provenance",
        "(`device_info_json`, `hwlat_version`, `created_at`) and, for network rows, `network_json` (its op list)."
        + (
            " Model rows keep the kernels the runtime ran in `extra_json` (`kernels`: one op key per kernel)."
            if (df["kind"] == "model").any()
            else ""
        ),
        "",
        "Use: `hwlat table import --db t.db "
        + f"datasets_lat/{csv.name}` then `hwlat fit --table t.db --out p.skops`.",
        f"Regenerate on your machine: {regenerate}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--repeat", type=Path)
    ap.add_argument("--note", help="replaces the default sentence about the machine the table was measured on")
    ap.add_argument("--networks", default=NETWORKS, help="what the network rows are")
    ap.add_argument("--regenerate", default=REGENERATE, help="how to regenerate the table (markdown)")
    args = ap.parse_args()
    out = args.csv.with_suffix(".md")
    out.write_text(card(args.csv, args.repeat, args.note, args.networks, args.regenerate))
    print(out.read_text())


if __name__ == "__main__":
    main()
