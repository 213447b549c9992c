"""Does a measurement through the emulated phone agree with litert-cpu on this host?

    taskset -c 0 python benchmarks/adb_emulator_agreement.py --space mixed --n 30 --repeats 2

Starts the fake adb server (hwlat.devices.testing.fake_adb) in its own process, then
runs ``hwlat measure`` alternately on ``adb:emulator-5554`` (benchmark_model
emulated with the LiteRT interpreter, through the adb protocol, push, taskset,
output parsing) and on ``litert-cpu`` (the same .tflite files timed in-process),
``--repeats`` times each, into separate tables. Reports per-op ratios
adb/litert (repeat-matched) next to the noise floors litert/litert and adb/adb
between repeats: median |diff| and the share of ops within ±5 % and ±10 %.
Writes OUT.json and OUT.md and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hwlat(*args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "hwlat.cli", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"hwlat {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout.strip()


def _medians(db: Path) -> dict[str, float]:
    from hwlat.store import LatencyStore

    with LatencyStore(db, readonly=True) as store:
        return {m.op_key: m.median_ms for m in store.measurements()}


def _compare(a: dict[str, float], b: dict[str, float]) -> dict:
    keys = sorted(set(a) & set(b))
    r = np.array([a[k] / b[k] for k in keys])
    d = np.abs(r - 1)
    return {
        "ops": len(keys),
        "median_abs_diff": float(np.median(d)),
        "p90_abs_diff": float(np.percentile(d, 90)),
        "within_5pct": float(np.mean(d <= 0.05)),
        "within_10pct": float(np.mean(d <= 0.10)),
        "ratio_median": float(np.median(r)),
        "ratio_p10": float(np.percentile(r, 10)),
        "ratio_p90": float(np.percentile(r, 90)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="mixed")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/adb_emulator")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hwlat-adb-bench-"))
    port = _free_port()
    binary = work / "benchmark_model"
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port), "ADBUTILS_ADB_PATH": "/bin/false"}
    server = subprocess.Popen(
        [sys.executable, "-m", "hwlat.devices.testing.fake_adb", "--port", str(port), "--write-binary", str(binary)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        print(server.stdout.readline().strip(), file=sys.stderr)
        common = ["--space", args.space, "--n", str(args.n), "-q"]
        runs: dict[str, list[dict[str, float]]] = {"adb": [], "litert": []}
        t0 = time.time()
        for r in range(args.repeats):
            order = ["adb", "litert"] if r % 2 == 0 else ["litert", "adb"]  # alternate: drifts hit both
            for which in order:
                db = work / f"{which}_{r}.db"
                device = (
                    ["--device", "adb:emulator-5554", "--bench-binary", str(binary)]
                    if which == "adb"
                    else ["--device", "litert-cpu"]
                )
                print(_hwlat("measure", *device, *common, "--db", str(db), env=env), file=sys.stderr)
                runs[which].append(_medians(db))
        result = {
            "space": args.space,
            "n": args.n,
            "repeats": args.repeats,
            "minutes": (time.time() - t0) / 60,
            "host_cpu": next(
                (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
            ),
            "adb_vs_litert": [_compare(a, b) for a, b in zip(runs["adb"], runs["litert"])],
            "litert_vs_litert": [_compare(runs["litert"][i], runs["litert"][i + 1]) for i in range(args.repeats - 1)],
            "adb_vs_adb": [_compare(runs["adb"][i], runs["adb"][i + 1]) for i in range(args.repeats - 1)],
            "op_median_ms": float(np.median(list(runs["litert"][0].values()))),
        }
    finally:
        server.terminate()
        server.wait(10)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Emulated phone vs litert-cpu ({args.space}, {args.n} ops, {args.repeats} repeats, {result['host_cpu']})",
        "",
        f"Op latencies: median {result['op_median_ms']:.3f} ms. Same .tflite files, same LiteRT interpreter, 1 thread, "
        "adaptive protocol; the emulated path adds adb, push, taskset and benchmark_model's output format.",
        "",
        "| comparison | ops | median abs diff | p90 abs diff | within ±5 % | within ±10 % | ratio p10..p90 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("adb_vs_litert", "litert_vs_litert", "adb_vs_adb"):
        for i, c in enumerate(result[name]):
            lines.append(
                f"| {name.replace('_vs_', ' / ')} #{i + 1} | {c['ops']} | {100 * c['median_abs_diff']:.1f} % | "
                f"{100 * c['p90_abs_diff']:.1f} % | {100 * c['within_5pct']:.0f} % | {100 * c['within_10pct']:.0f} % | "
                f"{c['ratio_p10']:.3f}..{c['ratio_p90']:.3f} |"
            )
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
