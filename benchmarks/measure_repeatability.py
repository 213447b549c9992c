"""Repeatability of the timing protocols: the same ops measured in two separate runs.

For each protocol (the default adaptive one and a fixed one like
``benchmark_model``'s defaults: 1 warm-up ≥ 0.5 s, 50 runs ≥ 1 s) the same
MBConv-space ops are measured twice, each run a separate ``hwlat measure``
process writing its own table; runs of the two protocols alternate so slow
drifts of the machine hit both alike. Reports the fraction of ops whose two
medians agree within ±5 % and ±10 %, and the median wall time per op.

    python benchmarks/measure_repeatability.py [--device onnxruntime-cpu] [--n 100]

Writes benchmarks/results/measure_repeatability[_DEVICE].json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def run(device: str, n: int, protocol: str, db: Path, seed: int) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "hwlat.cli", "measure", "--device", device, "--space", "mbconv", "--n", str(n),
           "--seed", str(seed), "--db", str(db), "--protocol", protocol, "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def medians(db: Path) -> dict[str, tuple[float, float, bool]]:
    from hwlat.store import LatencyStore

    with LatencyStore(db, readonly=True) as store:
        return {m.op_key: (m.median_ms, m.wall_s, m.stable) for m in store.measurements()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="onnxruntime-cpu")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    from hwlat.devices import create_backend
    from hwlat.spaces import get_space
    from hwlat.timing import Protocol

    backend = create_backend(args.device)
    ops = get_space("mbconv").sample(args.n, seed=args.seed)
    for op in ops:  # fill the conversion cache so both protocols pay the same prepare cost
        backend.prepare(op).close()

    work = Path(tempfile.mkdtemp(prefix="hwlat-repeat-"))
    order = [("adaptive", "a"), ("fixed", "a"), ("adaptive", "b"), ("fixed", "b")]
    run_wall: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    for protocol, tag in order:
        wall = run(args.device, args.n, protocol, work / f"{protocol}-{tag}.db", args.seed)
        run_wall[protocol].append(wall)
        print(f"{protocol} run {tag}: {wall:.1f} s", file=sys.stderr)

    results = {}
    for protocol, key in (("adaptive", Protocol().key), ("fixed", Protocol.fixed().key)):
        a, b = medians(work / f"{protocol}-a.db"), medians(work / f"{protocol}-b.db")
        common = sorted(set(a) & set(b))
        rel = np.array([abs(a[k][0] - b[k][0]) / ((a[k][0] + b[k][0]) / 2) for k in common])
        walls = np.array([a[k][1] for k in common] + [b[k][1] for k in common])
        results[protocol] = {
            "protocol_key": key,
            "ops": len(common),
            "within_5pct": float(np.mean(rel <= 0.05)),
            "within_10pct": float(np.mean(rel <= 0.10)),
            "median_abs_rel_diff": float(np.median(rel)),
            "p90_abs_rel_diff": float(np.percentile(rel, 90)),
            "median_wall_s_per_op": float(np.median(walls)),
            "run_wall_s": run_wall[protocol],
            "settled_fraction": float(np.mean([a[k][2] for k in common] + [b[k][2] for k in common])),
        }
    ratio = results["adaptive"]["median_wall_s_per_op"] / results["fixed"]["median_wall_s_per_op"]
    info = backend.describe()
    payload = {
        "benchmark": "measure_repeatability",
        "date": time.strftime("%Y-%m-%d"),
        "device": info.to_dict(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "n_ops": args.n,
        "seed": args.seed,
        "results": results,
        "adaptive_over_fixed_time": ratio,
        "goal": "adaptive: >= 95 % of ops within ±5 %, at <= 0.5x the fixed protocol's time per op",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.device == "onnxruntime-cpu" else f"_{args.device}"
    (args.out / f"measure_repeatability{suffix}.json").write_text(json.dumps(payload, indent=2) + "\n")
    rows = [
        f"| {p} | {r['ops']} | {100 * r['within_5pct']:.1f} % | {100 * r['within_10pct']:.1f} % | "
        f"{100 * r['median_abs_rel_diff']:.2f} % | {r['median_wall_s_per_op']:.3f} s | {100 * r['settled_fraction']:.0f} % |"
        for p, r in results.items()
    ]
    md = "\n".join([
        f"# Measurement repeatability — {info.device_key} ({info.hardware})",
        "",
        f"{args.n} MBConv-space ops (seed {args.seed}), each protocol run twice as separate processes, "
        f"alternating; {payload['date']}, {os.cpu_count()} CPUs, shared machine.",
        "",
        "| protocol | ops | within ±5 % | within ±10 % | median abs diff | median wall / op | settled |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Adaptive / fixed wall time per op: **{ratio:.2f}x**. Goal: ≥ 95 % within ±5 % at ≤ 0.5x.",
        "",
        f"Regenerate: `python benchmarks/measure_repeatability.py --device {args.device} --n {args.n}`",
    ])  # fmt: skip
    (args.out / f"measure_repeatability{suffix}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
