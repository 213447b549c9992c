"""Repeatability of the timing protocols: the same ops measured in two separate runs.

For each protocol (the default adaptive one, a fixed one like
``benchmark_model``'s defaults: 1 warm-up ≥ 0.5 s, 50 runs ≥ 1 s, and the
adaptive one with a drift reference, ``--reference auto``) the same
MBConv-space ops are measured twice, each run a separate ``hwlat measure``
process writing its own table; runs of the protocols alternate so slow
drifts of the machine hit all alike. Reports the fraction of ops whose two
medians agree within ±5 % and ±10 %, and the median wall time per op; for
the reference runs both raw and drift-corrected (both tables put on one
common speed, as one table measured in two sessions would be), and how far
the reference itself moved within each run (the machine's drift).

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


VARIANTS = {
    "adaptive": ["--protocol", "adaptive"],
    "fixed": ["--protocol", "fixed"],
    "adaptive+ref": ["--protocol", "adaptive", "--reference", "auto"],
}


def run(device: str, n: int, variant: str, db: Path, seed: int) -> float:
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "hwlat.cli",
        "measure",
        "--device",
        device,
        "--space",
        "mbconv",
        "--n",
        str(n),
        "--seed",
        str(seed),
        "--db",
        str(db),
        *VARIANTS[variant],
        "--quiet",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def frame(db: Path):
    from hwlat.store import LatencyStore

    with LatencyStore(db, readonly=True) as store:
        return store.frame(provenance=False).set_index("op_key", drop=False)


def agreement(a, b, wall_s, runs_wall) -> dict:
    """Agreement of two runs' frames (indexed by op key)."""
    common = sorted(set(a.index) & set(b.index))
    x, y = a.loc[common, "median_ms"].to_numpy(), b.loc[common, "median_ms"].to_numpy()
    rel = np.abs(x - y) / ((x + y) / 2)
    return {
        "ops": len(common),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "median_abs_rel_diff": float(np.median(rel)),
        "p90_abs_rel_diff": float(np.percentile(rel, 90)),
        "median_wall_s_per_op": float(np.median(wall_s)),
        "run_wall_s": runs_wall,
        "settled_fraction": float(np.mean(np.concatenate([a.loc[common, "stable"], b.loc[common, "stable"]]))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="onnxruntime-cpu")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    from hwlat.devices import create_backend
    from hwlat.spaces import get_space

    backend = create_backend(args.device)
    ops = get_space("mbconv").sample(args.n, seed=args.seed)
    for op in ops:  # fill the conversion cache so both protocols pay the same prepare cost
        backend.prepare(op).close()

    from hwlat.measure.drift import correct_frames

    work = Path(tempfile.mkdtemp(prefix="hwlat-repeat-"))
    order = [(v, tag) for tag in "ab" for v in VARIANTS]
    run_wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for variant, tag in order:
        wall = run(args.device, args.n, variant, work / f"{variant}-{tag}.db", args.seed)
        run_wall[variant].append(wall)
        print(f"{variant} run {tag}: {wall:.1f} s", file=sys.stderr)

    results, drift = {}, {}
    for variant in VARIANTS:
        a, b = frame(work / f"{variant}-a.db"), frame(work / f"{variant}-b.db")
        walls = np.concatenate([a["wall_s"], b["wall_s"]])
        name = "adaptive + reference, raw" if variant == "adaptive+ref" else variant
        results[name] = {"protocol_key": a["protocol"].iloc[0], **agreement(a, b, walls, run_wall[variant])}
        if variant == "adaptive+ref":
            ca, cb = correct_frames(a, b)
            results["adaptive + reference, corrected"] = {
                "protocol_key": a["protocol"].iloc[0],
                **agreement(ca, cb, walls, run_wall[variant]),
            }
            for tag, df in (("a", ca), ("b", cb)):
                ref = df["ref_ms"].to_numpy()
                drift[tag] = {
                    "ref_min_ms": float(np.min(ref)),
                    "ref_median_ms": float(np.median(ref)),
                    "ref_max_ms": float(np.max(ref)),
                    "max_over_min": float(np.max(ref) / np.min(ref)),
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
        "reference_drift": drift,
        "goal": "adaptive: >= 95 % of ops within ±5 %, at <= 0.5x the fixed protocol's time per op",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.device == "onnxruntime-cpu" else f"_{args.device}"
    (args.out / f"measure_repeatability{suffix}.json").write_text(json.dumps(payload, indent=2) + "\n")
    rows = [
        f"| {p} | {r['ops']} | {100 * r['within_5pct']:.1f} % | {100 * r['within_10pct']:.1f} % | "
        f"{100 * r['median_abs_rel_diff']:.2f} % | {r['median_wall_s_per_op']:.3f} s | "
        f"{100 * r['settled_fraction']:.0f} % |"
        for p, r in results.items()
    ]
    md = "\n".join(
        [
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
            "The machine's drift, as the reference op saw it (its median per row, ms): "
            + "; ".join(
                f"run {t}: {d['ref_min_ms']:.4g}-{d['ref_max_ms']:.4g} (x{d['max_over_min']:.2f})"
                for t, d in drift.items()
            )
            + ".",
            "",
            f"Regenerate: `python benchmarks/measure_repeatability.py --device {args.device} --n {args.n}`",
        ]
    )
    (args.out / f"measure_repeatability{suffix}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
