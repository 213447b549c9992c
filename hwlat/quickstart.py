"""The embedded default job behind ``make quickstart`` / ``hwlat quickstart``.

Measures a CPU latency table of MBConv-space ops with the default protocol
(resumable: a second run reuses the table), then writes a short report.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def run_quickstart(out: Path, n_ops: int = 120, device: str = "onnxruntime-cpu") -> int:
    from hwlat.cli import run_measure
    from hwlat.devices import create_backend
    from hwlat.spaces import get_space
    from hwlat.store import LatencyStore, check_writable
    from hwlat.timing import Protocol

    out = Path(out)
    check_writable(out / "table.db")
    backend = create_backend(device)
    protocol = Protocol()
    ops = get_space("mbconv").sample(n_ops, seed=0)
    t0 = time.perf_counter()
    print(f"[1/1] measuring {len(ops)} MBConv-space ops on {backend.spec.key} -> {out / 'table.db'}", flush=True)
    with LatencyStore(out / "table.db") as store:
        new, skipped = run_measure(backend, ops, store, protocol)
        df = store.frame(backend.spec.key)
    df = df[df["protocol"] == protocol.key]
    lines = [
        "# hwlat quickstart",
        "",
        f"Device `{backend.spec.key}` ({df['hardware'].iloc[0]}, {df['runtime'].iloc[0]} {df['runtime_version'].iloc[0]}).",
        f"Protocol `{protocol.key}`.",
        "",
        f"- ops measured: {len(df)} ({new} new, {skipped} reused)",
        f"- settled (CI ±{100 * protocol.rel_ci:g} % and rounds agree): {100 * df['stable'].mean():.1f} %",
        f"- median latency: {df['median_ms'].median():.3f} ms (range {df['median_ms'].min():.3f}–{df['median_ms'].max():.3f} ms)",
        f"- median relative IQR: {100 * (df['iqr_ms'] / df['median_ms']).median():.1f} %",
        f"- wall time: {time.perf_counter() - t0:.1f} s",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"report: {report}", file=sys.stderr)
    return 0
